"""Back-tests replay counts and signals of the last hours without creating alerts."""

from __future__ import annotations

import httpx
from sqlalchemy import Engine

from tests.alerting.conftest import add_errors, in_transaction, signal
from tests.conftest import ProjectFixture
from watchkeeper.alerting.alerts import load_alerts
from watchkeeper.alerting.backtest import backtest
from watchkeeper.alerting.rules import RuleIn
from watchkeeper.lib.clock import ManualClock

SPIKE = RuleIn.model_validate({
    "name": "Spike", "kind": "threshold",
    "threshold": {"metric": "errors", "aggregation": "rate", "window_minutes": 1, "threshold": 10, "for_seconds": 60}})
DOWN = RuleIn.model_validate({"name": "Down", "kind": "event", "event": {"signal": "monitor.down"}})


def test_a_threshold_rule_replays_minute_by_minute_with_for(engine: Engine, project_id: int,
                                                            clock: ManualClock) -> None:
    start = clock.now() - 120 * 60
    for minute, count in ((0, 15), (1, 20), (2, 12), (10, 30)):
        add_errors(engine, project_id, start + minute * 60, count)
    result = in_transaction(engine, lambda conn: backtest(conn, project_id, SPIKE, now=clock.now()))
    # True at the ends of minutes 0-2: pending after the first, firing after the second (for 60 s),
    # ended at the end of minute 3; minute 10 alone never lasts the `for`.
    assert result["firings"] == [{"subject": f"project:{project_id}", "started_at": start + 120,
                                  "ended_at": start + 240, "peak_value": 20.0}]
    assert in_transaction(engine, lambda conn: load_alerts(conn)) == []


def test_an_event_rule_replays_signals_and_their_resolution(engine: Engine, project_id: int,
                                                            clock: ManualClock) -> None:
    now = clock.now()
    signal(engine, "monitor.down", project_id, "monitor:1", now - 3600, name="api")
    signal(engine, "monitor.up", project_id, "monitor:1", now - 3000, name="api")
    signal(engine, "monitor.down", project_id, "monitor:1", now - 60, name="api")
    signal(engine, "monitor.down", project_id, "monitor:2", now - 90000, name="old")  # before the 24 h
    firings = in_transaction(engine, lambda conn: backtest(conn, project_id, DOWN, now=now))["firings"]
    assert [(f["subject"], f["started_at"], f["ended_at"]) for f in firings] == [
        ("monitor:1", now - 3600, now - 3000), ("monitor:1", now - 60, None)]


def test_backtest_over_the_api(api: httpx.Client, project: ProjectFixture) -> None:
    url = f"/api/v1/projects/{project.id}/alert-rules/backtest"
    answer = api.post(url, json=SPIKE.model_dump(), params={"hours": 2})
    assert answer.status_code == 200 and answer.json()["firings"] == []
    assert answer.json()["until"] - answer.json()["from"] == 7200
    assert api.post(url, json=SPIKE.model_dump(), params={"hours": 0}).status_code == 422


def test_new_kinds_over_the_api(api: httpx.Client, project: ProjectFixture) -> None:
    anomaly = {"name": "Drop", "kind": "anomaly", "anomaly": {"metric": "transactions", "direction": "down"}}
    answer = api.post(f"/api/v1/projects/{project.id}/alert-rules/backtest", json=anomaly, params={"hours": 1})
    assert answer.status_code == 200 and answer.json()["firings"] == [] and answer.json()["step_seconds"] == 60
    ratio = {"name": "Rate", "kind": "threshold",
             "threshold": {"metric": "errors", "aggregation": "ratio", "denominator": "transactions", "threshold": 5}}
    created = api.post(f"/api/v1/projects/{project.id}/alert-rules", json=ratio)
    assert created.status_code == 201 and created.json()["threshold"]["denominator"] == "transactions"
    wrong = api.post(f"/api/v1/projects/{project.id}/alert-rules", json={**ratio, "threshold": {
        **ratio["threshold"], "denominator": None}})  # type: ignore[dict-item]
    assert wrong.status_code == 422 and "denominator" in wrong.text
