"""The OpenAPI schema says what the server answers: the error statuses each operation gives, and the real
body of a 422 (`detail` and `errors`), not FastAPI's HTTPValidationError. scripts/openapi_conformance.py
(in .ci/run) checks the same with schemathesis over every operation."""

from __future__ import annotations

from typing import Any

import httpx

from tests.conftest import ProjectFixture, Server


def operations(schema: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(method, path, op) for path, item in schema["paths"].items() for method, op in item.items()]


def test_every_operation_declares_the_errors_it_gives(server: Server) -> None:
    schema = httpx.get(server.url + "/api/openapi.json").json()
    assert "HTTPValidationError" not in schema["components"]["schemas"]
    assert set(schema["components"]["schemas"]["ValidationProblem"]["required"]) == {"detail", "errors"}
    for method, path, op in operations(schema):
        responses = op["responses"]
        assert {"401", "422"} <= set(responses), (method, path, sorted(responses))
        problem = responses["422"]["content"]["application/json"]["schema"]["$ref"]
        assert problem == "#/components/schemas/ValidationProblem", (method, path)
        if "{" in path:
            assert "404" in responses, (method, path)
        if method != "get":
            assert {"403", "503"} <= set(responses), (method, path)
    declared = {(m, p): set(op["responses"]) for m, p, op in operations(schema)}
    assert "409" in declared[("delete", "/api/v1/monitors/{monitor_id}")]  # managed by the monitors file
    assert "409" in declared[("post", "/api/v1/incidents/{incident_id}/state")]
    for method, path in (("delete", "/api/v1/alerting/receivers/{name}"),
                         ("delete", "/api/v1/alerting/routes/{route_id}"),
                         ("post", "/api/v1/alerting/routes"), ("put", "/api/v1/alerting/receivers/{name}")):
        assert "409" in declared[(method, path)], (method, path)  # in use, the root, or managed by the file
    assert "403" in declared[("get", "/api/v1/users")] and "403" not in declared[("get", "/api/v1/projects")]
    assert "400" in declared[("get", "/api/v1/audit-log")]  # a cursor it cannot read
    assert "404" in declared[("post", "/api/v2/silences")]  # updating a silence that is not there


def test_error_answers_have_the_declared_bodies(server: Server, api: httpx.Client, project: ProjectFixture) -> None:
    assert set(httpx.get(server.url + "/api/v1/projects").json()) == {"detail"}  # 401
    assert set(api.get("/api/v1/monitors/999999").json()) == {"detail"}  # 404
    invalid = api.post("/api/v1/teams", json={"name": 5})  # validation: names the field
    assert invalid.status_code == 422 and invalid.json()["errors"][0]["field"] == "name"
    api.post("/api/v1/teams", json={"name": "Ops"}).raise_for_status()
    taken = api.post("/api/v1/teams", json={"name": "Ops"})  # the endpoint's own check: the same shape
    assert taken.status_code == 422
    assert taken.json()["errors"] == [{"field": "name", "message": "a team named 'Ops' already exists"}]
    both = api.get(f"/api/v1/monitors/{_monitor(api, project)}/uptime", params={"start": 10})
    assert [e["field"] for e in both.json()["errors"]] == ["start", "end"]
    plain = api.post("/api/v1/uptime/monitors-file/sync")
    assert plain.status_code == 422 and plain.json()["errors"][0]["field"] == "uptime.monitors_file"


def _monitor(api: httpx.Client, project: ProjectFixture) -> int:
    created = api.post(f"/api/v1/projects/{project.id}/monitors", json={"name": "cron", "type": "heartbeat",
                                                                        "config": {}})
    assert created.status_code == 201, created.text
    return int(created.json()["id"])


def test_ids_of_things_that_do_not_exist_are_4xx_not_database_errors(api: httpx.Client) -> None:
    """Found by the schemathesis run: each was a 500 (a foreign key or an integer out of range)."""
    incident = api.post("/api/v1/incidents", json={"title": "x", "project_id": 2147483647})
    assert incident.status_code == 404, incident.text
    me = api.get("/api/v1/me").json()["id"]
    policy = api.post("/api/v1/escalation-policies", json={
        "name": "Ops", "project_id": 2147483647, "steps": [{"targets": [{"kind": "user", "id": me}]}]})
    assert policy.status_code == 422 and policy.json()["errors"][0]["field"] == "project_id", policy.text
    layer = {"rotation": "daily", "start_date": "2026-01-01", "users": [2**63]}
    schedule = api.post("/api/v1/oncall/schedules", json={"name": "Ops", "layers": [layer]})
    assert schedule.status_code == 422 and schedule.json()["errors"][0]["field"] == "layers.0.users.0", schedule.text
