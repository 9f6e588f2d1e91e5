"""Make a database fixture with a released Watchkeeper, for tests/store/test_upgrade_from_release.py.

Run with the release's code first on the path (its dependencies are today's):

    git archive <release commit> | tar -x -C /tmp/rel
    PYTHONPATH=/tmp/rel/src .venv/bin/python tests/store/releases/make_fixture.py <release> sqlite
    PYTHONPATH=/tmp/rel/src .venv/bin/python tests/store/releases/make_fixture.py <release> \
        postgresql+psycopg://postgres@127.0.0.1:5432/<scratch database, dropped and made again>

The release migrates an empty database and serves it; the data goes in as users put it: a project by
the CLI, an event through the Sentry envelope endpoint, an API token, a heartbeat monitor with a ping
and an alert rule through the REST API. The database is then written to tests/store/releases/ as
<release>.sqlite.gz (the file, vacuumed) or <release>.postgresql.sql.gz (pg_dump, plain SQL), with
<release>.<dialect>.json beside it: what the test needs to use the data (the token, the DSN's key).
"""

from __future__ import annotations

import gzip
import json
import os
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
from sqlalchemy import create_engine, make_url, text

HERE = Path(__file__).parent


def main(release: str, database: str) -> None:
    import watchkeeper

    print(f"release code from {Path(watchkeeper.__file__).parent}", file=sys.stderr)
    data_dir = Path(tempfile.mkdtemp(prefix="wk-release-"))
    env = {**os.environ, "WATCHKEEPER_DATA_DIR": str(data_dir), "WATCHKEEPER_ADMIN_PASSWORD": "release-admin-1",
           "WATCHKEEPER_PUBLIC_URL": "http://127.0.0.1/"}
    if database != "sqlite":
        url = make_url(database)
        maintenance = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
        with maintenance.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)'))
            conn.execute(text(f'CREATE DATABASE "{url.database}"'))
        maintenance.dispose()
        env["WATCHKEEPER_DATABASE_URL"] = database

    def cli(*args: str) -> str:
        done = subprocess.run([sys.executable, "-m", "watchkeeper.cli", *args], env=env, capture_output=True,
                              text=True, check=True)
        return done.stdout

    print(cli("migrate").strip(), file=sys.stderr)
    project = json.loads(cli("project", "create", "Release Shop", "--platform", "python", "--json"))
    public_key = project["dsn"].split("//")[1].split("@")[0]
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "watchkeeper.cli", "serve", "--host", "127.0.0.1",
                               "--port", str(port)], env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if httpx.get(f"{base}/health").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        token = json.loads(cli("token", "create", "release-fixture", "--json"))["token"]
        api = httpx.Client(base_url=f"{base}/api/v1", headers={"Authorization": f"Bearer {token}"}, timeout=30)
        event = {"event_id": uuid.uuid4().hex, "timestamp": time.time(), "platform": "python", "level": "error",
                 "release": "shop@1.0", "environment": "production", "user": {"id": "42"},
                 "exception": {"values": [{"type": "ValueError", "value": "release fixture boom"}]}}
        body = b"\n".join(json.dumps(part).encode() for part in
                          ({"event_id": event["event_id"]}, {"type": "event"}, event)) + b"\n"
        sent = httpx.post(f"{base}/api/{project['id']}/envelope/", content=body, headers={
            "X-Sentry-Auth": f"Sentry sentry_key={public_key}, sentry_version=7",
            "Content-Type": "application/x-sentry-envelope"})
        assert sent.status_code == 200, sent.text
        for _ in range(300):
            if api.get(f"/projects/{project['id']}/issues").json()["issues"]:
                break
            time.sleep(0.1)
        else:
            raise SystemExit("the event never became an issue")
        monitor = api.post(f"/projects/{project['id']}/monitors", json={
            "name": "Nightly backup", "slug": "nightly-backup", "type": "heartbeat",
            "config": {"period_seconds": 86400, "grace_seconds": 3600}})
        assert monitor.status_code == 201, monitor.text
        assert httpx.get(f"{base}/ping/{monitor.json()['uuid']}").status_code == 200
        rule = api.post(f"/projects/{project['id']}/alert-rules", json={
            "name": "Error spike", "kind": "threshold",
            "threshold": {"metric": "errors", "threshold": 100, "window_minutes": 5}})
        assert rule.status_code == 201, rule.text
        time.sleep(1)  # the ping's result is written by the background writer
        made = {"project_id": project["id"], "public_key": public_key, "token": token,
                "monitor_uuid": monitor.json()["uuid"], "rule_id": rule.json()["id"]}
    finally:
        server.terminate()
        server.wait(timeout=30)

    if database == "sqlite":
        target = HERE / f"{release}.sqlite.gz"
        source = sqlite3.connect(data_dir / "watchkeeper.db")
        vacuumed = data_dir / "vacuumed.db"
        source.execute("VACUUM INTO ?", (str(vacuumed),))
        source.close()
        target.write_bytes(gzip.compress(vacuumed.read_bytes(), mtime=0))
    else:
        target = HERE / f"{release}.postgresql.sql.gz"
        url = make_url(database)
        dump = subprocess.run(["pg_dump", "--no-owner", "--no-privileges", "--inserts", "-h", url.host or "127.0.0.1",
                               "-p", str(url.port or 5432), "-U", url.username or "postgres", url.database or ""],
                              capture_output=True, check=True).stdout
        target.write_bytes(gzip.compress(dump, mtime=0))
    dialect = "sqlite" if database == "sqlite" else "postgresql"
    (HERE / f"{release}.{dialect}.json").write_text(json.dumps(made, indent=1) + "\n")
    print(f"{target}: {target.stat().st_size} bytes", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
