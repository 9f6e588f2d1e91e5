"""A database made by the last release upgrades in place, on SQLite and PostgreSQL.

The fixtures in tests/store/releases/ were made by the release itself (make_fixture.py there says how):
its `migrate`, its server, data put in through its CLI, Sentry endpoint and REST API, then the SQLite
file or a pg_dump. Today's code upgrades each as `watchkeeper serve` does, then the data must be there
through today's API and the schema must be exactly the one a new database gets.
"""

from __future__ import annotations

import gzip
import json
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, inspect, make_url, text

from tests.conftest import TEST_DATABASE_URL, Server, _maintenance, run_server
from watchkeeper.config import Settings
from watchkeeper.store.engine import make_engine
from watchkeeper.store.migrate import current_revisions, head_revisions, upgrade_in_child
from watchkeeper.store.schema import load_all_tables

RELEASES = Path(__file__).parent / "releases"
DIALECT = "postgresql" if TEST_DATABASE_URL else "sqlite"
FIXTURES = sorted(path.name.split(".")[0] for path in RELEASES.glob(f"*.{DIALECT}.json"))


def schema(engine: Engine) -> dict[str, Any]:
    """Everything a reader of the database sees of its tables, in a comparable form."""
    found = inspect(engine)
    tables: dict[str, Any] = {}
    for name in sorted(found.get_table_names()):
        tables[name] = {
            "columns": [(c["name"], str(c["type"]), c["nullable"], str(c.get("default")), c.get("autoincrement"))
                        for c in found.get_columns(name)],
            "primary_key": found.get_pk_constraint(name),
            "foreign_keys": sorted(map(repr, found.get_foreign_keys(name))),
            "indexes": sorted(map(repr, found.get_indexes(name))),
            "unique": sorted(map(repr, found.get_unique_constraints(name))),
            "checks": sorted(map(repr, found.get_check_constraints(name))),
        }
    if engine.dialect.name == "sqlite":
        # The statements themselves: WITHOUT ROWID tables, column order, partial indexes.
        with engine.connect() as conn:
            statements = conn.execute(text("SELECT type, name, tbl_name, sql FROM sqlite_schema ORDER BY type, name"))
            tables["sqlite_schema"] = {f"{row.type} {row.name}": (row.tbl_name, _in_order(row.sql))
                                       for row in statements}
    return tables


def _in_order(sql: str | None) -> tuple[str, ...]:
    """A CREATE statement's lines, its table constraints sorted: Alembic's batch mode recreates a table with
    them in the order of a set, which varies between two runs of the same migration."""
    lines = [line.strip().removesuffix(",") for line in (sql or "").splitlines()]
    constraints = sorted(line for line in lines if line.startswith("CONSTRAINT"))
    return (*[line for line in lines if not line.startswith("CONSTRAINT")], *constraints)


def load_release(name: str, settings: Settings) -> None:
    """The test database replaced by the release's."""
    if DIALECT == "sqlite":
        release = gzip.decompress((RELEASES / f"{name}.sqlite.gz").read_bytes())
        (settings.data_dir / "watchkeeper.db").write_bytes(release)
        for leftover in ("-wal", "-shm"):
            settings.data_dir.joinpath(f"watchkeeper.db{leftover}").unlink(missing_ok=True)
        return
    assert TEST_DATABASE_URL
    url = make_url(TEST_DATABASE_URL)
    with _maintenance(url) as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{url.database}"'))
    dump = gzip.decompress((RELEASES / f"{name}.postgresql.sql.gz").read_bytes()).decode()
    # psql's own commands (\restrict …) are not SQL; the rest is run as one script.
    script = "\n".join(line for line in dump.splitlines() if not line.startswith("\\"))
    engine = make_engine(TEST_DATABASE_URL)
    try:
        conn = engine.raw_connection()  # the driver's own: no parameters, so a % in the data stays as it is
        conn.cursor().execute(script)
        conn.commit()
        conn.close()
    finally:
        engine.dispose()  # the dump emptied the session's search_path


def send_event(server: Server, project_id: int, public_key: str, message: str) -> None:
    event = {"event_id": uuid.uuid4().hex, "timestamp": time.time(), "platform": "python", "level": "error",
             "release": "shop@1.1", "exception": {"values": [{"type": "ValueError", "value": message}]}}
    body = b"\n".join(map(orjson.dumps, ({"event_id": event["event_id"]}, {"type": "event"}, event))) + b"\n"
    sent = httpx.post(f"{server.url}/api/{project_id}/envelope/", content=body, timeout=30, headers={
        "X-Sentry-Auth": f"Sentry sentry_key={public_key}, sentry_version=7",
        "Content-Type": "application/x-sentry-envelope"})
    assert sent.status_code == 200, sent.text


@pytest.mark.parametrize("release", FIXTURES)
def test_a_database_of_the_last_release_upgrades_in_place(release: str, settings: Settings) -> None:
    made = json.loads((RELEASES / f"{release}.{DIALECT}.json").read_text())
    fresh = make_engine(settings.sqlalchemy_url)
    expected = schema(fresh)
    fresh.dispose()
    load_release(release, settings)
    engine = make_engine(settings.sqlalchemy_url)
    assert current_revisions(engine) == {"0010"}  # the release's one chain
    engine.dispose()

    upgrade_in_child(settings.sqlalchemy_url)  # as `watchkeeper serve` does

    engine = make_engine(settings.sqlalchemy_url)
    try:
        assert current_revisions(engine) == head_revisions()  # every domain's branch, from the shared head
        upgraded = schema(engine)
        assert [name for name in expected if upgraded.get(name) != expected[name]] == []
        assert upgraded == expected
        with engine.connect() as conn:
            assert compare_metadata(MigrationContext.configure(conn), load_all_tables()) == []
    finally:
        engine.dispose()

    with run_server(settings) as server:
        api = httpx.Client(base_url=f"{server.url}/api/v1", timeout=30,
                           headers={"Authorization": f"Bearer {made['token']}"})  # the release's token
        project = made["project_id"]
        (issue,) = api.get(f"/projects/{project}/issues").json()["issues"]
        assert issue["title"].startswith("ValueError") and issue["count"] == 1
        (monitor,) = api.get(f"/projects/{project}/monitors").json()["monitors"]
        assert (monitor["name"], monitor["type"], monitor["uuid"]) == ("Nightly backup", "heartbeat",
                                                                      made["monitor_uuid"])
        assert monitor["status"] == "up"  # its ping, received by the release
        rule = api.get(f"/alert-rules/{made['rule_id']}").json()
        assert rule["name"] == "Error spike" and rule["threshold"]["threshold"] == 100
        # The release's DSN still takes events, and the same error joins the same issue.
        send_event(server, project, made["public_key"], "release fixture boom")
        deadline = time.monotonic() + 15
        while api.get(f"/projects/{project}/issues").json()["issues"][0]["count"] < 2:
            assert time.monotonic() < deadline, "the new event never reached the release's issue"
            time.sleep(0.05)
