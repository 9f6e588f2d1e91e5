"""The issues/events REST API as a client uses it: filters, sorting, pagination, changes, auth, bad input."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
import pytest

from tests.conftest import ProjectFixture, Server, make_project, make_token, make_user
from tests.errors.test_issue_lifecycle import send_event


def error(server: Server, project: ProjectFixture, kind: str, value: str = "boom", **fields: Any) -> str:
    event_id = uuid.uuid4().hex
    response = send_event(
        server, project, event_id=event_id, exception={"values": [{"type": kind, "value": value}]}, **fields
    )
    assert response.status_code == 200, response.text
    return event_id


def issues(api: httpx.Client, project: ProjectFixture, **params: Any) -> list[dict[str, Any]]:
    response = api.get(f"/api/v1/projects/{project.id}/issues", params=params)
    assert response.status_code == 200, response.text
    return response.json()["issues"]  # type: ignore[no-any-return]


def titles(api: httpx.Client, project: ProjectFixture, **params: Any) -> list[str]:
    return [i["title"].split(":")[0] for i in issues(api, project, **params)]


def by_title(api: httpx.Client, project: ProjectFixture) -> dict[str, int]:
    return {i["title"].split(":")[0]: i["id"] for i in issues(api, project, status="all")}


def test_issues_filter_by_status(server: Server, project: ProjectFixture, api: httpx.Client) -> None:
    for kind in ("OpenError", "FixedError", "NoiseError"):
        error(server, project, kind)
    ids = by_title(api, project)
    api.patch(f"/api/v1/issues/{ids['FixedError']}", json={"status": "resolved"}).raise_for_status()
    api.patch(f"/api/v1/issues/{ids['NoiseError']}", json={"status": "ignored"}).raise_for_status()
    assert titles(api, project) == ["OpenError"]
    assert titles(api, project, status="resolved") == ["FixedError"]
    assert titles(api, project, status="ignored") == ["NoiseError"]
    assert sorted(titles(api, project, status="all")) == ["FixedError", "NoiseError", "OpenError"]


def test_issues_filter_by_level_environment_release_and_text(
    server: Server, project: ProjectFixture, api: httpx.Client
) -> None:
    error(server, project, "WarnError", level="warning", environment="staging", release="a@1")
    error(server, project, "FatalError", level="fatal", environment="production", release="a@2")
    error(server, project, "PaymentDeclined", value="card 100% refused", environment="production")
    assert titles(api, project, level="warning") == ["WarnError"]
    assert titles(api, project, environment="staging") == ["WarnError"]
    assert sorted(titles(api, project, environment="production")) == ["FatalError", "PaymentDeclined"]
    assert titles(api, project, release="a@2") == ["FatalError"]
    assert titles(api, project, query="payment") == ["PaymentDeclined"]
    assert titles(api, project, query="100%") == ["PaymentDeclined"]
    assert titles(api, project, query="no such text") == []


def test_issues_filter_by_time_range(server: Server, project: ProjectFixture, api: httpx.Client) -> None:
    now = time.time()
    error(server, project, "OldError", timestamp=now - 7200)
    error(server, project, "NewError", timestamp=now - 60)
    assert titles(api, project, since=now - 600) == ["NewError"]
    assert titles(api, project, until=now - 3600) == ["OldError"]
    assert titles(api, project, since=now - 8000, until=now) == ["NewError", "OldError"]


def test_issues_sort_by_last_seen_first_seen_events_and_users(
    server: Server, project: ProjectFixture, api: httpx.Client
) -> None:
    now = time.time()
    error(server, project, "AError", timestamp=now - 300, user={"id": "u1"})
    error(server, project, "BError", timestamp=now - 200, user={"id": "u1"})
    error(server, project, "BError", timestamp=now - 190, user={"id": "u2"})
    error(server, project, "CError", timestamp=now - 250)
    error(server, project, "AError", timestamp=now - 100, user={"id": "u1"})
    error(server, project, "AError", timestamp=now - 90, user={"id": "u1"})
    assert titles(api, project) == ["AError", "BError", "CError"]
    assert titles(api, project, sort="first_seen") == ["BError", "CError", "AError"]
    assert titles(api, project, sort="events") == ["AError", "BError", "CError"]
    assert titles(api, project, sort="users") == ["BError", "AError", "CError"]


@pytest.mark.parametrize("sort", ["last_seen", "events"])
def test_walking_all_pages_returns_every_issue_once(
    server: Server, project: ProjectFixture, api: httpx.Client, sort: str
) -> None:
    now = time.time()
    for n in range(7):
        # equal timestamps and counts in pairs, so the id tie-breaker matters
        error(server, project, f"Error{n}", timestamp=now - 100 * (n // 2))
    seen: list[int] = []
    url: str | None = f"/api/v1/projects/{project.id}/issues?limit=2&sort={sort}"
    pages = 0
    while url:
        response = api.get(url)
        assert response.status_code == 200, response.text
        body = response.json()
        seen += [i["id"] for i in body["issues"]]
        pages += 1
        if body["next_cursor"]:
            link = response.headers["Link"]
            assert 'rel="next"' in link and body["next_cursor"] in link
            url = link.split(">")[0].lstrip("<")
        else:
            assert "Link" not in response.headers
            url = None
    assert pages == 4
    assert len(seen) == 7 and len(set(seen)) == 7


def test_bulk_update_changes_only_the_given_issues(server: Server, project: ProjectFixture, api: httpx.Client) -> None:
    for kind in ("AError", "BError", "CError"):
        error(server, project, kind)
    ids = by_title(api, project)
    response = api.patch(
        f"/api/v1/projects/{project.id}/issues", json={"ids": [ids["AError"], ids["BError"]], "status": "resolved"}
    )
    assert response.json() == {"changed": 2}
    assert titles(api, project) == ["CError"]
    other = make_project(server, "Other")
    response = api.patch(f"/api/v1/projects/{other.id}/issues", json={"ids": [ids["CError"]], "status": "resolved"})
    assert response.json() == {"changed": 0}
    assert titles(api, project) == ["CError"]


def test_issue_detail_has_tag_breakdowns_and_a_histogram(
    server: Server, project: ProjectFixture, api: httpx.Client
) -> None:
    for env in ("production", "production", "staging"):
        error(server, project, "TagError", environment=env, tags={"region": "eu"})
    issue_id = by_title(api, project)["TagError"]
    detail = api.get(f"/api/v1/issues/{issue_id}").json()
    tags = {t["key"]: t for t in detail["tags"]}
    assert tags["environment"]["total"] == 3 and tags["environment"]["unique_values"] == 2
    assert [(v["value"], v["count"]) for v in tags["environment"]["top_values"]] == [("production", 2), ("staging", 1)]
    assert [(v["value"], v["count"]) for v in tags["region"]["top_values"]] == [("eu", 3)]
    assert sum(count for _, count in detail["histogram"]) == 3
    assert detail["count"] == 3


def test_issue_assignee_can_be_set_and_cleared(server: Server, project: ProjectFixture, api: httpx.Client) -> None:
    error(server, project, "AError")
    issue_id = by_title(api, project)["AError"]
    me = api.get(f"/api/v1/issues/{issue_id}")  # any user id works: take the admin created by make_token
    assert me.status_code == 200
    with server.runtime.engine.connect() as conn:
        from watchkeeper.auth.users import list_users

        user_id = list_users(conn)[0].id
    assert api.patch(f"/api/v1/issues/{issue_id}", json={"assignee_id": user_id}).json()["assignee_id"] == user_id
    assert api.patch(f"/api/v1/issues/{issue_id}", json={"assignee_id": None}).json()["assignee_id"] is None


def test_only_people_of_the_owning_teams_or_admins_can_be_assigned_and_changes_are_audited(
    server: Server, project: ProjectFixture, api: httpx.Client
) -> None:
    error(server, project, "AError")
    issue_id = by_title(api, project)["AError"]
    colleague, _ = make_user(server)  # in the team that owns the project
    stranger, _ = make_user(server, team="Another team")
    refused = api.patch(f"/api/v1/issues/{issue_id}", json={"assignee_id": stranger})
    assert refused.status_code == 422 and "cannot be assigned" in refused.text
    nobody = api.patch(f"/api/v1/issues/{issue_id}", json={"assignee_id": 999_999})
    # The same words whether the user does not exist or is someone else's: the answer tells nothing.
    assert nobody.status_code == 422
    assert nobody.json()["detail"].replace("999999", str(stranger)) == refused.json()["detail"]
    bulk = api.patch(f"/api/v1/projects/{project.id}/issues", json={"ids": [issue_id], "assignee_id": stranger})
    assert bulk.status_code == 422
    assert api.patch(f"/api/v1/issues/{issue_id}", json={"assignee_id": colleague}).status_code == 200
    assert api.patch(f"/api/v1/issues/{issue_id}", json={"status": "resolved"}).status_code == 200
    with server.runtime.engine.connect() as conn:
        from watchkeeper.auth.audit import list_entries

        entries, _ = list_entries(conn, limit=10)
    changes = [e for e in entries if e.action == "issue.change"]
    assert [(e.details.get("assignee_id"), e.details.get("status")) for e in changes] == [
        (None, "resolved"), (colleague, None)]
    assert all(e.target_id == str(project.id) and e.details["issues"] == [issue_id] for e in changes)
    assert all(e.actor_user_id is not None for e in changes)


def test_deleting_an_issue_removes_it_and_its_events(
    server: Server, project: ProjectFixture, api: httpx.Client
) -> None:
    event_id = error(server, project, "AError")
    issue_id = by_title(api, project)["AError"]
    assert api.delete(f"/api/v1/issues/{issue_id}").status_code == 204
    assert api.get(f"/api/v1/issues/{issue_id}").status_code == 404
    assert api.get(f"/api/v1/projects/{project.id}/events/{event_id}").status_code == 404
    assert api.delete(f"/api/v1/issues/{issue_id}").status_code == 404


def test_issue_events_page_newest_first_with_full_data(
    server: Server, project: ProjectFixture, api: httpx.Client
) -> None:
    now = time.time()
    sent_ids = [error(server, project, "AError", timestamp=now - 10 * n) for n in range(5)]
    issue_id = by_title(api, project)["AError"]
    seen: list[str] = []
    params: dict[str, Any] = {"limit": 2}
    while True:
        body = api.get(f"/api/v1/issues/{issue_id}/events", params=params).json()
        assert all("data" not in e for e in body["events"])
        seen += [e["event_id"] for e in body["events"]]
        if not body["next_cursor"]:
            break
        params["cursor"] = body["next_cursor"]
    assert seen == sent_ids
    full = api.get(f"/api/v1/issues/{issue_id}/events", params={"full": "true", "limit": 1}).json()["events"]
    assert full[0]["event_id"] == sent_ids[0]
    assert full[0]["data"]["exception"]["values"][0]["type"] == "AError"
    latest = api.get(f"/api/v1/issues/{issue_id}/events/latest").json()
    assert latest["event_id"] == sent_ids[0] and "data" in latest


def test_one_event_by_id_in_its_project_only(server: Server, project: ProjectFixture, api: httpx.Client) -> None:
    event_id = error(server, project, "AError", message="hello")
    event = api.get(f"/api/v1/projects/{project.id}/events/{event_id}")
    assert event.status_code == 200
    assert event.json()["event_id"] == event_id
    dashed = str(uuid.UUID(event_id))
    assert api.get(f"/api/v1/projects/{project.id}/events/{dashed}").json()["event_id"] == event_id
    other = make_project(server, "Other")
    assert api.get(f"/api/v1/projects/{project.id}/events/%00").status_code == 404
    missing = api.get(f"/api/v1/projects/{other.id}/events/{event_id}")
    assert missing.status_code == 404 and event_id in missing.json()["detail"]


def test_requests_without_a_valid_token_get_401_json(server: Server, project: ProjectFixture) -> None:
    url = f"{server.url}/api/v1/projects/{project.id}/issues"
    for headers in ({}, {"Authorization": "Bearer wk_not-a-real-token"}, {"Authorization": "Basic abc"}):
        response = httpx.get(url, headers=headers)
        assert response.status_code == 401, headers
        assert response.headers["content-type"] == "application/json"
        assert "token" in response.json()["detail"]


@pytest.mark.parametrize("who", ["read_only", "viewer"])
def test_read_only_tokens_can_read_but_not_change(
    server: Server, project: ProjectFixture, api: httpx.Client, who: str
) -> None:
    error(server, project, "AError")
    issue_id = by_title(api, project)["AError"]
    token = make_token(server, read_only=True) if who == "read_only" else make_token(server, role="viewer")
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"}) as reader:
        assert reader.get(f"/api/v1/projects/{project.id}/issues").status_code == 200
        assert reader.get(f"/api/v1/issues/{issue_id}").status_code == 200
        refused = [
            reader.patch(f"/api/v1/issues/{issue_id}", json={"status": "resolved"}),
            reader.patch(f"/api/v1/projects/{project.id}/issues", json={"ids": [issue_id], "status": "resolved"}),
            reader.delete(f"/api/v1/issues/{issue_id}"),
            reader.post("/api/v1/projects", json={"name": "Nope"}),
        ]
    assert [r.status_code for r in refused] == [403] * 4
    assert all(r.json()["detail"] for r in refused)
    assert api.get(f"/api/v1/issues/{issue_id}").json()["status"] == "unresolved"


BAD_PROJECT_REQUESTS: list[tuple[str, str, dict[str, Any], str]] = [
    ("get", "/issues", {"params": {"cursor": "not-a-cursor!"}}, "cursor"),
    ("get", "/issues", {"params": {"cursor": "WzFd"}}, "cursor"),  # a valid base64 list of the wrong length
    ("get", "/issues", {"params": {"cursor": "WyJ4IiwgInkiXQ", "sort": "events"}}, "cursor"),  # ["x", "y"]
    ("get", "/issues", {"params": {"cursor": "WzEsIHsiYSI6IDF9XQ"}}, "cursor"),  # [1, {"a": 1}]
    ("get", "/issues", {"params": {"cursor": "WzkyMjMzNzIwMzY4NTQ3NzU4MDgsIDFd", "sort": "events"}}, "cursor"),  # 2**63
    ("get", "/issues", {"params": {"sort": "popularity"}}, "sort"),
    ("get", "/issues", {"params": {"query": "a\x00b"}}, "query"),
    ("get", "/issues", {"params": {"environment": "\x00"}}, "environment"),
    ("get", "/issues", {"params": {"since": "nan"}}, "since"),
    ("patch", "/issues", {"json": {"ids": [10**20], "status": "resolved"}}, "ids.0"),
    ("patch", "/issues", {"json": {"ids": [1], "assignee_id": 10**20}}, "assignee_id"),
    ("patch", "/issues", {"json": {"ids": [1], "status": "ignored", "ignore_count": 10**20}}, "ignore_count"),
    (
        "patch",
        "/issues",
        {
            "content": b'{"ids": [1], "status": "ignored", "ignore_until": NaN}',
            "headers": {"content-type": "application/json"},
        },
        "ignore_until",
    ),
    ("get", "/issues", {"params": {"limit": 0}}, "limit"),
    ("get", "/issues", {"params": {"limit": "many"}}, "limit"),
    ("get", "/issues", {"params": {"status": "open"}}, "status"),
    ("get", "/issues", {"params": {"since": "yesterday"}}, "since"),
    ("patch", "/issues", {"json": {"ids": [1], "status": "resolved", "colour": "red"}}, "colour"),
    ("patch", "/issues", {"json": {"ids": "1", "status": "resolved"}}, "ids"),
    ("patch", "/issues", {"json": {"ids": [], "status": "resolved"}}, "ids"),
    ("patch", "/issues", {"json": {"ids": [1], "status": "closed"}}, "status"),
    ("patch", "/issues", {"json": {"ids": [1], "status": "ignored", "ignore_count": 0}}, "ignore_count"),
    ("patch", "/issues", {"json": {"ids": [1], "status": "unresolved", "ignore_count": 3}}, "ignore_count"),
    ("patch", "/issues", {"json": {"ids": [1], "status": "ignored", "in_next_release": True}}, "in_next_release"),
    ("patch", "/issues", {"content": b"{not json", "headers": {"content-type": "application/json"}}, "body"),
]


def test_bad_input_is_a_4xx_naming_the_field(server: Server, project: ProjectFixture, api: httpx.Client) -> None:
    error(server, project, "AError")
    for method, path, kwargs, field in BAD_PROJECT_REQUESTS:
        response = api.request(method.upper(), f"/api/v1/projects/{project.id}{path}", **kwargs)
        assert 400 <= response.status_code < 500, (field, response.text)
        assert response.headers["content-type"] == "application/json"
        assert field in response.json()["detail"], (field, response.text)
    assert api.get(f"/api/v1/projects/{project.id}/issues").json()["issues"][0]["status"] == "unresolved"


def test_bad_input_on_one_issue_and_its_events(server: Server, project: ProjectFixture, api: httpx.Client) -> None:
    error(server, project, "AError")
    issue_id = by_title(api, project)["AError"]
    cases = [
        (api.patch(f"/api/v1/issues/{issue_id}", json={}), "assignee_id"),
        (api.patch(f"/api/v1/issues/{issue_id}", json={"status": "resolved", "extra": 1}), "extra"),
        (api.patch(f"/api/v1/issues/{issue_id}", json={"assignee_id": "me"}), "assignee_id"),
        (api.patch(f"/api/v1/issues/{issue_id}", json={"assignee_id": 999999}), "assignee_id"),
        (api.get(f"/api/v1/issues/{issue_id}/events", params={"cursor": "%%%"}), "cursor"),
        (api.get(f"/api/v1/issues/{issue_id}/events", params={"limit": 1000}), "limit"),
        (api.get(f"/api/v1/issues/{issue_id}/events", params={"cursor": "WyJ4IiwgInkiXQ"}), "cursor"),
        (api.get(f"/api/v1/issues/{issue_id}", params={"histogram_hours": 0}), "histogram_hours"),
        (api.get("/api/v1/issues/abc"), "issue_id"),
        (api.get("/api/v1/issues/999999"), "999999"),
        (api.get("/api/v1/projects/999999/issues"), "999999"),
        (api.get(f"/api/v1/projects/{10**20}/issues"), "project_id"),
        (api.get(f"/api/v1/issues/{10**20}"), "issue_id"),
        (api.get(f"/api/v1/issues/{10**20}/events"), "issue_id"),
        (api.delete(f"/api/v1/issues/{10**20}"), "issue_id"),
    ]
    for response, field in cases:
        assert 400 <= response.status_code < 500, (field, response.status_code, response.text)
        assert field in response.json()["detail"], (field, response.text)


def test_the_openapi_schema_lists_the_issue_endpoints(server: Server) -> None:
    schema = httpx.get(f"{server.url}/api/openapi.json").json()
    paths = schema["paths"]
    for path, methods in {
        "/api/v1/projects/{project_id}/issues": {"get", "patch"},
        "/api/v1/issues/{issue_id}": {"get", "patch", "delete"},
        "/api/v1/issues/{issue_id}/events": {"get"},
        "/api/v1/issues/{issue_id}/events/latest": {"get"},
        "/api/v1/projects/{project_id}/events/{event_id}": {"get"},
        "/api/v1/projects": {"get", "post"},
    }.items():
        assert methods <= set(paths[path]), path
