"""Upgrading to 0010 rebuilds issue_tags clustered by its key on SQLite (WITHOUT ROWID), keeping every
row; downgrading gives the rowid table back. PostgreSQL keeps its table as it is."""

from __future__ import annotations

from alembic import command
from sqlalchemy import Engine, text

from tests.errors.test_storage import event, save
from watchkeeper.app import Runtime
from watchkeeper.auth.projects import create_project
from watchkeeper.store import migrate
from watchkeeper.store.engine import for_writing

NOW = 1_767_225_600.0


def tag_rows(engine: Engine) -> list[tuple[object, ...]]:
    with engine.connect() as conn:
        return [tuple(row) for row in conn.execute(text(
            "SELECT issue_id, key, value, times_seen, first_seen, last_seen FROM issue_tags "
            "ORDER BY issue_id, key, value"))]


def without_rowid(engine: Engine) -> bool | None:
    if engine.dialect.name != "sqlite":
        return None
    with engine.connect() as conn:
        sql = conn.execute(text("SELECT sql FROM sqlite_schema WHERE name = 'issue_tags'")).scalar_one()
    return "WITHOUT ROWID" in sql


def test_issue_tags_keep_their_rows_through_the_rebuild(runtime: Runtime) -> None:
    engine = for_writing(runtime.engine)
    with engine.begin() as conn:
        project_id = create_project(conn, "Shop", now=NOW).id
    firsts = [("add", "ann"), ("add", "bob"), ("pay", "ann"), ("add", "ann")]
    save(engine, [event(project_id, culprit, user=user, at=NOW + n) for n, (culprit, user) in enumerate(firsts)])
    written = tag_rows(engine)
    assert len(written) >= 3
    expected = {"sqlite": True}.get(engine.dialect.name)
    assert without_rowid(engine) is expected

    config = migrate._config()
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0009")
    assert tag_rows(engine) == written
    assert without_rowid(engine) is (None if expected is None else False)

    migrate.upgrade(engine)
    assert tag_rows(engine) == written
    assert without_rowid(engine) is expected
    # Ingest goes on counting into the rebuilt table.
    save(engine, [event(project_id, "add", user="cid", at=NOW + 10)])
    assert len(tag_rows(engine)) == len(written) + 1
