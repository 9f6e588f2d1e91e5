"""Grouping, group timers, repeat, resolved notifications, silences, inhibition and the notification log,
on the real database with a manual clock."""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import Connection, Engine, func, select

from tests.alerting.conftest import in_transaction
from watchkeeper.alerting.alerts import Alert, fingerprint, load_alerts, save_alerts
from watchkeeper.alerting.dispatch import Dispatcher, dispatch_round
from watchkeeper.alerting.matchers import parse_matchers
from watchkeeper.alerting.routing import AlertingConfig, parse_config
from watchkeeper.alerting.silences import expire_silence, save_silence
from watchkeeper.alerting.tables import notification_outbox
from watchkeeper.lib.clock import ManualClock

CONFIG = {
    "route": {"receiver": "team", "group_by": ["alertname"], "group_wait": "30s", "group_interval": "5m",
              "repeat_interval": "4h"},
    "receivers": [{"name": "team", "webhook_configs": [{"url": "http://127.0.0.1:9/hook"}],
                   "slack_configs": [{"api_url": "http://127.0.0.1:9/slack"}]}],
    "inhibit_rules": [{"source_matchers": ['alertname="SiteDown"'], "target_matchers": ['alertname="Slow"'],
                       "equal": ["site"]}],
}


def config() -> AlertingConfig:
    return parse_config(CONFIG)


def fire(engine: Engine, clock: ManualClock, alertname: str, **labels: str) -> str:
    all_labels = {"alertname": alertname, **labels}
    fp = fingerprint(all_labels)
    now = clock.now()
    alert = Alert(fp, all_labels, {"summary": alertname}, "firing", now, now, None, updated_at=now)
    in_transaction(engine, lambda conn: save_alerts(conn, [alert], []))
    return fp


def resolve(engine: Engine, clock: ManualClock, fp: str) -> None:
    def change(conn: Connection) -> None:
        (alert,) = [a for a in load_alerts(conn) if a.fingerprint == fp]
        alert.ends_at = clock.now()
        save_alerts(conn, [], [alert])

    in_transaction(engine, change)


def tick(engine: Engine, dispatcher: Dispatcher, clock: ManualClock) -> list[dict[str, Any]]:
    """One dispatch round; returns the notifications it queued (integration and payload)."""
    now = clock.now()
    before = in_transaction(engine, lambda conn: conn.execute(select(func.max(notification_outbox.c.id))).scalar())
    result = in_transaction(engine, lambda conn: dispatch_round(conn, dispatcher, now, "http://wk.test"))
    dispatcher.flushed(result.plans, now)
    rows = in_transaction(engine, lambda conn: conn.execute(
        select(notification_outbox).where(notification_outbox.c.id > (before or 0))).all())
    assert len(rows) == result.queued
    return [{"integration": r.integration, **orjson.loads(r.payload)} for r in rows]


def test_a_group_waits_group_wait_then_notifies_each_integration_once(engine: Engine, clock: ManualClock) -> None:
    dispatcher = Dispatcher(config())
    fire(engine, clock, "HighErrors", project="shop")
    assert tick(engine, dispatcher, clock) == []
    clock.advance(29)
    assert tick(engine, dispatcher, clock) == []
    clock.advance(1)
    sent = tick(engine, dispatcher, clock)
    assert sorted(n["integration"] for n in sent) == ["slack/0", "webhook/0"]
    payload = sent[0]
    assert payload["version"] == "4" and payload["status"] == "firing" and payload["receiver"] == "team"
    assert payload["groupKey"] == '{}:{alertname="HighErrors"}'
    assert payload["groupLabels"] == {"alertname": "HighErrors"}
    assert payload["commonLabels"] == {"alertname": "HighErrors", "project": "shop"}
    clock.advance(1)
    assert tick(engine, dispatcher, clock) == []


def test_a_thousand_alerts_in_one_group_make_one_notification(engine: Engine, clock: ManualClock) -> None:
    dispatcher = Dispatcher(config())
    for index in range(1000):
        fire(engine, clock, "Disk", host=f"h{index}")
    assert tick(engine, dispatcher, clock) == []  # the group forms
    clock.advance(30)
    sent = [n for n in tick(engine, dispatcher, clock) if n["integration"] == "webhook/0"]
    clock.advance(300)
    sent += [n for n in tick(engine, dispatcher, clock) if n["integration"] == "webhook/0"]
    assert len(sent) == 1 and len(sent[0]["alerts"]) == 1000


def test_new_alerts_wait_for_group_interval_and_repeat_interval_resends(engine: Engine, clock: ManualClock) -> None:
    dispatcher = Dispatcher(config())
    fire(engine, clock, "Errors", project="a")
    tick(engine, dispatcher, clock)
    clock.advance(30)
    assert len(tick(engine, dispatcher, clock)) == 2
    clock.advance(60)
    fire(engine, clock, "Errors", project="b")
    assert tick(engine, dispatcher, clock) == []  # next look is group_interval after the first flush
    clock.advance(240)
    sent = tick(engine, dispatcher, clock)
    assert len(sent) == 2 and len(sent[0]["alerts"]) == 2
    for _ in range(47):  # nothing changes for 4 h minus one interval
        clock.advance(300)
        assert tick(engine, dispatcher, clock) == []
    clock.advance(300)
    assert len(tick(engine, dispatcher, clock)) == 2  # repeat_interval


def test_resolved_alerts_notify_only_integrations_that_want_it(engine: Engine, clock: ManualClock) -> None:
    dispatcher = Dispatcher(config())
    fp = fire(engine, clock, "Down", site="shop")
    tick(engine, dispatcher, clock)
    clock.advance(30)
    assert len(tick(engine, dispatcher, clock)) == 2
    resolve(engine, clock, fp)
    clock.advance(300)
    sent = tick(engine, dispatcher, clock)
    assert [(n["integration"], n["status"]) for n in sent] == [("webhook/0", "resolved")]  # slack: send_resolved off
    clock.advance(300)
    assert tick(engine, dispatcher, clock) == []


def test_an_alert_resolved_before_group_wait_sends_nothing(engine: Engine, clock: ManualClock) -> None:
    dispatcher = Dispatcher(config())
    fp = fire(engine, clock, "Blip")
    tick(engine, dispatcher, clock)
    clock.advance(10)
    resolve(engine, clock, fp)
    clock.advance(20)
    assert tick(engine, dispatcher, clock) == []


def test_silences_and_inhibition_leave_alerts_out(engine: Engine, clock: ManualClock) -> None:
    dispatcher = Dispatcher(config())
    silence = in_transaction(engine, lambda conn: save_silence(
        conn, parse_matchers(['alertname="Noisy"']), starts_at=clock.now(), ends_at=clock.now() + 3600,
        created_by="ops@example.com", comment="known", now=clock.now()))
    fire(engine, clock, "Noisy")
    fire(engine, clock, "SiteDown", site="shop")
    fire(engine, clock, "Slow", site="shop")  # inhibited by SiteDown on the same site
    fire(engine, clock, "Slow", site="blog")
    tick(engine, dispatcher, clock)
    clock.advance(30)
    sent = [n for n in tick(engine, dispatcher, clock) if n["integration"] == "webhook/0"]
    assert sorted((n["groupLabels"]["alertname"], len(n["alerts"])) for n in sent) == [
        ("SiteDown", 1), ("Slow", 1)]
    slow = next(n for n in sent if n["groupLabels"]["alertname"] == "Slow")
    assert slow["alerts"][0]["labels"]["site"] == "blog"
    in_transaction(engine, lambda conn: expire_silence(conn, silence.id, now=clock.now()))
    clock.advance(1)
    # The Noisy group forms now; its alert is older than group_wait, so it is flushed at once.
    assert [n["groupLabels"] for n in tick(engine, dispatcher, clock) if n["integration"] == "webhook/0"] == [
        {"alertname": "Noisy"}]


def test_a_restart_does_not_repeat_notifications(engine: Engine, clock: ManualClock) -> None:
    fire(engine, clock, "Down", site="shop")
    first = Dispatcher(config())
    tick(engine, first, clock)
    clock.advance(30)
    assert len(tick(engine, first, clock)) == 2
    clock.advance(5)
    restarted = Dispatcher(config())  # groups are in memory; the notification log is not
    assert tick(engine, restarted, clock) == []
    clock.advance(600)
    assert tick(engine, restarted, clock) == []


def test_alerts_of_monitors_in_a_maintenance_window_are_muted(engine: Engine, project_id: int,
                                                              clock: ManualClock) -> None:
    from watchkeeper.uptime.maintenance import MaintenanceSpec, create_window

    spec = MaintenanceSpec(title="db upgrade", monitor_ids=[5], starts_at=clock.now() - 60,
                           ends_at=clock.now() + 600)
    in_transaction(engine, lambda conn: create_window(conn, project_id, spec, now=clock.now()))
    dispatcher = Dispatcher(config())
    fire(engine, clock, "Monitor down", project_id=str(project_id), monitor="5")
    fire(engine, clock, "Monitor down", project_id=str(project_id), monitor="6")
    tick(engine, dispatcher, clock)
    clock.advance(30)
    (sent,) = [n for n in tick(engine, dispatcher, clock) if n["integration"] == "webhook/0"]
    assert [a["labels"]["monitor"] for a in sent["alerts"]] == ["6"]


def test_sibling_routes_without_matchers_each_notify_their_own_receiver(engine: Engine, clock: ManualClock) -> None:
    # Two catch-all children, the first with `continue`: the alert goes to both receivers, each once.
    # (Both routes spell `{}/{}`; they were one aggregation group, so the second receiver got nothing.)
    dispatcher = Dispatcher(parse_config({
        "route": {"receiver": "log", "group_wait": "30s", "routes": [
            {"receiver": "hook", "continue": True}, {"receiver": "mail"}]},
        "receivers": [{"name": "log"}, {"name": "hook", "webhook_configs": [{"url": "http://127.0.0.1:9/hook"}]},
                      {"name": "mail", "slack_configs": [{"api_url": "http://127.0.0.1:9/slack"}]}],
    }))
    fire(engine, clock, "MonitorDown", monitor="shop")
    clock.advance(30)
    sent = tick(engine, dispatcher, clock)
    assert sorted((n["receiver"], n["integration"], len(n["alerts"])) for n in sent) == [
        ("hook", "webhook/0", 1), ("mail", "slack/0", 1)]
    assert len({n["groupKey"] for n in sent}) == 2
