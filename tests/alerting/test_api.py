"""REST API for rules and silences, and the Alertmanager API v2: answers, bad input, permissions."""

from __future__ import annotations

from typing import Any

import httpx

from tests.conftest import ProjectFixture, Server, make_project, make_token

SPIKE: dict[str, Any] = {
    "name": "Checkout errors", "kind": "threshold", "severity": "critical", "labels": {"team": "payments"},
    "threshold": {"metric": "errors", "aggregation": "rate", "window_minutes": 5, "op": ">", "threshold": 3,
                  "for_seconds": 120},
    "annotations": {"summary": "{{ value }} errors/min", "runbook_url": "https://wiki/checkout"},
}


def client(server: Server, **token: Any) -> httpx.Client:
    return httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {make_token(server, **token)}"},
                        timeout=30)


def test_rules_can_be_created_read_replaced_and_deleted(api: httpx.Client, project: ProjectFixture) -> None:
    created = api.post(f"/api/v1/projects/{project.id}/alert-rules", json=SPIKE)
    assert created.status_code == 201, created.text
    rule = created.json()
    assert rule["priority"] == "P0" and rule["threshold"]["for_seconds"] == 120 and rule["managed_by"] == "api"
    assert api.get(f"/api/v1/alert-rules/{rule['id']}").json()["name"] == "Checkout errors"
    replaced = api.put(f"/api/v1/alert-rules/{rule['id']}", json={**SPIKE, "severity": "low", "enabled": False})
    assert replaced.json()["priority"] == "P3" and replaced.json()["enabled"] is False
    names = [r["name"] for r in api.get(f"/api/v1/projects/{project.id}/alert-rules").json()["rules"]]
    assert "Checkout errors" in names
    assert api.delete(f"/api/v1/alert-rules/{rule['id']}").status_code == 204
    assert api.get(f"/api/v1/alert-rules/{rule['id']}").status_code == 404


def test_bad_rules_are_422_naming_the_field(api: httpx.Client, project: ProjectFixture) -> None:
    url = f"/api/v1/projects/{project.id}/alert-rules"
    cases = [
        ({**SPIKE, "threshold": {**SPIKE["threshold"], "window_minutes": 0}}, "threshold.window_minutes"),
        ({**SPIKE, "annotations": {"summary": "{% if %}"}}, "annotations.summary"),
        ({**SPIKE, "labels": {"severity": "x"}}, "labels"),
        ({**SPIKE, "labels": {"bad-name": "x"}}, "labels.bad-name.[key]"),
        ({"name": "x", "kind": "event", "event": {"signal": "no.such"}}, "event.signal"),
        ({**SPIKE, "severity": "urgent"}, "severity"),
    ]
    for body, field in cases:
        response = api.post(url, json=body)
        assert response.status_code == 422, (field, response.text)
        assert field in [e["field"] for e in response.json()["errors"]], (field, response.json())


def test_rule_access_follows_project_access(server: Server, project: ProjectFixture) -> None:
    with client(server) as admin:
        rule = admin.post(f"/api/v1/projects/{project.id}/alert-rules", json=SPIKE).json()
    with client(server, role="viewer") as viewer:
        assert viewer.get(f"/api/v1/alert-rules/{rule['id']}").status_code == 200
        assert viewer.delete(f"/api/v1/alert-rules/{rule['id']}").status_code == 403
    other = make_project(server, "Elsewhere", team="Other")
    with client(server, role="member") as member:
        assert member.get(f"/api/v1/projects/{other.id}/alert-rules").status_code == 404
        assert member.post(f"/api/v1/projects/{other.id}/alert-rules", json=SPIKE).status_code == 404
        assert member.get("/api/v1/silences").status_code == 403  # silences span projects: admins only
        assert member.post("/api/v2/alerts", json=[{"labels": {"a": "b"}}]).status_code == 403
    with httpx.Client(base_url=server.url) as anonymous:
        assert anonymous.get("/api/v2/alerts").status_code == 401


def test_silences_over_api_v1(api: httpx.Client, server: Server) -> None:
    now = server.runtime.clock.now()
    created = api.post("/api/v1/silences", json={"matchers": ['alertname="Monitor down"', 'team=~"web|shop"'],
                                                 "ends_at": now + 3600, "comment": "deploy"})
    assert created.status_code == 201, created.text
    silence = created.json()
    assert silence["state"] == "active" and silence["created_by"].endswith("@example.com")
    assert silence["matchers"] == ['alertname="Monitor down"', 'team=~"web|shop"']
    assert api.delete(f"/api/v1/silences/{silence['id']}").status_code == 204
    (listed,) = api.get("/api/v1/silences").json()["silences"]
    assert listed["state"] == "expired"
    bad = api.post("/api/v1/silences", json={"matchers": ["alertname"], "ends_at": now + 60, "comment": "x"})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "matchers"
    early = api.post("/api/v1/silences", json={"matchers": ["a=b"], "ends_at": now - 60, "comment": "x"})
    assert early.status_code == 422 and "ends_at" in early.json()["detail"]


def test_alertmanager_v2_silences_like_amtool(api: httpx.Client) -> None:
    silence = {"matchers": [{"name": "job", "value": "node.*", "isRegex": True, "isEqual": True}],
               "startsAt": "2020-01-01T00:00:00Z", "endsAt": "2099-01-01T00:00:00Z", "createdBy": "amtool",
               "comment": "maintenance"}
    silence_id = api.post("/api/v2/silences", json=silence).json()["silenceID"]
    got = api.get(f"/api/v2/silence/{silence_id}").json()
    assert got["status"] == {"state": "active"} and got["matchers"][0]["isRegex"] is True
    updated = api.post("/api/v2/silences", json={**silence, "id": silence_id, "comment": "longer"})
    assert updated.json() == {"silenceID": silence_id}
    assert [s["comment"] for s in api.get("/api/v2/silences", params={"filter": 'job=~"node.*"'}).json()] == [
        "longer"]
    assert api.get("/api/v2/silences", params={"filter": 'job="x"'}).json() == []
    assert api.delete(f"/api/v2/silence/{silence_id}").status_code == 200
    assert api.get(f"/api/v2/silence/{silence_id}").json()["status"]["state"] == "expired"
    assert api.get("/api/v2/silence/nope").status_code == 404


def test_alertmanager_v2_rejects_bad_alerts_naming_the_field(api: httpx.Client) -> None:
    no_labels = api.post("/api/v2/alerts", json=[{"labels": {}}])
    assert no_labels.status_code == 422 and no_labels.json()["errors"][0]["field"] == "0.labels"
    backwards = api.post("/api/v2/alerts", json=[{"labels": {"a": "b"}, "startsAt": "2026-01-02T00:00:00Z",
                                                  "endsAt": "2026-01-01T00:00:00Z"}])
    assert backwards.status_code == 422 and backwards.json()["detail"] == "0.endsAt: must not be before startsAt"
    assert api.get("/api/v2/alerts", params={"filter": "nonsense"}).status_code == 400


def test_alertmanager_v2_status_and_receivers(api: httpx.Client) -> None:
    status = api.get("/api/v2/status").json()
    assert status["cluster"]["status"] == "disabled"
    assert "receiver: log" in status["config"]["original"]
    assert api.get("/api/v2/receivers").json() == [{"name": "log"}]


def test_an_expired_external_alert_resolves(api: httpx.Client) -> None:
    alert = {"labels": {"alertname": "Gone"}, "startsAt": "2020-01-01T00:00:00Z", "endsAt": "2020-01-01T00:05:00Z"}
    assert api.post("/api/v2/alerts", json=[alert]).status_code == 200
    assert api.get("/api/v2/alerts").json() == []  # only active alerts are listed, as in Alertmanager


def test_project_alerts_show_state_and_value(server: Server, project: ProjectFixture, api: httpx.Client) -> None:
    from watchkeeper.alerting.evaluator import evaluate
    from watchkeeper.lib.signals import emit_signals
    from watchkeeper.store.engine import for_writing

    now = server.runtime.clock.now()
    signal = {"kind": "monitor.down", "project_id": project.id, "subject": "monitor:9", "created_at": now,
              "payload": {"monitor_id": 9, "name": "API", "error": "connection refused"}}
    with for_writing(server.runtime.engine).begin() as conn:
        emit_signals(conn, [signal])
        evaluate(conn, now)
    alerts = api.get(f"/api/v1/projects/{project.id}/alerts", params={"state": "firing"}).json()["alerts"]
    (down,) = [a for a in alerts if a["labels"]["alertname"] == "Monitor down"]
    assert down["labels"]["priority"] == "P0" and down["annotations"]["description"] == "connection refused"
    assert api.get(f"/api/v1/projects/{project.id}/alerts", params={"state": "sideways"}).status_code == 422
