"""Roles, teams, token scopes and read-only tokens over every /api/v1 endpoint (taken from the OpenAPI schema,
so a new endpoint is checked too).

Two teams each own a project with an issue and an event: team A's users must not see team B's data through
any endpoint (404, as if it did not exist), a viewer cannot change anything (403), a token limited to some
projects sees only those, and a read-only token changes nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.conftest import ProjectFixture, Server, make_project, make_token, make_user
from tests.errors.test_issues_api import error

SAFE = {"get", "head", "options"}
# Endpoints about the caller's own account: a viewer may use them (a read-only token may not).
SELF_SERVICE = {("patch", "/api/v1/me"), ("post", "/api/v1/me/password"), ("post", "/api/v1/tokens"),
                ("delete", "/api/v1/tokens/{token_id}")}
# Ids in a path that point into a project, and those this test can fill with team B's things.
PROJECT_PARAMS = {"project_id", "issue_id", "key_id", "event_id"}
KNOWN_PARAMS = PROJECT_PARAMS | {"team_id", "user_id", "token_id"}


@dataclass
class Territory:
    """One team's things: the ids that fill an endpoint's path."""
    team_id: int
    project: ProjectFixture
    issue_id: int
    event_id: str
    key_id: int


@dataclass
class World:
    a: Territory
    a2: ProjectFixture  # a second project of team A
    b: Territory
    admin: httpx.Client
    user_id: int  # some user, for /users/{user_id}


def territory(server: Server, admin: httpx.Client, team: str, name: str) -> Territory:
    project = make_project(server, name, team=team)
    event_id = error(server, project, f"{name}Error")
    issue_id = admin.get(f"/api/v1/projects/{project.id}/issues").json()["issues"][0]["id"]
    key_id = admin.get(f"/api/v1/projects/{project.id}/keys").json()[0]["id"]
    team_id = next(t["id"] for t in admin.get("/api/v1/teams").json() if t["name"] == team)
    return Territory(team_id, project, issue_id, event_id, key_id)


@pytest.fixture
def world(server: Server, api: httpx.Client) -> World:
    a = territory(server, api, "Team A", "Alpha")
    b = territory(server, api, "Team B", "Bravo")
    a2 = make_project(server, "Alpha Two", team="Team A")
    user_id, _ = make_user(server, role="member", team="Team B")
    return World(a, a2, b, api, user_id)


def endpoints(server: Server) -> list[tuple[str, str]]:
    schema = httpx.get(f"{server.url}/api/openapi.json").json()
    return sorted(
        (method, path) for path, item in schema["paths"].items() if path.startswith("/api/v1/") for method in item
    )


def params_of(path: str) -> set[str]:
    return set(re.findall(r"{(\w+)}", path))


def fill(path: str, where: Territory, world: World, project_id: int | None = None) -> str:
    values = {
        "project_id": project_id or where.project.id, "issue_id": where.issue_id, "event_id": where.event_id,
        "key_id": where.key_id, "team_id": where.team_id, "user_id": world.user_id, "token_id": 1,
    }
    # Ids of other domains' things (monitors, …): any number; the answers checked here come before the lookup.
    return re.sub(r"{(\w+)}", lambda m: str(values.get(m.group(1), 1)), path)


def body_for(method: str, path: str, where: Territory) -> Any:
    """A valid body, so the answer is about access and not about validation."""
    bodies: dict[tuple[str, str], Any] = {
        ("post", "/api/v1/projects"): {"name": "Intruder"},
        ("patch", "/api/v1/projects/{project_id}"): {"name": "Hacked"},
        ("post", "/api/v1/projects/{project_id}/keys"): {},
        ("patch", "/api/v1/keys/{key_id}"): {"is_active": False},
        ("patch", "/api/v1/projects/{project_id}/issues"): {"ids": [where.issue_id], "status": "resolved"},
        ("patch", "/api/v1/issues/{issue_id}"): {"status": "resolved"},
        ("post", "/api/v1/teams"): {"name": "Intruders"},
        ("patch", "/api/v1/teams/{team_id}"): {"name": "Hacked"},
        ("post", "/api/v1/users"): {"email": "intruder@example.com", "role": "admin"},
        ("patch", "/api/v1/users/{user_id}"): {"role": "admin"},
        ("patch", "/api/v1/me"): {"timezone": "UTC"},
        ("post", "/api/v1/me/password"): {"current_password": "password-123", "new_password": "password-456"},
        ("post", "/api/v1/tokens"): {"name": "more"},
    }
    return bodies.get((method, path))


def call(client: httpx.Client, method: str, template: str, where: Territory, world: World,
         project_id: int | None = None) -> httpx.Response:
    body = body_for(method, template, where)
    path = fill(template, where, world, project_id)
    return client.request(method.upper(), path, **({"json": body} if body is not None else {}))


def as_token(server: Server, token: str) -> httpx.Client:
    return httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=30)


def assert_untouched(world: World, where: Territory, name: str) -> None:
    admin = world.admin
    assert admin.get(f"/api/v1/projects/{where.project.id}").json()["name"] == name
    assert all(k["is_active"] for k in admin.get(f"/api/v1/projects/{where.project.id}/keys").json())
    assert admin.get(f"/api/v1/issues/{where.issue_id}").json()["status"] == "unresolved"
    assert [t["name"] for t in admin.get("/api/v1/teams").json()] == ["Team A", "Team B", "Tests"]
    assert "intruder@example.com" not in {u["email"] for u in admin.get("/api/v1/users").json()}


def test_the_schema_lists_the_endpoints_these_tests_rely_on(server: Server) -> None:
    found = set(endpoints(server))
    assert ("patch", "/api/v1/projects/{project_id}") in found and ("get", "/api/v1/audit-log") in found
    assert found >= SELF_SERVICE


def test_a_viewer_cannot_change_anything(server: Server, world: World) -> None:
    token = make_token(server, role="viewer", team="Team A")
    with as_token(server, token) as viewer:
        answers = {
            (method, path): call(viewer, method, path, world.a, world).status_code
            for method, path in endpoints(server)
            if method not in SAFE and (method, path) not in SELF_SERVICE
        }
        assert len(answers) >= 19
        assert {k: v for k, v in answers.items() if v != 403} == {}
        # ...but reads their team's project
        assert viewer.get(f"/api/v1/projects/{world.a.project.id}").status_code == 200
        assert viewer.get(f"/api/v1/issues/{world.a.issue_id}/events/latest").status_code == 200
    assert_untouched(world, world.a, "Alpha")


def test_a_viewer_with_a_session_cannot_change_anything_either(server: Server, world: World) -> None:
    from tests.auth.test_session_auth import log_in

    _, email = make_user(server, role="viewer", team="Team A", password="pass-word-1")
    with httpx.Client(base_url=server.url, timeout=30) as browser:
        csrf = log_in(server, browser, email, "pass-word-1")
        browser.headers["X-CSRF-Token"] = csrf
        answers = {
            (method, path): call(browser, method, path, world.a, world).status_code
            for method, path in endpoints(server)
            if method not in SAFE and (method, path) not in SELF_SERVICE
        }
    assert {k: v for k, v in answers.items() if v != 403} == {}
    assert_untouched(world, world.a, "Alpha")


@pytest.mark.parametrize("role", ["member", "viewer"])
def test_team_a_cannot_see_or_touch_team_b_through_any_endpoint(server: Server, world: World, role: str) -> None:
    token = make_token(server, role=role, team="Team A")
    with as_token(server, token) as user:
        project_endpoints = [
            (m, p) for m, p in endpoints(server)
            if params_of(p) & PROJECT_PARAMS and "team_id" not in params_of(p)
            and ("project_id" in params_of(p) or params_of(p) <= KNOWN_PARAMS)
        ]
        # A viewer's change of an issue or key is refused for its role (403) before the id is looked at, so
        # that answer is the same whether the thing exists or not.
        expected = {
            (m, p): 404 if role == "member" or m in SAFE or "project_id" in params_of(p) else 403
            for m, p in project_endpoints
        }
        answers = {(m, p): call(user, m, p, world.b, world).status_code for m, p in project_endpoints}
        assert answers == expected
        # The same endpoints work on their own team's project (reads at least).
        for method, path in project_endpoints:
            if method in SAFE and params_of(path) <= KNOWN_PARAMS:
                response = call(user, method, path, world.a, world)
                assert response.status_code == 200, (path, response.text)
        names = [p["name"] for p in user.get("/api/v1/projects").json()]
        assert "Bravo" not in names and "Alpha" in names
        assert [t["name"] for t in user.get("/api/v1/teams").json()] == ["Team A"]
        assert user.get(f"/api/v1/teams/{world.b.team_id}").status_code == 404
        # The 404 says the same as for an id that does not exist.
        missing = user.get("/api/v1/projects/999999").json()["detail"].replace("999999", "N")
        hidden = user.get(f"/api/v1/projects/{world.b.project.id}").json()["detail"]
        assert hidden.replace(str(world.b.project.id), "N") == missing
    assert_untouched(world, world.b, "Bravo")


def test_a_member_changes_their_teams_projects_but_not_admin_things(server: Server, world: World) -> None:
    token = make_token(server, role="member", team="Team A")
    with as_token(server, token) as member:
        assert member.patch(f"/api/v1/projects/{world.a.project.id}", json={"retention_days": 9}).status_code == 200
        assert member.patch(f"/api/v1/issues/{world.a.issue_id}", json={"status": "resolved"}).status_code == 200
        assert member.post(f"/api/v1/keys/{world.a.key_id}/rotate").status_code == 201
        assert member.delete(f"/api/v1/projects/{world.a.project.id}").status_code == 403  # admins only
        admin_only = [(m, p) for m, p in endpoints(server) if p.startswith(("/api/v1/users", "/api/v1/audit-log"))]
        admin_only += [(m, p) for m, p in endpoints(server) if p.startswith("/api/v1/teams") and m not in SAFE]
        answers = {(m, p): call(member, m, p, world.a, world).status_code for m, p in admin_only}
        assert set(answers.values()) == {403}, answers


def test_a_token_limited_to_one_project_sees_only_that_one(server: Server, world: World) -> None:
    token = make_token(server, role="member", team="Team A", projects=[world.a.project.id])
    with as_token(server, token) as scoped:
        assert [p["id"] for p in scoped.get("/api/v1/projects").json()] == [world.a.project.id]
        project_endpoints = [
            (m, p) for m, p in endpoints(server) if "project_id" in params_of(p) and "team_id" not in params_of(p)
        ]
        assert len(project_endpoints) >= 8
        for method, path in project_endpoints:
            response = call(scoped, method, path, world.a, world, project_id=world.a2.id)
            assert response.status_code == 404, (method, path, response.text)
        assert scoped.get(f"/api/v1/projects/{world.a.project.id}/issues").status_code == 200
        assert scoped.post("/api/v1/projects", json={"name": "Wider"}).status_code == 403
        wider = scoped.post("/api/v1/tokens", json={"name": "wider"})
        assert wider.status_code == 403  # managing tokens is for the account, not a limited token
        narrow = scoped.post("/api/v1/tokens", json={"name": "same", "project_ids": [world.a.project.id]})
        assert narrow.status_code == 403


# What a token limited to projects may not do: act for the whole account.
ACCOUNT_LEVEL = ("/api/v1/tokens", "/api/v1/me/password", "/api/v1/teams", "/api/v1/users", "/api/v1/audit-log",
                 "/api/v1/silences")


@pytest.mark.parametrize("role", ["admin", "member"])
def test_a_limited_token_is_refused_every_account_level_action(server: Server, world: World, role: str) -> None:
    owner_id, _ = make_user(server, role=role, team="Team A")
    from watchkeeper.auth.tokens import create_token
    from watchkeeper.store.engine import for_writing

    with for_writing(server.runtime.engine).begin() as conn:
        other = create_token(conn, owner_id, "the owner's CI token", now=0.0)
        limited = create_token(conn, owner_id, "limited", now=0.0, project_ids=[world.a.project.id])
    with as_token(server, limited.token) as scoped:
        account = [(m, p) for m, p in endpoints(server) if p.startswith(ACCOUNT_LEVEL)] + [("patch", "/api/v1/me")]
        assert len(account) >= 15
        answers = {(m, p): call(scoped, m, p, world.a, world) for m, p in account}
        refused = {k: r.status_code for k, r in answers.items() if r.status_code != 403}
        assert refused == {}, refused
        assert all("limited to projects" in r.json()["detail"] for r in answers.values())
        # The owner's other token is not the limited token's to revoke.
        assert scoped.delete(f"/api/v1/tokens/{other.id}").status_code == 403
        assert scoped.get("/api/v1/me").status_code == 200  # who am I: still fine
    with as_token(server, other.token) as unlimited:
        assert unlimited.get("/api/v1/me").status_code == 200


def test_a_limited_token_reaches_only_incidents_of_its_projects(server: Server, world: World) -> None:
    member_id, _ = make_user(server, role="member", team="Team A")
    from watchkeeper.auth.tokens import create_token
    from watchkeeper.store.engine import for_writing

    with for_writing(server.runtime.engine).begin() as conn:
        limited = create_token(conn, member_id, "limited", now=0.0, project_ids=[world.a.project.id]).token
    admin = world.admin
    unowned = admin.post("/api/v1/incidents", json={"title": "Everything is down", "severity": "critical"}).json()
    own = admin.post("/api/v1/incidents", json={"title": "Alpha is slow", "project_id": world.a.project.id}).json()
    with as_token(server, limited) as scoped:
        declared = scoped.post("/api/v1/incidents", json={"title": "Not mine to declare", "severity": "low"})
        assert declared.status_code == 403 and "limited to projects" in declared.json()["detail"]
        assert [i["id"] for i in scoped.get("/api/v1/incidents").json()["incidents"]] == [own["id"]]
        assert scoped.get(f"/api/v1/incidents/{unowned['id']}").status_code == 404
        moved = scoped.post(f"/api/v1/incidents/{unowned['id']}/state", json={"state": "acknowledged"})
        assert moved.status_code == 404
        assert scoped.post(f"/api/v1/incidents/{unowned['id']}/notes", json={"text": "x"}).status_code == 404
        acknowledged = scoped.post(f"/api/v1/incidents/{own['id']}/state", json={"state": "acknowledged"})
        assert acknowledged.status_code == 200, acknowledged.text
    assert admin.get(f"/api/v1/incidents/{unowned['id']}").json()["state"] == "triggered"


def test_an_admin_token_limited_to_projects_is_not_an_admin(server: Server, world: World) -> None:
    token = make_token(server, role="admin", projects=[world.b.project.id])
    with as_token(server, token) as scoped:
        assert scoped.get("/api/v1/users").status_code == 403
        assert scoped.get(f"/api/v1/issues/{world.a.issue_id}").status_code == 404
        assert scoped.get(f"/api/v1/issues/{world.b.issue_id}").status_code == 200


def test_a_read_only_token_changes_nothing(server: Server, world: World) -> None:
    token = make_token(server, role="admin", read_only=True)
    with as_token(server, token) as reader:
        answers = {
            (m, p): call(reader, m, p, world.a, world).status_code for m, p in endpoints(server) if m not in SAFE
        }
        assert {k: v for k, v in answers.items() if v != 403} == {}
        assert reader.get("/api/v1/audit-log").status_code == 200
    assert_untouched(world, world.a, "Alpha")


def test_an_admin_sees_projects_in_no_team(server: Server, world: World) -> None:
    orphan = make_project(server, "Orphan", team=None)
    assert world.admin.get(f"/api/v1/projects/{orphan.id}").status_code == 200
    with as_token(server, make_token(server, role="member")) as member:
        assert member.get(f"/api/v1/projects/{orphan.id}").status_code == 404
