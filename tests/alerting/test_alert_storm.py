"""An alert storm (thousands of alerts firing at once) on the real database: the incident responder takes it
in rounds of at most MAX_NEW_PER_ROUND alerts, oldest first, each followed at once by the next, so a round
never holds the whole storm in memory; every alert is still recorded exactly once and the group still
opens exactly one incident. A full evaluation round reads only the alerts it can change, not every
new-issue alert of the storm, and the dispatcher's index keeps each alert's version and groups, not the
alert."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from collections.abc import Iterator

import orjson
import pytest
from sqlalchemy import Connection, Engine, func, select, update

from tests.alerting.conftest import START, add_errors, in_transaction, run_round
from tests.alerting.receivers import HttpReceiver, SmtpReceiver
from tests.alerting.test_dispatch import CONFIG, tick
from tests.alerting.test_escalation import World, alerting_config, the_incident
from watchkeeper.alerting import incidents as I
from watchkeeper.alerting.alerts import Alert, fingerprint, save_alerts
from watchkeeper.alerting.channels import log as log_channel
from watchkeeper.alerting.channels import title
from watchkeeper.alerting.dispatch import Dispatcher
from watchkeeper.alerting.evaluator import _full_alerts
from watchkeeper.alerting.incident_tables import alert_occurrences
from watchkeeper.alerting.responder import FULL_LOOK_SECONDS, MAX_NEW_PER_ROUND, anything_to_do
from watchkeeper.alerting.routing import LogConfig, parse_config
from watchkeeper.alerting.rules import list_rules
from watchkeeper.alerting.tables import alert_rules, notification_log
from watchkeeper.alerting.tables import alerts as alerts_table
from watchkeeper.config import Settings
from watchkeeper.lib.clock import ManualClock
from watchkeeper.lib.signals import emit_signals


@pytest.fixture
def world(settings: Settings) -> Iterator[World]:
    with HttpReceiver() as http, SmtpReceiver() as smtp:
        world = World(settings, ManualClock(START), alerting_config(http, smtp))
        yield world
        world.close()


def storm(world: World, count: int) -> list[Alert]:
    """`count` critical alerts of one group, the first one oldest."""
    now = world.clock.now()
    fired = []
    for i in range(count):
        labels = {"alertname": "NewIssue", "severity": "critical", "project": "shop", "issue": str(i)}
        start = now - 1000 + i * 0.01
        fired.append(Alert(fingerprint(labels), labels, {"summary": f"issue {i}"}, "firing", start, start, None,
                           updated_at=now))
    in_transaction(world.engine, lambda conn: save_alerts(conn, fired, []))
    return fired


def recorded(world: World, *, open_only: bool = False) -> set[str]:
    query = select(alert_occurrences.c.fingerprint)
    if open_only:
        query = query.where(alert_occurrences.c.resolved_at.is_(None))
    return set(in_transaction(world.engine, lambda conn: conn.execute(query).scalars().all()))


def test_a_storm_is_recorded_in_bounded_rounds_oldest_first_and_opens_one_incident(world: World) -> None:
    fired = storm(world, 2 * MAX_NEW_PER_ROUND + 1)
    assert world.round() == (1, 0)
    assert world.responder.more  # the loop runs the next round at once
    assert recorded(world) == {a.fingerprint for a in fired[:MAX_NEW_PER_ROUND]}
    assert world.round() == (0, 0) and world.responder.more
    assert recorded(world) == {a.fingerprint for a in fired[:2 * MAX_NEW_PER_ROUND]}
    assert world.round() == (0, 0) and not world.responder.more
    assert recorded(world) == {a.fingerprint for a in fired}
    assert world.round() == (0, 0) and not world.responder.more
    now = world.clock.now()
    assert not in_transaction(world.engine, lambda conn: anything_to_do(conn, now))

    incident = the_incident(world)
    timeline = in_transaction(world.engine, lambda conn: I.timeline(conn, incident.id))
    assert sum(e["kind"] == "alert.fired" for e in timeline) == len(fired)  # each joined it once

    # The storm ends: the occurrences close in bounded rounds too, each once.
    world.clock.advance(60)
    for alert in fired:
        alert.ends_at, alert.updated_at = world.clock.now(), world.clock.now()
    in_transaction(world.engine, lambda conn: save_alerts(conn, [], fired))
    world.round()
    assert world.responder.more and len(recorded(world, open_only=True)) == len(fired) - MAX_NEW_PER_ROUND
    world.round()
    world.round()
    assert not world.responder.more and recorded(world, open_only=True) == set()
    timeline = in_transaction(world.engine, lambda conn: I.timeline(conn, incident.id))
    assert sum(e["kind"] == "alert.resolved" for e in timeline) == len(fired)
    total = in_transaction(world.engine, lambda conn: conn.execute(select(func.count()).select_from(
        alert_occurrences)).scalar())
    assert total == len(fired)


def test_later_rounds_of_one_responder_look_only_at_changed_alerts(world: World) -> None:
    """One process's responder looks at everything in its first round, then only at the alerts whose
    version moved (and those whose ends_at passed), so an alert storm is not compared with every
    occurrence again each round; an alert deleted outright is found by the next full look."""
    responder = world.responder

    def round_here() -> tuple[int, int]:
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            return pool.submit(asyncio.run, responder.round()).result()

    fired = storm(world, 3)
    assert round_here() == (1, 0)
    assert recorded(world, open_only=True) == {a.fingerprint for a in fired}
    world.clock.advance(5)
    now = world.clock.now()
    late = Alert(fingerprint({"alertname": "NewIssue", "issue": "late"}), {"alertname": "NewIssue", "issue": "late",
                 "severity": "critical", "project": "shop"}, {}, "firing", now, now, now + 30, updated_at=now)
    fired[0].ends_at = fired[0].updated_at = now
    in_transaction(world.engine, lambda conn: save_alerts(conn, [late], [fired[0]]))
    world.clock.advance(1)
    assert round_here() == (0, 0)
    assert recorded(world, open_only=True) == {fired[1].fingerprint, fired[2].fingerprint, late.fingerprint}
    world.clock.advance(40)  # the late alert's ends_at passes: nothing was written, it resolves
    round_here()
    assert recorded(world, open_only=True) == {fired[1].fingerprint, fired[2].fingerprint}
    # Deleted outright (as with its rule): unseen by the rounds that follow, closed by the next full look.
    in_transaction(world.engine, lambda conn: conn.execute(alerts_table.delete().where(
        alerts_table.c.fingerprint == fired[1].fingerprint)))
    world.clock.advance(1)
    round_here()
    assert recorded(world, open_only=True) == {fired[1].fingerprint, fired[2].fingerprint}
    world.clock.advance(FULL_LOOK_SECONDS)
    round_here()
    assert recorded(world, open_only=True) == {fired[2].fingerprint}
    incident_id = the_incident(world).id
    timeline = in_transaction(world.engine, lambda conn: I.timeline(conn, incident_id))
    assert sum(e["kind"] == "alert.resolved" for e in timeline) == 3


def test_an_alert_firing_again_is_a_new_occurrence_and_a_pending_one_none(world: World) -> None:
    (alert,) = storm(world, 1)
    pending_labels = {"alertname": "Slow", "severity": "critical", "project": "shop"}
    now = world.clock.now()
    pending = Alert(fingerprint(pending_labels), pending_labels, {}, "pending", now, None, None, updated_at=now)
    in_transaction(world.engine, lambda conn: save_alerts(conn, [pending], []))
    world.round()
    assert recorded(world) == {alert.fingerprint}
    world.clock.advance(60)
    alert.ends_at = alert.updated_at = world.clock.now()
    in_transaction(world.engine, lambda conn: save_alerts(conn, [], [alert]))
    world.round()
    assert recorded(world, open_only=True) == set()
    world.clock.advance(60)
    alert.starts_at = alert.active_at = world.clock.now()
    alert.ends_at, alert.updated_at = None, world.clock.now()
    in_transaction(world.engine, lambda conn: save_alerts(conn, [], [alert]))
    world.round()
    assert recorded(world, open_only=True) == {alert.fingerprint}
    count = in_transaction(world.engine, lambda conn: conn.execute(select(func.count()).select_from(
        alert_occurrences)).scalar())
    assert count == 2


def test_a_full_round_reads_only_the_alerts_it_can_change(engine: Engine, project_id: int,
                                                          clock: ManualClock) -> None:
    run_round(engine, clock)
    rows = [{"kind": "issue.new", "project_id": project_id, "subject": f"issue:{i}", "created_at": clock.now(),
             "payload": {"issue_id": i, "title": f"KeyError {i}"}} for i in range(30)]
    in_transaction(engine, lambda conn: emit_signals(conn, rows))
    report = run_round(engine, clock)
    assert report.new == 30 and report.states == {"firing": 30}
    rules = {r.name: r for r in in_transaction(engine, lambda conn: list_rules(conn, project_id))}
    slugs = {project_id: "shop"}

    def full(conn: Connection) -> tuple[dict[str, Alert], dict[str, int]]:
        enabled = {r.id: r for r in list_rules(conn, enabled_only=True)}
        return _full_alerts(conn, enabled, {}, slugs, clock.now())

    # A minute on, nothing can change the new-issue alerts: a full round leaves them unread, and still
    # counts them for the gauge.
    clock.advance(60)
    assert in_transaction(engine, full) == ({}, {"firing": 30})
    assert run_round(engine, clock).states == {"firing": 30}
    # Their resolve_after (5 minutes) passed: they are read, and end.
    clock.advance(240)
    existing, others = in_transaction(engine, full)
    assert len(existing) == 30 and others == {}
    report = run_round(engine, clock)
    assert report.changed == 30 and report.states == {"resolved": 30}
    assert in_transaction(engine, full) == ({}, {"resolved": 30})

    # A threshold rule's alerts are read every full round; a disabled rule's alerts end.
    add_errors(engine, project_id, clock.now(), 50)
    assert run_round(engine, clock).new == 1
    spike = rules["Error spike"].id
    existing, _ = in_transaction(engine, full)
    assert [a.rule_id for a in existing.values()] == [spike]
    in_transaction(engine, lambda conn: conn.execute(update(alert_rules).where(alert_rules.c.id == spike)
                                                     .values(enabled=False)))
    existing, _ = in_transaction(engine, full)
    assert [a.rule_id for a in existing.values()] == [spike]  # read as one of a rule no longer enabled
    clock.advance(1)
    report = run_round(engine, clock)
    assert report.changed == 1 and report.states == {"resolved": 31}


def test_the_dispatcher_index_keeps_versions_and_groups_not_the_alerts(engine: Engine, clock: ManualClock) -> None:
    dispatcher = Dispatcher(parse_config(CONFIG))
    now = clock.now()
    fired = []
    for i in range(3000):
        labels = {"alertname": "NewIssue", "issue": str(i)}
        fired.append(Alert(fingerprint(labels), labels, {"summary": f"issue {i}"}, "firing", now, now, None,
                           updated_at=now))
    in_transaction(engine, lambda conn: save_alerts(conn, fired, []))
    in_transaction(engine, lambda conn: dispatcher.refresh(conn, now))
    assert len(dispatcher.alerts) == 3000
    assert not any(isinstance(entry, Alert) for entry in dispatcher.alerts.values())
    (group,) = dispatcher.groups.values()
    assert {k for entry in dispatcher.alerts.values() for k in entry.group_keys} == {group.key}

    # The flush reads the members again: one notification per integration, every alert with its annotations.
    clock.advance(30)
    sent = tick(engine, dispatcher, clock)
    assert sent and all(len(n["alerts"]) == 3000 for n in sent)
    assert {a["annotations"]["summary"] for a in sent[0]["alerts"]} == {f"issue {i}" for i in range(3000)}
    clock.advance(300)
    assert tick(engine, dispatcher, clock) == []  # nothing changed: nothing sent again
    # One resolves: it leaves the index and its group when read again.
    resolved = fired[0]
    resolved.ends_at, resolved.state, resolved.updated_at = None, "pending", clock.now()
    in_transaction(engine, lambda conn: save_alerts(conn, [], [resolved]))
    clock.advance(1)
    in_transaction(engine, lambda conn: dispatcher.refresh(conn, clock.now()))
    assert len(dispatcher.alerts) == 2999 and resolved.fingerprint not in group.members


def test_a_group_with_more_alerts_than_a_notification_lists_counts_them_all(engine: Engine,
                                                                          clock: ManualClock) -> None:
    """A flush lists the first alerts only (bounded memory for a storm's group) and counts the rest in
    truncatedAlerts; titles, common labels and the notification log still take every alert into account."""
    dispatcher = Dispatcher(parse_config(CONFIG), max_listed=10)
    now = clock.now()
    fired = []
    for i in range(25):  # the first 10 (listed) share a shard label that the others do not have
        labels = {"alertname": "NewIssue", "team": "a", "issue": str(i), "shard": "x" if i < 10 else "y"}
        fired.append(Alert(fingerprint(labels), labels, {"summary": f"issue {i}", "runbook": "r"}, "firing",
                           now - 100 + i, now - 100 + i, None, updated_at=now))
    in_transaction(engine, lambda conn: save_alerts(conn, fired, []))
    sent = {n["integration"]: n for n in tick(engine, dispatcher, clock)}  # older than group_wait: at once
    assert sorted(sent) == ["slack/0", "webhook/0"]
    for payload in sent.values():
        assert [a["fingerprint"] for a in payload["alerts"]] == [a.fingerprint for a in fired[:10]]
        assert (payload["truncatedAlerts"], payload["truncatedFiring"], payload["status"]) == (15, 15, "firing")
        assert payload["commonLabels"] == {"alertname": "NewIssue", "team": "a"}
        assert payload["commonAnnotations"] == {"runbook": "r"}
        assert title(payload) == "[FIRING:25] NewIssue"
    logged = in_transaction(engine, lambda conn: conn.execute(select(notification_log.c.firing)).scalars().all())
    assert [sorted(orjson.loads(f)) for f in logged] == [sorted(a.fingerprint for a in fired)] * 2

    # 12 resolve: the webhook (send_resolved) lists firing ones first and counts the resolved ones too.
    clock.advance(300)
    for alert in fired[:12]:
        alert.ends_at = alert.updated_at = clock.now()
    in_transaction(engine, lambda conn: save_alerts(conn, [], fired[:12]))
    clock.advance(1)
    sent = {n["integration"]: n for n in tick(engine, dispatcher, clock)}
    hook = sent["webhook/0"]
    assert [a["fingerprint"] for a in hook["alerts"]] == [a.fingerprint for a in fired[12:22]]
    assert (hook["truncatedAlerts"], hook["truncatedFiring"]) == (15, 3) and title(hook) == "[FIRING:13] NewIssue"
    assert hook["commonLabels"] == {"alertname": "NewIssue", "team": "a"}


def test_the_log_channel_writes_a_stored_payload_as_it_would_serialise_it(caplog: pytest.LogCaptureFixture) -> None:
    alerts = [{"status": "firing", "labels": {"alertname": "Ünïcode ✓", "issue": str(i)},
               "annotations": {"summary": "quote \" and\nnewline", "value": "1.5"}, "startsAt": "2026-01-01T00:00:00Z",
               "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "", "fingerprint": f"{i:016x}"} for i in range(3)]
    payload = {"version": "4", "groupKey": "{}:{}", "truncatedAlerts": 0, "status": "firing", "receiver": "log",
               "groupLabels": {"alertname": "Ünïcode ✓"}, "commonLabels": {}, "commonAnnotations": {},
               "externalURL": "http://wk.test", "alerts": alerts, "ratio": 0.1 + 0.2}
    text = orjson.dumps(payload).decode()  # as the outbox stores it
    with caplog.at_level(logging.WARNING, logger="watchkeeper.alerts"):
        asyncio.run(log_channel.send_stored(LogConfig(), orjson.loads(text), text))
    (record,) = caplog.records
    assert record.getMessage() == f"{title(payload)} {orjson.dumps(payload).decode()}"
    assert record.getMessage().startswith("[FIRING:3] Ünïcode ✓ {")
