"""Threshold aggregations beyond count and rate: ratio (percent; a zero denominator is no value),
average and percentile of transaction durations; with transactions stored by ingest's own storage
function, evaluated by rounds and replayed by the back-test."""

from __future__ import annotations

import uuid

import pytest
from pydantic import ValidationError
from sqlalchemy import Engine

from tests.alerting.conftest import add_errors, in_transaction, run_round
from watchkeeper.alerting.alerts import Alert, load_alerts
from watchkeeper.alerting.backtest import backtest
from watchkeeper.alerting.rules import RuleIn, create_rule
from watchkeeper.errors.records import EnvelopeRecords, TransactionRecord
from watchkeeper.errors.storage import save_envelopes
from watchkeeper.lib.clock import ManualClock

RATIO = {"metric": "errors", "aggregation": "ratio", "denominator": "transactions", "window_minutes": 5,
         "op": ">", "threshold": 5}
P95 = {"metric": "transaction_duration", "aggregation": "percentile", "percentile": 95, "window_minutes": 5,
       "op": ">", "threshold": 500}


def store_transactions(engine: Engine, project_id: int, at: float, durations_ms: list[float]) -> None:
    """Transactions ending at `at`, stored and counted as ingest does (one envelope each)."""
    batch = []
    for duration in durations_ms:
        envelope = EnvelopeRecords(project_id, at)
        envelope.transactions.append(TransactionRecord(
            project_id, uuid.uuid4().hex, uuid.uuid4().hex, "GET /checkout", "http.server", "ok",
            at - duration / 1000, at, "production", None, at, b"{}"))
        envelope.count("transaction", "accepted")
        batch.append(envelope)
    in_transaction(engine, lambda conn: save_envelopes(conn, batch))


def add_rule(engine: Engine, project_id: int, clock: ManualClock, name: str, threshold: dict[str, object]) -> None:
    rule = RuleIn.model_validate({"name": name, "kind": "threshold", "threshold": threshold})
    in_transaction(engine, lambda conn: create_rule(conn, project_id, rule, now=clock.now()))


def alerts_named(engine: Engine, name: str) -> list[Alert]:
    return [a for a in in_transaction(engine, load_alerts) if a.labels["alertname"] == name]


def test_a_ratio_is_a_percentage_of_its_denominator(engine: Engine, project_id: int, clock: ManualClock) -> None:
    add_rule(engine, project_id, clock, "Failing requests", RATIO)
    store_transactions(engine, project_id, clock.now() - 90, [20.0] * 100)
    add_errors(engine, project_id, clock.now() - 60, 5)
    run_round(engine, clock, default_pack=False)
    assert alerts_named(engine, "Failing requests") == []  # 5 % is not more than 5 %
    add_errors(engine, project_id, clock.now(), 2)
    run_round(engine, clock, default_pack=False)
    (alert,) = alerts_named(engine, "Failing requests")
    assert alert.status(clock.now()) == "firing" and alert.value == 7.0


def test_a_zero_denominator_is_no_value(engine: Engine, project_id: int, clock: ManualClock) -> None:
    add_rule(engine, project_id, clock, "Failing requests", RATIO)
    add_rule(engine, project_id, clock, "Mostly fine", {**RATIO, "op": "<", "threshold": 50})
    add_errors(engine, project_id, clock.now(), 40)  # errors, but no transactions at all
    report = run_round(engine, clock, default_pack=False)
    assert report.rules == 2
    assert alerts_named(engine, "Failing requests") == [] and alerts_named(engine, "Mostly fine") == []


def test_requests_and_min_volume(engine: Engine, project_id: int, clock: ManualClock) -> None:
    add_rule(engine, project_id, clock, "Error share", {**RATIO, "denominator": "requests", "min_volume": 50})
    store_transactions(engine, project_id, clock.now(), [10.0] * 30)
    add_errors(engine, project_id, clock.now(), 10)
    run_round(engine, clock, default_pack=False)
    assert alerts_named(engine, "Error share") == []  # 40 requests: under the minimum volume
    store_transactions(engine, project_id, clock.now(), [10.0] * 30)
    run_round(engine, clock, default_pack=False)
    (alert,) = alerts_named(engine, "Error share")
    assert alert.value == pytest.approx(100 * 10 / 70)  # errors / (errors + transactions)


def test_the_default_error_rate_rule(engine: Engine, project_id: int, clock: ManualClock) -> None:
    store_transactions(engine, project_id, clock.now() - 120, [15.0] * 40)
    add_errors(engine, project_id, clock.now() - 60, 2)
    run_round(engine, clock)
    assert in_transaction(engine, load_alerts) == []  # 2 errors per 40 requests: 5 %
    add_errors(engine, project_id, clock.now(), 2)  # 4 per 40: 10 %
    run_round(engine, clock)
    (alert,) = alerts_named(engine, "Error rate")
    assert alert.annotations["summary"] == "shop: 10.0 errors per 100 requests over 5 minutes (more than 5 %)"


def test_average_and_percentile_of_transaction_durations(engine: Engine, project_id: int,
                                                         clock: ManualClock) -> None:
    add_rule(engine, project_id, clock, "Slow p95", P95)
    add_rule(engine, project_id, clock, "Slow average",
             {**P95, "aggregation": "average", "percentile": None, "threshold": 100, "min_volume": 10})
    store_transactions(engine, project_id, clock.now() - 30, [50.0] * 94 + [900.0] * 6)
    store_transactions(engine, project_id, clock.now() - 600, [5000.0] * 50)  # outside the window
    run_round(engine, clock, default_pack=False)
    (p95,) = alerts_named(engine, "Slow p95")
    assert p95.value == pytest.approx(900.0)  # nearest rank: the 95th of 100 sorted durations
    (average,) = alerts_named(engine, "Slow average")
    assert average.value == pytest.approx(101.0)  # (94 * 50 + 6 * 900) / 100
    store_transactions(engine, project_id, clock.now(), [50.0] * 60)
    clock.advance(15)
    run_round(engine, clock, default_pack=False)  # 6 slow of 160: p95 is 50 ms, the average 81.9 ms
    assert [a.status(clock.now()) for a in alerts_named(engine, "Slow p95") + alerts_named(engine, "Slow average")
            ] == ["resolved", "resolved"]


def test_no_transactions_is_no_value(engine: Engine, project_id: int, clock: ManualClock) -> None:
    add_rule(engine, project_id, clock, "Fast", {**P95, "op": "<", "threshold": 1000})
    run_round(engine, clock, default_pack=False)
    assert alerts_named(engine, "Fast") == []
    store_transactions(engine, project_id, clock.now(), [10.0])
    run_round(engine, clock, default_pack=False)
    assert len(alerts_named(engine, "Fast")) == 1


def test_backtests_of_ratio_and_percentile(engine: Engine, project_id: int, clock: ManualClock) -> None:
    start = clock.now() - 3600
    store_transactions(engine, project_id, start + 30, [40.0] * 100)
    add_errors(engine, project_id, start + 30, 20)
    store_transactions(engine, project_id, start + 1800, [40.0] * 95 + [2000.0] * 5)
    ratio = RuleIn.model_validate({"name": "r", "kind": "threshold", "threshold": RATIO})
    firings = in_transaction(engine, lambda conn: backtest(conn, project_id, ratio, now=clock.now()))["firings"]
    # 20 errors per 100 transactions from the end of the first minute until they leave the 5-minute window.
    assert firings == [{"subject": f"project:{project_id}", "started_at": start + 60, "ended_at": start + 360,
                        "peak_value": 20.0}]
    p95 = RuleIn.model_validate({"name": "p", "kind": "threshold", "threshold": {**P95, "percentile": 99}})
    firings = in_transaction(engine, lambda conn: backtest(conn, project_id, p95, now=clock.now()))["firings"]
    assert firings == [{"subject": f"project:{project_id}", "started_at": start + 1860,
                        "ended_at": start + 2160, "peak_value": pytest.approx(2000.0)}]
    assert in_transaction(engine, load_alerts) == []


def test_mistakes_name_the_field() -> None:
    with pytest.raises(ValidationError, match="needs 'denominator'"):
        RuleIn.model_validate({"name": "x", "kind": "threshold", "threshold": {**RATIO, "denominator": None}})
    with pytest.raises(ValidationError, match="needs metric 'transaction_duration'"):
        RuleIn.model_validate({"name": "x", "kind": "threshold", "threshold": {**P95, "metric": "errors"}})
    with pytest.raises(ValidationError, match="needs 'percentile'"):
        RuleIn.model_validate({"name": "x", "kind": "threshold", "threshold": {**P95, "percentile": None}})
    with pytest.raises(ValidationError, match="percentile"):
        RuleIn.model_validate({"name": "x", "kind": "threshold", "threshold": {**P95, "percentile": 120}})


def test_durations_wait_for_the_full_round(engine: Engine, project_id: int, clock: ManualClock) -> None:
    from watchkeeper.alerting.evaluator import evaluate

    add_rule(engine, project_id, clock, "Slow p95", P95)
    store_transactions(engine, project_id, clock.now(), [2000.0] * 20)
    in_transaction(engine, lambda conn: evaluate(conn, clock.now(), default_pack=False, thresholds=False,
                                                 threshold_projects={project_id}))
    assert alerts_named(engine, "Slow p95") == []  # quick rounds leave durations to the full round
    run_round(engine, clock, default_pack=False)
    assert len(alerts_named(engine, "Slow p95")) == 1


def test_backtest_of_an_average(engine: Engine, project_id: int, clock: ManualClock) -> None:
    start = clock.now() - 7200
    store_transactions(engine, project_id, start + 10, [100.0] * 10)
    store_transactions(engine, project_id, start + 3610, [100.0] * 5 + [700.0] * 5)  # average 400 ms
    rule = RuleIn.model_validate({"name": "avg", "kind": "threshold", "threshold": {
        **P95, "aggregation": "average", "percentile": None, "threshold": 300, "window_minutes": 2,
        "for_seconds": 60}})
    firings = in_transaction(engine, lambda conn: backtest(conn, project_id, rule, now=clock.now(), hours=3))
    # True at the ends of the minute holding them and the next (2-minute window): pending, then firing.
    assert firings["firings"] == [{"subject": f"project:{project_id}", "started_at": start + 3720,
                                   "ended_at": start + 3780, "peak_value": pytest.approx(400.0)}]
