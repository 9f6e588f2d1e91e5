"""The writer's storage function on the real database: users affected counted as events arrive in
batches, the way the ingest writer commits them (many envelopes per transaction)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, func, select

from watchkeeper.app import Runtime
from watchkeeper.auth.projects import create_project
from watchkeeper.errors.processing import process_event
from watchkeeper.errors.records import EnvelopeRecords
from watchkeeper.errors.scrubbing import ScrubbingRules
from watchkeeper.errors.storage import save_envelopes
from watchkeeper.errors.tables import issue_tags, issues
from watchkeeper.lib.signals import signals
from watchkeeper.store.engine import for_writing, make_engine
from watchkeeper.store.migrate import upgrade

NOW = 1_767_225_600.0


@pytest.fixture
def engine(runtime: Runtime) -> Engine:
    return for_writing(runtime.engine)


@pytest.fixture
def project_id(engine: Engine) -> int:
    return int(in_transaction(engine, lambda conn: create_project(conn, "Shop", now=NOW).id))


def in_transaction(engine: Engine, function: Callable[[Connection], Any]) -> Any:
    with engine.begin() as conn:
        return function(conn)


def envelope(project_id: int, culprit: str, user: str | None) -> EnvelopeRecords:
    return event(project_id, culprit, user=user)


def users_by_culprit(engine: Engine) -> dict[str, tuple[int, int, int]]:
    """culprit -> (users_seen, distinct "user" tag values, times_seen) of each issue."""
    def read(conn: Connection) -> dict[str, tuple[int, int, int]]:
        tag_rows = (select(func.count()).select_from(issue_tags)
                    .where(issue_tags.c.issue_id == issues.c.id, issue_tags.c.key == "user").scalar_subquery())
        rows = conn.execute(select(issues.c.culprit, issues.c.users_seen, tag_rows, issues.c.times_seen))
        return {culprit.split(" in ")[-1]: (seen, tags, times) for culprit, seen, tags, times in rows}
    return in_transaction(engine, read)  # type: ignore[no-any-return]


def save(engine: Engine, batch: list[EnvelopeRecords]) -> None:
    in_transaction(engine, lambda conn: save_envelopes(conn, batch))


def test_users_affected_count_each_user_once_across_batches_and_issues(engine: Engine, project_id: int) -> None:
    save(engine, [envelope(project_id, "add", "ann"), envelope(project_id, "add", "bob"),
                  envelope(project_id, "add", "ann"), envelope(project_id, "pay", "ann")])
    save(engine, [envelope(project_id, "add", "bob"), envelope(project_id, "add", None),
                  envelope(project_id, "add", "cid"), envelope(project_id, "pay", "ann")])
    assert users_by_culprit(engine) == {"add": (3, 3, 6), "pay": (1, 1, 2)}


def test_users_affected_in_a_batch_larger_than_one_statement(engine: Engine, project_id: int) -> None:
    # More new users in one transaction than one INSERT carries (400 rows per statement).
    save(engine, [envelope(project_id, "add", f"user-{n}") for n in range(450)])
    save(engine, [envelope(project_id, "add", f"user-{n}") for n in range(440, 460)])
    assert users_by_culprit(engine) == {"add": (460, 460, 470)}


def event(project_id: int, culprit: str, *, user: str | None = None, at: float = NOW, level: str = "error",
          release: str | None = None, event_id: str | None = None) -> EnvelopeRecords:
    payload = {
        "event_id": event_id or uuid.uuid4().hex, "timestamp": at, "level": level,
        "exception": {"values": [{"type": "KeyError", "value": "sku", "stacktrace": {"frames": [
            {"module": "shop.cart", "function": culprit, "in_app": True}]}}]},
        **({"user": {"id": user}} if user else {}),
        **({"release": release} if release else {}),
    }
    records = EnvelopeRecords(project_id, NOW)
    records.events.append(process_event(payload, project_id=project_id, received=NOW, client_ip=None,
                                        rules=ScrubbingRules()))
    return records


def issue_rows(engine: Engine) -> dict[str, dict[str, Any]]:
    def read(conn: Connection) -> dict[str, dict[str, Any]]:
        return {row.culprit.split(" in ")[-1]: dict(row._mapping) for row in conn.execute(select(issues))}
    return in_transaction(engine, read)  # type: ignore[no-any-return]


def new_issue_signals(engine: Engine) -> int:
    return int(in_transaction(engine, lambda conn: conn.scalar(
        select(func.count()).select_from(signals).where(signals.c.kind == "issue.new"))))


def test_a_new_issue_is_stored_with_the_counts_of_its_first_batch(engine: Engine, project_id: int) -> None:
    save(engine, [
        event(project_id, "add", user="ann", at=NOW - 20, level="warning", release="1.0"),
        event(project_id, "add", user="bob", at=NOW - 5, level="fatal", release=None),
        event(project_id, "add", user="ann", at=NOW - 10, level="error", release="1.1"),
    ])
    row = issue_rows(engine)["add"]
    assert (row["times_seen"], row["users_seen"], row["first_seen"], row["last_seen"]) == (3, 2, NOW - 20, NOW - 5)
    assert (row["level"], row["first_release"], row["last_release"]) == ("fatal", "1.0", "1.1")
    assert (row["status"], row["substatus"], row["status_details"], row["resolved_at"]) == (
        "unresolved", "new", "{}", None)
    assert new_issue_signals(engine) == 1
    assert users_by_culprit(engine) == {"add": (2, 2, 3)}

    # The next batch counts on top, an earlier event moves first_seen back.
    save(engine, [event(project_id, "add", user="cid", at=NOW - 30, release="1.2"),
                  event(project_id, "add", user="ann", at=NOW - 1)])
    row = issue_rows(engine)["add"]
    assert (row["times_seen"], row["users_seen"], row["first_seen"], row["last_seen"]) == (5, 3, NOW - 30, NOW - 1)
    assert (row["first_release"], row["last_release"]) == ("1.0", "1.2")
    assert new_issue_signals(engine) == 1


def test_more_new_issues_in_one_batch_than_one_statement_carries(engine: Engine, project_id: int) -> None:
    save(engine, [event(project_id, f"step{n}", user=f"user-{n % 3}") for n in range(450)]
         + [event(project_id, "step7", user="zed")])
    rows = issue_rows(engine)
    assert len(rows) == 450
    assert all(row["times_seen"] == 1 and row["users_seen"] == 1 for name, row in rows.items() if name != "step7")
    assert (rows["step7"]["times_seen"], rows["step7"]["users_seen"]) == (2, 2)
    assert new_issue_signals(engine) == 450


def test_a_resent_event_that_now_groups_elsewhere_makes_no_empty_issue(engine: Engine, project_id: int) -> None:
    event_id = uuid.uuid4().hex
    save(engine, [event(project_id, "add", event_id=event_id)])
    save(engine, [event(project_id, "pay", event_id=event_id), event(project_id, "add")])
    assert {name: row["times_seen"] for name, row in issue_rows(engine).items()} == {"add": 2}
    assert new_issue_signals(engine) == 1


def test_an_update_sets_only_the_indexed_issue_columns_that_change(tmp_path: Path) -> None:
    # SQLite rewrites the index entries of every column an UPDATE sets, changed or not; a trigger on
    # those columns fires exactly when an UPDATE sets them.
    sqlite = for_writing(make_engine(f"sqlite:///{tmp_path / 'db.sqlite'}", pool_size=1))
    try:
        upgrade(sqlite)
        project_id = int(in_transaction(sqlite, lambda conn: create_project(conn, "Shop", now=NOW).id))
        in_transaction(sqlite, lambda conn: conn.exec_driver_sql(
            "CREATE TABLE set_columns (name TEXT)").close())
        for column in ("first_seen", "users_seen", "status"):
            in_transaction(sqlite, lambda conn, column=column: conn.exec_driver_sql(
                f"CREATE TRIGGER set_{column} AFTER UPDATE OF {column} ON issues "
                f"BEGIN INSERT INTO set_columns VALUES ('{column}'); END").close())

        def set_columns() -> list[str]:
            names = in_transaction(sqlite, lambda conn: conn.exec_driver_sql(
                "SELECT name FROM set_columns").scalars().all())
            in_transaction(sqlite, lambda conn: conn.exec_driver_sql("DELETE FROM set_columns").close())
            return sorted(names)

        save(sqlite, [event(project_id, "add", user="ann")])
        assert set_columns() == []  # a new issue is inserted with its counts, not updated
        save(sqlite, [event(project_id, "add", user="ann", at=NOW + 1)])
        assert set_columns() == []  # same user, later event, same status
        save(sqlite, [event(project_id, "add", user="bob", at=NOW - 1)])
        assert set_columns() == ["first_seen", "users_seen"]
        in_transaction(sqlite, lambda conn: conn.execute(
            issues.update().values(status="resolved", substatus="resolved", resolved_at=NOW)))
        set_columns()
        save(sqlite, [event(project_id, "add", user="bob", at=NOW + 2)])
        assert set_columns() == ["status"]
        row = issue_rows(sqlite)["add"]
        assert (row["status"], row["substatus"], row["resolved_at"], row["times_seen"], row["users_seen"]) == (
            "unresolved", "regressed", None, 4, 2)
    finally:
        sqlite.dispose()


def test_user_tags_count_events_whether_the_user_is_new_or_known(engine: Engine, project_id: int) -> None:
    save(engine, [event(project_id, "add", user="ann", at=NOW - 5), event(project_id, "add", user="ann", at=NOW - 9),
                  event(project_id, "add", user="bob", at=NOW - 1)])
    save(engine, [event(project_id, "add", user="ann", at=NOW - 20), event(project_id, "add", user="cid", at=NOW),
                  event(project_id, "add", user="cid", at=NOW + 3)])

    def read(conn: Connection) -> dict[str, tuple[int, float, float]]:
        rows = conn.execute(select(issue_tags.c.value, issue_tags.c.times_seen, issue_tags.c.first_seen,
                                   issue_tags.c.last_seen).where(issue_tags.c.key == "user"))
        return {value: (n, first, last) for value, n, first, last in rows}

    assert in_transaction(engine, read) == {
        "id:ann": (3, NOW - 20, NOW - 5), "id:bob": (1, NOW - 1, NOW - 1), "id:cid": (2, NOW, NOW + 3)}
    assert users_by_culprit(engine) == {"add": (3, 3, 6)}
