"""What happens to an issue as events arrive: creation, regression, release resolution, ignoring,
duplicates, users, releases and per-minute counts — all through the real ingest endpoint."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
import orjson
from sqlalchemy import select

from tests.conftest import ProjectFixture, Server
from watchkeeper.errors.tables import issue_minute_counts
from watchkeeper.lib.signals import read_signals


def send_event(
    server: Server, project: ProjectFixture, *, public_key: str | None = None, **fields: Any
) -> httpx.Response:
    """POST one event in an envelope, as an SDK does; returns the response."""
    event: dict[str, Any] = {
        "event_id": uuid.uuid4().hex,
        "timestamp": time.time(),
        "platform": "python",
        "level": "error",
        "exception": {"values": [{"type": "ValueError", "value": "boom"}]},
    }
    event.update(fields)
    header = {"event_id": event["event_id"]}
    body = b"\n".join([orjson.dumps(header), orjson.dumps({"type": "event"}), orjson.dumps(event)]) + b"\n"
    key = public_key or project.public_key
    return httpx.post(
        f"{server.url}/api/{project.id}/envelope/",
        content=body,
        timeout=30,
        headers={
            "X-Sentry-Auth": f"Sentry sentry_key={key}, sentry_version=7",
            "Content-Type": "application/x-sentry-envelope",
        },
    )


def sent(server: Server, project: ProjectFixture, **fields: Any) -> None:
    response = send_event(server, project, **fields)
    assert response.status_code == 200, response.text


def only_issue(api: httpx.Client, project: ProjectFixture) -> dict[str, Any]:
    issues = api.get(f"/api/v1/projects/{project.id}/issues", params={"status": "all"}).json()["issues"]
    assert len(issues) == 1, issues
    return issues[0]  # type: ignore[no-any-return]


def signal_kinds(server: Server, issue_id: int) -> list[str]:
    with server.runtime.engine.connect() as conn:
        return [s.kind for s in read_signals(conn) if s.payload.get("issue_id") == issue_id]


def test_a_new_issue_emits_an_issue_new_signal(server: Server, project: ProjectFixture, api: httpx.Client) -> None:
    sent(server, project)
    issue = only_issue(api, project)
    with server.runtime.engine.connect() as conn:
        signals = read_signals(conn, kinds=["issue.new"])
    assert [(s.kind, s.project_id, s.subject) for s in signals] == [("issue.new", project.id, f"issue:{issue['id']}")]
    assert issue["status"] == "unresolved" and issue["substatus"] == "new"
    sent(server, project)
    assert signal_kinds(server, issue["id"]) == ["issue.new"]


def test_an_event_for_a_resolved_issue_reopens_it_as_regressed(
    server: Server, project: ProjectFixture, api: httpx.Client
) -> None:
    sent(server, project)
    issue = only_issue(api, project)
    resolved = api.patch(f"/api/v1/issues/{issue['id']}", json={"status": "resolved"}).json()
    assert resolved["status"] == "resolved" and resolved["resolved_at"] is not None
    sent(server, project)
    issue = only_issue(api, project)
    assert (issue["status"], issue["substatus"], issue["resolved_at"]) == ("unresolved", "regressed", None)
    assert signal_kinds(server, issue["id"]) == ["issue.new", "issue.regression"]


def test_resolved_in_next_release_reopens_only_for_a_newer_release(
    server: Server, project: ProjectFixture, api: httpx.Client
) -> None:
    sent(server, project, release="app@1.0")
    issue = only_issue(api, project)
    response = api.patch(f"/api/v1/issues/{issue['id']}", json={"status": "resolved", "in_next_release": True})
    assert response.status_code == 200, response.text
    sent(server, project, release="app@1.0")
    assert only_issue(api, project)["status"] == "resolved"
    sent(server, project, release="app@1.1")
    issue = only_issue(api, project)
    assert (issue["status"], issue["substatus"]) == ("unresolved", "regressed")
    assert (issue["first_release"], issue["last_release"]) == ("app@1.0", "app@1.1")
    assert signal_kinds(server, issue["id"]) == ["issue.new", "issue.regression"]


def test_an_issue_ignored_forever_stays_ignored(server: Server, project: ProjectFixture, api: httpx.Client) -> None:
    sent(server, project)
    issue = only_issue(api, project)
    api.patch(f"/api/v1/issues/{issue['id']}", json={"status": "ignored"}).raise_for_status()
    for _ in range(3):
        sent(server, project)
    issue = only_issue(api, project)
    assert (issue["status"], issue["count"]) == ("ignored", 4)
    assert signal_kinds(server, issue["id"]) == ["issue.new"]


def test_ignore_count_reopens_after_that_many_more_events(
    server: Server, project: ProjectFixture, api: httpx.Client
) -> None:
    sent(server, project)
    issue = only_issue(api, project)
    api.patch(f"/api/v1/issues/{issue['id']}", json={"status": "ignored", "ignore_count": 2}).raise_for_status()
    sent(server, project)
    assert only_issue(api, project)["status"] == "ignored"
    sent(server, project)
    issue = only_issue(api, project)
    assert (issue["status"], issue["substatus"], issue["status_details"]) == ("unresolved", "escalating", {})
    assert signal_kinds(server, issue["id"]) == ["issue.new", "issue.unignored"]


def test_ignore_until_a_past_time_reopens_on_the_next_event(
    server: Server, project: ProjectFixture, api: httpx.Client
) -> None:
    sent(server, project)
    issue = only_issue(api, project)
    response = api.patch(f"/api/v1/issues/{issue['id']}", json={"status": "ignored", "ignore_until": time.time() - 60})
    assert response.json()["status"] == "ignored"
    sent(server, project)
    issue = only_issue(api, project)
    assert issue["status"] == "unresolved"
    assert signal_kinds(server, issue["id"]) == ["issue.new", "issue.unignored"]


def test_ignore_until_a_future_time_keeps_it_ignored(
    server: Server, project: ProjectFixture, api: httpx.Client
) -> None:
    sent(server, project)
    issue = only_issue(api, project)
    api.patch(
        f"/api/v1/issues/{issue['id']}", json={"status": "ignored", "ignore_until": time.time() + 3600}
    ).raise_for_status()
    sent(server, project)
    assert only_issue(api, project)["status"] == "ignored"


def test_an_event_sent_twice_is_stored_and_counted_once(
    server: Server, project: ProjectFixture, api: httpx.Client
) -> None:
    event_id = uuid.uuid4().hex
    sent(server, project, event_id=event_id)
    sent(server, project, event_id=event_id)
    issue = only_issue(api, project)
    assert issue["count"] == 1
    events = api.get(f"/api/v1/issues/{issue['id']}/events").json()["events"]
    assert [e["event_id"] for e in events] == [event_id]


def test_users_seen_counts_distinct_users(server: Server, project: ProjectFixture, api: httpx.Client) -> None:
    for user in ("ann", "bob", "ann", None, "cid"):
        sent(server, project, **({"user": {"id": user}} if user else {}))
    issue = only_issue(api, project)
    assert (issue["count"], issue["user_count"]) == (5, 3)
    assert api.get(f"/api/v1/projects/{project.id}/issues", params={"sort": "users"}).status_code == 200


def test_first_and_last_release_follow_the_events(server: Server, project: ProjectFixture, api: httpx.Client) -> None:
    sent(server, project, release="web@1")
    sent(server, project, release="web@2")
    sent(server, project)  # no release: keeps the last known one
    issue = only_issue(api, project)
    assert (issue["first_release"], issue["last_release"]) == ("web@1", "web@2")


def test_events_are_counted_per_minute(server: Server, project: ProjectFixture, api: httpx.Client) -> None:
    minute = int(time.time() // 60) - 5
    for ts in (minute * 60 + 1, minute * 60 + 50, (minute + 2) * 60 + 3):
        sent(server, project, timestamp=ts)
    issue = only_issue(api, project)
    with server.runtime.engine.connect() as conn:
        rows = conn.execute(
            select(issue_minute_counts.c.minute, issue_minute_counts.c.count)
            .where(issue_minute_counts.c.issue_id == issue["id"])
            .order_by(issue_minute_counts.c.minute)
        ).all()
    assert [tuple(r) for r in rows] == [(minute, 2), (minute + 2, 1)]
    detail = api.get(f"/api/v1/issues/{issue['id']}").json()
    assert detail["histogram"] == [[minute * 60, 2], [(minute + 2) * 60, 1]]


def test_nul_characters_in_indexed_fields_are_stored_not_refused(
    server: Server, project: ProjectFixture, api: httpx.Client
) -> None:
    # PostgreSQL text columns cannot hold NUL: the columns get U+FFFD, the stored event keeps the original.
    response = send_event(
        server,
        project,
        release="r\x00",
        environment="prod\x00",
        user={"id": "u\x00"},
        tags={"k\x00": "v\x00"},
        transaction="/checkout\x00",
        exception={"values": [{"type": "Bad\x00Type", "value": "value\x00"}]},
    )
    assert response.status_code == 200, response.text
    issue = api.get(f"/api/v1/projects/{project.id}/issues").json()["issues"][0]
    assert issue["last_release"] == "r\ufffd"
    assert "\ufffd" in issue["title"]
