"""The check scheduler: an asyncio loop in the server process.

Each monitor is due every `interval_seconds`; first runs are spread with jitter so 10,000 monitors do
not fire in the same second. Every check is its own task bounded by the monitor's timeout and a global
semaphore (`uptime.max_concurrent_checks`), so a slow target never delays the others. Outcomes are
written in one batch per `uptime.flush_seconds` through the writer. Scheduling lag (how late a check
started) is on /metrics as `watchkeeper_uptime_schedule_lag_seconds`.

Time comes from the injected clock: tests call `tick()` after moving a ManualClock.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import random
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from sqlalchemy import Engine, select

from watchkeeper.config import UptimeSettings
from watchkeeper.lib.clock import Clock
from watchkeeper.lib.outbound import Outbound
from watchkeeper.lib.periodic import repeat
from watchkeeper.store.writer import Writer, WriterOverloaded, WriterStopped, call_each
from watchkeeper.uptime.checkers import CheckContext, CheckResult, run_check
from watchkeeper.uptime.monitors import Monitor, checked_monitors, list_monitors
from watchkeeper.uptime.results import CheckOutcome, record_results
from watchkeeper.uptime.tables import monitors

log = logging.getLogger(__name__)

# Monitors changed by another process are picked up at least this often (this process is woken at once).
REFRESH_SECONDS = 30.0
# Outcomes per write transaction: a backlog (after a stalled disk) is written in bounded pieces.
FLUSH_BATCH = 2000
# The dispatch loop looks at the schedule at least this often.
MAX_IDLE = 0.5
# First checks are spread over at most this long (or the interval, when shorter).
MAX_START_JITTER = 60.0


class SchedulerMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.lag = Histogram(
            "watchkeeper_uptime_schedule_lag_seconds",
            "How late a check started after it was due",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30),
            registry=registry,
        )
        self.checks = Counter(
            "watchkeeper_uptime_checks", "Checks run, by outcome (up, down)", ["outcome"], registry=registry
        )
        self.running = Gauge("watchkeeper_uptime_checks_running", "Checks in progress", registry=registry)
        self.monitors = Gauge("watchkeeper_uptime_monitors_scheduled", "Monitors being checked", registry=registry)


@dataclass(slots=True)
class _Scheduled:
    monitor: Monitor
    generation: int  # bumped when the monitor changes, so stale heap entries are skipped


class Scheduler:
    def __init__(self, engine: Engine, writer: Writer, clock: Clock, settings: UptimeSettings,
                 outbound: Outbound, metrics: SchedulerMetrics) -> None:
        self.engine = engine
        self.writer = writer
        self.clock = clock
        self.settings = settings
        self.outbound = outbound
        self.metrics = metrics
        self.lags: list[float] = []  # kept for the benchmark; bounded below
        self._scheduled: dict[int, _Scheduled] = {}
        self._heap: list[tuple[float, int, int]] = []
        self._pending: list[CheckOutcome] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._semaphore = asyncio.Semaphore(settings.max_concurrent_checks)
        self._wake = asyncio.Event()
        self._random = random.Random()

    # --- which monitors, and when ---

    def _load(self) -> tuple[dict[int, float], list[Monitor]]:
        """Versions (updated_at) of every monitor to check, and the full rows of those new or changed.
        Reading only versions keeps the periodic refresh of 10,000 unchanged monitors cheap."""
        with self.engine.connect() as conn:
            versions = dict(conn.execute(
                select(monitors.c.id, monitors.c.updated_at).where(*checked_monitors())).all())
            wanted = [i for i, v in versions.items()
                      if i not in self._scheduled or self._scheduled[i].monitor.updated_at != v]
            loaded: list[Monitor] = []
            for start in range(0, len(wanted), 500):
                loaded += list_monitors(conn, checked_only=True, ids=wanted[start:start + 500])
            return versions, loaded

    async def refresh(self) -> None:
        """Pick up monitors created, changed, paused or deleted since the last refresh."""
        versions, loaded = await asyncio.to_thread(self._load)
        now = self.clock.now()
        for monitor_id in list(self._scheduled):
            if monitor_id not in versions:
                del self._scheduled[monitor_id]
        for monitor in loaded:
            known = self._scheduled.get(monitor.id)
            generation = known.generation + 1 if known else 0
            self._scheduled[monitor.id] = _Scheduled(monitor, generation)
            heapq.heappush(self._heap, (self._first_due(monitor, now, changed=known is not None),
                                        monitor.id, generation))
        self.metrics.monitors.set(len(self._scheduled))

    def _first_due(self, monitor: Monitor, now: float, *, changed: bool) -> float:
        if changed:
            return now  # a changed monitor is checked at once with its new settings
        if monitor.last_check_at is not None and monitor.last_check_at + monitor.interval_seconds > now:
            return monitor.last_check_at + monitor.interval_seconds  # after a restart: keep the rhythm
        return now + self._random.uniform(0, min(monitor.interval_seconds, MAX_START_JITTER))

    def next_due(self) -> float | None:
        while self._heap:
            due, monitor_id, generation = self._heap[0]
            scheduled = self._scheduled.get(monitor_id)
            if scheduled is not None and scheduled.generation == generation:
                return due
            heapq.heappop(self._heap)
        return None

    def dispatch_due(self) -> int:
        """Start every check that is due; returns how many started."""
        now = self.clock.now()
        started = 0
        while (due := self.next_due()) is not None and due <= now:
            _, monitor_id, generation = heapq.heappop(self._heap)
            monitor = self._scheduled[monitor_id].monitor
            # Fixed rate; a scheduler that fell far behind skips missed runs instead of bursting.
            following = due + monitor.interval_seconds
            heapq.heappush(self._heap, (following if following > now else now + monitor.interval_seconds,
                                        monitor_id, generation))
            task = asyncio.create_task(self._check(monitor, due))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            started += 1
        return started

    # --- running checks ---

    async def _check(self, monitor: Monitor, due: float) -> None:
        async with self._semaphore:
            at = self.clock.now()
            lag = max(0.0, at - due)
            self.metrics.lag.observe(lag)
            if len(self.lags) < 1_000_000:
                self.lags.append(lag)
            self.metrics.running.inc()
            try:
                result = await self.check_now(monitor)
            finally:
                self.metrics.running.dec()
        self.metrics.checks.labels("up" if result.ok else "down").inc()
        self._pending.append(CheckOutcome(monitor.id, at, result))

    async def check_now(self, monitor: Monitor) -> CheckResult:
        """Run a monitor's check once (also the API's "test now"); records nothing."""
        ctx = CheckContext(self.outbound, self.clock, monitor.timeout_seconds, shard=monitor.id)
        return await run_check(monitor.type, monitor.config, ctx)

    async def flush(self) -> None:
        """Write the outcomes gathered so far, at most FLUSH_BATCH per transaction."""
        while self._pending:
            outcomes, self._pending = self._pending[:FLUSH_BATCH], self._pending[FLUSH_BATCH:]
            try:
                await self.writer.run(call_each, lambda conn, batch=outcomes: record_results(conn, batch))
            except (WriterOverloaded, WriterStopped) as exc:
                log.warning("could not write %d check results (%s); will retry", len(outcomes), exc)
                self._pending[:0] = outcomes
                return

    async def tick(self) -> None:
        """Start what is due, wait for those checks, write their outcomes (tests and "run once")."""
        self.dispatch_due()
        while self._tasks:
            await asyncio.gather(*list(self._tasks))
        await self.flush()

    @property
    def unwritten(self) -> int:
        """Outcomes gathered and not yet written."""
        return len(self._pending)

    def wake(self) -> None:
        """Monitors changed: refresh now instead of at the next periodic refresh."""
        self._wake.set()

    async def run(self) -> None:
        """The loop started with the server. Writing results and re-reading monitors run beside it, so
        neither a slow commit nor a refresh of 10,000 monitors delays a due check."""
        await self.refresh()
        helpers = [asyncio.create_task(self._flush_loop()), asyncio.create_task(self._refresh_loop())]
        try:
            await repeat("uptime scheduler step", self._step, MAX_IDLE, cap=REFRESH_SECONDS, logger=log)
        finally:
            for helper in helpers:
                helper.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)

    async def _step(self) -> float:
        """Start what is due; how long until the next check is due (at most MAX_IDLE, so monitors added
        by a refresh are started within it)."""
        self.dispatch_due()
        due = self.next_due()
        wait = (due - self.clock.now()) if due is not None else MAX_IDLE
        return min(max(wait, 0.001), MAX_IDLE)

    async def _flush_loop(self) -> None:
        await repeat("writing check results", self.flush, self.settings.flush_seconds,
                     first_after=self.settings.flush_seconds, cap=REFRESH_SECONDS, logger=log)

    async def _refresh_loop(self) -> None:
        # `run` has just read them: the next refresh when they change (`wake`) or after REFRESH_SECONDS.
        await repeat("reading monitors", self.refresh, REFRESH_SECONDS, wake=self._wake,
                     first_after=REFRESH_SECONDS, cap=REFRESH_SECONDS, logger=log)

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.flush()
