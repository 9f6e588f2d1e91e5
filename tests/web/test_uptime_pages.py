"""The uptime pages over HTTP (httpx) with the real app and database: monitors list, monitor page, the
form with "Test now", heartbeat snippets, the status-page editor, maintenance; roles, CSRF, bad input."""

from __future__ import annotations

import html
import re
from typing import Any

import httpx

from tests.conftest import ProjectFixture, Server, make_project, make_user
from tests.uptime.conftest import HttpTarget, http_target  # noqa: F401  (the local HTTP target fixture)
from tests.web.conftest import log_in
from tests.web.test_pages import XSS, post_form
from watchkeeper.config import Settings
from watchkeeper.store.writer import call_each
from watchkeeper.uptime.checkers import CheckResult
from watchkeeper.uptime.monitors import MonitorFilter, find_monitors, get_monitor
from watchkeeper.uptime.results import CheckOutcome, record_results


def create_http(client: httpx.Client, project_id: int, url: str, **fields: Any) -> httpx.Response:
    return post_form(client, f"/projects/{project_id}/monitors/new?type=http", f"/projects/{project_id}/monitors/new",
                     {"type": "http", "name": "Shop API", "c_url": url, "c_method": "GET", "interval_seconds": "60",
                      "timeout_seconds": "5", "failures_to_down": "1", "successes_to_up": "1",
                      "c_follow_redirects": "on", "c_verify_tls": "on", **fields})


def monitor_id_of(answer: httpx.Response) -> int:
    assert answer.status_code == 303, answer.text[:2000]
    match = re.fullmatch(r"/monitors/(\d+)", answer.headers["location"])
    assert match, answer.headers["location"]
    return int(match.group(1))


def record(server: Server, monitor_id: int, ok: bool, at: float, ms: float | None = 20.0,
           error: str | None = None) -> None:
    outcome = CheckOutcome(monitor_id, at, CheckResult(ok, ms if ok else None, 200 if ok else 500, error))
    server.runtime.writer.run_sync(call_each, lambda conn: record_results(conn, [outcome]))


def errors_on(page: str) -> list[str]:
    return [html.unescape(e) for e in re.findall(r'<p class="field-error"[^>]*>([^<]*)</p>', page)]


def test_create_an_http_monitor_through_the_form_and_see_it_listed_and_detailed(
        server: Server, admin: httpx.Client, project: ProjectFixture, http_target: HttpTarget) -> None:  # noqa: F811
    empty = admin.get(f"/projects/{project.id}/monitors")
    assert empty.status_code == 200 and "No monitors yet" in empty.text and ">Monitors</a>" in empty.text
    chooser = admin.get(f"/projects/{project.id}/monitors/new")
    assert all(f"?type={t}" in chooser.text for t in ("http", "tls", "tcp", "dns", "ping", "postgres", "heartbeat"))
    monitor_id = monitor_id_of(create_http(
        admin, project.id, http_target.url + "/ok", c_expected_status="200",
        c_conditions='status == 200\nbody.status == "UP"\nresponse_time < 2s', c_headers="X-Test: yes",
        sla_target="99.9"))
    with server.runtime.engine.connect() as conn:
        monitor = get_monitor(conn, monitor_id)
    assert monitor is not None and monitor.config["conditions"][1] == 'body.status == "UP"'
    assert monitor.config["headers"] == {"X-Test": "yes"} and monitor.sla_target == 99.9

    now = server.runtime.clock.now()
    record(server, monitor_id, True, now - 300, 12.0)
    record(server, monitor_id, False, now - 120, error="status 500")
    record(server, monitor_id, True, now - 60, 30.0)
    listing = admin.get(f"/projects/{project.id}/monitors")
    assert listing.status_code == 200 and "Shop API" in listing.text and "<polyline" in listing.text
    # Watched for 5 minutes, down (this form's monitor confirms at the first failure) for one: 80 % uptime,
    # the time-based figure every page shows (docs/uptime.md), not 2 good checks out of 3.
    assert re.search(r"80\.0\d %", listing.text)
    detail = admin.get(f"/monitors/{monitor_id}")
    assert detail.status_code == 200
    for text in ("Uptime", "Response time over", "response-data", "Outages", "Recent checks", "status 500",
                 "SLA 99.9 %", "Budget left"):
        assert text in detail.text, text
    assert admin.get(f"/monitors/{monitor_id}?checks=failed").text.count('class="state st-down">failed') == 1


def test_bad_form_values_show_the_fields_error_never_a_500(admin: httpx.Client, project: ProjectFixture) -> None:
    answer = create_http(admin, project.id, "ftp://nowhere", interval_seconds="5", c_expected_status="200, abc",
                         c_conditions="status = 200", c_headers="no colon here", sla_target="101", name=XSS)
    assert answer.status_code == 422
    errors = errors_on(answer.text)
    assert "must be an http:// or https:// URL with a host" in errors
    assert "a whole number" in errors and any("unexpected character '='" in e for e in errors)
    assert any("not a header" in e for e in errors) and any("greater than or equal to 10" in e for e in errors)
    assert any("less than 100" in e for e in errors)
    assert 'aria-invalid="true"' in answer.text and XSS not in answer.text  # the name is shown escaped
    for kind, fields in (("tcp", {"c_host": "", "c_port": "99999"}), ("dns", {"c_name": "x", "c_record_type": "BAD"}),
                         ("heartbeat", {"c_cron": "not cron", "c_timezone": "Mars/Base"}),
                         ("postgres", {"c_url": "nohost"})):
        bad = post_form(admin, f"/projects/{project.id}/monitors/new?type={kind}",
                        f"/projects/{project.id}/monitors/new", {"type": kind, "name": "x", **fields})
        assert bad.status_code == 422 and errors_on(bad.text), (kind, bad.text[:500])
    assert post_form(admin, f"/projects/{project.id}/monitors", f"/projects/{project.id}/monitors/new",
                     {"type": "gopher", "name": "x"}).status_code == 422


def test_test_now_runs_the_check_once_and_saves_nothing(
        server: Server, admin: httpx.Client, project: ProjectFixture, http_target: HttpTarget) -> None:  # noqa: F811
    fields = {"type": "http", "name": "Try", "c_url": http_target.url + "/ok", "c_method": "GET",
              "c_conditions": 'body.status == "UP"', "timeout_seconds": "5", "c_follow_redirects": "on"}
    good = post_form(admin, f"/projects/{project.id}/monitors/new?type=http", f"/projects/{project.id}/monitors/test",
                     fields)
    assert good.status_code == 200 and "Check passed" in good.text and "Nothing was saved" in good.text
    assert http_target.hits == 1
    bad = post_form(admin, f"/projects/{project.id}/monitors/new?type=http", f"/projects/{project.id}/monitors/test",
                    {**fields, "c_url": http_target.url + "/down"})
    assert "Check failed" in bad.text and "status 503" in bad.text
    with server.runtime.engine.connect() as conn:
        assert find_monitors(conn, project.id, MonitorFilter(), 10, 0)[1] == 0
    invalid = post_form(admin, f"/projects/{project.id}/monitors/new?type=http",
                        f"/projects/{project.id}/monitors/test", {**fields, "c_url": "nope"})
    assert invalid.status_code == 200 and "must be an http:// or https://" in invalid.text
    assert "Check passed" not in invalid.text and "Check failed" not in invalid.text


def test_edit_keeps_masked_secrets_and_config_monitors_are_read_only(
        server: Server, admin: httpx.Client, project: ProjectFixture, http_target: HttpTarget) -> None:  # noqa: F811
    monitor_id = monitor_id_of(create_http(admin, project.id, http_target.url + "/auth", c_bearer_token="s3cret"))
    form = admin.get(f"/monitors/{monitor_id}/edit")
    assert "s3cret" not in form.text and "********" in form.text
    fields = {"type": "http", "name": "Renamed", "c_url": http_target.url + "/auth", "c_method": "GET",
              "c_bearer_token": "********", "interval_seconds": "30", "timeout_seconds": "5",
              "failures_to_down": "2", "successes_to_up": "1"}
    saved = post_form(admin, f"/monitors/{monitor_id}/edit", f"/monitors/{monitor_id}/edit", fields)
    assert saved.status_code == 303
    with server.runtime.engine.connect() as conn:
        monitor = get_monitor(conn, monitor_id)
    assert monitor is not None and monitor.name == "Renamed" and monitor.config["bearer_token"] == "s3cret"
    tested = post_form(admin, f"/monitors/{monitor_id}/edit", f"/projects/{project.id}/monitors/test",
                       {**fields, "monitor_id": str(monitor_id)})
    assert "Check passed" in tested.text  # the stored token was used: /auth answers 401 without it

    from sqlalchemy import update

    from watchkeeper.store.engine import for_writing
    from watchkeeper.uptime.tables import monitors
    with for_writing(server.runtime.engine).begin() as conn:
        conn.execute(update(monitors).where(monitors.c.id == monitor_id).values(managed_by="config"))
    read_only = admin.get(f"/monitors/{monitor_id}/edit")
    assert "comes from the monitors file" in read_only.text
    assert '<fieldset class="grid-fields" disabled>' in read_only.text
    assert post_form(admin, f"/monitors/{monitor_id}", f"/monitors/{monitor_id}/edit", fields).status_code == 409
    assert post_form(admin, f"/monitors/{monitor_id}", f"/monitors/{monitor_id}/state",
                     {"action": "pause"}).status_code == 409


def test_list_filters_search_pages_and_bulk_pause_resume(server: Server, admin: httpx.Client,
                                                         project: ProjectFixture) -> None:
    ids = [monitor_id_of(post_form(admin, f"/projects/{project.id}/monitors/new?type=tcp",
                                   f"/projects/{project.id}/monitors/new",
                                   {"type": "tcp", "name": f"port {n}", "c_host": "127.0.0.1", "c_port": str(n)}))
           for n in range(1, 4)]
    heartbeat = monitor_id_of(post_form(admin, f"/projects/{project.id}/monitors/new?type=heartbeat",
                                        f"/projects/{project.id}/monitors/new",
                                        {"type": "heartbeat", "name": "nightly job", "c_period_seconds": "86400",
                                         "c_grace_seconds": "600"}))
    paused = post_form(admin, f"/projects/{project.id}/monitors", f"/projects/{project.id}/monitors/bulk",
                       {"action": "pause", "ids": [str(ids[0]), str(ids[1])],
                        "next": f"/projects/{project.id}/monitors?status=paused"})
    assert paused.status_code == 303 and paused.headers["location"].endswith("?status=paused")
    page = admin.get(f"/projects/{project.id}/monitors?status=paused").text
    assert "port 1" in page and "port 2" in page and "port 3" not in page
    assert "port 3" in admin.get(f"/projects/{project.id}/monitors?q=PORT+3").text
    only_heartbeats = admin.get(f"/projects/{project.id}/monitors?type=heartbeat").text
    assert "nightly job" in only_heartbeats and "port 1" not in only_heartbeats
    post_form(admin, f"/projects/{project.id}/monitors", f"/projects/{project.id}/monitors/bulk",
              {"action": "resume", "ids": [str(ids[0])]})
    with server.runtime.engine.connect() as conn:
        found = {i: get_monitor(conn, i) for i in (*ids, heartbeat)}
    states = {i: m.status if m else "gone" for i, m in found.items()}
    assert states[ids[0]] == "new" and states[ids[1]] == "paused"
    # odd query values are ignored, not errors
    assert admin.get(f"/projects/{project.id}/monitors?status=bogus&type=%00&offset=-4&q=%00").status_code == 200


def test_heartbeat_page_shows_ping_urls_and_snippets(server: Server, admin: httpx.Client,
                                                     project: ProjectFixture) -> None:
    monitor_id = monitor_id_of(post_form(
        admin, f"/projects/{project.id}/monitors/new?type=heartbeat", f"/projects/{project.id}/monitors/new",
        {"type": "heartbeat", "name": "Backup", "slug": "backup", "c_cron": "0 3 * * *",
         "c_timezone": "Europe/Paris", "c_grace_seconds": "1800", "c_max_run_seconds": "3600",
         "c_period_seconds": "86400"}))
    with server.runtime.engine.connect() as conn:
        monitor = get_monitor(conn, monitor_id)
    assert monitor is not None and monitor.config["cron"] == "0 3 * * *" and monitor.config["max_run_seconds"] == 3600
    page = admin.get(f"/monitors/{monitor_id}").text
    base = server.settings.base_url
    for text in (f"{base}/ping/{monitor.uuid}", f"{base}/ping/{monitor.uuid}/start", f"{base}/ping/{monitor.uuid}/fail",
                 f"{base}/ping/{monitor.uuid}/$?", "0 3 * * * curl", "Make a ping key"):
        assert html.escape(text, quote=False) in page, text
    made = post_form(admin, f"/monitors/{monitor_id}", f"/projects/{project.id}/ping-key",
                     {"next": f"/monitors/{monitor_id}"})
    assert made.status_code == 303 and made.headers["location"] == f"/monitors/{monitor_id}"
    page = admin.get(f"/monitors/{monitor_id}").text
    slug_url = re.search(r'id="ping-slug-url" class="mono" readonly value="([^"]+)"', page)
    assert slug_url and slug_url.group(1).endswith("/backup")
    assert httpx.get(slug_url.group(1)).status_code == 200  # the shown URL works
    assert "success" in admin.get(f"/monitors/{monitor_id}").text


def test_status_page_editor_components_sla_incidents_and_maintenance(
        server: Server, admin: httpx.Client, project: ProjectFixture) -> None:
    ids = [monitor_id_of(post_form(admin, f"/projects/{project.id}/monitors/new?type=tcp",
                                   f"/projects/{project.id}/monitors/new",
                                   {"type": "tcp", "name": name, "c_host": "127.0.0.1", "c_port": "1"}))
           for name in ("Web", "API")]
    listing = f"/projects/{project.id}/status-pages"
    bad = post_form(admin, listing, listing, {"slug": "Bad Slug!", "title": "", "logo_url": "javascript:x"})
    assert bad.status_code == 422 and len(errors_on(bad.text)) == 3
    created = post_form(admin, listing, listing, {"slug": "acme", "title": "Acme", "logo_url": ""})
    assert created.status_code == 303
    editor = created.headers["location"]
    page_id = int(re.findall(r"\d+", editor)[0])
    taken = post_form(admin, listing, listing, {"slug": "acme", "title": "Again"})
    assert taken.status_code == 409 and "another status page has this slug" in taken.text

    saved = post_form(admin, editor, editor, {
        "slug": "acme", "title": "Acme status", "logo_url": "https://acme.example/logo.png", "description": "",
        "c0_name": "Website", "c0_group": "Frontend", "c0_monitors": [str(ids[0])], "c0_sla": "99.9",
        "c1_name": "Backend", "c1_group": "Platform", "c1_monitors": [str(ids[0]), str(ids[1])], "c1_sla": "",
        "c2_name": "", "c2_group": "", "c2_sla": ""})
    assert saved.status_code == 303, saved.text[:3000]
    now = server.runtime.clock.now()
    record(server, ids[0], True, now - 100)
    page = admin.get(editor).text
    assert "Website" in page and "budget left" in page and 'value="99.9"' in page
    public = httpx.get(f"{server.url}/status/acme/json").json()
    assert [c["name"] for c in public["components"]] == ["Website", "Backend"]
    wrong = post_form(admin, editor, editor, {"slug": "acme", "title": "Acme", "c0_name": "X",
                                              "c0_monitors": [str(ids[0])], "c0_sla": "lots"})
    assert wrong.status_code == 422 and "a number, e.g. 99.9" in wrong.text
    empty = post_form(admin, editor, editor, {"slug": "acme", "title": "Acme", "c0_name": "X", "c0_sla": ""})
    assert empty.status_code == 422 and errors_on(empty.text)

    posted = post_form(admin, editor, f"/status-pages/{page_id}/incidents",
                       {"title": "Slow checkout", "status": "investigating", "message": "Looking into it"})
    assert posted.status_code == 303
    incident_id = int(re.findall(r'id="incident-(\d+)"', admin.get(editor).text)[0])
    assert post_form(admin, editor, f"/status-pages/{page_id}/incidents",
                     {"title": "", "status": "nonsense", "message": ""}).status_code == 422
    updated = post_form(admin, editor, f"/status-pages/{page_id}/incidents/{incident_id}/updates",
                        {"status": "resolved", "message": "Fixed"})
    assert updated.status_code == 303
    page = admin.get(editor).text
    assert "Fixed" in page and "Post update" not in page  # resolved: no more updates offered

    window = post_form(admin, listing, f"/projects/{project.id}/maintenance",
                       {"title": "Nightly", "kind": "recurring", "cron": "0 22 * * 2", "timezone": "Europe/Berlin",
                        "duration_minutes": "120", "monitor_ids": [str(ids[1])]})
    assert window.status_code == 303
    assert "Nightly" in admin.get(listing).text and "0 22 * * 2" in admin.get(listing).text
    for fields in ({"title": "x", "kind": "once", "starts": "2026-12-01T10:00", "ends": "2026-12-01T09:00"},
                   {"title": "x", "kind": "once", "starts": "soon", "ends": ""},
                   {"title": "x", "kind": "recurring", "cron": "nope", "duration_minutes": "x"}):
        answer = post_form(admin, listing, f"/projects/{project.id}/maintenance", fields)
        assert answer.status_code == 422 and errors_on(answer.text), fields
    once = post_form(admin, listing, f"/projects/{project.id}/maintenance",
                     {"title": "Upgrade", "kind": "once", "starts": "2030-01-01T10:00", "ends": "2030-01-01T12:00"})
    assert once.status_code == 303
    window_ids = re.findall(r'action="/maintenance-windows/(\d+)/delete"', admin.get(listing).text)
    assert len(window_ids) == 2
    assert post_form(admin, listing, f"/maintenance-windows/{window_ids[0]}/delete", {}).status_code == 303
    deleted = post_form(admin, editor, f"/status-pages/{page_id}/delete", {})
    assert deleted.status_code == 303 and admin.get(editor).status_code == 404


def test_viewers_see_no_edit_controls_and_may_not_post(server: Server, admin: httpx.Client,
                                                      project: ProjectFixture) -> None:
    monitor_id = monitor_id_of(post_form(admin, f"/projects/{project.id}/monitors/new?type=tcp",
                                         f"/projects/{project.id}/monitors/new",
                                         {"type": "tcp", "name": "db port", "c_host": "127.0.0.1", "c_port": "5432"}))
    listing = f"/projects/{project.id}/status-pages"
    editor = post_form(admin, listing, listing, {"slug": "viewers", "title": "V"}).headers["location"]
    page_id = int(re.findall(r"\d+", editor)[0])
    _, email = make_user(server, role="viewer")
    viewer = log_in(server, email, "password-123")
    pages = {f"/projects/{project.id}/monitors": "New monitor", f"/monitors/{monitor_id}": "Delete",
             listing: "Create status page", editor: "Save page"}
    for path, control in pages.items():
        answer = viewer.get(path)
        assert answer.status_code == 200 and control not in answer.text, path
    assert 'name="ids"' not in viewer.get(f"/projects/{project.id}/monitors").text
    assert "<fieldset class=\"grid-fields\" disabled>" in viewer.get(f"/monitors/{monitor_id}/edit").text
    assert viewer.get(f"/projects/{project.id}/monitors/new").status_code == 403
    token_page = f"/monitors/{monitor_id}"
    for action, fields in ((f"/projects/{project.id}/monitors/new", {"type": "tcp", "name": "x"}),
                           (f"/projects/{project.id}/monitors/test", {"type": "tcp", "name": "x"}),
                           (f"/projects/{project.id}/monitors/bulk", {"action": "pause", "ids": str(monitor_id)}),
                           (f"/monitors/{monitor_id}/edit", {"name": "x"}),
                           (f"/monitors/{monitor_id}/state", {"action": "delete"}),
                           (f"/projects/{project.id}/ping-key", {}),
                           (listing, {"slug": "mine", "title": "Mine"}),
                           (editor, {"slug": "viewers", "title": "Taken over"}),
                           (f"/status-pages/{page_id}/incidents", {"title": "x", "message": "y"}),
                           (f"/status-pages/{page_id}/delete", {}),
                           (f"/projects/{project.id}/maintenance", {"title": "x"})):
        assert post_form(viewer, token_page, action, fields).status_code == 403, action
    # without the CSRF token even the admin is refused
    assert admin.post(f"/monitors/{monitor_id}/state", data={"action": "pause"}).status_code == 403
    with server.runtime.engine.connect() as conn:
        assert get_monitor(conn, monitor_id) is not None


def test_another_teams_project_answers_404_everywhere(server: Server, admin: httpx.Client) -> None:
    theirs = make_project(server, "Theirs", team="Other team")
    monitor_id = monitor_id_of(post_form(admin, f"/projects/{theirs.id}/monitors/new?type=tcp",
                                         f"/projects/{theirs.id}/monitors/new",
                                         {"type": "tcp", "name": "hidden", "c_host": "127.0.0.1", "c_port": "1"}))
    listing = f"/projects/{theirs.id}/status-pages"
    editor = post_form(admin, listing, listing, {"slug": "theirs", "title": "T"}).headers["location"]
    mine = make_project(server, "Mine")
    _, email = make_user(server, role="member")
    member = log_in(server, email, "password-123")
    for path in (f"/projects/{theirs.id}/monitors", f"/monitors/{monitor_id}", f"/monitors/{monitor_id}/edit",
                 f"/projects/{theirs.id}/monitors/new?type=http", listing, editor, "/monitors/999999",
                 "/monitors/99999999999999", "/status-pages/424242/edit"):
        assert member.get(path).status_code == 404, path
    own = f"/projects/{mine.id}/monitors"
    for action in (f"/monitors/{monitor_id}/state", f"/monitors/{monitor_id}/edit", editor,
                   f"/projects/{theirs.id}/monitors/bulk"):
        assert post_form(member, own, action, {"action": "delete"}).status_code == 404, action
    # a component may not show another project's monitor
    own_listing = f"/projects/{mine.id}/status-pages"
    own_editor = post_form(member, own_listing, own_listing, {"slug": "mine", "title": "M"}).headers["location"]
    stolen = post_form(member, own_editor, own_editor, {"slug": "mine", "title": "M", "c0_name": "x",
                                                        "c0_monitors": [str(monitor_id)], "c0_sla": ""})
    assert stolen.status_code == 422 and "is not a monitor of this project" in stolen.text


def test_monitor_secrets_are_masked_on_every_page_and_kept_by_the_edit_form(
        server: Server, admin: httpx.Client, project: ProjectFixture, http_target: HttpTarget) -> None:  # noqa: F811
    from tests.uptime.test_api import SECRETS, secret_monitors
    from watchkeeper.uptime.monitors import create_monitor
    from watchkeeper.uptime.secrets import MASK
    from watchkeeper.uptime.specs import MonitorSpec

    specs = secret_monitors(http_target)
    ids = [server.runtime.writer.run_sync(call_each, lambda conn, spec=spec: create_monitor(
        conn, project.id, MonitorSpec.model_validate(spec), now=server.runtime.clock.now())).id for spec in specs]
    _, email = make_user(server, role="viewer")
    viewer = log_in(server, email, "password-123")
    for client in (viewer, admin):
        pages = [(f"/monitors/{i}", f"/monitors/{i}/edit") for i in ids]
        for path in [f"/projects/{project.id}/monitors", *[p for both in pages for p in both]]:
            answer = client.get(path)
            assert answer.status_code == 200, path
            assert not [s for s in SECRETS if s in html.unescape(answer.text)], path
    listing = html.unescape(viewer.get(f"/projects/{project.id}/monitors").text)
    assert "bob:********@" in listing and "api_key=********" in listing and "sslpassword=********" in listing
    # Only an editor may see them: the viewer's form has no button for it and the action is refused.
    assert "Show stored secrets" not in viewer.get(f"/monitors/{ids[0]}/edit").text
    refused = post_form(viewer, f"/monitors/{ids[0]}/edit", f"/monitors/{ids[0]}/reveal", {})
    assert refused.status_code == 403 and not [s for s in SECRETS if s in refused.text]
    assert "Show stored secrets" in admin.get(f"/monitors/{ids[0]}/edit").text
    revealed = html.unescape(post_form(admin, f"/monitors/{ids[0]}/edit", f"/monitors/{ids[0]}/reveal", {}).text)
    assert [s for s in SECRETS if s in revealed] == ["pw-in-url", "qs-token-1", "qs-key-2", "body-secret",
                                                     "hdr-token", "hdr-auth", "hdr-key", "bearer-1", "basic-pw"]
    # The editor saves the form as shown (secrets masked): every stored secret is kept.
    fields = {"type": "http", "name": "Everything", "c_method": "POST", "interval_seconds": "60",
              "timeout_seconds": "10", "failures_to_down": "2", "successes_to_up": "1",
              "c_url": http_target.url.replace("://", f"://bob:{MASK}@")
              + f"/ok?page=2&api_key={MASK}&Secret-Key={MASK}",
              "c_body": MASK, "c_bearer_token": MASK, "c_basic_auth_username": "bob", "c_basic_auth_password": MASK,
              "c_headers": f"X-Auth-Token: {MASK}\nProxy-Authorization: {MASK}\nX-Key: {MASK}\n"
                           "Accept: application/json",
              "c_follow_redirects": "on", "c_verify_tls": "on"}
    saved = post_form(admin, f"/monitors/{ids[0]}/edit", f"/monitors/{ids[0]}/edit", fields)
    assert saved.status_code == 303, errors_on(saved.text)
    postgres = {**{k: v for k, v in fields.items() if not k.startswith("c_")}, "type": "postgres", "name": "Database",
                "c_url": f"postgresql://app@127.0.0.1:5432/app?password={MASK}&sslmode=prefer&sslpassword={MASK}"}
    assert post_form(admin, f"/monitors/{ids[1]}/edit", f"/monitors/{ids[1]}/edit", postgres).status_code == 303
    with server.runtime.engine.connect() as conn:
        stored = [get_monitor(conn, i) for i in ids]
    assert stored[0] is not None and stored[1] is not None
    assert {k: stored[0].config[k] for k in ("url", "body", "headers", "bearer_token", "basic_auth")} == \
        {k: specs[0]["config"][k] for k in ("url", "body", "headers", "bearer_token", "basic_auth")}
    assert stored[1].config["url"] == specs[1]["config"]["url"]


def test_the_form_refuses_odd_ipv4_forms_and_guarded_private_addresses(settings: Settings) -> None:
    from tests.conftest import run_server

    guarded = settings.model_copy(update={"outbound": settings.outbound.model_copy(
        update={"allow_private_targets": False})})
    with run_server(guarded) as server:
        project = make_project(server)
        _, email = make_user(server, role="admin")
        admin = log_in(server, email, "password-123")
        try:
            odd = create_http(admin, project.id, "http://0177.0.0.1:8080/")
            assert odd.status_code == 422 and "write 127.0.0.1" in " ".join(errors_on(odd.text))
            private = create_http(admin, project.id, "http://10.0.0.1/health")
            assert private.status_code == 422
            assert "outbound.allow_private_targets" in " ".join(errors_on(private.text)), errors_on(private.text)
            public = monitor_id_of(create_http(admin, project.id, "http://8.8.8.8/"))
            fields = {"type": "http", "name": "x", "c_url": "http://[::ffff:0:a00:1]/", "c_method": "GET",
                      "interval_seconds": "60", "timeout_seconds": "5", "failures_to_down": "1",
                      "successes_to_up": "1"}
            changed = post_form(admin, f"/monitors/{public}/edit", f"/monitors/{public}/edit", fields)
            assert changed.status_code == 422 and "private or loopback" in " ".join(errors_on(changed.text))
        finally:
            admin.close()
