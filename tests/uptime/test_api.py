"""The uptime REST API, ping URLs and Sentry check-ins against the real server."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sentry_sdk
from sentry_sdk.crons import capture_checkin

from tests.conftest import ProjectFixture, Server, make_project, make_token, run_server
from tests.uptime.conftest import HttpTarget
from watchkeeper.config import Settings


@pytest.fixture
def server(settings: Settings) -> Iterator[Server]:
    """The server with a quick heartbeat/check-in sweep."""
    fast = settings.model_copy(update={"uptime": settings.uptime.model_copy(update={"sweep_seconds": 0.2})})
    with run_server(fast) as running:
        yield running


def wait_for(condition: Callable[[], Any], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def http_spec(target: HttpTarget, **extra: Any) -> dict[str, Any]:
    return {"name": "Shop", "type": "http", "config": {"url": target.url + "/health"}, **extra}


def test_monitor_crud_and_test_now(api: httpx.Client, project: ProjectFixture, http_target: HttpTarget) -> None:
    created = api.post(f"/api/v1/projects/{project.id}/monitors", json=http_spec(http_target, slug="shop"))
    assert created.status_code == 201, created.text
    monitor = created.json()
    assert monitor["status"] == "new" and monitor["ping_url"] is None
    assert api.get(f"/ping/{monitor['uuid']}").status_code == 404  # only heartbeats take pings
    assert monitor["config"]["method"] == "GET" and monitor["interval_seconds"] == 60
    listed = api.get(f"/api/v1/projects/{project.id}/monitors").json()["monitors"]
    assert [m["id"] for m in listed] == [monitor["id"]]
    tested = api.post(f"/api/v1/monitors/{monitor['id']}/test").json()
    assert tested["ok"] and tested["status_code"] == 200
    changed = api.put(f"/api/v1/monitors/{monitor['id']}", json=http_spec(http_target, name="Shop 2", slug="shop"))
    assert changed.json()["name"] == "Shop 2"
    assert api.post(f"/api/v1/monitors/{monitor['id']}/pause").json()["status"] == "paused"
    assert api.post(f"/api/v1/monitors/{monitor['id']}/resume").json()["status"] == "new"
    duplicate = api.post(f"/api/v1/projects/{project.id}/monitors", json=http_spec(http_target, slug="shop"))
    assert duplicate.status_code == 409 and "slug" in duplicate.json()["detail"]
    assert api.delete(f"/api/v1/monitors/{monitor['id']}").status_code == 204
    assert api.get(f"/api/v1/monitors/{monitor['id']}").status_code == 404


@pytest.mark.parametrize(("spec", "field"), [
    ({"name": "x", "type": "http", "config": {"url": "ftp://x"}}, "config.url"),
    ({"name": "x", "type": "http", "config": {"url": "http://x", "conditions": ["status = 200"]}},
     "conditions[0] at position 7"),
    ({"name": "x", "type": "http", "interval_seconds": 5, "config": {"url": "http://x"}}, "interval_seconds"),
    ({"name": "x", "type": "carrier-pigeon"}, "type"),
    ({"name": "x", "type": "tcp", "config": {"host": "db"}}, "config.port"),
    ({"name": "x", "type": "heartbeat", "config": {"cron": "every day"}}, "config.cron"),
    ({"name": "x", "type": "heartbeat", "config": {"period_seconds": 3600, "timezone": "Mars/Olympus"}},
     "config.timezone"),
])
def test_bad_monitors_are_422_naming_the_field(api: httpx.Client, project: ProjectFixture,
                                               spec: dict[str, Any], field: str) -> None:
    answer = api.post(f"/api/v1/projects/{project.id}/monitors", json=spec)
    assert answer.status_code == 422
    assert field in answer.json()["detail"], answer.json()


@pytest.mark.parametrize(("kind", "config", "field"), [
    ("http", {"url": "http://0177.0.0.1/"}, "config.url"),
    ("http", {"url": "http://0x7f.0.0.1:8080/health"}, "config.url"),
    ("http", {"url": "http://2130706433/"}, "config.url"),
    ("http", {"url": "http://127.1/"}, "config.url"),
    ("tcp", {"host": "0x7f000001", "port": 22}, "config.host"),
    ("ping", {"host": "10.1"}, "config.host"),
    ("postgres", {"url": "postgresql://app@012.0.0.1/app"}, "config.url"),
    ("dns", {"name": "example.com", "nameserver": "0177.1"}, "config.nameserver"),
])
def test_ipv4_addresses_in_other_forms_are_refused_at_creation(
        api: httpx.Client, project: ProjectFixture, kind: str, config: dict[str, Any], field: str) -> None:
    answer = api.post(f"/api/v1/projects/{project.id}/monitors", json={"name": "x", "type": kind, "config": config})
    assert answer.status_code == 422, answer.text
    assert field in answer.json()["detail"] and "non-standard form" in answer.json()["detail"], answer.json()
    assert api.get(f"/api/v1/projects/{project.id}/monitors").json()["total"] == 0


def test_private_addresses_are_refused_at_creation_under_the_production_guard(settings: Settings) -> None:
    guarded = settings.model_copy(update={"outbound": settings.outbound.model_copy(
        update={"allow_private_targets": False})})
    with run_server(guarded) as server, httpx.Client(base_url=server.url) as api:
        project = make_project(server)
        api.headers["Authorization"] = f"Bearer {make_token(server)}"
        path = f"/api/v1/projects/{project.id}/monitors"
        for kind, config, field in (
                ("http", {"url": "http://127.0.0.1:8080/"}, "config.url"),
                ("http", {"url": "http://[64:ff9b::a00:1]/"}, "config.url"),
                ("tcp", {"host": "192.168.1.1", "port": 22}, "config.host"),
                ("redis", {"url": "redis://10.0.0.2:6379/0"}, "config.url")):
            answer = api.post(path, json={"name": "x", "type": kind, "config": config})
            assert answer.status_code == 422, answer.text
            detail = answer.json()["detail"]
            assert detail.startswith(field) and "outbound.allow_private_targets" in detail, detail
        # Names are judged when they are resolved, at each check; public addresses are fine.
        good = api.post(path, json={"name": "x", "type": "http", "config": {"url": "http://8.8.8.8/"}})
        assert good.status_code == 201, good.text
        changed = api.put(f"/api/v1/monitors/{good.json()['id']}",
                          json={"name": "x", "type": "http", "config": {"url": "http://10.0.0.1/"}})
        assert changed.status_code == 422 and changed.json()["detail"].startswith("config.url"), changed.text


def test_monitor_list_filters(api: httpx.Client, project: ProjectFixture, http_target: HttpTarget) -> None:
    path = f"/api/v1/projects/{project.id}/monitors"
    for name in ("Shop web", "Shop API", "Billing_db"):
        api.post(path, json=http_spec(http_target, name=name)).raise_for_status()
    api.post(path, json={"name": "cron", "type": "heartbeat", "config": {}}).raise_for_status()
    assert api.get(path, params={"search": "shop"}).json()["total"] == 2
    assert [m["name"] for m in api.get(path, params={"search": "_"}).json()["monitors"]] == ["Billing_db"]
    assert [m["name"] for m in api.get(path, params={"type": "heartbeat"}).json()["monitors"]] == ["cron"]
    page = api.get(path, params={"limit": 2, "offset": 2}).json()
    assert page["total"] == 4 and [m["name"] for m in page["monitors"]] == ["Billing_db", "cron"]
    assert api.get(path, params={"status": "sideways"}).status_code == 422


def test_secrets_in_configs_are_write_only(api: httpx.Client, project: ProjectFixture,
                                           http_target: HttpTarget) -> None:
    spec = {"name": "Auth", "type": "http", "config": {
        "url": "http://user:pw@127.0.0.1:1/x", "bearer_token": "s3cret", "headers": {"Authorization": "Bearer s3cret"},
        "basic_auth": {"username": "user", "password": "pw"}}}
    created = api.post(f"/api/v1/projects/{project.id}/monitors", json=spec).json()
    assert "s3cret" not in str(created) and ":pw@" not in str(created)
    assert created["config"]["basic_auth"] == {"username": "user", "password": "********"}
    # Sending the answer back unchanged keeps the secrets; the check still authenticates.
    shown = {k: created[k] for k in ("name", "type", "config")}
    shown["config"] = {**shown["config"], "url": http_target.url + "/auth", "headers": {}}
    api.put(f"/api/v1/monitors/{created['id']}", json=shown).raise_for_status()
    tested = api.post(f"/api/v1/monitors/{created['id']}/test").json()
    assert tested["ok"], tested


SECRETS = ("pw-in-url", "qs-token-1", "qs-key-2", "body-secret", "hdr-token", "hdr-auth", "hdr-key", "bearer-1",
           "basic-pw", "pg-pass", "pg-sslpass", "redis-pw")


def secret_monitors(target: HttpTarget) -> list[dict[str, Any]]:
    """Monitors holding every kind of secret, each value one of SECRETS."""
    return [
        {"name": "Everything", "type": "http", "config": {
            "url": target.url.replace("://", "://bob:pw-in-url@") + "/ok?page=2&api_key=qs-token-1&Secret-Key=qs-key-2",
            "method": "POST", "body": '{"login": "body-secret"}', "bearer_token": "bearer-1",
            "basic_auth": {"username": "bob", "password": "basic-pw"},
            "headers": {"X-Auth-Token": "hdr-token", "Proxy-Authorization": "hdr-auth", "X-Key": "hdr-key",
                        "Accept": "application/json"}}},
        {"name": "Database", "type": "postgres", "config": {
            "url": "postgresql://app@127.0.0.1:5432/app?password=pg-pass&sslmode=prefer&sslpassword=pg-sslpass"}},
        {"name": "Cache", "type": "redis", "config": {"url": "redis://:redis-pw@127.0.0.1:6379/0"}},
    ]


def test_monitor_secrets_are_masked_for_everyone_and_revealed_only_to_editors(
        server: Server, api: httpx.Client, project: ProjectFixture, http_target: HttpTarget) -> None:
    stored = []
    for spec in secret_monitors(http_target):
        created = api.post(f"/api/v1/projects/{project.id}/monitors", json=spec)
        assert created.status_code == 201, created.text
        stored.append((created.json()["id"], spec["config"]))
    viewer = {"Authorization": f"Bearer {make_token(server, role='viewer')}"}
    read_only = {"Authorization": f"Bearer {make_token(server, role='member', read_only=True)}"}
    member = {"Authorization": f"Bearer {make_token(server, role='member')}"}
    for headers in (viewer, read_only, member, {}):
        shown = [api.get(f"/api/v1/projects/{project.id}/monitors", headers=headers).text]
        shown += [api.get(f"/api/v1/monitors/{monitor_id}", headers=headers).text for monitor_id, _ in stored]
        for text in shown:
            assert not [s for s in SECRETS if s in text], text
    everything = api.get(f"/api/v1/monitors/{stored[0][0]}").json()["config"]
    assert everything["url"] == http_target.url.replace("://", "://bob:********@") + \
        "/ok?page=2&api_key=********&Secret-Key=********"
    assert everything["headers"] == {"X-Auth-Token": "********", "Proxy-Authorization": "********",
                                     "X-Key": "********", "Accept": "application/json"}
    assert everything["body"] == everything["bearer_token"] == everything["basic_auth"]["password"] == "********"
    database = api.get(f"/api/v1/monitors/{stored[1][0]}").json()["config"]
    assert database["url"] == "postgresql://app@127.0.0.1:5432/app?password=********&sslmode=prefer&sslpassword=********"
    # Revealing is for those who may change the monitor.
    for headers in (viewer, read_only):
        assert api.post(f"/api/v1/monitors/{stored[0][0]}/reveal", headers=headers).status_code == 403
    for monitor_id, config in stored:
        revealed = api.post(f"/api/v1/monitors/{monitor_id}/reveal", headers=member)
        assert revealed.status_code == 200 and revealed.json()["config"]["url"] == config["url"]
    # An editor sends the masked config back: every secret is kept; a new value replaces one.
    shown = api.get(f"/api/v1/monitors/{stored[0][0]}", headers=member).json()
    shown["config"]["headers"]["X-Key"] = "hdr-key-new"
    shown["config"]["url"] = shown["config"]["url"].replace("page=2", "page=3")
    body = {k: shown[k] for k in ("name", "type", "config")}
    assert api.put(f"/api/v1/monitors/{stored[0][0]}", json=body, headers=member).status_code == 200
    kept = api.post(f"/api/v1/monitors/{stored[0][0]}/reveal", headers=member).json()["config"]
    assert kept["url"] == stored[0][1]["url"].replace("page=2", "page=3")
    assert kept["headers"] == {**stored[0][1]["headers"], "X-Key": "hdr-key-new"}
    assert (kept["body"], kept["bearer_token"], kept["basic_auth"]) == (
        stored[0][1]["body"], "bearer-1", {"username": "bob", "password": "basic-pw"})
    for monitor_id, _ in stored[1:]:
        shown = api.get(f"/api/v1/monitors/{monitor_id}", headers=member).json()
        body = {k: shown[k] for k in ("name", "type", "config")}
        assert api.put(f"/api/v1/monitors/{monitor_id}", json=body, headers=member).status_code == 200
    assert [api.post(f"/api/v1/monitors/{i}/reveal").json()["config"]["url"] for i, _ in stored[1:]] == \
        [c["url"] for _, c in stored[1:]]


def test_monitors_of_other_teams_are_invisible(server: Server, api: httpx.Client, http_target: HttpTarget) -> None:
    other = make_project(server, "Other", team="Elsewhere")
    monitor = api.post(f"/api/v1/projects/{other.id}/monitors", json=http_spec(http_target)).json()
    member = make_token(server, role="member")
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {member}"}) as client:
        assert client.get(f"/api/v1/monitors/{monitor['id']}").status_code == 404
        assert client.get(f"/api/v1/projects/{other.id}/monitors").status_code == 404


def heartbeat(api: httpx.Client, project: ProjectFixture, **config: Any) -> dict[str, Any]:
    answer = api.post(f"/api/v1/projects/{project.id}/monitors", json={
        "name": "backup", "slug": "backup", "type": "heartbeat",
        "config": {"period_seconds": 3600, "grace_seconds": 60, **config}})
    assert answer.status_code == 201, answer.text
    return answer.json()  # type: ignore[no-any-return]


def test_ping_urls(server: Server, api: httpx.Client, project: ProjectFixture) -> None:
    monitor = heartbeat(api, project)
    url = f"{server.url}/ping/{monitor['uuid']}"
    assert monitor["ping_url"] == url
    assert httpx.get(url + "/start").text == "OK"
    assert httpx.head(url).status_code == 200
    assert api.get(f"/api/v1/monitors/{monitor['id']}").json()["status"] == "up"
    assert httpx.post(url + "/1", content=b"disk full\n").status_code == 200
    assert api.get(f"/api/v1/monitors/{monitor['id']}").json()["status"] == "down"
    big = b"x" * (server.settings.uptime.max_ping_body_bytes + 1000)
    assert httpx.post(url + "/0", content=big).status_code == 200
    pings = api.get(f"/api/v1/monitors/{monitor['id']}/pings").json()["pings"]
    assert [p["kind"] for p in pings] == ["success", "fail", "success", "start"]
    assert pings[1]["body"] == "disk full\n" and pings[1]["exit_status"] == 1
    assert len(pings[0]["body"]) == server.settings.uptime.max_ping_body_bytes
    assert pings[2]["duration_seconds"] is not None
    assert httpx.get(f"{server.url}/ping/00000000-0000-4000-8000-000000000000").status_code == 404
    assert httpx.get(url + "/explode").status_code == 404


def test_slug_ping_urls_with_the_project_ping_key(server: Server, api: httpx.Client, project: ProjectFixture) -> None:
    monitor = heartbeat(api, project)
    assert api.get(f"/api/v1/projects/{project.id}/ping-key").json() == {"ping_key": None}
    key = api.post(f"/api/v1/projects/{project.id}/ping-key").json()["ping_key"]
    assert httpx.get(f"{server.url}/ping/{key}/backup").text == "OK"
    assert httpx.get(f"{server.url}/ping/{key}/backup/fail").text == "OK"
    assert api.get(f"/api/v1/monitors/{monitor['id']}").json()["status"] == "down"
    assert httpx.get(f"{server.url}/ping/{key}/nope").status_code == 404
    assert httpx.get(f"{server.url}/ping/wrong-key/backup").status_code == 404


def test_sentry_sdk_check_ins_drive_heartbeats(api: httpx.Client, project: ProjectFixture) -> None:
    client = sentry_sdk.Client(dsn=project.dsn, default_integrations=False)
    config = {"schedule": {"type": "crontab", "value": "*/5 * * * *"}, "checkin_margin": 2, "timezone": "UTC"}
    with sentry_sdk.new_scope() as scope:
        scope.set_client(client)
        check_in_id = capture_checkin(monitor_slug="billing-sync", status="in_progress", monitor_config=config)
        client.flush(timeout=10)
        capture_checkin(monitor_slug="billing-sync", check_in_id=check_in_id, status="ok", duration=1.25,
                        monitor_config=config)
        client.flush(timeout=10)

    def billing() -> dict[str, Any] | None:
        found = [m for m in api.get(f"/api/v1/projects/{project.id}/monitors").json()["monitors"]
                 if m["slug"] == "billing-sync"]
        return found[0] if found and found[0]["status"] == "up" else None

    monitor = wait_for(billing)
    assert monitor["config"]["cron"] == "*/5 * * * *" and monitor["config"]["grace_seconds"] == 120
    pings = api.get(f"/api/v1/monitors/{monitor['id']}/pings").json()["pings"]
    assert [(p["kind"], p["source"], p["duration_seconds"]) for p in pings] == [
        ("success", "sentry", 1.25), ("start", "sentry", None)]
    with sentry_sdk.new_scope() as scope:
        scope.set_client(client)
        capture_checkin(monitor_slug="billing-sync", status="error")
        client.flush(timeout=10)
    wait_for(lambda: api.get(f"/api/v1/monitors/{monitor['id']}").json()["status"] == "down")
    client.close()


def test_scheduled_checks_fill_results_uptime_and_outages(
    server: Server, api: httpx.Client, project: ProjectFixture, http_target: HttpTarget
) -> None:
    spec = http_spec(http_target, interval_seconds=10, failures_to_down=1, sla_target=99.9)
    monitor = api.post(f"/api/v1/projects/{project.id}/monitors", json=spec).json()
    results = f"/api/v1/monitors/{monitor['id']}/results"
    wait_for(lambda: api.get(results).json()["results"], timeout=25)
    summary = api.get(f"/api/v1/monitors/{monitor['id']}/uptime").json()["ranges"]
    assert summary["24h"]["uptime_percent"] == 100.0 and summary["24h"]["response_ms_p50"] > 0
    http_target.set_healthy(False)
    wait_for(lambda: api.get(f"/api/v1/monitors/{monitor['id']}").json()["status"] == "down", timeout=25)
    (outage,) = api.get(f"/api/v1/monitors/{monitor['id']}/outages").json()["outages"]
    assert outage["ongoing"] and outage["first_error"] == "status 500"
    sla = api.get(f"/api/v1/monitors/{monitor['id']}/sla").json()
    assert sla["target_percent"] == 99.9 and sla["downtime_minutes"] >= 0
    assert api.get(f"/api/v1/monitors/{monitor['id']}/sla", params={"month": "2026-13"}).status_code == 422
    metrics = httpx.get(f"{server.url}/metrics").text
    assert "watchkeeper_uptime_schedule_lag_seconds_count" in metrics


def test_maintenance_windows_api(api: httpx.Client, project: ProjectFixture, http_target: HttpTarget) -> None:
    monitor = api.post(f"/api/v1/projects/{project.id}/monitors", json=http_spec(http_target)).json()
    path = f"/api/v1/projects/{project.id}/maintenance-windows"
    window = api.post(path, json={"title": "Patch Tuesday", "cron": "0 22 * * 2", "timezone": "Europe/Berlin",
                                  "duration_seconds": 7200, "monitor_ids": [monitor["id"]]})
    assert window.status_code == 201, window.text
    assert api.get(path).json()["maintenance_windows"][0]["cron"] == "0 22 * * 2"
    bad = api.post(path, json={"title": "x", "cron": "0 22 * * 2"})
    assert bad.status_code == 422 and "duration_seconds" in bad.json()["detail"]
    stranger = api.post(path, json={"title": "x", "starts_at": 1, "ends_at": 2, "monitor_ids": [999999]})
    assert stranger.status_code == 422 and "monitor_ids" in stranger.json()["detail"]
    assert api.delete(f"/api/v1/maintenance-windows/{window.json()['id']}").status_code == 204


def test_monitors_file_synced_at_start_and_read_only(settings: Settings, tmp_path: Path) -> None:
    from watchkeeper.app import build_runtime
    from watchkeeper.auth.projects import create_project
    from watchkeeper.store.engine import for_writing

    runtime = build_runtime(settings)
    with for_writing(runtime.engine).begin() as conn:
        slug = create_project(conn, "Backend", now=time.time()).slug
    runtime.engine.dispose()
    file = tmp_path / "monitors.yaml"
    file.write_text(f"""
monitors:
  - {{project: {slug}, slug: nightly, name: Nightly, type: heartbeat, config: {{period_seconds: 86400}}}}
""")
    uptime = settings.uptime.model_copy(update={"monitors_file": file})
    with run_server(settings.model_copy(update={"uptime": uptime})) as running:
        token = make_token(running)
        with httpx.Client(base_url=running.url, headers={"Authorization": f"Bearer {token}"}) as api:
            def synced() -> list[dict[str, Any]]:
                return [m for p in api.get("/api/v1/projects").json()
                        for m in api.get(f"/api/v1/projects/{p['id']}/monitors").json()["monitors"]]

            (monitor,) = wait_for(synced)
            assert monitor["slug"] == "nightly" and monitor["read_only"] and monitor["managed_by"] == "config"
            spec = {"name": "Renamed", "type": "heartbeat", "config": {}}
            changed = api.put(f"/api/v1/monitors/{monitor['id']}", json=spec)
            assert changed.status_code == 409 and "monitors file" in changed.json()["detail"]
            assert api.delete(f"/api/v1/monitors/{monitor['id']}").status_code == 409
            # Edit the file and reload it: the monitor goes away.
            file.write_text("monitors: []\n")
            assert api.post("/api/v1/uptime/monitors-file/sync").json() == {"created": 0, "changed": 0, "deleted": 1}
            assert synced() == []
            file.write_text("monitors: [{project: x}]\n")
            bad = api.post("/api/v1/uptime/monitors-file/sync")
            assert bad.status_code == 422 and "monitors.0.slug" in bad.json()["detail"]
