"""The pages over HTTP (httpx): status codes, what they show, escaping, CSRF, and access per role."""

from __future__ import annotations

import re
import subprocess
import time
from typing import Any

import httpx
import pytest

from tests.conftest import ProjectFixture, Server, make_project, make_user
from tests.errors.test_issue_lifecycle import send_event
from tests.web.conftest import form_token, log_in
from watchkeeper.auth.audit import list_entries
from watchkeeper.auth.projects import get_project, list_keys
from watchkeeper.errors.issues import get_issue

XSS = "<script>alert(1)</script>"
ATTRIBUTE_BREAK = '" onmouseover="alert(1)'


def issue_ids(server: Server, project: ProjectFixture) -> list[int]:
    with server.runtime.engine.connect() as conn:
        rows = conn.exec_driver_sql(f"select id from issues where project_id = {project.id} order by id").all()
    return [r[0] for r in rows]


def issue_of(server: Server, issue_id: int) -> dict[str, Any]:
    with server.runtime.engine.connect() as conn:
        issue = get_issue(conn, issue_id)
    assert issue is not None
    return issue


def post_form(client: httpx.Client, page_path: str, action: str, fields: dict[str, Any]) -> httpx.Response:
    """Submit a form as the browser does: the CSRF token comes from the page the form is on."""
    token = form_token(client.get(page_path).text)
    return client.post(action, data={"csrf_token": token, **fields})


# --- login, logout, CSRF ------------------------------------------------------------------------------


def test_pages_send_a_stranger_to_the_login_page_and_back(server: Server, admin: httpx.Client) -> None:
    with httpx.Client(base_url=server.url) as stranger:
        answer = stranger.get("/projects/1/issues?range=7d")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/login?next=%2Fprojects%2F1%2Fissues%3Frange%3D7d"


def test_a_wrong_password_is_refused_and_the_next_address_stays_on_this_site(
    server: Server, admin: httpx.Client
) -> None:
    with httpx.Client(base_url=server.url) as client:
        token = form_token(client.get("/login").text)
        wrong = client.post("/login", data={"email": server.settings.admin_email, "password": "nope-nope",
                                            "csrf_token": token, "next": "/projects"})
        assert wrong.status_code == 401 and "not right" in wrong.text
        token = form_token(wrong.text)
        right = client.post("/login", data={"email": server.settings.admin_email, "password": "admin-password-1",
                                            "csrf_token": token, "next": "//evil.example/steal"})
        assert right.status_code == 303 and right.headers["location"] == "/projects"
        cookie = right.headers["set-cookie"]
        assert "wk_session=" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie


def test_the_login_form_needs_its_own_cookie(server: Server, admin: httpx.Client) -> None:
    """A form posted from another site carries no login cookie: refused, so nobody is logged in unawares."""
    answer = httpx.post(f"{server.url}/login", data={"email": server.settings.admin_email,
                                                     "password": "admin-password-1", "csrf_token": "forged"})
    assert answer.status_code == 403 and "wk_session" not in answer.headers.get("set-cookie", "")


def test_forms_without_the_session_csrf_token_are_refused(server: Server, admin: httpx.Client) -> None:
    project = make_project(server)
    assert send_event(server, project).status_code == 200
    [issue_id] = issue_ids(server, project)
    for fields in ({}, {"csrf_token": "not-the-token"}):
        answer = admin.post(f"/issues/{issue_id}/change", data={"action": "resolve", **fields})
        assert answer.status_code == 403
    assert admin.post(f"/projects/{project.id}/settings", data={"name": "Hijacked"}).status_code == 403
    assert admin.post("/logout").status_code == 403
    assert issue_of(server, issue_id)["status"] == "unresolved"


def test_logging_out_ends_the_session(server: Server, admin: httpx.Client) -> None:
    assert post_form(admin, "/projects", "/logout", {}).status_code == 303
    assert admin.get("/projects").status_code == 303


# --- projects -----------------------------------------------------------------------------------------


def test_a_project_created_on_the_page_shows_its_dsn_and_setup_snippets(server: Server, admin: httpx.Client) -> None:
    answer = post_form(admin, "/projects/new", "/projects", {"name": "Web <Shop>", "platform": "python"})
    assert answer.status_code == 303
    setup = admin.get(answer.headers["location"])
    assert setup.status_code == 200
    project_id = int(re.findall(r"/projects/(\d+)/setup", answer.headers["location"])[0])
    with server.runtime.engine.connect() as conn:
        key = list_keys(conn, project_id)[0]
    dsn = key.dsn(server.settings.base_url)
    assert f'value="{dsn}"' in setup.text
    assert "Web &lt;Shop&gt;" in setup.text
    for name in ("Django", "Flask", "FastAPI", "JavaScript · browser", "Node.js", "curl"):
        assert name in setup.text
    empty_list = admin.get(f"/projects/{project_id}/issues")
    assert "Waiting for the first error" in empty_list.text and dsn in empty_list.text
    with server.runtime.engine.connect() as conn:
        entries, _ = list_entries(conn, limit=10)
    assert [e.action for e in entries] == ["project.create"]


def test_the_curl_snippet_sends_an_event(server: Server, admin: httpx.Client) -> None:
    project = make_project(server)
    html = admin.get(f"/projects/{project.id}/setup").text
    snippet = re.search(r'id="snippet-http"><code>(.*?)</code>', html, re.S)
    assert snippet
    command = snippet.group(1).replace("&#39;", "'").replace("&#34;", '"').replace("&lt;", "<").replace("&gt;", ">")
    command = command.replace("&amp;", "&")
    done = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0 and '"id"' in done.stdout, done.stdout + done.stderr
    assert "Hello from curl" in admin.get(f"/projects/{project.id}/issues").text


def test_settings_change_name_retention_limits_and_scrubbing(server: Server, admin: httpx.Client) -> None:
    project = make_project(server)
    path = f"/projects/{project.id}/settings"
    answer = post_form(admin, path, path, {
        "name": "Renamed", "retention_days": "30", "events_per_minute": "100", "events_per_hour": "",
        "scrub_data": "on", "sensitive_fields": "iban\nvat_id\n", "safe_fields": "",
    })
    assert answer.status_code == 303
    with server.runtime.engine.connect() as conn:
        stored = get_project(conn, project.id)
    assert stored is not None
    assert (stored.name, stored.retention_days, stored.events_per_minute, stored.events_per_hour) == (
        "Renamed", 30, 100, None)
    assert stored.settings["scrubbing"] == {"scrub_data": True, "scrub_ip_addresses": False,
                                            "sensitive_fields": ["iban", "vat_id"], "safe_fields": []}
    bad = post_form(admin, path, path, {"name": "Renamed", "retention_days": "0"})
    assert bad.status_code == 422 and 'id="e-retention_days">a whole number from 1 to 3,650' in bad.text


def test_keys_rotate_and_disable(server: Server, admin: httpx.Client) -> None:
    project = make_project(server)
    path = f"/projects/{project.id}/keys"
    with server.runtime.engine.connect() as conn:
        [old] = list_keys(conn, project.id)
    assert post_form(admin, path, f"{path}/{old.id}/rotate", {}).status_code == 303
    with server.runtime.engine.connect() as conn:
        first, new = list_keys(conn, project.id)
    assert not first.is_active and new.is_active and new.public_key in admin.get(path).text
    assert send_event(server, project).status_code == 403  # the old DSN is refused at once
    assert post_form(admin, path, f"{path}/{new.id}/active", {"active": "0"}).status_code == 303
    with server.runtime.engine.connect() as conn:
        assert not list_keys(conn, project.id)[1].is_active
    other = make_project(server, "Other")
    assert post_form(admin, path, f"/projects/{other.id}/keys/{new.id}/rotate", {}).status_code == 404


# --- issues -------------------------------------------------------------------------------------------


def test_event_data_is_escaped_in_the_html(server: Server, admin: httpx.Client) -> None:
    project = make_project(server)
    frame = {"function": "handler", "module": "app", "lineno": 3, "in_app": True, "context_line": XSS,
             "vars": {"title": ATTRIBUTE_BREAK, "body": XSS}}
    answer = send_event(server, project, message=XSS + ATTRIBUTE_BREAK, tags={"customer": ATTRIBUTE_BREAK},
                        exception={"values": [{"type": "ValueError", "value": XSS,
                                               "stacktrace": {"frames": [frame]}}]})
    assert answer.status_code == 200
    [issue_id] = issue_ids(server, project)
    for path in (f"/projects/{project.id}/issues", f"/issues/{issue_id}"):
        html = admin.get(path).text
        assert XSS not in html and "onmouseover=\"alert" not in html
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&#34; onmouseover=&#34;alert(1)" in html


def test_list_filters_search_sort_and_cursor_pages(server: Server, admin: httpx.Client) -> None:
    project = make_project(server)
    for i in range(30):
        level = "warning" if i % 3 == 0 else "error"
        env = "staging" if i % 2 else "production"
        send_event(server, project, fingerprint=[f"issue-{i}"], level=level, environment=env,
                   exception={"values": [{"type": "KeyError", "value": f"missing key number {i}"}]})
    base = f"/projects/{project.id}/issues"
    first = admin.get(base, params={"range": "1h"})
    assert first.status_code == 200 and first.text.count('name="ids"') == 25
    cursor = re.search(r'href="[^"]*cursor=([^&"]+)[^"]*" rel="next"', first.text)
    assert cursor
    second = admin.get(base, params={"range": "1h", "cursor": cursor.group(1)})
    assert second.text.count('name="ids"') == 5
    assert admin.get(base, params={"level": "warning"}).text.count('name="ids"') == 10
    assert admin.get(base, params={"environment": "staging"}).text.count('name="ids"') == 15
    found = admin.get(base, params={"query": "number 17"})
    assert found.text.count('name="ids"') == 1 and "missing key number 17" in found.text
    assert admin.get(base, params={"sort": "first_seen"}).status_code == 200
    assert admin.get(base, params={"cursor": "garbage"}).status_code == 400
    assert admin.get(base, params={"range": "custom", "start": "yesterday"}).status_code == 400
    custom = admin.get(base, params={"range": "custom", "start": "2020-01-01T00:00", "end": "2020-01-02T00:00"})
    assert custom.status_code == 200 and "No issues match" in custom.text


def test_bulk_resolve_ignore_and_assign(server: Server, admin: httpx.Client) -> None:
    project = make_project(server)
    for i in range(3):
        send_event(server, project, fingerprint=[f"bulk-{i}"])
    ids = issue_ids(server, project)
    path = f"/projects/{project.id}/issues"
    answer = post_form(admin, path, f"{path}/bulk", {"ids": ids[:2], "action": "resolve", "next": path + "?x=1"})
    assert answer.status_code == 303 and answer.headers["location"] == path + "?x=1"
    assert [issue_of(server, i)["status"] for i in ids] == ["resolved", "resolved", "unresolved"]
    post_form(admin, path, f"{path}/bulk", {"ids": [ids[2]], "action": "ignore"})
    assert issue_of(server, ids[2])["status"] == "ignored"
    # the admin is user 1 on a fresh database
    post_form(admin, path, f"{path}/bulk", {"ids": ids, "action": "assign", "assignee": "1"})
    assert {issue_of(server, i)["assignee_id"] for i in ids} == {1}


def test_issue_page_status_ignore_until_events_and_raw_json(server: Server, admin: httpx.Client) -> None:
    project = make_project(server)
    now = time.time()
    send_event(server, project, fingerprint=["one"], event_id="a" * 32, timestamp=now - 60)
    send_event(server, project, fingerprint=["one"], event_id="b" * 32, timestamp=now - 30)
    [issue_id] = issue_ids(server, project)
    page = admin.get(f"/issues/{issue_id}")
    assert page.status_code == 200 and "b" * 12 in page.text  # the latest event is shown
    older = admin.get(f"/issues/{issue_id}", params={"event": "a" * 32})
    assert f"event={'b' * 32}" in older.text  # a link to the newer one
    raw = admin.get(f"/issues/{issue_id}/events/{'a' * 32}/json")
    assert raw.status_code == 200 and raw.json()["event_id"] == "a" * 32
    assert admin.get(f"/issues/{issue_id}", params={"event": "c" * 32}).status_code == 404
    post_form(admin, f"/issues/{issue_id}", f"/issues/{issue_id}/change", {"action": "ignore", "ignore_for": "7d"})
    ignored = issue_of(server, issue_id)
    assert ignored["status"] == "ignored"
    assert ignored["status_details"]["ignore_until"] == pytest.approx(now + 7 * 86400, abs=60)
    post_form(admin, f"/issues/{issue_id}", f"/issues/{issue_id}/change", {"action": "resolve"})
    assert issue_of(server, issue_id)["status"] == "resolved"


# --- roles and teams ----------------------------------------------------------------------------------


def test_a_viewer_sees_no_write_controls_and_cannot_write(server: Server, admin: httpx.Client) -> None:
    project = make_project(server)
    send_event(server, project)
    [issue_id] = issue_ids(server, project)
    _, email = make_user(server, role="viewer")
    viewer = log_in(server, email, "password-123")
    issue_page = viewer.get(f"/issues/{issue_id}")
    assert issue_page.status_code == 200 and ">Resolve<" not in issue_page.text
    assert 'name="ids"' not in viewer.get(f"/projects/{project.id}/issues").text
    assert "Rotate" not in viewer.get(f"/projects/{project.id}/keys").text
    assert "<fieldset disabled>" in viewer.get(f"/projects/{project.id}/settings").text
    token = form_token(issue_page.text)  # the logout form's token is the session's
    writes = [
        (f"/issues/{issue_id}/change", {"action": "resolve"}),
        (f"/projects/{project.id}/issues/bulk", {"ids": [issue_id], "action": "resolve"}),
        (f"/projects/{project.id}/settings", {"name": "Viewer was here"}),
        (f"/projects/{project.id}/keys", {"label": "mine"}),
        ("/projects", {"name": "Viewer project"}),
    ]
    for path, fields in writes:
        assert viewer.post(path, data={"csrf_token": token, **fields}).status_code == 403, path
    assert issue_of(server, issue_id)["status"] == "unresolved"
    viewer.close()


def test_a_member_of_another_team_gets_404_for_everything_of_this_project(server: Server, admin: httpx.Client) -> None:
    project = make_project(server, "Team A project")
    send_event(server, project)
    [issue_id] = issue_ids(server, project)
    event_id = admin.get(f"/issues/{issue_id}").text.split('/events/')[1].split('/json')[0]
    _, email = make_user(server, role="member", team="Team B")
    member = log_in(server, email, "password-123")
    for path in (f"/projects/{project.id}/issues", f"/projects/{project.id}/settings", f"/projects/{project.id}/keys",
                 f"/projects/{project.id}/setup", f"/issues/{issue_id}", f"/issues/{issue_id}/events/{event_id}/json"):
        assert member.get(path).status_code == 404, path
    token = form_token(member.get("/projects").text)
    assert member.post(f"/issues/{issue_id}/change", data={"csrf_token": token, "action": "resolve"}).status_code == 404
    assert "Team A project" not in member.get("/projects").text
    member.close()


def test_a_member_changes_the_projects_of_their_team(server: Server, admin: httpx.Client) -> None:
    project = make_project(server)
    send_event(server, project)
    [issue_id] = issue_ids(server, project)
    _, email = make_user(server, role="member")
    member = log_in(server, email, "password-123")
    assert post_form(member, f"/issues/{issue_id}", f"/issues/{issue_id}/change",
                     {"action": "resolve"}).status_code == 303
    assert issue_of(server, issue_id)["status"] == "resolved"
    created = post_form(member, "/projects/new", "/projects", {"name": "Member's own"})
    assert created.status_code == 303 and member.get(created.headers["location"]).status_code == 200
    member.close()


def test_sparklines_count_events_of_this_projects_issues_only(server: Server, admin: httpx.Client) -> None:
    project, other = make_project(server), make_project(server, "Other")
    for _ in range(3):
        send_event(server, project, fingerprint=["mine"])
    send_event(server, other, fingerprint=["theirs"])
    [mine], [theirs] = issue_ids(server, project), issue_ids(server, other)
    answer = admin.get(f"/projects/{project.id}/issues/sparklines", params={"ids": f"{mine},{theirs},x", "range": "1h"})
    assert answer.status_code == 200
    assert f'id="spark-{mine}"' in answer.text and 'aria-label="3 events in 1h"' in answer.text
    assert f'id="spark-{theirs}"' not in answer.text
    _, email = make_user(server, role="member", team="Elsewhere")
    stranger = log_in(server, email, "password-123")
    assert stranger.get(f"/projects/{project.id}/issues/sparklines", params={"ids": str(mine)}).status_code == 404
    stranger.close()


def test_hostile_addresses_and_fields_are_answered_not_crashed_on(server: Server, admin: httpx.Client) -> None:
    project = make_project(server)
    too_big = 2**70
    for path in (f"/projects/{too_big}/issues", f"/issues/{too_big}", f"/projects/{too_big}/keys"):
        assert admin.get(path).status_code == 404, path
    assert post_form(admin, "/projects", f"/projects/{project.id}/keys/{too_big}/rotate", {}).status_code == 404
    for params in ({"query": "a\x00b"}, {"environment": "\x00"}, {"release": "x\x00"}, {"cursor": "\x00"},
                   {"range": "custom", "start": "2026-01-01T00:00\x00"}):
        assert admin.get(f"/projects/{project.id}/issues", params=params).status_code in (200, 400), params
    assert post_form(admin, "/projects/new", "/projects", {"name": "Bad\x00name"}).status_code == 422
    with httpx.Client(base_url=server.url) as client:
        token = form_token(client.get("/login").text)
        answer = client.post("/login", data={"email": "admin@example.com\x00", "password": "x\x00",
                                             "csrf_token": token})
        assert answer.status_code == 401


def test_issues_can_be_assigned_only_to_members_of_the_projects_teams(server: Server, admin: httpx.Client) -> None:
    project = make_project(server)
    send_event(server, project)
    [issue_id] = issue_ids(server, project)
    colleague_id, colleague = make_user(server, role="member")
    stranger_id, stranger = make_user(server, role="member", team="Team B")
    member = log_in(server, colleague, "password-123")
    for path in (f"/projects/{project.id}/issues", f"/issues/{issue_id}"):
        page = member.get(path).text
        assert colleague in page and stranger not in page, path  # no e-mail of another team's user
    refused = post_form(member, f"/issues/{issue_id}", f"/issues/{issue_id}/change",
                        {"action": "assign", "assignee": str(stranger_id)})
    assert refused.status_code == 422 and issue_of(server, issue_id)["assignee_id"] is None
    assigned = post_form(member, f"/issues/{issue_id}", f"/issues/{issue_id}/change",
                         {"action": "assign", "assignee": str(colleague_id)})
    assert assigned.status_code == 303 and issue_of(server, issue_id)["assignee_id"] == colleague_id
    member.close()
