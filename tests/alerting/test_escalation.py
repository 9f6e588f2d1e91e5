"""Incidents from alerts and their escalation, on the real database with a manual clock: steps page
users by e-mail (local SMTP server), whoever a schedule has on call, and receivers (local HTTP server);
unacknowledged steps move on after their minutes, the policy repeats, acknowledging stops it, and the
timers survive a restart (a new Alerting on the same database)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, select

from tests.alerting.conftest import START, in_transaction
from tests.alerting.receivers import HttpReceiver, SmtpReceiver
from watchkeeper.alerting import escalation as E
from watchkeeper.alerting import incidents as I
from watchkeeper.alerting.alerts import Alert, fingerprint, save_alerts
from watchkeeper.alerting.incident_tables import alert_occurrences
from watchkeeper.alerting.oncall import LayerIn, ScheduleIn, create_schedule
from watchkeeper.alerting.responder import Responder
from watchkeeper.alerting.routing import parse_config
from watchkeeper.alerting.service import Alerting
from watchkeeper.app import Runtime, build_runtime
from watchkeeper.auth.users import create_user
from watchkeeper.config import AlertingSettings, Settings
from watchkeeper.lib.clock import ManualClock
from watchkeeper.observability import Metrics
from watchkeeper.store.engine import for_writing


@pytest.fixture
def receivers() -> Iterator[tuple[HttpReceiver, SmtpReceiver]]:
    with HttpReceiver() as http, SmtpReceiver() as smtp:
        yield http, smtp


def alerting_config(http: HttpReceiver, smtp: SmtpReceiver) -> Any:
    return parse_config({
        "route": {"receiver": "log", "group_by": ["alertname", "project"]},
        "receivers": [{"name": "log", "log_configs": [{}]},
                      {"name": "pager", "webhook_configs": [{"url": f"{http.url}/pager"}]},
                      {"name": "mail", "email_configs": [{"to": "nobody@example.com", "smarthost": smtp.smarthost,
                                                          "require_tls": False}]}],
    })


class World:
    """A runtime on a manual clock and the alerting objects of one server process."""

    def __init__(self, settings: Settings, clock: ManualClock, config: Any) -> None:
        alerting = AlertingSettings(oncall_email_receiver="mail", link_secret="s3cret")
        self.settings = settings.model_copy(update={"alerting": alerting, "public_url": "http://wk.test"})
        self.clock, self.config = clock, config
        self.runtime: Runtime = build_runtime(self.settings, clock)
        self.runtime.writer.start()
        self.start_process()

    def start_process(self) -> None:
        runtime = dataclasses.replace(self.runtime, metrics=Metrics())  # a new process has its own registry
        self.alerting = Alerting(runtime, self.config)
        self.responder = Responder(self.alerting)

    @property
    def engine(self) -> Engine:
        return for_writing(self.runtime.engine)

    def round(self) -> tuple[int, int]:
        async def go() -> tuple[int, int]:
            result = await self.responder.round()
            await self.alerting.deliver_once()
            await self.alerting.outbound.aclose()
            return result
        self.start_process()  # a fresh client per event loop
        # In a thread of its own: Playwright's sync API leaves a loop running in the main thread when
        # browser tests ran first in the session.
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            return pool.submit(asyncio.run, go()).result()

    def close(self) -> None:
        self.runtime.writer.stop()
        self.runtime.engine.dispose()


@pytest.fixture
def world(settings: Settings, receivers: tuple[HttpReceiver, SmtpReceiver]) -> Iterator[World]:
    world = World(settings, ManualClock(START), alerting_config(*receivers))
    yield world
    world.close()


def fire(world: World, name: str, severity: str, *, project: str = "shop", ago: float = 30) -> Alert:
    labels = {"alertname": name, "severity": severity, "project": project}
    now = world.clock.now()
    alert = Alert(fingerprint(labels), labels, {"summary": f"{name} in {project}"}, "firing", now - ago, now - ago,
                  None, updated_at=now)
    in_transaction(world.engine, lambda conn: save_alerts(conn, [alert], []))
    return alert


def resolve(world: World, alert: Alert) -> None:
    alert.ends_at = world.clock.now()
    in_transaction(world.engine, lambda conn: save_alerts(conn, [], [alert]))


def user(world: World, email: str) -> int:
    return int(in_transaction(world.engine, lambda conn: create_user(conn, email, "password-123",
                                                                       now=world.clock.now()).id))


def policy(world: World, steps: list[dict[str, Any]], repeat: int = 0) -> int:
    body = E.PolicyIn.model_validate({"name": "Ops", "steps": steps, "repeat": repeat})
    return int(in_transaction(world.engine, lambda conn: E.create_policy(conn, body, world.config,
                                                                         now=world.clock.now()).id))


def the_incident(world: World) -> I.Incident:
    (incident,) = in_transaction(world.engine, lambda conn: I.list_incidents(conn))
    return incident


def test_critical_alerts_of_one_group_open_one_incident_and_lower_ones_none(world: World) -> None:
    first = fire(world, "Down", "critical")
    assert world.round() == (1, 0)
    other = Alert(fingerprint({"alertname": "Down", "severity": "high", "project": "shop"}),
                  {"alertname": "Down", "severity": "high", "project": "shop"}, {}, "firing", START, START, None,
                  updated_at=START)
    in_transaction(world.engine, lambda conn: save_alerts(conn, [other], []))
    fire(world, "Slow", "medium")
    assert world.round() == (0, 0)
    incident = the_incident(world)
    assert (incident.severity, incident.state, incident.title) == ("critical", "triggered", "Down in shop")
    assert incident.impact_started_at == START - 30 and incident.created_at == START
    fired = [e["text"] for e in in_transaction(world.engine, lambda conn: I.timeline(conn, incident.id))
             if e["kind"] == "alert.fired"]
    assert len(fired) == 2  # the second alert of the group joined
    world.clock.advance(60)
    resolve(world, first)
    world.round()
    kinds = [e["kind"] for e in in_transaction(world.engine, lambda conn: I.timeline(conn, incident.id))]
    assert kinds.count("alert.resolved") == 1
    occurrences = in_transaction(world.engine, lambda conn: conn.execute(select(alert_occurrences)).all())
    assert sorted(o.severity for o in occurrences) == ["critical", "high", "medium"]


def test_steps_page_in_order_until_acknowledged_and_survive_a_restart(
        world: World, receivers: tuple[HttpReceiver, SmtpReceiver]) -> None:
    http, smtp = receivers
    alice = user(world, "alice@example.com")
    bob = user(world, "bob@example.com")
    schedule = in_transaction(world.engine, lambda conn: create_schedule(conn, ScheduleIn(
        name="Ops", time_zone="UTC", layers=[LayerIn(rotation="daily", start_date="2025-12-01", users=[bob])]),
        now=world.clock.now()))
    policy(world, [{"targets": [{"kind": "user", "id": alice}], "minutes": 5},
                   {"targets": [{"kind": "schedule", "id": schedule.id}, {"kind": "receiver", "name": "pager"}],
                    "minutes": 10}])
    fire(world, "Down", "critical")
    assert world.round() == (1, 1)
    assert [m[1] for m in smtp.messages] == [["alice@example.com"]]
    text_part = next(part for part in smtp.messages[0][2].walk() if part.get_content_type() == "text/plain")
    body = bytes(text_part.get_payload(decode=True)).decode()
    assert "Acknowledge: http://wk.test/incident-links/" in body
    assert smtp.messages[0][2]["Subject"] == f"[FIRING:1] #{the_incident(world).id} Down in shop"
    world.clock.advance(299)
    assert world.round() == (0, 0)
    # A restart: a new process (new Alerting and Responder) on the same database carries on.
    world.start_process()
    world.clock.advance(1)
    assert world.round() == (0, 1)
    assert [m[1] for m in smtp.messages][1:] == [["bob@example.com"]]
    (page,) = http.wait_for(1)
    assert page.path == "/pager" and page.json()["incident"]["id"] == the_incident(world).id
    # Acknowledged: no more pages, ever.
    incident_id = the_incident(world).id
    in_transaction(world.engine, lambda conn: I.change_state(conn, incident_id, "acknowledged",
                                                             now=world.clock.now(), actor_user_id=alice))
    world.clock.advance(3600)
    assert world.round() == (0, 0)
    assert len(smtp.messages) == 2 and len(http.requests) == 1
    timeline = in_transaction(world.engine, lambda conn: I.timeline(conn, incident_id))
    notes = [e["text"] for e in timeline if e["kind"] == "notification"]
    assert notes == ["Ops step 1: paged alice@example.com by e-mail",
                     "Ops step 2: Ops: paged bob@example.com by e-mail; paged receiver pager"]


def test_the_policy_repeats_k_times_then_stops(world: World, receivers: tuple[HttpReceiver, SmtpReceiver]) -> None:
    http, _ = receivers
    policy(world, [{"targets": [{"kind": "receiver", "name": "pager"}], "minutes": 1}], repeat=2)
    fire(world, "Down", "high")
    for _ in range(6):
        world.round()
        world.clock.advance(60)
    assert len(http.wait_for(3)) == 3
    incident = the_incident(world)
    assert incident.next_escalation_at is None and incident.escalation_round == 3
    kinds = [e["kind"] for e in in_transaction(world.engine, lambda conn: I.timeline(conn, incident.id))]
    assert kinds.count("notification") == 3 and kinds[-1] == "escalation"


def test_a_project_can_choose_its_incident_severities(world: World) -> None:
    from watchkeeper.auth.projects import create_project

    project = in_transaction(world.engine, lambda conn: create_project(conn, "Quiet", now=START))
    in_transaction(world.engine, lambda conn: I.save_project_severities(conn, project.id, []))
    labels = {"alertname": "Down", "severity": "critical", "project_id": str(project.id)}
    alert = Alert(fingerprint(labels), labels, {}, "firing", START, START, None, project_id=project.id,
                  updated_at=START)
    in_transaction(world.engine, lambda conn: save_alerts(conn, [alert], []))
    assert world.round() == (0, 0)
    in_transaction(world.engine, lambda conn: I.save_project_severities(conn, project.id, ["critical"]))
    resolve(world, alert)
    world.round()
    alert.ends_at, alert.starts_at = None, START + 10
    world.clock.advance(20)
    in_transaction(world.engine, lambda conn: save_alerts(conn, [], [alert]))
    assert world.round() == (1, 0)
    assert the_incident(world).project_id == project.id


def test_states_move_forward_only_each_with_its_time(world: World) -> None:
    incident = in_transaction(world.engine, lambda conn: I.declare(conn, title="Checkout slow", severity="high",
                                                                   now=START, impact_started_at=START - 600))
    for offset, state in ((60, "acknowledged"), (120, "investigating"), (300, "mitigated"), (900, "resolved")):
        def move(conn: Connection, s: str = state, o: int = offset) -> I.Incident:
            return I.change_state(conn, incident.id, s, now=START + o, actor_user_id=None)

        in_transaction(world.engine, move)
    done = the_incident(world)
    assert (done.acknowledged_at, done.investigating_at, done.mitigated_at, done.resolved_at) == (
        START + 60, START + 120, START + 300, START + 900)
    with pytest.raises(I.IncidentError):
        in_transaction(world.engine, lambda conn: I.change_state(conn, incident.id, "acknowledged", now=START + 901,
                                                                 actor_user_id=None))
    markdown = in_transaction(world.engine, lambda conn: I.postmortem(conn, incident.id))
    for heading in ("## Summary", "## Impact", "## Timeline", "## Root cause", "## Action items"):
        assert heading in markdown
    assert "| 2026-01-01 00:15:00 UTC | status: Resolved |" in markdown
    assert "(after 10 min 0 s)" in markdown


def test_an_email_receiver_without_email_stops_the_start(world: World) -> None:
    from watchkeeper.config import ConfigError

    settings = world.settings.model_copy(update={"alerting": AlertingSettings(oncall_email_receiver="pager")})
    runtime = dataclasses.replace(world.runtime, settings=settings, metrics=Metrics())
    with pytest.raises(ConfigError, match=r"oncall_email_receiver.*'pager'"):
        Responder(Alerting(runtime, world.config))


def test_impact_starts_when_the_alert_became_active_before_its_for(world: World) -> None:
    labels = {"alertname": "Errors", "severity": "high", "project": "shop"}
    now = world.clock.now()
    pending_since, firing_since = now - 300, now - 60  # a rule with `for: 4m`
    alert = Alert(fingerprint(labels), labels, {}, "firing", pending_since, firing_since, None, updated_at=now)
    in_transaction(world.engine, lambda conn: save_alerts(conn, [alert], []))
    assert world.round() == (1, 0)
    incident = the_incident(world)
    assert (incident.impact_started_at, incident.created_at) == (pending_since, now)
