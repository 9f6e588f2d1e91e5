"""Rules against signals and per-minute counts, with a manual clock: pending, firing, resolved."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from sqlalchemy import Engine

from tests.alerting.conftest import add_errors, in_transaction, run_round, signal
from watchkeeper.alerting.alerts import Alert, load_alerts
from watchkeeper.alerting.evaluator import evaluate
from watchkeeper.alerting.flapping import FlapTracker
from watchkeeper.alerting.rounds import has_new_signals
from watchkeeper.alerting.rules import RuleIn, create_rule, delete_rule, list_rules
from watchkeeper.alerting.templates import annotation_errors
from watchkeeper.lib.clock import ManualClock


def alerts_of(engine: Engine, name: str) -> list[Alert]:
    return [a for a in in_transaction(engine, lambda conn: load_alerts(conn)) if a.labels["alertname"] == name]


def only(engine: Engine, name: str) -> Alert:
    found = alerts_of(engine, name)
    assert len(found) == 1, found
    return found[0]


def add_rule(engine: Engine, project_id: int, clock: ManualClock, **spec: object) -> int:
    rule = RuleIn.model_validate(spec)
    return in_transaction(engine, lambda conn: create_rule(conn, project_id, rule, now=clock.now())).id


def test_new_projects_get_the_default_pack_once(engine: Engine, project_id: int, clock: ManualClock) -> None:
    assert run_round(engine, clock).packs_applied == 1
    rules = in_transaction(engine, lambda conn: list_rules(conn, project_id))
    assert [r.name for r in rules] == ["Error spike", "Error rate", "New error type", "Issue regressed",
                                       "Monitor down", "Heartbeat missed", "Heartbeat failed",
                                       "Certificate expiring"]
    in_transaction(engine, lambda conn: delete_rule(conn, rules[0].id))
    assert run_round(engine, clock).packs_applied == 0
    assert len(in_transaction(engine, lambda conn: list_rules(conn, project_id))) == 7


def test_error_spike_fires_above_ten_per_minute_and_resolves(engine: Engine, project_id: int,
                                                             clock: ManualClock) -> None:
    add_errors(engine, project_id, clock.now(), 10)
    run_round(engine, clock)
    assert alerts_of(engine, "Error spike") == []  # 10 is not more than 10
    add_errors(engine, project_id, clock.now(), 5)
    run_round(engine, clock)
    alert = only(engine, "Error spike")
    assert alert.status(clock.now()) == "firing"
    assert alert.labels["severity"] == "high" and alert.labels["priority"] == "P1"
    assert alert.labels["project"] == "shop"
    assert alert.annotations["summary"] == "shop: 15.0 errors per minute (more than 10)"
    clock.advance(60)
    run_round(engine, clock)
    assert only(engine, "Error spike").status(clock.now()) == "resolved"


def test_for_keeps_an_alert_pending_and_keep_firing_for_delays_resolve(engine: Engine, project_id: int,
                                                                        clock: ManualClock) -> None:
    add_rule(engine, project_id, clock, name="Errors", kind="threshold", severity="critical",
             threshold={"metric": "errors", "window_minutes": 5, "op": ">=", "threshold": 3,
                        "for_seconds": 60, "keep_firing_for_seconds": 120})
    add_errors(engine, project_id, clock.now(), 3)
    run_round(engine, clock, default_pack=False)
    assert only(engine, "Errors").status(clock.now()) == "pending"
    clock.advance(30)
    run_round(engine, clock, default_pack=False)
    assert only(engine, "Errors").status(clock.now()) == "pending"
    clock.advance(30)
    run_round(engine, clock, default_pack=False)
    firing = only(engine, "Errors")
    assert firing.status(clock.now()) == "firing" and firing.starts_at == clock.now()
    clock.advance(180)  # t=240 s: still in the 5-minute window
    run_round(engine, clock, default_pack=False)
    clock.advance(60)  # t=300 s: the errors left the window
    run_round(engine, clock, default_pack=False)
    assert only(engine, "Errors").status(clock.now()) == "firing"  # kept firing for 120 s after last true
    clock.advance(60)
    run_round(engine, clock, default_pack=False)
    assert only(engine, "Errors").status(clock.now()) == "resolved"


def test_a_pending_alert_vanishes_when_the_condition_stops(engine: Engine, project_id: int,
                                                           clock: ManualClock) -> None:
    add_rule(engine, project_id, clock, name="Errors", kind="threshold",
             threshold={"metric": "errors", "window_minutes": 1, "threshold": 0, "for_seconds": 300})
    add_errors(engine, project_id, clock.now(), 1)
    run_round(engine, clock, default_pack=False)
    assert only(engine, "Errors").state == "pending"
    clock.advance(60)
    run_round(engine, clock, default_pack=False)
    assert alerts_of(engine, "Errors") == []


def test_monitor_down_fires_and_monitor_up_resolves(engine: Engine, project_id: int, clock: ManualClock) -> None:
    run_round(engine, clock)
    signal(engine, "monitor.down", project_id, "monitor:7", clock.now(), monitor_id=7, name="API", error="timeout")
    clock.advance(15)
    run_round(engine, clock)
    alert = only(engine, "Monitor down")
    assert alert.labels["monitor"] == "7" and alert.labels["priority"] == "P0"
    assert alert.annotations == {"summary": "API is down", "description": "timeout"}
    assert alert.status(clock.now()) == "firing"
    signal(engine, "monitor.up", project_id, "monitor:7", clock.now(), monitor_id=7, name="API")
    clock.advance(15)
    run_round(engine, clock)
    assert only(engine, "Monitor down").status(clock.now()) == "resolved"
    run_round(engine, clock)  # the cursor moved: the old down signal is not applied again
    assert only(engine, "Monitor down").status(clock.now()) == "resolved"


def test_a_new_issue_alert_resolves_by_itself(engine: Engine, project_id: int, clock: ManualClock) -> None:
    run_round(engine, clock)
    signal(engine, "issue.new", project_id, "issue:42", clock.now(), issue_id=42, title="KeyError: 'x'")
    run_round(engine, clock)
    alert = only(engine, "New error type")
    assert alert.labels["issue"] == "42" and alert.annotations["summary"] == "New issue in shop: KeyError: 'x'"
    clock.advance(300)
    run_round(engine, clock)
    assert only(engine, "New error type").status(clock.now()) == "resolved"
    clock.advance(900)
    assert run_round(engine, clock).forgotten == 1
    assert alerts_of(engine, "New error type") == []


def test_certificate_rule_waits_for_fourteen_days(engine: Engine, project_id: int, clock: ManualClock) -> None:
    run_round(engine, clock)
    signal(engine, "certificate.expiring", project_id, "monitor:3", clock.now(), name="shop.example",
           days_left=29.5, threshold_days=30)
    run_round(engine, clock)
    assert alerts_of(engine, "Certificate expiring") == []
    signal(engine, "certificate.expiring", project_id, "monitor:3", clock.now(), name="shop.example",
           days_left=13.9, threshold_days=14)
    run_round(engine, clock)
    assert only(engine, "Certificate expiring").annotations["summary"] == (
        "The certificate of shop.example expires in 13.9 days")


def test_annotation_templates_are_sandboxed(engine: Engine, project_id: int, clock: ManualClock) -> None:
    add_rule(engine, project_id, clock, name="Probe", kind="event", event={"signal": "issue.new"},
             annotations={"summary": "{{ ''.__class__.__mro__[1].__subclasses__() }}"})
    signal(engine, "issue.new", project_id, "issue:1", clock.now(), issue_id=1, title="x")
    run_round(engine, clock, default_pack=False)
    assert only(engine, "Probe").annotations["summary"].startswith("template error:")


def test_rules_are_validated_with_the_field_named() -> None:
    # Templates are compiled apart, off the event loop (see test_templates for the API's answer).
    assert annotation_errors({"summary": "{{ unclosed"})["summary"].startswith("template error: ")
    with pytest.raises(ValidationError, match="unknown signal"):
        RuleIn.model_validate({"name": "x", "kind": "event", "event": {"signal": "nope"}})
    with pytest.raises(ValidationError, match="needs 'threshold'"):
        RuleIn.model_validate({"name": "x", "kind": "threshold", "event": {"signal": "issue.new"}})


def test_a_signals_only_round_leaves_threshold_alerts_alone(engine: Engine, project_id: int,
                                                            clock: ManualClock) -> None:
    add_errors(engine, project_id, clock.now(), 20)
    run_round(engine, clock)
    clock.advance(120)  # the errors left the window, but this round only applies signals
    signal(engine, "monitor.down", project_id, "monitor:1", clock.now(), name="API", error="refused")
    in_transaction(engine, lambda conn: evaluate(conn, clock.now(), thresholds=False))
    assert only(engine, "Error spike").status(clock.now()) == "firing"
    assert only(engine, "Monitor down").status(clock.now()) == "firing"
    assert not in_transaction(engine, has_new_signals)
    run_round(engine, clock)
    assert only(engine, "Error spike").status(clock.now()) == "resolved"


def test_a_flapping_alert_stays_firing_and_says_so(engine: Engine, project_id: int, clock: ManualClock) -> None:
    add_rule(engine, project_id, clock, name="Errors", kind="threshold",
             threshold={"metric": "errors", "window_minutes": 1, "threshold": 0})
    flaps = FlapTracker(start_percent=20, stop_percent=5)
    states = []
    for index in range(12):  # errors every other minute: firing, resolved, firing, …
        if index % 2 == 0:
            add_errors(engine, project_id, clock.now(), 1)
        run_round(engine, clock, default_pack=False, flaps=flaps)
        states.append(only(engine, "Errors").status(clock.now()))
        clock.advance(60)
    assert states[:4] == ["firing", "resolved", "firing", "resolved"]
    assert states[-4:] == ["firing"] * 4  # flapping: held firing
    assert only(engine, "Errors").annotations["flapping"].startswith("true")
    quiet = 0
    while only(engine, "Errors").status(clock.now()) == "firing":
        run_round(engine, clock, default_pack=False, flaps=flaps)
        clock.advance(60)
        quiet += 1
    assert 10 < quiet <= 21  # resolves once the changes have left the window (≤ 5 %)


def test_a_quick_round_fires_thresholds_of_projects_whose_counts_moved(engine: Engine, project_id: int,
                                                                       clock: ManualClock) -> None:
    from watchkeeper.alerting.metrics import recent_totals

    run_round(engine, clock)  # the default pack
    before = in_transaction(engine, lambda conn: recent_totals(conn, int(clock.now() // 60) - 1))
    add_errors(engine, project_id, clock.now(), 11)
    after = in_transaction(engine, lambda conn: recent_totals(conn, int(clock.now() // 60) - 1))
    assert before == {} and after == {project_id: 11}
    in_transaction(engine, lambda conn: evaluate(conn, clock.now(), thresholds=False, threshold_projects={999}))
    assert alerts_of(engine, "Error spike") == []  # another project's counts moved
    in_transaction(engine, lambda conn: evaluate(conn, clock.now(), thresholds=False,
                                                 threshold_projects={project_id}))
    assert only(engine, "Error spike").status(clock.now()) == "firing"
    clock.advance(120)
    in_transaction(engine, lambda conn: evaluate(conn, clock.now(), thresholds=False,
                                                 threshold_projects={project_id}))
    assert only(engine, "Error spike").status(clock.now()) == "firing"  # resolving waits for a full round
    run_round(engine, clock)
    assert only(engine, "Error spike").status(clock.now()) == "resolved"
