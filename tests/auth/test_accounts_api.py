"""Users, teams, /me, tokens and the audit log through the REST API."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import Server, make_project, make_token, make_user


def client(server: Server, token: str) -> httpx.Client:
    return httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=30)


def test_an_admin_creates_a_user_who_sees_only_their_teams_projects(server: Server, api: httpx.Client) -> None:
    created = api.post("/api/v1/users", json={"email": "Bob@Example.com", "role": "member"})
    assert created.status_code == 201, created.text
    bob = created.json()
    assert bob["email"] == "bob@example.com" and len(bob["password"]) >= 12 and bob["teams"] == []
    team = api.post("/api/v1/teams", json={"name": "Payments"}).json()
    shop = api.post("/api/v1/projects", json={"name": "Shop", "team_id": team["id"]}).json()
    api.post("/api/v1/projects", json={"name": "Secret"})
    assert api.put(f"/api/v1/teams/{team['id']}/members/{bob['id']}").status_code == 200
    with httpx.Client(base_url=server.url) as browser:
        from tests.auth.test_session_auth import log_in

        csrf = log_in(server, browser, "bob@example.com", bob["password"])
        refused = browser.get("/api/v1/projects")  # a generated password is one-time
        assert refused.status_code == 403 and "one-time password" in refused.json()["detail"]
        changed = browser.post("/api/v1/me/password", headers={"X-CSRF-Token": csrf},
                               json={"current_password": bob["password"], "new_password": "bobs-own-password"})
        assert changed.status_code == 204, changed.text
        assert [p["name"] for p in browser.get("/api/v1/projects").json()] == ["Shop"]
        me = browser.get("/api/v1/me").json()
        assert me["role"] == "member" and me["teams"] == [{"id": team["id"], "name": "Payments"}]
        assert me["auth"] == {"via": "session"}
    assert shop["team_ids"] == [team["id"]]


def test_team_crud_and_membership(server: Server, api: httpx.Client) -> None:
    team = api.post("/api/v1/teams", json={"name": "Ops"}).json()
    assert api.post("/api/v1/teams", json={"name": "Ops"}).status_code == 422
    user_id, _ = make_user(server, team=None)
    project = make_project(server, "Infra", team=None)
    assert api.put(f"/api/v1/teams/{team['id']}/members/{user_id}").json()["members"][0]["id"] == user_id
    assert api.put(f"/api/v1/teams/{team['id']}/projects/{project.id}").json()["project_ids"] == [project.id]
    assert api.patch(f"/api/v1/teams/{team['id']}", json={"name": "Operations"}).json()["name"] == "Operations"
    assert api.put(f"/api/v1/teams/{team['id']}/members/999999").status_code == 404
    assert api.put(f"/api/v1/teams/999999/members/{user_id}").status_code == 404
    assert api.delete(f"/api/v1/teams/{team['id']}/members/{user_id}").json()["members"] == []
    assert api.delete(f"/api/v1/teams/{team['id']}/projects/{project.id}").json()["project_ids"] == []
    assert api.delete(f"/api/v1/teams/{team['id']}").status_code == 204
    assert api.get(f"/api/v1/teams/{team['id']}").status_code == 404
    assert api.get(f"/api/v1/projects/{project.id}").status_code == 200  # the project outlives its team


def test_members_pick_one_of_their_teams_for_a_new_project(server: Server, api: httpx.Client) -> None:
    lonely = make_token(server, role="member", team=None)
    with client(server, lonely) as member:
        response = member.post("/api/v1/projects", json={"name": "Nowhere"})
        assert response.status_code == 422 and response.json()["detail"].startswith("team_id:")
    two_teams = make_token(server, role="member", team="A")
    with client(server, two_teams) as member:
        me = member.get("/api/v1/me").json()
        other = api.post("/api/v1/teams", json={"name": "B"}).json()
        api.put(f"/api/v1/teams/{other['id']}/members/{me['id']}")
        assert member.post("/api/v1/projects", json={"name": "Which"}).status_code == 422
        created = member.post("/api/v1/projects", json={"name": "Here", "team_id": other["id"]})
        assert created.status_code == 201 and created.json()["team_ids"] == [other["id"]]
        stranger = api.post("/api/v1/teams", json={"name": "C"}).json()
        refused = member.post("/api/v1/projects", json={"name": "There", "team_id": stranger["id"]})
        assert refused.status_code == 422 and "team_id" in refused.json()["detail"]


def test_users_change_role_deactivate_and_reset_password(server: Server, api: httpx.Client) -> None:
    from tests.auth.test_session_auth import log_in

    bob = api.post("/api/v1/users", json={"email": "bob@example.com", "password": "first-password"}).json()
    assert "password" not in bob
    assert api.patch(f"/api/v1/users/{bob['id']}", json={"role": "viewer"}).json()["role"] == "viewer"
    assert api.patch(f"/api/v1/users/{bob['id']}", json={"role": "boss"}).status_code == 422
    with httpx.Client(base_url=server.url) as browser:
        log_in(server, browser, "bob@example.com", "first-password")
        reset = api.post(f"/api/v1/users/{bob['id']}/password").json()
        assert browser.get("/api/v1/me").status_code == 401  # logged out everywhere
        log_in(server, browser, "bob@example.com", reset["password"])
        assert api.patch(f"/api/v1/users/{bob['id']}", json={"is_active": False}).json()["is_active"] is False
        assert browser.get("/api/v1/me").status_code == 401
    listed = {u["email"]: u for u in api.get("/api/v1/users").json()}
    assert listed["bob@example.com"]["is_active"] is False
    assert api.post("/api/v1/users", json={"email": "bob@example.com"}).json()["detail"].startswith("email:")
    assert api.post("/api/v1/users", json={"email": "x@example.com", "password": "short"}).status_code == 422


def test_the_last_admin_cannot_be_demoted(server: Server, api: httpx.Client) -> None:
    for user in api.get("/api/v1/users").json():
        if user["role"] == "admin" and user["email"] != api.get("/api/v1/me").json()["email"]:
            api.patch(f"/api/v1/users/{user['id']}", json={"role": "member"})
    me = api.get("/api/v1/me").json()
    response = api.patch(f"/api/v1/users/{me['id']}", json={"role": "viewer"})
    assert response.status_code == 422 and "last active admin" in response.json()["detail"]


def test_changing_my_password_needs_the_current_one(server: Server) -> None:
    from tests.auth.test_session_auth import log_in

    _, email = make_user(server, role="viewer", password="old-password")
    with httpx.Client(base_url=server.url) as browser:
        csrf = log_in(server, browser, email, "old-password")
        headers = {"X-CSRF-Token": csrf}
        wrong = browser.post("/api/v1/me/password", json={"current_password": "nope", "new_password": "new-password"},
                             headers=headers)
        assert wrong.status_code == 422 and wrong.json()["detail"].startswith("current_password")
        ok = browser.post("/api/v1/me/password", json={"current_password": "old-password",
                                                       "new_password": "new-password"}, headers=headers)
        assert ok.status_code == 204
        assert browser.get("/api/v1/me").status_code == 200  # this session stays
    with httpx.Client(base_url=server.url) as again:
        log_in(server, again, email, "new-password")


def test_my_timezone_is_an_iana_name(server: Server, api: httpx.Client) -> None:
    assert api.patch("/api/v1/me", json={"timezone": "Europe/Paris"}).json()["timezone"] == "Europe/Paris"
    bad = api.patch("/api/v1/me", json={"timezone": "Mars/Olympus"})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "timezone"
    assert api.patch("/api/v1/me", json={"timezone": None}).json()["timezone"] is None


def test_tokens_are_created_listed_and_revoked_by_their_owner(server: Server, api: httpx.Client) -> None:
    project = make_project(server)
    created = api.post("/api/v1/tokens", json={"name": "ci", "read_only": True, "project_ids": [project.id]})
    assert created.status_code == 201, created.text
    token = created.json()
    assert token["token"].startswith("wk_") and token["project_ids"] == [project.id] and token["read_only"]
    with client(server, token["token"]) as ci:
        assert ci.get("/api/v1/me").json()["auth"]["project_ids"] == [project.id]
    listed = api.get("/api/v1/tokens").json()
    assert [t["name"] for t in listed][-1] == "ci" and "token" not in listed[-1]
    assert api.post("/api/v1/tokens", json={"name": "x", "project_ids": [999999]}).status_code == 422
    assert api.delete(f"/api/v1/tokens/{token['id']}").status_code == 204
    assert api.delete(f"/api/v1/tokens/{token['id']}").status_code == 404
    with client(server, token["token"]) as ci:
        assert ci.get("/api/v1/me").status_code == 401
    other = make_token(server, role="member")
    with client(server, other) as member:
        assert member.delete(f"/api/v1/tokens/{listed[0]['id']}").status_code == 404  # not theirs


def test_the_audit_log_records_who_changed_what_with_cursor_pages(server: Server, api: httpx.Client) -> None:
    project = api.post("/api/v1/projects", json={"name": "Audited"}).json()
    api.patch(f"/api/v1/projects/{project['id']}", json={"retention_days": 7})
    key_id = api.get(f"/api/v1/projects/{project['id']}/keys").json()[0]["id"]
    api.post(f"/api/v1/keys/{key_id}/rotate")
    api.patch(f"/api/v1/keys/{key_id}", json={"label": "old"})
    team = api.post("/api/v1/teams", json={"name": "Audit"}).json()
    api.put(f"/api/v1/teams/{team['id']}/projects/{project['id']}")
    api.delete(f"/api/v1/projects/{project['id']}")
    me = api.get("/api/v1/me").json()
    first = api.get("/api/v1/audit-log", params={"limit": 3}).json()
    second = api.get("/api/v1/audit-log", params={"limit": 100, "cursor": first["next_cursor"]}).json()
    entries = first["entries"] + second["entries"]
    assert second["next_cursor"] is None
    assert [e["action"] for e in entries] == [
        "project.delete", "team.project_add", "team.create", "key.change", "key.rotate", "project.change",
        "project.create",
    ]
    assert all(e["actor_email"] == me["email"] for e in entries)
    assert entries[5]["details"] == {"retention_days": 7} and entries[5]["target_id"] == str(project["id"])
    assert api.get("/api/v1/audit-log", params={"cursor": "bogus!"}).status_code == 400
    with client(server, make_token(server, role="member")) as member:
        assert member.get("/api/v1/audit-log").status_code == 403


BAD_REQUESTS = [
    ("post", "/api/v1/users", {"email": "not-an-address"}, "email"),
    ("post", "/api/v1/users", {"email": "a@example.com", "role": "root"}, "role"),
    ("post", "/api/v1/users", {"email": "a@example.com", "password": "short"}, "password"),
    ("post", "/api/v1/users", {"email": "a\x00@example.com"}, "email"),
    ("post", "/api/v1/users", {"email": "a@example.com", "extra": 1}, "extra"),
    ("patch", "/api/v1/users/1", {"is_active": "maybe"}, "is_active"),
    ("patch", "/api/v1/users/99999999999", {"role": "viewer"}, "user_id"),
    ("post", "/api/v1/teams", {"name": "   "}, "name"),
    ("post", "/api/v1/teams", {"name": ""}, "name"),
    ("post", "/api/v1/teams", [], "body"),
    ("patch", "/api/v1/teams/1", {"name": "x" * 101}, "name"),
    ("put", "/api/v1/teams/0/members/1", None, "team_id"),
    ("post", "/api/v1/tokens", {"name": "   "}, "name"),
    ("post", "/api/v1/tokens", {"name": "x", "project_ids": ["a"]}, "project_ids.0"),
    ("post", "/api/v1/tokens", {"name": "x", "project_ids": [0]}, "project_ids.0"),
    ("post", "/api/v1/me/password", {"current_password": "x", "new_password": "short"}, "new_password"),
    ("patch", "/api/v1/me", {"timezone": "x\x00"}, "timezone"),
    ("get", "/api/v1/audit-log?limit=0", None, "limit"),
    ("get", "/api/v1/audit-log?cursor=WzEuNV0", None, "cursor"),
    ("post", "/api/v1/projects", {"name": "X", "team_id": 999999}, "team_id"),
]


@pytest.mark.parametrize(("method", "path", "body", "field"), BAD_REQUESTS)
def test_bad_input_is_a_4xx_naming_the_field(
    server: Server, api: httpx.Client, method: str, path: str, body: Any, field: str
) -> None:
    kwargs = {} if body is None else {"json": body}
    response = api.request(method.upper(), path, **kwargs)
    assert 400 <= response.status_code < 500, response.text
    assert field in response.json()["detail"], response.text


def test_a_password_reset_or_a_deactivation_revokes_the_users_api_tokens(server: Server, api: httpx.Client) -> None:
    reset_user = api.post("/api/v1/users", json={"email": "reset@example.com", "password": "password-123"}).json()
    gone_user = api.post("/api/v1/users", json={"email": "gone@example.com", "password": "password-123"}).json()
    tokens = {}
    for user in (reset_user, gone_user):
        with httpx.Client(base_url=server.url) as browser:
            from tests.auth.test_session_auth import log_in

            csrf = log_in(server, browser, user["email"], "password-123")
            made = browser.post("/api/v1/tokens", json={"name": "laptop"}, headers={"X-CSRF-Token": csrf})
            assert made.status_code == 201, made.text
            tokens[user["id"]] = made.json()["token"]
        with client(server, tokens[user["id"]]) as own:
            assert own.get("/api/v1/me").status_code == 200
    assert api.post(f"/api/v1/users/{reset_user['id']}/password").status_code == 200
    assert api.patch(f"/api/v1/users/{gone_user['id']}", json={"is_active": False}).status_code == 200
    assert api.patch(f"/api/v1/users/{gone_user['id']}", json={"is_active": True}).status_code == 200
    for token in tokens.values():
        with client(server, token) as own:
            answer = own.get("/api/v1/me")
            assert answer.status_code == 401 and "revoked" in answer.json()["detail"]
