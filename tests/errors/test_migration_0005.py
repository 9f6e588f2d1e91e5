"""Upgrading to 0005 fills the hourly issue counts from the per-minute counts already stored, so charts
over days show the history from before the upgrade."""

from __future__ import annotations

import time

from alembic import command
from sqlalchemy import text

from tests.conftest import Server, make_project
from tests.errors.test_ingest_protocol import auth, envelope, event, item, new_id, post
from watchkeeper.store import migrate
from watchkeeper.store.engine import for_writing


def test_hour_counts_are_filled_from_minute_counts_on_upgrade(server: Server) -> None:
    project = make_project(server)
    now = time.time()
    for age in (0, 60, 3 * 3600):  # two in this hour (or the previous), one three hours ago
        payload = {**event(new_id(), "the same message"), "timestamp": now - age}
        answer = post(server, project.id, envelope(item("event", payload)), headers=auth(project.public_key))
        assert answer.status_code == 200
    engine = server.runtime.engine
    with engine.connect() as conn:
        written = conn.execute(text("SELECT hour, count FROM issue_hour_counts ORDER BY hour")).all()
    assert sum(count for _, count in written) == 3
    config = migrate._config()
    with for_writing(engine).begin() as conn:  # the running server writes meanwhile
        config.attributes["connection"] = conn
        command.downgrade(config, "0004")
    migrate.upgrade(engine)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT hour, count FROM issue_hour_counts ORDER BY hour")).all() == written
        assert written[0].hour == int((now - 3 * 3600) // 3600)
