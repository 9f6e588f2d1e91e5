"""Projects and DSN keys through the REST API, checked by sending events with the keys."""

from __future__ import annotations

import time
from typing import Any

import httpx

from tests.conftest import ProjectFixture, Server, make_token
from tests.errors.test_issue_lifecycle import send_event


def fixture_for(created: dict[str, Any], key: dict[str, Any] | None = None) -> ProjectFixture:
    public_key = key["public_key"] if key else created["dsn"].split("//")[1].split("@")[0]
    return ProjectFixture(created["id"], (key or created)["dsn"], public_key)


def test_a_created_project_has_a_dsn_that_accepts_events(server: Server, api: httpx.Client) -> None:
    response = api.post("/api/v1/projects", json={"name": "Web Shop", "platform": "python"})
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["slug"] == "web-shop" and created["platform"] == "python"
    assert created["dsn"].startswith("http://") and created["dsn"].endswith(f"/{created['id']}")
    assert send_event(server, fixture_for(created)).status_code == 200
    assert api.post("/api/v1/projects", json={"name": "Web-Shop"}).json()["slug"] == "web-shop-2"


def test_projects_can_be_listed_read_changed_and_deleted(server: Server, api: httpx.Client) -> None:
    first = api.post("/api/v1/projects", json={"name": "One"}).json()
    second = api.post("/api/v1/projects", json={"name": "Two"}).json()
    assert [p["name"] for p in api.get("/api/v1/projects").json()] == ["One", "Two"]
    assert api.get(f"/api/v1/projects/{first['id']}").json()["name"] == "One"
    changed = api.patch(
        f"/api/v1/projects/{first['id']}",
        json={
            "name": "Uno",
            "retention_days": 30,
            "events_per_minute": 100,
            "events_per_hour": 1000,
            "scrubbing": {"scrub_data": True, "sensitive_fields": ["iban"], "scrub_ip_addresses": False},
        },
    )
    assert changed.status_code == 200, changed.text
    project = api.get(f"/api/v1/projects/{first['id']}").json()
    assert (project["name"], project["retention_days"], project["events_per_minute"], project["events_per_hour"]) == (
        "Uno",
        30,
        100,
        1000,
    )
    assert project["scrubbing"]["sensitive_fields"] == ["iban"]
    assert api.delete(f"/api/v1/projects/{second['id']}").status_code == 204
    assert api.get(f"/api/v1/projects/{second['id']}").status_code == 404
    assert [p["name"] for p in api.get("/api/v1/projects").json()] == ["Uno"]
    assert send_event(server, fixture_for(second)).status_code in (401, 403)


def test_bad_project_changes_are_422_naming_the_key(server: Server, project: ProjectFixture, api: httpx.Client) -> None:
    cases = [
        ({"scrubbing": {"scrub_data": "yes"}}, "scrub_data"),
        ({"scrubbing": {"sensitive_fields": "iban"}}, "sensitive_fields"),
        ({"scrubbing": {"scrub_dat": False}}, "scrub_dat"),
        ({"retention_days": 0}, "retention_days"),
        ({"retention_days": "long"}, "retention_days"),
        ({"events_per_minute": -1}, "events_per_minute"),
        ({"events_per_hour": 10**20}, "events_per_hour"),
        ({"colour": "red"}, "colour"),
        ({"name": ""}, "name"),
        ({"name": None}, "name"),
        ({"name": "nul\x00name"}, "name"),
        ({"platform": "\x00"}, "platform"),
    ]
    for body, key in cases:
        response = api.patch(f"/api/v1/projects/{project.id}", json=body)
        assert response.status_code == 422, (body, response.text)
        assert key in response.json()["detail"], (body, response.text)
    for body, key in [({"name": "   "}, "name"), ({}, "name"), ({"name": "x", "slug": "y"}, "slug")]:
        response = api.post("/api/v1/projects", json=body)
        assert response.status_code == 422, (body, response.text)
        assert key in response.json()["detail"], (body, response.text)
    assert api.get(f"/api/v1/projects/{project.id}").json()["scrubbing"] == {}
    assert api.patch("/api/v1/projects/999999", json={"name": "x"}).status_code == 404
    for response in (
        api.get(f"/api/v1/projects/{10**20}"),
        api.get(f"/api/v1/projects/{10**20}/keys"),
        api.patch(f"/api/v1/keys/{10**20}", json={"label": "x"}),
        api.post(f"/api/v1/keys/{10**20}/rotate"),
    ):
        assert response.status_code == 422 and "_id" in response.json()["detail"], response.text


def test_keys_can_be_listed_added_and_relabelled(server: Server, project: ProjectFixture, api: httpx.Client) -> None:
    keys = api.get(f"/api/v1/projects/{project.id}/keys").json()
    assert [k["public_key"] for k in keys] == [project.public_key]
    added = api.post(f"/api/v1/projects/{project.id}/keys", json={"label": "Mobile"})
    assert added.status_code == 201
    key = added.json()
    assert send_event(server, project, public_key=key["public_key"]).status_code == 200
    relabelled = api.patch(f"/api/v1/keys/{key['id']}", json={"label": "iOS"}).json()
    assert relabelled["label"] == "iOS" and relabelled["is_active"] is True
    assert [k["label"] for k in api.get(f"/api/v1/projects/{project.id}/keys").json()] == ["Default", "iOS"]
    assert api.patch("/api/v1/keys/999999", json={"label": "x"}).status_code == 404
    for body, field in [
        ({"is_active": "maybe"}, "is_active"),
        ({"is_active": None}, "is_active"),
        ({"label": None}, "label"),
        ({"label": "a\x00"}, "label"),
        ({"public_key": "mine"}, "public_key"),
    ]:
        response = api.patch(f"/api/v1/keys/{key['id']}", json=body)
        assert response.status_code == 422 and field in response.json()["detail"], (body, response.text)
    assert api.post(f"/api/v1/projects/{project.id}/keys", json={"label": None}).status_code == 422


def test_a_disabled_key_is_refused_and_can_be_enabled_again(
    server: Server, project: ProjectFixture, api: httpx.Client
) -> None:
    key_id = api.get(f"/api/v1/projects/{project.id}/keys").json()[0]["id"]
    assert send_event(server, project).status_code == 200
    assert api.patch(f"/api/v1/keys/{key_id}", json={"is_active": False}).json()["is_active"] is False
    refused = send_event(server, project)
    assert refused.status_code == 403 and "disabled" in refused.json()["detail"]
    api.patch(f"/api/v1/keys/{key_id}", json={"is_active": True}).raise_for_status()
    assert send_event(server, project).status_code == 200


def test_a_rotated_key_is_replaced_by_a_working_one(server: Server, project: ProjectFixture, api: httpx.Client) -> None:
    key_id = api.get(f"/api/v1/projects/{project.id}/keys").json()[0]["id"]
    assert send_event(server, project).status_code == 200
    rotated = api.post(f"/api/v1/keys/{key_id}/rotate")
    assert rotated.status_code == 201
    new = rotated.json()
    assert new["public_key"] != project.public_key and new["is_active"] is True
    assert send_event(server, project, public_key=new["public_key"]).status_code == 200
    assert send_event(server, project).status_code == 403
    assert api.post("/api/v1/keys/999999/rotate").status_code == 404


def test_read_only_tokens_cannot_change_projects_or_keys(server: Server, project: ProjectFixture) -> None:
    token = make_token(server, read_only=True)
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"}) as reader:
        assert reader.get("/api/v1/projects").status_code == 200
        key_id = reader.get(f"/api/v1/projects/{project.id}/keys").json()[0]["id"]
        refused = [
            reader.post("/api/v1/projects", json={"name": "X"}),
            reader.patch(f"/api/v1/projects/{project.id}", json={"name": "X"}),
            reader.delete(f"/api/v1/projects/{project.id}"),
            reader.post(f"/api/v1/projects/{project.id}/keys", json={}),
            reader.patch(f"/api/v1/keys/{key_id}", json={"is_active": False}),
            reader.post(f"/api/v1/keys/{key_id}/rotate"),
        ]
    assert [r.status_code for r in refused] == [403] * 6
    assert send_event(server, project).status_code == 200
    assert httpx.get(f"{server.url}/api/v1/projects").status_code == 401


def test_using_a_token_records_when_it_was_last_used(server: Server, api: httpx.Client) -> None:
    from sqlalchemy import select

    from watchkeeper.auth.tables import api_tokens

    assert api.get("/api/v1/projects").status_code == 200
    deadline = time.monotonic() + 5
    last_used = None
    while last_used is None and time.monotonic() < deadline:
        with server.runtime.engine.connect() as conn:
            last_used = conn.execute(select(api_tokens.c.last_used_at).order_by(api_tokens.c.id.desc())).scalar()
        time.sleep(0.02)
    assert last_used is not None and abs(last_used - time.time()) < 60
