"""Alerting inside the server: `mount(app)` adds the REST API and the Alertmanager API v2; `start(app)`
(from the app's lifespan) runs the evaluator, the dispatcher and the delivery worker.

Each step also has a `*_once` method that runs one round; the tests drive those with a manual clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Callable, Collection
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from sqlalchemy import Connection

from watchkeeper.alerting import responder
from watchkeeper.alerting.dispatch import Dispatcher, decide_flushes, write_decisions
from watchkeeper.alerting.evaluator import read_round
from watchkeeper.alerting.flapping import FlapTracker
from watchkeeper.alerting.metrics import recent_totals
from watchkeeper.alerting.outbox import DeliveryWorker
from watchkeeper.alerting.rounds import RoundPlan, RoundReport, apply_round, has_new_signals
from watchkeeper.alerting.routing import AlertingConfig, RouteConfig, load_config
from watchkeeper.alerting.routing_store import load_stored, stored_if_newer
from watchkeeper.alerting.rules import apply_default_pack, projects_without_pack
from watchkeeper.alerting.rules_file import load_rules_file, sync_rules
from watchkeeper.config import AlertingSettings, ConfigError, Settings
from watchkeeper.lib.outbound import Outbound
from watchkeeper.lib.periodic import repeat
from watchkeeper.store.leases import Job
from watchkeeper.store.writer import call_each

if TYPE_CHECKING:
    from watchkeeper.app import Runtime

log = logging.getLogger(__name__)


class AlertingMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.evaluation = Histogram(
            "watchkeeper_alert_evaluation_seconds", "Duration of a full evaluation round (all rules)",
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10), registry=registry)
        self.alerts = Gauge("watchkeeper_alerts", "Alerts from rules after the last full round, by state",
                            ["state"], registry=registry)
        self.notifications = Counter(
            "watchkeeper_alert_notifications", "Notification attempts, by integration and outcome "
            "(sent, retry, failed)", ["integration", "outcome"], registry=registry)
        # Time the shared writer (and so ingest) spends on alerting's writes, per kind of round: the
        # figure that says what alerting costs ingest, robust to a busy machine.
        self.writer = Histogram(
            "watchkeeper_alerting_writer_seconds", "Time inside the writer per alerting write, by round "
            "(evaluate, quick, dispatch, pack)", ["round"],
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1), registry=registry)
        # The same in CPU time of the writer thread: unlike the wall time, not inflated by other
        # processes competing for the CPU (the figure to compare across runs on a busy machine).
        self.writer_cpu = Histogram(
            "watchkeeper_alerting_writer_cpu_seconds", "CPU time of the writer thread per alerting write, by "
            "round", ["round"], buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1),
            registry=registry)
        self.conflicts = Counter(
            "watchkeeper_alerting_round_conflicts", "Rounds not written because what they read moved meanwhile",
            ["round"], registry=registry)

    def observe_round(self, report: RoundReport, seconds: float) -> None:
        self.evaluation.observe(seconds)
        for state in ("pending", "firing", "resolved"):
            self.alerts.labels(state).set(report.states.get(state, 0))


class Alerting:
    """What alerting keeps for the life of the app (on `app.state.alerting`)."""

    def __init__(self, runtime: Runtime, config: AlertingConfig | None = None) -> None:
        self.runtime = runtime
        self.settings = runtime.settings.alerting
        # Where the receivers and the routing tree come from: the file (read-only in the UI and the API,
        # reloaded when it changes or on SIGHUP), the database (edited in the UI and the API), or the
        # caller (tests: fixed).
        self.source = "given" if config is not None else "file" if self.settings.config_file else "database"
        self.config_error: str | None = None  # why the file's last change was not taken
        self._file_stamp: tuple[int, int, int] | None = None
        self._stored_version: int | None = None
        self._reload_asked = False
        if config is None and self.settings.config_file is not None:
            # Validated now, so a wrong routing file stops start-up with a message naming the key.
            self._file_stamp = file_stamp(self.settings.config_file)
            config = load_config(self.settings.config_file)
        elif config is None:
            with runtime.engine.connect() as conn:
                self._stored_version, config = load_stored(conn)
        self.config: AlertingConfig = config
        path = self.settings.rules_file
        self.rules_file = load_rules_file(path) if path is not None else None
        self.dispatcher = Dispatcher(self.config)
        self.outbound = Outbound(runtime.settings.outbound, max_connections=50)
        self.metrics = AlertingMetrics(runtime.metrics.registry)
        self.delivery = DeliveryWorker(self.write, runtime.clock, self.settings, self.config, self.outbound,
                                       on_outcome=lambda kind, outcome: self.metrics.notifications.labels(
                                           kind, outcome).inc())
        # Set after each evaluation round and by `wake`: the delivery job looks at once.
        self._evaluated = asyncio.Event()
        self.responder: responder.Responder | None = None  # made on first use (responder.responder_for)
        self.flaps = (FlapTracker(self.settings.flap_start_percent, self.settings.flap_stop_percent)
                      if self.settings.flap_start_percent > 0 else None)
        self.started_at = runtime.clock.now()
        self._last_totals: dict[int, int] = {}

    async def write(self, function: Callable[[Connection], Any]) -> Any:
        return await self.runtime.writer.run(call_each, function)

    @property
    def read_only(self) -> bool:
        """Whether the receivers and routes come from somewhere else than the database."""
        return self.source != "database"

    @property
    def needs_channel(self) -> bool:
        """Whether notifications only reach the server log and an admin can add a channel here (a fresh
        install): the pages then lead the admin to add one."""
        return self.source == "database" and not self._channels()

    @property
    def needs_route(self) -> bool:
        """Whether channels exist but no route sends alerts to one, so they still reach only the log (a
        channel was added, its test passed, and nobody is told yet): the pages lead to the routing tree."""
        channels = self._channels()
        return self.source == "database" and bool(channels) and not channels & _routed(self.config.route)

    def _channels(self) -> set[str]:
        return {r.name for r in self.config.receivers if any(not key.startswith("log/") for key in r.integrations())}

    def ask_reload(self) -> None:
        """SIGHUP: read the routing file again at the next round, changed or not."""
        self._reload_asked = True
        self.wake()

    async def refresh_config(self) -> bool:
        """Take up a changed routing file (a bad one is logged and kept in `config_error`; the running
        configuration stays) or a change stored by any process; True when the configuration changed.
        One `stat` or one small read when nothing changed: called every round and by the pages."""
        if self.source == "file":
            path = self.settings.config_file
            assert path is not None
            stamp = file_stamp(path)
            if stamp == self._file_stamp and not self._reload_asked:
                return False
            self._file_stamp, self._reload_asked = stamp, False
            try:
                config = await asyncio.to_thread(load_config, path)
            except ConfigError as exc:
                self.config_error = str(exc)
                log.error("routing file not reloaded, the previous configuration stays: %s", exc)
                return False
            self.config_error = None
        elif self.source == "database":
            known = self._stored_version
            version, stored = await self._read(lambda conn: stored_if_newer(conn, known))
            self._stored_version = version
            if stored is None:
                return False
            config = stored
        else:
            return False
        if config == self.config:
            return False
        self.use_config(config)
        log.info("alerting configuration reloaded from the %s", self.source)
        return True

    def use_config(self, config: AlertingConfig) -> None:
        """Route, group and deliver with `config` from now on. The aggregation groups form again at the
        next round (as after a restart); the notification log keeps them from repeating what was sent."""
        self.config = config
        self.dispatcher = Dispatcher(config, max_listed=self.dispatcher.max_listed)
        self.delivery.config = config

    async def _timed_write(self, round_kind: str, function: Callable[[Connection], Any]) -> Any:
        """A write of alerting's rounds, its time inside the writer observed (measured there)."""
        histogram = self.metrics.writer.labels(round_kind)
        cpu_histogram = self.metrics.writer_cpu.labels(round_kind)

        def timed(conn: Connection) -> Any:
            started, cpu = time.perf_counter(), time.thread_time()
            try:
                return function(conn)
            finally:
                histogram.observe(time.perf_counter() - started)
                cpu_histogram.observe(time.thread_time() - cpu)

        return await self.write(timed)

    async def _read(self, function: Callable[[Connection], Any]) -> Any:
        """Run `function` on a reader connection in a thread: off the writer and off the event loop."""
        def run() -> Any:
            with self.runtime.engine.connect() as conn:
                return function(conn)

        return await asyncio.to_thread(run)

    async def sync_rules_file(self) -> dict[str, int] | None:
        rules_file = self.rules_file
        if rules_file is None:
            return None
        now = self.runtime.clock.now()
        counts: dict[str, int] = await self.write(lambda conn: sync_rules(conn, rules_file, now=now))
        log.info("rules file synced: %s", counts)
        return counts

    async def evaluate_once(self, *, thresholds: bool = True, threshold_projects: Collection[int] = ()) -> RoundReport:
        """One evaluation round; `thresholds=False` is a quick round (new signals, and the thresholds of
        `threshold_projects` may fire). Reads and decides on a reader connection; the writer only
        stores the changes (and writes nothing if a concurrent round moved what this one read)."""
        now = self.runtime.clock.now()
        started = time.perf_counter()  # a duration for /metrics, not a time rules see
        kind = "evaluate" if thresholds else "quick"
        packs = 0
        if self.settings.default_rule_pack and await self._read(projects_without_pack):
            packs = await self._timed_write("pack", lambda conn: apply_default_pack(
                conn, projects_without_pack(conn), now=now))
        plan: RoundPlan = await self._read(lambda conn: read_round(
            conn, now, thresholds=thresholds, threshold_projects=threshold_projects,
            resolved_retention_seconds=self.settings.resolved_retention_seconds, flaps=self.flaps))
        report: RoundReport | None = plan.report
        if plan.writes:
            report = await self._timed_write(kind, lambda conn: apply_round(conn, plan))
        if report is None:
            self.metrics.conflicts.labels(kind).inc()
            report = plan.report  # the next round starts over from what is stored
        report.packs_applied = packs
        if thresholds:
            self.metrics.observe_round(report, time.perf_counter() - started)
        self._evaluated.set()
        return report

    def wake(self) -> None:
        """Look at the groups and the outbox now (after something was queued)."""
        self._evaluated.set()

    async def _what_moved(self) -> tuple[bool, set[int]]:
        """Whether signals arrived, and which projects' counts moved, since the last look."""
        since = int(self.runtime.clock.now() // 60) - 1

        def ask() -> tuple[bool, dict[int, int]]:
            with self.runtime.engine.connect() as conn:
                return has_new_signals(conn), recent_totals(conn, since)

        signals, totals = await asyncio.to_thread(ask)
        moved = {p for p, n in totals.items() if self._last_totals.get(p) != n}
        self._last_totals = totals
        return signals, moved

    async def dispatch_once(self) -> int:
        """One look at the changed alerts and the due groups; returns how many notifications were queued.
        The index, the plans and the notification log are read on a reader connection; the writer
        stores only the decided outbox rows and log entries."""
        await self.refresh_config()
        now = self.runtime.clock.now()
        url = self.runtime.settings.base_url
        # One configuration for the whole round, even if a page reloads it meanwhile.
        dispatcher, config = self.dispatcher, self.config

        def decide(conn: Connection) -> tuple[list[Any], list[Any]]:
            dispatcher.refresh(conn, now)
            plans = dispatcher.plan(conn, now)
            return plans, decide_flushes(conn, plans, config, now, url)

        plans, decisions = await self._read(decide)
        queued: int | None = 0
        if decisions:
            queued = await self._timed_write("dispatch", lambda conn: write_decisions(conn, decisions))
        if queued is None:
            self.metrics.conflicts.labels("dispatch").inc()
            return 0  # the groups' timers stay: tried again next round
        dispatcher.flushed(plans, now)
        return queued

    async def deliver_once(self) -> int:
        return await self.delivery.deliver_due()

    async def _evaluate_loop(self) -> None:
        # Everything every evaluation interval; in between, every dispatch interval, a quick round when
        # signals arrived or a project's counts moved, so neither kind of alert is up to 15 s late.
        # Paced by the event loop's clock, like the sleeps: the alerting clock is for what rules see.
        loop = asyncio.get_running_loop()
        next_full = 0.0

        async def step() -> None:
            nonlocal next_full
            if loop.time() >= next_full:
                next_full = loop.time() + self.settings.evaluation_interval_seconds
                await self.evaluate_once()
            else:
                signals, moved = await self._what_moved()
                if signals or moved:
                    await self.evaluate_once(thresholds=False, threshold_projects=moved)

        # Twice per dispatch interval: a crossing then waits at most half of one before its round.
        await repeat("alert evaluation", step, min(self.settings.dispatch_interval_seconds / 2,
                                                   self.settings.evaluation_interval_seconds), logger=log)

    async def _notify_loop(self) -> None:
        async def step() -> None:
            await self.dispatch_once()
            await self.deliver_once()

        # Woken early after an evaluation, so a new alert with group_wait 0 goes out at once.
        await repeat("alert dispatch", step, self.settings.dispatch_interval_seconds, wake=self._evaluated,
                     logger=log)

    async def evaluate(self) -> None:
        """The evaluator job: syncs the rules file, then evaluates the rules (and takes up a changed
        routing file on SIGHUP) until cancelled."""
        loop = asyncio.get_running_loop()
        hangup = False
        if self.source == "file":
            # Not possible off the main thread (tests serving in a thread): changes are still seen.
            with contextlib.suppress(ValueError, RuntimeError, NotImplementedError):
                loop.add_signal_handler(signal.SIGHUP, self.ask_reload)
                hangup = True
        try:
            try:
                await self.sync_rules_file()
            except Exception:
                log.exception("syncing the rules file failed; rules from it are unchanged")
            await self._evaluate_loop()
        finally:
            if hangup:
                loop.remove_signal_handler(signal.SIGHUP)

    async def notify(self) -> None:
        """The delivery job: groups alerts into notifications and delivers the outbox until cancelled."""
        await self._notify_loop()


def file_stamp(path: Path) -> tuple[int, int, int]:
    """What tells that a file changed: modification time, size, inode (an editor's or a ConfigMap's
    rename gives a new inode); zeros when it cannot be read (the reload then says why)."""
    try:
        found = path.stat()
    except OSError:
        return (0, 0, 0)
    return (found.st_mtime_ns, found.st_size, found.st_ino)


def check_files(settings: AlertingSettings) -> None:
    """What `serve` validates of alerting's files at start (`watchkeeper config check` runs the same):
    ConfigError names the file and the key."""
    config = load_config(settings.config_file)
    if settings.config_file is not None:
        responder.check_email_receiver(config, settings.oncall_email_receiver)
    if settings.rules_file is not None:
        load_rules_file(settings.rules_file)


def mount(app: FastAPI) -> None:
    """Add alerting's routes; keeps the Alerting object on `app.state.alerting`."""
    from watchkeeper.alerting import alertmanager_api, api

    app.state.alerting = app.state.runtime.domains["alerting"] = Alerting(app.state.runtime)
    app.include_router(api.router, prefix="/api/v1")
    app.include_router(alertmanager_api.router, prefix="/api/v2")


async def _evaluate(runtime: Runtime) -> None:
    await runtime.domains["alerting"].evaluate()


async def _notify(runtime: Runtime) -> None:
    await runtime.domains["alerting"].notify()


async def _respond(runtime: Runtime) -> None:
    await responder.responder_for(runtime.domains["alerting"]).run()


def jobs(settings: Settings) -> list[Job[Runtime]]:
    """Alerting's background work (none when `alerting.evaluator` is off): rule evaluation, the
    delivery of notifications, and the incident responder (incidents and escalation)."""
    if not settings.alerting.evaluator:
        return []
    return [Job("alert evaluator", _evaluate), Job("alert delivery", _notify),
            Job("incident responder", _respond)]


def _routed(route: RouteConfig) -> set[str]:
    """The receivers a route tree sends to."""
    names = {route.receiver} if route.receiver else set()
    for child in route.routes:
        names |= _routed(child)
    return names
