"""The audit log records changes to monitors, rules, status pages and maintenance windows (REST API and
pages), and the CLI's changes."""

from __future__ import annotations

import json
import subprocess

import httpx

from tests.alerting.test_api import SPIKE
from tests.conftest import ProjectFixture, Server
from tests.test_cli import CONSOLE_SCRIPT, _environ
from tests.web.test_account_pages import audit_entries
from tests.web.test_alerting_pages import rule_fields
from tests.web.test_pages import post_form
from tests.web.test_uptime_pages import create_http, monitor_id_of


def actions(server: Server) -> list[tuple[str, str, str | None]]:
    return [(e.action, e.target_type, e.target_id) for e in reversed(audit_entries(server, 100))]


def test_api_changes_to_monitors_rules_status_pages_and_windows_are_audited(
    server: Server, api: httpx.Client, project: ProjectFixture
) -> None:
    monitor = api.post(f"/api/v1/projects/{project.id}/monitors", json={
        "name": "Shop", "type": "tcp", "config": {"host": "127.0.0.1", "port": 9}}).json()
    api.put(f"/api/v1/monitors/{monitor['id']}", json={
        "name": "Shop 2", "type": "tcp", "config": {"host": "127.0.0.1", "port": 9}})
    api.post(f"/api/v1/monitors/{monitor['id']}/pause")
    rule = api.post(f"/api/v1/projects/{project.id}/alert-rules", json=SPIKE).json()
    page = api.post(f"/api/v1/projects/{project.id}/status-pages", json={"slug": "acme", "title": "Acme"}).json()
    window = api.post(f"/api/v1/projects/{project.id}/maintenance-windows", json={
        "title": "Upgrade", "starts_at": 2_000_000_000, "ends_at": 2_000_003_600}).json()
    for path in (f"/api/v1/monitors/{monitor['id']}", f"/api/v1/alert-rules/{rule['id']}",
                 f"/api/v1/status-pages/{page['id']}", f"/api/v1/maintenance-windows/{window['id']}"):
        assert api.delete(path).status_code == 204, path
    logged = actions(server)
    mid = str(monitor["id"])
    for expected in [("monitor.create", "monitor", mid), ("monitor.change", "monitor", mid),
                     ("monitor.pause", "monitor", mid), ("monitor.delete", "monitor", mid),
                     ("rule.create", "rule", str(rule["id"])), ("rule.delete", "rule", str(rule["id"])),
                     ("status_page.create", "status_page", str(page["id"])),
                     ("status_page.delete", "status_page", str(page["id"])),
                     ("maintenance.create", "maintenance_window", str(window["id"])),
                     ("maintenance.delete", "maintenance_window", str(window["id"]))]:
        assert expected in logged, (expected, logged)
    assert all(e.actor_email for e in audit_entries(server, 100) if e.action.startswith(("monitor.", "rule.")))


def test_page_changes_are_audited_with_their_author(
    server: Server, admin: httpx.Client, project: ProjectFixture
) -> None:
    monitor_id = monitor_id_of(create_http(admin, project.id, "http://127.0.0.1:9/"))
    post_form(admin, f"/monitors/{monitor_id}", f"/monitors/{monitor_id}/state", {"action": "pause"})
    created = post_form(admin, f"/projects/{project.id}/rules/new", f"/projects/{project.id}/rules", rule_fields())
    assert created.status_code == 303
    listing = f"/projects/{project.id}/status-pages"
    assert post_form(admin, listing, listing, {"slug": "acme", "title": "Acme"}).status_code == 303
    bad = post_form(admin, listing, listing, {"slug": "acme", "title": "Again"})  # refused: not logged
    assert bad.status_code == 409
    entries = audit_entries(server, 100)
    logged = [e.action for e in entries]
    assert {"monitor.create", "monitor.pause", "rule.create", "status_page.create"} <= set(logged), logged
    assert logged.count("status_page.create") == 1
    assert all(e.actor_email == server.settings.admin_email for e in entries if e.action != "user.password_change")


def test_cli_changes_are_audited_as_made_from_the_command_line(server: Server) -> None:
    settings = server.settings
    run = [str(CONSOLE_SCRIPT), "--data-dir", str(settings.data_dir)]
    env = _environ(settings, WATCHKEEPER_PUBLIC_URL="https://wk.example.com")
    made = subprocess.run([*run, "user", "create", "cli@example.com", "--generate", "--json"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert made.returncode == 0, made.stderr
    subprocess.run([*run, "token", "create", "ci", "--user", "cli@example.com"], env=env, capture_output=True,
                   timeout=60, check=True)
    project = subprocess.run([*run, "project", "create", "From CLI", "--json"], env=env, capture_output=True,
                             text=True, timeout=60, check=True)
    silence = subprocess.run([*run, "silence", "add", 'alertname="DiskFull"', "--comment", "disk swap", "--json"],
                             env=env, capture_output=True, text=True, timeout=60, check=True)
    subprocess.run([*run, "silence", "expire", str(json.loads(silence.stdout)["id"])], env=env, capture_output=True,
                   timeout=60, check=True)
    entries = {e.action: e for e in audit_entries(server, 100)}
    assert entries["silence.create"].details["via"] == "cli" and entries["silence.expire"].details == {"via": "cli"}
    assert entries["user.create"].details == {"email": "cli@example.com", "role": "member", "via": "cli"}
    assert entries["token.create"].details["via"] == "cli" and entries["token.create"].actor_user_id is None
    assert entries["project.create"].target_id == str(json.loads(project.stdout)["id"])
