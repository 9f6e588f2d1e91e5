"""The ASGI application factory and the runtime every request handler reaches through `app.state`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI
from sqlalchemy import Connection, Engine
from starlette.routing import Router
from starlette.types import Receive, Scope, Send
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from watchkeeper import __version__
from watchkeeper.auth.key_cache import KeyCache
from watchkeeper.auth.users import count_users, create_user, generate_password
from watchkeeper.config import Settings
from watchkeeper.errors import intake
from watchkeeper.errors.processors import ProcessorPool
from watchkeeper.errors.rate_limits import Quotas
from watchkeeper.errors.scrubbing import ScrubbingRules
from watchkeeper.errors.storage import save_envelopes, save_packed_envelopes
from watchkeeper.lib.clock import Clock, SystemClock
from watchkeeper.lib.periodic import repeat
from watchkeeper.observability import Metrics
from watchkeeper.observability import routes as health_routes
from watchkeeper.store import migrate
from watchkeeper.store.engine import for_writing, make_engine
from watchkeeper.store.leases import Job, Leadership
from watchkeeper.store.writer import Writer, call_each
from watchkeeper.store.writer_process import WriterProcess

log = logging.getLogger("watchkeeper")


@dataclass
class Runtime:
    settings: Settings
    clock: Clock
    engine: Engine
    writer: Writer
    key_cache: KeyCache
    quotas: Quotas
    metrics: Metrics
    # None: events are processed in this process (ingest.processors: 0, or a 1-core machine).
    processors: ProcessorPool | None = None
    # The newest schema revision this code knows (for /health/ready).
    schema_heads: frozenset[str] = frozenset()
    # Who does the background work when several processes share the database (store/leases.py).
    leadership: Leadership[Runtime] | None = None
    # What each domain keeps for the life of the app, by domain name ("uptime", "alerting"): its
    # background jobs find it here.
    domains: dict[str, Any] = field(default_factory=dict)
    scrubbing_cache: dict[int, tuple[Any, ScrubbingRules]] = field(default_factory=dict)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


def open_database(settings: Settings, *, migrate_in_child: bool = False) -> Engine:
    """Engine with the schema migrated to the newest version (by a child process with
    `migrate_in_child`, which keeps Alembic out of a long-running server's memory)."""
    if settings.database_url is None:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.sqlalchemy_url, sqlite_synchronous=settings.writer.sqlite_synchronous)
    if migrate_in_child:
        migrate.upgrade_in_child(settings.sqlalchemy_url)
    else:
        migrate.upgrade(engine)
    return engine


def bootstrap_admin(engine: Engine, settings: Settings, clock: Clock) -> str | None:
    """On an empty database, create the admin user; returns the one-time password if we generated it."""
    with for_writing(engine).begin() as conn:
        if count_users(conn):
            return None
        given = settings.admin_password.get_secret_value() if settings.admin_password else None
        password = given or generate_password()
        create_user(conn, settings.admin_email, password, role="admin", now=clock.now(), one_time=not given)
    return None if given else password


def build_runtime(settings: Settings, clock: Clock | None = None, *, migrate_in_child: bool = False) -> Runtime:
    clock = clock or SystemClock()
    engine = open_database(settings, migrate_in_child=migrate_in_child)
    schema_heads = migrate.current_revisions(engine)  # just migrated to every head
    metrics = Metrics()
    processors = processor_count(settings)
    # Default: a writer process while ingest is busy, when there are processor processes (see Writer).
    separate = settings.writer.separate_process
    when_busy = separate is None
    if separate is None:
        separate = processors > 0
    pool = (
        ProcessorPool(processors, min_size=settings.ingest.min_processors,
                      max_pending=settings.ingest.max_processing_backlog)
        if processors
        else None
    )
    writer = Writer(
        engine,
        max_batch=settings.writer.max_batch,
        max_queue=settings.writer.max_queue,
        clock=clock,
        on_commit=metrics.observe_commit,
        process=WriterProcess(settings.sqlalchemy_url, sqlite_synchronous=settings.writer.sqlite_synchronous)
        if separate
        else None,
        process_functions=frozenset({save_envelopes, save_packed_envelopes}),
        process_when_busy=when_busy,
        gather_seconds=settings.writer.gather_ms / 1000,
        # Envelopes in the processors are the writes about to arrive.
        coming=(lambda: pool.pending) if pool is not None else None,
    )
    return Runtime(
        processors=pool,
        schema_heads=schema_heads,
        settings=settings,
        clock=clock,
        engine=engine,
        writer=writer,
        key_cache=KeyCache(engine, clock),
        metrics=metrics,
        quotas=Quotas(
            settings.ingest.default_events_per_minute,
            settings.ingest.default_events_per_hour,
            {category: quota.model_dump() for category, quota in settings.ingest.default_quotas.items()},
        ),
    )


def processor_count(settings: Settings) -> int:
    """At most how many processor processes to run: ``ingest.processors``, or one per core (none on one
    core, where a child would only add hand-over work). One per core, not per core beyond the first:
    the server process needs about a third of a core at full load, and the extra children only run
    while there is a queue (see ProcessorPool)."""
    if settings.role in ("web", "worker"):
        return 0  # they take no SDK envelopes
    if settings.ingest.processors is not None:
        return settings.ingest.processors
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return cores if cores > 1 else 0


async def _retention(runtime: Runtime) -> None:
    """The one retention job: every domain's data classes (watchkeeper/privacy.py), hourly by default."""
    from watchkeeper.privacy import enforce_retention

    async def write(fn: Callable[[Connection], int]) -> int:
        return int(await runtime.writer.run(call_each, fn))

    async def step() -> None:
        await enforce_retention(write, runtime.clock.now(), runtime.settings)

    await repeat("retention", step, runtime.settings.retention.interval_seconds, logger=log)


def background_jobs(settings: Settings) -> list[Job[Runtime]]:
    """Every domain's background work: run by the process holding the background lease, and only there
    (store/leases.py). A domain with background work adds its jobs here."""
    from watchkeeper.alerting import service as alerting
    from watchkeeper.uptime import service as uptime

    return [Job("retention", _retention), *uptime.jobs(settings), *alerting.jobs(settings)]


class WatchkeeperApp(FastAPI):
    """The FastAPI app, with the Sentry envelope endpoint answered before the middleware stack."""

    serves_ingest = True
    # uvicorn's X-Forwarded-For handling, for `trusted_proxies` only (see Settings); set by create_app.
    forwarded: ProxyHeadersMiddleware | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.forwarded is not None and "wk.forwarded" not in scope:
            scope["wk.forwarded"] = True  # the middleware calls us again with the client rewritten
            await self.forwarded(scope, receive, send)  # type: ignore[arg-type]
            return
        path_params = intake.envelope_fast_path(scope) if self.serves_ingest else None
        if path_params is None:
            await super().__call__(scope, receive, send)
            return
        scope["app"] = self
        await intake.serve_envelope(scope, receive, send, path_params)


def create_app(settings: Settings, *, runtime: Runtime | None = None, background: bool = True) -> FastAPI:
    """The whole application: ingest, REST API, health and metrics."""
    from watchkeeper import web
    from watchkeeper.alerting import service as alerting
    from watchkeeper.api import install_error_handlers
    from watchkeeper.auth.accounts_api import router as accounts_api
    from watchkeeper.auth.api import router as auth_api
    from watchkeeper.errors.api import router as errors_api
    from watchkeeper.uptime import service as uptime

    state = runtime or build_runtime(settings)
    role = settings.role
    serves_ingest = role in ("all", "ingest")
    serves_web = role in ("all", "web")

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state.writer.start()
        if state.processors is not None:
            await state.processors.start()
        if background and role in ("all", "worker"):
            # Even alone: a second server started on the same database by mistake must not check
            # every monitor and send every alert a second time.
            state.leadership = Leadership(
                "background", write=lambda fn: state.writer.run(call_each, fn), now=state.clock.now,
                jobs=background_jobs(settings), runtime=state, term=settings.lease_seconds,
            )
            state.tasks.append(asyncio.create_task(state.leadership.run()))
        try:
            yield
        finally:
            for task in state.tasks:
                task.cancel()
            # Let them finish their cancellation (the lease is released through the writer).
            if state.tasks:
                await asyncio.wait(state.tasks, timeout=5)
            state.tasks.clear()
            # The outbound clients live as long as the app: a lease taken back uses them again.
            await app.state.uptime.outbound.aclose()
            await app.state.alerting.outbound.aclose()
            if state.processors is not None:
                await state.processors.stop()
            state.writer.stop()

    app = WatchkeeperApp(
        # FastAPI's own OpenTelemetry hooks look up the tracer provider on every request (a measurable
        # share of ingest CPU); Watchkeeper reports on itself through /metrics and /health.
        telemetry={"tracing": False, "metrics": False, "logs": False},
        title="Watchkeeper",
        version=__version__,
        lifespan=lifespan,
        # /api/docs is web/api_docs.py: Swagger UI from our static files, under the pages' CSP.
        docs_url=None,
        openapi_url="/api/openapi.json",
        redoc_url=None,
    )
    app.state.runtime = state
    app.serves_ingest = serves_ingest
    if settings.trusted_proxies:
        app.forwarded = ProxyHeadersMiddleware(app, trusted_hosts=settings.trusted_proxies)  # type: ignore[arg-type]
    install_error_handlers(app)
    # Ingest first: routes are matched in order, and SDK traffic is most of the requests.
    app.router.routes[:0] = Router(routes=(intake.routes if serves_ingest else []) + health_routes).routes
    if serves_web:
        app.include_router(auth_api, prefix="/api/v1")
        app.include_router(accounts_api, prefix="/api/v1")
        app.include_router(errors_api, prefix="/api/v1")
        web.mount(app)
        uptime.mount(app)
        alerting.mount(app)
    else:
        # What the background work and the ping URLs need, without the pages and the API.
        app.state.uptime = state.domains["uptime"] = uptime.Uptime(state)
        app.state.alerting = state.domains["alerting"] = alerting.Alerting(state)
        if serves_ingest:
            from watchkeeper.uptime import pings

            app.router.routes.extend(pings.routes)
    return app
