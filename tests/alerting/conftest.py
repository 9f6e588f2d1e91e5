"""Alerting fixtures: the real database with a project, a manual clock, and helpers that write the data
rules read (signals and per-minute counts) the way the domains do."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import Connection, Engine

from watchkeeper.alerting.evaluator import RoundReport, evaluate
from watchkeeper.app import Runtime
from watchkeeper.auth.projects import create_project
from watchkeeper.errors.tables import project_minute_counts
from watchkeeper.lib.clock import ManualClock
from watchkeeper.lib.signals import emit_signals
from watchkeeper.store.dialect import upsert
from watchkeeper.store.engine import for_writing

START = 1_767_225_600.0  # 2026-01-01 00:00 UTC, a whole minute


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def engine(runtime: Runtime) -> Engine:
    return for_writing(runtime.engine)


def in_transaction(engine: Engine, function: Callable[[Connection], Any]) -> Any:
    with engine.begin() as conn:
        return function(conn)


@pytest.fixture
def project_id(engine: Engine, clock: ManualClock) -> int:
    return int(in_transaction(engine, lambda conn: create_project(conn, "Shop", now=clock.now()).id))


def add_errors(engine: Engine, project_id: int, at: float, count: int) -> None:
    """Accepted errors in the minute of `at`, as ingest counts them."""
    row = {"project_id": project_id, "minute": int(at // 60), "category": "error", "outcome": "accepted",
           "count": count}

    def upsert_count(conn: Connection) -> None:
        statement = upsert(conn, project_minute_counts).values(row)
        conn.execute(statement.on_conflict_do_update(
            index_elements=["project_id", "minute", "category", "outcome"],
            set_={"count": project_minute_counts.c.count + count}))

    in_transaction(engine, upsert_count)


def signal(engine: Engine, kind: str, project_id: int, subject: str, at: float, **payload: Any) -> None:
    row = {"kind": kind, "project_id": project_id, "subject": subject, "created_at": at, "payload": payload}
    in_transaction(engine, lambda conn: emit_signals(conn, [row]))


def run_round(engine: Engine, clock: ManualClock, **options: Any) -> RoundReport:
    report: RoundReport = in_transaction(engine, lambda conn: evaluate(conn, clock.now(), **options))
    return report
