"""Uptime inside the server: the routes, and the background work started with it.

`mount(app)` adds the REST API, the ping URLs and the public status pages; `jobs(settings)` is uptime's
background work, run by the process holding the background lease: the checks (after syncing the monitors
file) and the sweep (late heartbeats, Sentry check-ins; retention is the platform's job,
watchkeeper/privacy.py).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from fastapi import FastAPI

from watchkeeper.config import ConfigError, Settings
from watchkeeper.lib.outbound import Outbound
from watchkeeper.lib.periodic import repeat
from watchkeeper.store.leases import Job
from watchkeeper.store.writer import call_each
from watchkeeper.uptime.check_ins import consume_check_ins
from watchkeeper.uptime.heartbeats import sweep_heartbeats
from watchkeeper.uptime.monitors import MonitorConflict
from watchkeeper.uptime.monitors_file import load_monitors_file, sync_monitors
from watchkeeper.uptime.scheduler import Scheduler, SchedulerMetrics

if TYPE_CHECKING:
    from watchkeeper.app import Runtime

log = logging.getLogger(__name__)


class Uptime:
    """What uptime keeps for the life of the app (on `app.state.uptime`)."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        # Validated now, so a wrong monitors file stops start-up with a message naming the entry.
        path = runtime.settings.uptime.monitors_file
        self.file_monitors = load_monitors_file(path) if path is not None else None
        # Checks share it; alerting can take it from here until the runtime owns one.
        self.outbound = Outbound(runtime.settings.outbound,
                                 max_connections=runtime.settings.uptime.max_concurrent_checks)
        self.scheduler = Scheduler(runtime.engine, runtime.writer, runtime.clock, runtime.settings.uptime,
                                   self.outbound, SchedulerMetrics(runtime.metrics.registry))

    async def sync_monitors_file(self) -> dict[str, int] | None:
        entries = self.file_monitors
        if entries is None:
            return None
        now = self.runtime.clock.now()
        try:
            counts: dict[str, int] = await self.runtime.writer.run(
                call_each, lambda conn: sync_monitors(conn, entries, now=now))
        except MonitorConflict as exc:
            raise ConfigError(f"uptime.monitors_file: {exc}") from None
        log.info("monitors file synced: %s", counts)
        self.scheduler.wake()
        return counts

    async def sweep_once(self) -> None:
        """Late heartbeats and new Sentry check-ins (each applied in a writer transaction)."""
        while await self.runtime.writer.run(call_each, lambda conn: consume_check_ins(conn)) >= 500:
            pass
        await self.runtime.writer.run(call_each, lambda conn: sweep_heartbeats(conn, self.runtime.clock.now()))

    async def sweep(self) -> None:
        """The sweep job: `sweep_once` every `uptime.sweep_seconds`."""
        await repeat("uptime sweep", self.sweep_once, self.runtime.settings.uptime.sweep_seconds, logger=log)

    async def check(self) -> None:
        """The checks job: syncs the monitors file, then runs the scheduler (stopped with the job)."""
        try:
            await self.sync_monitors_file()
        except ConfigError as exc:
            # The file itself was validated at start; what fails here (an unknown project, a slug
            # taken by a monitor made over the API) must not stop the other monitors' checks.
            log.error("%s; monitors file not synced", exc)
        try:
            await self.scheduler.run()
        finally:
            await self.scheduler.stop()


def mount(app: FastAPI) -> None:
    """Add uptime's routes; keeps the Uptime object on `app.state.uptime`."""
    from watchkeeper.uptime import pings, status_page_api, status_pages
    from watchkeeper.uptime.api import router

    app.state.uptime = app.state.runtime.domains["uptime"] = Uptime(app.state.runtime)
    app.include_router(router, prefix="/api/v1")
    app.include_router(status_page_api.router, prefix="/api/v1")
    app.router.routes.extend(pings.routes + status_pages.routes)


async def _check(runtime: Runtime) -> None:
    await runtime.domains["uptime"].check()


async def _sweep(runtime: Runtime) -> None:
    await runtime.domains["uptime"].sweep()


def jobs(settings: Settings) -> list[Job[Runtime]]:
    """Uptime's background work (none when `uptime.scheduler` is off)."""
    if not settings.uptime.scheduler:
        return []
    return [Job("uptime checks", _check), Job("uptime sweep", _sweep)]
