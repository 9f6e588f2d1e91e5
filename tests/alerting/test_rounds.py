"""How rounds meet the writer: reads on a reader connection, only the changes written, a plan that lost
the race writes nothing (so a signal is neither lost nor counted twice), quick rounds read only the
alerts they concern, dispatch rounds only the changed alerts and the due groups."""

from __future__ import annotations

import asyncio
import dataclasses

from sqlalchemy import Engine, func, select

from tests.alerting.conftest import add_errors, in_transaction, run_round, signal
from watchkeeper.alerting.alerts import Alert, fingerprint, load_alerts, save_alerts
from watchkeeper.alerting.dispatch import Dispatcher, decide_flushes, write_decisions
from watchkeeper.alerting.evaluator import read_round
from watchkeeper.alerting.rounds import CURSOR, apply_round
from watchkeeper.alerting.routing import parse_config
from watchkeeper.alerting.service import Alerting
from watchkeeper.alerting.tables import alerting_cursors, notification_outbox
from watchkeeper.alerting.tables import alerts as alerts_table
from watchkeeper.app import Runtime
from watchkeeper.lib.clock import ManualClock
from watchkeeper.observability import Metrics

ROUTING = {"route": {"receiver": "team", "group_by": ["alertname"], "group_wait": "0s", "group_interval": "5m"},
           "receivers": [{"name": "team", "webhook_configs": [{"url": "http://127.0.0.1:9/hook"}]}]}


def new_issue_alerts(engine: Engine) -> list[Alert]:
    return [a for a in in_transaction(engine, load_alerts) if a.labels["alertname"] == "New error type"]


def cursor(engine: Engine) -> int:
    query = select(alerting_cursors.c.position).where(alerting_cursors.c.name == CURSOR)
    return int(in_transaction(engine, lambda conn: conn.execute(query).scalar()) or 0)


def test_a_round_whose_cursor_moved_meanwhile_writes_nothing(engine: Engine, project_id: int,
                                                            clock: ManualClock) -> None:
    run_round(engine, clock)  # the default pack
    signal(engine, "issue.new", project_id, "issue:1", clock.now(), title="KeyError")
    with engine.connect() as conn:  # a round reads ...
        stale = read_round(conn, clock.now())
    assert stale.cursor_to is not None and len(stale.new) == 1
    run_round(engine, clock)  # ... another round (another process, or a retry) applies the same signal
    assert len(new_issue_alerts(engine)) == 1
    moved = cursor(engine)
    # ... then the first one comes to write, as after a crash between its read and its write.
    assert in_transaction(engine, lambda conn: apply_round(conn, stale)) is None
    assert len(new_issue_alerts(engine)) == 1 and cursor(engine) == moved  # not counted twice
    signal(engine, "issue.new", project_id, "issue:2", clock.now(), title="ValueError")
    run_round(engine, clock)
    assert sorted(a.labels["issue"] for a in new_issue_alerts(engine)) == ["1", "2"]  # none lost


def test_a_plan_whose_alert_changed_meanwhile_writes_nothing(engine: Engine, project_id: int,
                                                             clock: ManualClock) -> None:
    add_errors(engine, project_id, clock.now(), 20)
    run_round(engine, clock)
    clock.advance(120)  # the spike is over: the next round resolves the alert
    with engine.connect() as conn:
        stale = read_round(conn, clock.now())
    assert len(stale.changed) == 1
    (alert,) = [a for a in in_transaction(engine, load_alerts) if a.labels["alertname"] == "Error spike"]
    alert.annotations, alert.updated_at = {"summary": "edited"}, clock.now() + 1
    in_transaction(engine, lambda conn: save_alerts(conn, [], [alert]))
    assert in_transaction(engine, lambda conn: apply_round(conn, stale)) is None
    (kept,) = [a for a in in_transaction(engine, load_alerts) if a.labels["alertname"] == "Error spike"]
    assert kept.annotations == {"summary": "edited"} and kept.ends_at is None  # no lost update
    run_round(engine, clock)  # the next round starts from what is stored
    (resolved,) = [a for a in in_transaction(engine, load_alerts) if a.labels["alertname"] == "Error spike"]
    assert resolved.status(clock.now()) == "resolved"


def test_a_steady_firing_alert_is_not_rewritten(engine: Engine, project_id: int, clock: ManualClock) -> None:
    add_errors(engine, project_id, clock.now(), 20)
    run_round(engine, clock)
    (first,) = [a for a in in_transaction(engine, load_alerts) if a.labels["alertname"] == "Error spike"]
    clock.advance(15)
    report = run_round(engine, clock)
    (again,) = [a for a in in_transaction(engine, load_alerts) if a.labels["alertname"] == "Error spike"]
    assert report.changed == 0 and again.updated_at == first.updated_at


def test_a_moving_value_is_written_at_most_once_a_minute(engine: Engine, project_id: int,
                                                        clock: ManualClock) -> None:
    from tests.alerting.test_evaluator import add_rule

    add_rule(engine, project_id, clock, name="Errors", kind="threshold",
             threshold={"metric": "errors", "window_minutes": 5, "threshold": 3})
    add_errors(engine, project_id, clock.now(), 20)
    run_round(engine, clock, default_pack=False)
    for expected_value, changed in ((20.0, 0), (26.0, 1), (26.0, 0)):
        clock.advance(30)
        add_errors(engine, project_id, clock.now(), 3)
        report = run_round(engine, clock, default_pack=False)
        (alert,) = [a for a in in_transaction(engine, load_alerts) if a.labels["alertname"] == "Errors"]
        assert (alert.value, report.changed) == (expected_value, changed)


def test_a_quick_round_reads_only_the_alerts_of_its_signals(engine: Engine, project_id: int,
                                                            clock: ManualClock) -> None:
    run_round(engine, clock)
    for index in range(30):
        signal(engine, "issue.new", project_id, f"issue:{index}", clock.now(), title=f"Error {index}")
    run_round(engine, clock)
    assert len(new_issue_alerts(engine)) == 30
    signal(engine, "issue.new", project_id, "issue:99", clock.now(), title="Another")
    signal(engine, "issue.new", project_id, "issue:3", clock.now(), title="Error 3")  # seen again
    with engine.connect() as conn:
        plan = read_round(conn, clock.now(), thresholds=False)
    assert sum(plan.report.states.values()) == 2  # of 31 alerts, the two its signals name
    assert [a.labels["issue"] for a in plan.new] == ["99"] and [a.labels["issue"] for a in plan.changed] == ["3"]


def test_dispatch_decisions_are_written_once(engine: Engine, clock: ManualClock) -> None:
    labels = {"alertname": "Down", "site": "shop"}
    now = clock.now()
    in_transaction(engine, lambda conn: save_alerts(conn, [Alert(fingerprint(labels), labels, {}, "firing", now,
                                                                 now, None, updated_at=now)], []))
    first, second = Dispatcher(parse_config(ROUTING)), Dispatcher(parse_config(ROUTING))
    decided = []
    for dispatcher in (first, second):  # two dispatchers (processes) read the same state
        with engine.connect() as conn:
            dispatcher.refresh(conn, now)
            plans = dispatcher.plan(conn, now)
            decided.append(decide_flushes(conn, plans, dispatcher.config, now, "http://wk.test"))
    assert in_transaction(engine, lambda conn: write_decisions(conn, decided[0])) == 1
    assert in_transaction(engine, lambda conn: write_decisions(conn, decided[1])) is None
    count = in_transaction(engine, lambda conn: conn.execute(select(func.count()).select_from(notification_outbox))
                           .scalar())
    assert count == 1


def _look(engine: Engine, dispatcher: Dispatcher, clock: ManualClock) -> list[str]:
    """One dispatcher pass as the server makes it: refresh, plan, flush; the alertnames of the groups flushed."""
    with engine.connect() as conn:
        dispatcher.refresh(conn, clock.now())
        plans = dispatcher.plan(conn, clock.now())
    dispatcher.flushed(plans, clock.now())
    return sorted(p.group.labels["alertname"] for p in plans)


def test_dispatch_reads_only_changed_alerts_and_due_groups(engine: Engine, clock: ManualClock) -> None:
    dispatcher = Dispatcher(parse_config(ROUTING))
    start = clock.now()
    rows = [Alert(fingerprint({"alertname": f"A{i}"}), {"alertname": f"A{i}"}, {}, "firing", start, start, None,
                  updated_at=start) for i in range(20)]
    in_transaction(engine, lambda conn: save_alerts(conn, rows, []))

    def look() -> list[str]:
        return _look(engine, dispatcher, clock)

    assert len(look()) == 20  # group_wait 0: every group flushes, then waits group_interval (5 min)
    # Deleted behind the index's back (no change it can see): the index learns it only when the
    # group is due and re-reads its members, which shows rounds do not re-read every alert.
    in_transaction(engine, lambda conn: conn.execute(alerts_table.delete().where(
        alerts_table.c.fingerprint == rows[0].fingerprint)))
    clock.advance(100)
    assert look() == []
    clock.advance(100)
    fresh = Alert(fingerprint({"alertname": "B"}), {"alertname": "B"}, {}, "firing", clock.now(), clock.now(),
                  None, updated_at=clock.now())
    in_transaction(engine, lambda conn: save_alerts(conn, [fresh], []))
    assert look() == ["B"]  # only the new group; the others are not due
    assert len(dispatcher.alerts) == 21
    clock.advance(100)  # the first groups are due: they re-read their members
    assert look() == [f"A{i}" for i in sorted(range(1, 20), key=str)]
    assert len(dispatcher.alerts) == 20 and "{}:{alertname=\"A0\"}" not in dispatcher.groups


def test_dispatch_sees_an_alert_that_committed_late(engine: Engine, clock: ManualClock) -> None:
    """An alert written by a round that read before the last look but committed after it (its updated_at
    lies behind the look) still joins its group: the counts per version show it, and only it is read."""
    dispatcher = Dispatcher(parse_config(ROUTING))
    read_at = clock.now()

    def alert(name: str, at: float) -> Alert:
        return Alert(fingerprint({"alertname": name}), {"alertname": name}, {}, "firing", at, at, None, updated_at=at)

    in_transaction(engine, lambda conn: save_alerts(conn, [alert("Early", read_at)], []))
    clock.advance(5)

    def look() -> list[str]:
        return _look(engine, dispatcher, clock)

    assert look() == ["Early"]
    clock.advance(1)
    assert look() == []  # nothing new: nothing read
    # A late round: read (and stamped) before the first look, committed only now, in the same version.
    in_transaction(engine, lambda conn: save_alerts(conn, [alert("Late", read_at)], []))
    clock.advance(1)
    assert look() == ["Late"]
    assert set(dispatcher.alerts) == {fingerprint({"alertname": "Early"}), fingerprint({"alertname": "Late"})}


def test_the_server_rounds_write_little_and_say_how_long(runtime: Runtime, project_id: int,
                                                         clock: ManualClock, engine: Engine) -> None:
    runtime = dataclasses.replace(runtime, clock=clock, metrics=Metrics())
    alerting = Alerting(runtime, parse_config(ROUTING))
    signal(engine, "issue.new", project_id, "issue:7", clock.now(), title="KeyError")

    async def rounds() -> int:
        await alerting.evaluate_once()  # the default pack, then the signal
        return await alerting.dispatch_once()

    assert asyncio.run(rounds()) == 1
    assert len(new_issue_alerts(engine)) == 1
    registry = runtime.metrics.registry
    for kind in ("pack", "evaluate", "dispatch"):
        assert registry.get_sample_value("watchkeeper_alerting_writer_seconds_count", {"round": kind}) == 1
        assert registry.get_sample_value("watchkeeper_alerting_writer_cpu_seconds_count", {"round": kind}) == 1
