"""`watchkeeper gdpr export|erase`: one person's data, made through the real API, ingest and pings, found
and erased in errors, uptime, alerting and accounts by the command line against the server's database."""

from __future__ import annotations

import subprocess
import time
import uuid
from typing import Any

import httpx
import orjson
from sqlalchemy import select

from tests.auth.test_trusted_proxies import form_token
from tests.conftest import ProjectFixture, Server, make_project, make_user
from tests.errors.test_retention import send_envelope
from tests.test_cli import CONSOLE_SCRIPT, _environ
from watchkeeper.auth.tables import audit_log, users

JANE = "jane.doe@example.com"
JANE_IP = "203.0.113.7"


def gdpr(server: Server, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(CONSOLE_SCRIPT), "--data-dir", str(server.settings.data_dir), "gdpr", *args],
                          env=_environ(server.settings), capture_output=True, text=True, timeout=120)


def gdpr_json(server: Server, *args: str) -> dict[str, Any]:
    result = gdpr(server, *args)
    assert result.returncode == 0, result.stdout + result.stderr
    return orjson.loads(result.stdout)  # type: ignore[no-any-return]


def event(user: dict[str, Any], kind: str = "CheckoutError") -> tuple[str, dict[str, Any]]:
    return ("event", {"event_id": uuid.uuid4().hex, "user": user,
                      "exception": {"values": [{"type": kind, "value": "card declined"}]}})


def jane_everywhere(server: Server, api: httpx.Client) -> tuple[int, ProjectFixture]:
    """Jane as an end user of two apps (one project scrubs, one keeps e-mails and addresses) and as a
    Watchkeeper user who logged in, is on call, is an escalation target and shows up in a ping's log."""
    scrubbed = make_project(server, "Shop")
    raw = make_project(server, "Internal")
    api.patch(f"/api/v1/projects/{raw.id}", json={"scrubbing": {"scrub_data": False, "scrub_ip_addresses": False}}
              ).raise_for_status()
    jane = {"id": "4242", "email": JANE, "ip_address": JANE_IP}
    send_envelope(server, scrubbed, event(jane), event({"id": "77", "email": "bob@example.com"}))
    send_envelope(server, raw, event(jane, "TimeoutError"), event({"id": "77", "ip_address": "198.51.100.9"}),
                  ("session", {"sid": uuid.uuid4().hex, "did": "4242", "status": "ok",
                               "started": "2026-01-01T00:00:00Z",
                               "attrs": {"release": "app@1", "ip_address": JANE_IP}}))

    account = api.post("/api/v1/users", json={"email": JANE, "role": "member", "password": "jane-password-1"})
    assert account.status_code == 201, account.text
    account_id = account.json()["id"]
    with httpx.Client(base_url=server.url, timeout=30) as browser:
        page = browser.get("/login")
        login = browser.post("/login", data={"email": JANE, "password": "jane-password-1",
                                             "csrf_token": form_token(page.text), "next": "/projects"})
        assert login.status_code in (302, 303), login.text

    schedule = api.post("/api/v1/oncall/schedules", json={"name": "Ops", "time_zone": "UTC", "layers": [
        {"rotation": "daily", "handoff": "09:00", "start_date": "2026-01-05", "users": [account_id]}]})
    assert schedule.status_code == 201, schedule.text
    override = api.post(f"/api/v1/oncall/schedules/{schedule.json()['id']}/overrides",
                        json={"user_id": account_id, "starts_at": time.time(), "ends_at": time.time() + 3600})
    assert override.status_code == 201, override.text
    policy = api.post("/api/v1/escalation-policies", json={"name": "Shop", "steps": [
        {"targets": [{"kind": "user", "id": account_id}, {"kind": "schedule", "id": schedule.json()["id"]}]}]})
    assert policy.status_code == 201, policy.text

    monitor = api.post(f"/api/v1/projects/{scrubbed.id}/monitors", json={
        "name": "backup", "slug": "backup", "type": "heartbeat", "config": {"period_seconds": 3600}})
    assert monitor.status_code == 201, monitor.text
    assert httpx.post(f"{server.url}/ping/{monitor.json()['uuid']}/1",
                      content=f"mail to {JANE} bounced\n".encode()).status_code == 200
    return account_id, raw


def test_export_finds_a_person_in_every_domain_erase_removes_it_and_export_is_then_empty(
    server: Server, api: httpx.Client
) -> None:
    account_id, raw = jane_everywhere(server, api)

    # Each identifier alone: the e-mail and the address survive only where the project does not scrub.
    by_email = gdpr_json(server, "export", "--email", JANE)["found"]
    assert [e["project_id"] for e in by_email["errors"]["error_events"]] == [raw.id]
    by_ip = gdpr_json(server, "export", "--ip", JANE_IP)["found"]["errors"]
    assert [e["project_id"] for e in by_ip["error_events"]] == [raw.id] and len(by_ip["envelope_items"]) == 1

    found = gdpr_json(server, "export", "--email", JANE, "--user-id", "4242", "--ip", JANE_IP)["found"]
    errors = found["errors"]
    # The scrubbing project kept only the id: both of Jane's events, Bob's and the other user's not.
    assert sorted(e["data"]["exception"]["values"][0]["type"] for e in errors["error_events"]) == [
        "CheckoutError", "TimeoutError"]
    assert [e["data"]["did"] for e in errors["envelope_items"]] == ["4242"]
    assert [u["email"] for u in found["accounts"]["users"]] == [JANE]
    assert [s["user_agent"] for s in found["accounts"]["sessions"]] != []
    assert any(a["action"] == "user.create" for a in found["accounts"]["audit_log"])
    assert [s["name"] for s in found["alerting"]["oncall_schedules"]] == ["Ops"]
    assert [o["user_id"] for o in found["alerting"]["oncall_overrides"]] == [account_id]
    assert [p["name"] for p in found["alerting"]["escalation_policies"]] == ["Shop"]
    assert found["uptime"]["heartbeat_pings"][0]["body"] == f"mail to {JANE} bounced\n"

    erased = gdpr_json(server, "erase", "--email", JANE, "--user-id", "4242", "--ip", JANE_IP)["erased"]
    assert erased["errors"]["error_events"] == 2 and erased["errors"]["envelope_items"] == 1
    assert erased["accounts"]["users"] == 1 and erased["accounts"]["sessions"] >= 1
    assert erased["alerting"]["oncall_schedules"] == 1 and erased["alerting"]["oncall_overrides"] == 1
    assert erased["alerting"]["escalation_policies"] == 1
    assert erased["uptime"]["heartbeat_pings"] == 1

    again = gdpr_json(server, "export", "--email", JANE, "--user-id", "4242", "--ip", JANE_IP)
    assert again["found"] == {}
    # Everyone else's data stays: the other users' events; the schedule and the policy, without Jane.
    issues = api.get(f"/api/v1/projects/{raw.id}/issues").json()["issues"]
    left = [e for i in issues for e in api.get(f"/api/v1/issues/{i['id']}/events").json()["events"]]
    assert [e["user"] for e in left] == ["id:77"]
    with server.runtime.engine.connect() as conn:
        assert conn.scalar(select(users.c.id).where(users.c.email == JANE)) is None
        entry = conn.execute(select(audit_log).where(audit_log.c.action == "gdpr.erase")).one()
    details = orjson.loads(entry.details)
    assert details["by"] == ["email", "ip", "user_id"] and details["erased"] == erased
    assert JANE not in entry.details and JANE_IP not in entry.details
    (schedule,) = api.get("/api/v1/oncall/schedules").json()["schedules"]
    assert schedule["layers"] == []
    (policy,) = api.get("/api/v1/escalation-policies").json()["policies"]
    assert [t["kind"] for t in policy["steps"][0]["targets"]] == ["schedule"]


def test_other_peoples_events_survive_an_erasure(server: Server, api: httpx.Client) -> None:
    project = make_project(server, "Shop")
    send_envelope(server, project, event({"id": "4242"}), event({"id": "77"}, "OtherError"))
    assert gdpr_json(server, "erase", "--user-id", "4242")["erased"]["errors"] == {
        "error_events": 1, "issue_user_tags": 1}
    issues = api.get(f"/api/v1/projects/{project.id}/issues").json()["issues"]
    left = [e for i in issues for e in api.get(f"/api/v1/issues/{i['id']}/events").json()["events"]]
    assert [e["user"] for e in left] == ["id:77"]


def test_erase_without_anyone_named_or_with_a_bad_address_exits_2(server: Server) -> None:
    nobody = gdpr(server, "erase")
    assert nobody.returncode == 2 and "--user-id, --email or --ip" in nobody.stderr
    bad = gdpr(server, "export", "--ip", "not-an-ip")
    assert bad.returncode == 2 and "--ip" in bad.stderr and "Traceback" not in bad.stderr


def test_erase_refuses_to_remove_the_last_admin(server: Server) -> None:
    _, email = make_user(server, role="admin")
    refused = gdpr(server, "erase", "--email", email)
    assert refused.returncode == 2 and "last active admin" in refused.stderr
