"""The writer's storage function on the real database: users affected counted as events arrive in
batches, the way the ingest writer commits them (many envelopes per transaction)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
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
from watchkeeper.store.engine import for_writing

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
    payload = {
        "event_id": uuid.uuid4().hex,
        "exception": {"values": [{"type": "KeyError", "value": "sku", "stacktrace": {"frames": [
            {"module": "shop.cart", "function": culprit, "in_app": True}]}}]},
        **({"user": {"id": user}} if user else {}),
    }
    records = EnvelopeRecords(project_id, NOW)
    records.events.append(process_event(payload, project_id=project_id, received=NOW, client_ip=None,
                                        rules=ScrubbingRules()))
    return records


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
