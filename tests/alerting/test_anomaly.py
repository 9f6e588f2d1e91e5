"""Anomaly rules against the per-minute count tables: same hour of week over past weeks, and EWMA with
a z-score; up (error spike) and down (traffic drop); quiet and new projects stay quiet; the back-test."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from sqlalchemy import Connection, Engine

from tests.alerting.conftest import in_transaction, run_round
from watchkeeper.alerting.alerts import Alert, load_alerts
from watchkeeper.alerting.anomaly import WEEK_MINUTES
from watchkeeper.alerting.backtest import backtest
from watchkeeper.alerting.rules import RuleIn, create_rule
from watchkeeper.errors.tables import project_minute_counts
from watchkeeper.lib.clock import ManualClock
from watchkeeper.store.dialect import upsert

HOUR_OF_WEEK = {"metric": "errors", "baseline": "hour_of_week", "direction": "up", "window_minutes": 60,
                "days": 28, "z_threshold": 3, "min_volume": 20}


def add_counts(engine: Engine, project_id: int, per_minute: dict[int, int], category: str = "error") -> None:
    """Counts per epoch minute, as ingest keeps them (project_minute_counts)."""

    def write(conn: Connection) -> None:
        statement = upsert(conn, project_minute_counts)
        conn.execute(statement.on_conflict_do_update(
            index_elements=["project_id", "minute", "category", "outcome"],
            set_={"count": project_minute_counts.c.count + statement.excluded.count}),
            [{"project_id": project_id, "minute": m, "category": category, "outcome": "accepted", "count": n}
             for m, n in per_minute.items()])

    in_transaction(engine, write)


def hour(last: int, per_minute: int) -> dict[int, int]:
    """`per_minute` in each of the 60 minutes before minute `last` (the current window when `last` is now)."""
    return {m: per_minute for m in range(last - 60, last)}


def add_rule(engine: Engine, project_id: int, clock: ManualClock, name: str, spec: dict[str, object],
             **extra: object) -> None:
    rule = RuleIn.model_validate({"name": name, "kind": "anomaly", "anomaly": spec, **extra})
    in_transaction(engine, lambda conn: create_rule(conn, project_id, rule, now=clock.now()))


def alerts_named(engine: Engine, name: str) -> list[Alert]:
    return [a for a in in_transaction(engine, load_alerts) if a.labels["alertname"] == name]


def weekly_history(engine: Engine, project_id: int, now_minute: int, per_minute: list[int],
                   category: str = "error") -> None:
    for weeks_ago, count in enumerate(per_minute, start=1):
        add_counts(engine, project_id, hour(now_minute - weeks_ago * WEEK_MINUTES, count), category)


def test_same_hour_of_week_spike(engine: Engine, project_id: int, clock: ManualClock) -> None:
    add_rule(engine, project_id, clock, "Error spike (weekly)", HOUR_OF_WEEK,
             annotations={"summary": "{{ value | int }} errors, usually {{ baseline | round }} (z {{ z | round(1) }})"})
    now_minute = int(clock.now() // 60)
    weekly_history(engine, project_id, now_minute, [2, 2, 2, 2])  # ~120 errors in this hour each week
    add_counts(engine, project_id, hour(now_minute, 2))
    run_round(engine, clock, default_pack=False)
    assert alerts_named(engine, "Error spike (weekly)") == []  # as usual
    add_counts(engine, project_id, {now_minute - 1: 60})  # 180 now, against 120 ± 11
    run_round(engine, clock, default_pack=False)
    (alert,) = alerts_named(engine, "Error spike (weekly)")
    assert alert.value == 180 and alert.status(clock.now()) == "firing"
    assert alert.annotations["summary"] == "180 errors, usually 120.0 (z 5.5)"
    add_counts(engine, project_id, {now_minute: 500})
    clock.advance(30)
    run_round(engine, clock, default_pack=False)
    assert alerts_named(engine, "Error spike (weekly)")[0].value == 180  # the minute in progress is not judged
    clock.advance(3600 - 30)  # an hour later the window holds only that minute (500)
    run_round(engine, clock, default_pack=False)
    (alert,) = alerts_named(engine, "Error spike (weekly)")
    assert alert.value == 500 and alert.status(clock.now()) == "firing"
    clock.advance(60)
    run_round(engine, clock, default_pack=False)
    assert alerts_named(engine, "Error spike (weekly)")[0].status(clock.now()) == "resolved"


def test_a_project_without_history_or_volume_stays_quiet(engine: Engine, project_id: int,
                                                         clock: ManualClock) -> None:
    add_rule(engine, project_id, clock, "Spike", HOUR_OF_WEEK)
    now_minute = int(clock.now() // 60)
    add_counts(engine, project_id, hour(now_minute, 10))  # 600 errors, but no weeks to compare with
    run_round(engine, clock, default_pack=False)
    assert alerts_named(engine, "Spike") == []
    add_counts(engine, project_id, {now_minute - 5 * WEEK_MINUTES: 0})  # counted since five weeks
    run_round(engine, clock, default_pack=False)
    assert len(alerts_named(engine, "Spike")) == 1  # 600 against nothing: a spike now
    add_rule(engine, project_id, clock, "Quiet spike", {**HOUR_OF_WEEK, "min_volume": 1000})
    run_round(engine, clock, default_pack=False)
    assert alerts_named(engine, "Quiet spike") == []  # under the minimum volume


def test_a_drop_against_the_weekly_baseline(engine: Engine, project_id: int, clock: ManualClock) -> None:
    spec = {**HOUR_OF_WEEK, "metric": "transactions", "direction": "down", "min_volume": 100}
    add_rule(engine, project_id, clock, "Traffic drop", spec, severity="high")
    now_minute = int(clock.now() // 60)
    weekly_history(engine, project_id, now_minute, [10, 11, 9, 10], category="transaction")  # ~600 an hour
    add_counts(engine, project_id, hour(now_minute, 9), category="transaction")
    run_round(engine, clock, default_pack=False)
    assert alerts_named(engine, "Traffic drop") == []  # 540: within the usual spread
    clock.advance(3600)
    add_counts(engine, project_id, hour(int(clock.now() // 60), 1), category="transaction")  # 60
    weekly_history(engine, project_id, int(clock.now() // 60), [10, 11, 9, 10], category="transaction")
    run_round(engine, clock, default_pack=False)
    (alert,) = alerts_named(engine, "Traffic drop")
    assert alert.value == 60 and alert.labels["severity"] == "high"
    add_rule(engine, project_id, clock, "Drop of a quiet project", {**spec, "min_volume": 10_000})
    run_round(engine, clock, default_pack=False)
    assert alerts_named(engine, "Drop of a quiet project") == []


def test_ewma_z_score(engine: Engine, project_id: int, clock: ManualClock) -> None:
    spec = {"metric": "errors", "baseline": "ewma", "window_minutes": 10, "history": 12, "alpha": 0.3,
            "z_threshold": 4, "min_volume": 10}
    add_rule(engine, project_id, clock, "Errors above trend", spec)
    now_minute = int(clock.now() // 60)
    # Two errors a minute for the last two hours (20 per 10-minute window), then a burst.
    add_counts(engine, project_id, {m: 2 for m in range(now_minute - 130, now_minute - 10)})
    add_counts(engine, project_id, {m: 3 for m in range(now_minute - 10, now_minute)})
    run_round(engine, clock, default_pack=False)
    assert alerts_named(engine, "Errors above trend") == []  # 30 against 20 ± 4.5: z 2.2
    add_counts(engine, project_id, {now_minute - 1: 20})  # 50: z 6.7
    run_round(engine, clock, default_pack=False)
    (alert,) = alerts_named(engine, "Errors above trend")
    assert alert.value == 50


def test_backtest_of_an_anomaly_rule(engine: Engine, project_id: int, clock: ManualClock) -> None:
    now_minute = int(clock.now() // 60)
    spec = {"metric": "errors", "baseline": "ewma", "window_minutes": 10, "history": 6, "z_threshold": 4,
            "min_volume": 10}
    add_counts(engine, project_id, {m: 1 for m in range(now_minute - 600, now_minute)})
    add_counts(engine, project_id, {now_minute - 300: 60})  # a burst five hours ago
    rule = RuleIn.model_validate({"name": "a", "kind": "anomaly", "anomaly": spec})
    result = in_transaction(engine, lambda conn: backtest(conn, project_id, rule, now=clock.now(), hours=8))
    start = (now_minute - 300) * 60
    # The burst's minute is judged from the next minute on, until it leaves the 10-minute window; the
    # windows after it still carry it in their baseline, which keeps them from firing.
    assert result["firings"] == [{"subject": f"project:{project_id}", "started_at": start + 120,
                                  "ended_at": start + 720, "peak_value": 70.0}]
    assert result["step_seconds"] == 60
    assert in_transaction(engine, load_alerts) == []


def test_anomaly_mistakes_name_the_field() -> None:
    with pytest.raises(ValidationError, match="needs 'anomaly'"):
        RuleIn.model_validate({"name": "x", "kind": "anomaly", "threshold": {"metric": "errors", "threshold": 1}})
    with pytest.raises(ValidationError, match=r"anomaly\.days"):
        RuleIn.model_validate({"name": "x", "kind": "anomaly", "anomaly": {**HOUR_OF_WEEK, "days": 3}})
    with pytest.raises(ValidationError, match="within 91 days"):
        RuleIn.model_validate({"name": "x", "kind": "anomaly",
                               "anomaly": {"metric": "errors", "baseline": "ewma", "window_minutes": 1440,
                                           "history": 100}})


def test_backtest_of_an_hour_of_week_rule(engine: Engine, project_id: int, clock: ManualClock) -> None:
    now_minute = int(clock.now() // 60)
    spike_at = now_minute - 180  # three hours ago: 200 errors in one minute
    for weeks_ago in range(1, 5):  # the usual: one error a minute, every week, around that time
        add_counts(engine, project_id, {m: 1 for m in range(spike_at - weeks_ago * WEEK_MINUTES - 120,
                                                            spike_at - weeks_ago * WEEK_MINUTES + 120)})
    add_counts(engine, project_id, {m: 1 for m in range(spike_at - 120, spike_at + 120)})
    add_counts(engine, project_id, {spike_at: 199})
    spec = {**HOUR_OF_WEEK, "window_minutes": 30}
    rule = RuleIn.model_validate({"name": "w", "kind": "anomaly", "anomaly": spec})
    result = in_transaction(engine, lambda conn: backtest(conn, project_id, rule, now=clock.now(), hours=6))
    (firing,) = result["firings"]
    # Judged from the minute after the spike (the minute in progress is left out) for the 30 minutes
    # the spike stays in the window.
    assert (firing["started_at"], firing["ended_at"]) == ((spike_at + 2) * 60, (spike_at + 32) * 60)
    assert firing["peak_value"] == 229  # 199 + 30 ones
