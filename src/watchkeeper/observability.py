"""Watchkeeper watching itself: Prometheus metrics, `/health` and `/health/ready`."""

from __future__ import annotations

import shutil
import time
from typing import TYPE_CHECKING, Any

import orjson
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from sqlalchemy import text
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from watchkeeper import __version__
from watchkeeper.store.migrate import current_revisions, describe

if TYPE_CHECKING:
    from watchkeeper.app import Runtime


class Metrics:
    """Our own metrics, in a registry per app so tests never share state."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.items = Counter(
            "watchkeeper_ingest_items",
            "Envelope items by category and outcome (accepted, rate_limited, invalid, too_large, skipped)",
            ["category", "outcome"],
            registry=self.registry,
        )
        self.rejected = Counter(
            "watchkeeper_ingest_rejected_requests",
            "Ingest requests refused, by reason",
            ["reason"],
            registry=self.registry,
        )
        self.ingest_seconds = Histogram(
            "watchkeeper_ingest_request_seconds",
            "Time to answer an ingest request, commit included",
            buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=self.registry,
        )
        self.commit_seconds = Histogram(
            "watchkeeper_db_commit_seconds",
            "Duration of one group-commit transaction",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=self.registry,
        )
        self.commit_jobs = Histogram(
            "watchkeeper_db_commit_jobs",
            "Requests sharing one group-commit transaction",
            buckets=(1, 2, 5, 10, 25, 50, 100, 250, 500, 1000),
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "watchkeeper_writer_queue_depth", "Writes waiting for the writer", registry=self.registry
        )
        self.processing_backlog = Gauge(
            "watchkeeper_processing_backlog", "Envelopes waiting for a processor process", registry=self.registry
        )
        self.background_leader = Gauge(
            "watchkeeper_background_leader",
            "1 while this process holds the lease for background work (uptime checks, alerting, retention)",
            registry=self.registry,
        )
        self.processor_restarts = Gauge(
            "watchkeeper_processor_restarts", "Processor processes started again after they died",
            registry=self.registry,
        )

    def observe_commit(self, seconds: float, jobs: int) -> None:
        self.commit_seconds.observe(seconds)
        self.commit_jobs.observe(jobs)


async def metrics_endpoint(request: Request) -> Response:
    runtime: Runtime = request.app.state.runtime
    runtime.metrics.queue_depth.set(runtime.writer.queue_depth)
    runtime.metrics.background_leader.set(int(runtime.leadership is not None and runtime.leadership.leading))
    if runtime.processors is not None:
        runtime.metrics.processing_backlog.set(runtime.processors.pending)
        runtime.metrics.processor_restarts.set(runtime.processors.restarts)
    return Response(generate_latest(runtime.metrics.registry), media_type=CONTENT_TYPE_LATEST)


def _health(status: str, checks: dict[str, Any]) -> Response:
    body = {"status": status, "version": __version__, "checks": checks}
    return Response(
        orjson.dumps(body), status_code=200 if status != "fail" else 503, media_type="application/health+json"
    )


async def health_endpoint(request: Request) -> Response:
    return _health("pass", {})


def readiness(runtime: Runtime) -> tuple[str, dict[str, Any]]:
    """Is this process able to accept and keep data? Database writable, schema current, queue, disk."""
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(runtime.clock.now()))
    checks: dict[str, Any] = {}
    status = "pass"
    try:
        with runtime.engine.begin() as conn:
            # A write that changes nothing proves the database takes writes (not read-only, not locked).
            conn.execute(text("UPDATE projects SET id = id WHERE 1 = 0"))
        checks["database:writable"] = [{"componentType": "datastore", "status": "pass", "time": now}]
    except Exception as exc:
        status = "fail"
        checks["database:writable"] = [
            {"componentType": "datastore", "status": "fail", "time": now, "output": str(exc)[:300]}
        ]
    try:
        at = current_revisions(runtime.engine)
        current, head, ok = describe(at), describe(runtime.schema_heads), at == runtime.schema_heads
    except Exception as exc:
        current, head, ok = str(exc)[:100], describe(runtime.schema_heads), False
    checks["database:migrations"] = [
        {
            "componentType": "datastore",
            "observedValue": current,
            "status": "pass" if ok else "fail",
            "output": "" if ok else f"expected {head}",
        }
    ]
    status = status if ok else "fail"
    depth = runtime.writer.queue_depth
    limit = runtime.settings.writer.max_queue
    queue_status = "pass" if depth < limit * 0.8 else "warn"
    if not runtime.writer.running:
        queue_status = "fail"
    checks["writer:queue"] = [
        {"componentType": "component", "observedValue": depth, "observedUnit": "jobs", "status": queue_status}
    ]
    if queue_status != "pass" and status == "pass":
        status = queue_status
    if queue_status == "fail":
        status = "fail"
    # With PostgreSQL the data directory may not exist (nothing is stored there yet): measure the disk
    # it would be created on.
    where = runtime.settings.data_dir.resolve()
    while not where.exists() and where != where.parent:
        where = where.parent
    try:
        free = shutil.disk_usage(where).free
    except OSError as exc:
        checks["disk:free"] = [{"componentType": "system", "status": "warn", "output": str(exc)[:300]}]
        disk_status = "warn"
    else:
        disk_status = "pass" if free > 1 << 30 else ("warn" if free > 100 << 20 else "fail")
        checks["disk:free"] = [
            {"componentType": "system", "observedValue": free, "observedUnit": "bytes", "status": disk_status}
        ]
    if disk_status == "fail" or (disk_status == "warn" and status == "pass"):
        status = disk_status
    return status, checks


async def ready_endpoint(request: Request) -> Response:
    from starlette.concurrency import run_in_threadpool

    status, checks = await run_in_threadpool(readiness, request.app.state.runtime)
    return _health(status, checks)


routes = [
    Route("/health", health_endpoint, methods=["GET", "HEAD"]),
    Route("/health/ready", ready_endpoint, methods=["GET", "HEAD"]),
    Route("/metrics", metrics_endpoint, methods=["GET"]),
]
