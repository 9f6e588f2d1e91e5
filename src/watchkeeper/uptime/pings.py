"""The heartbeat ping URLs (no login; the UUID or the project's ping key is the secret):

    /ping/<uuid>            success          /ping/<ping-key>/<slug>            success
    /ping/<uuid>/start      a run started    /ping/<ping-key>/<slug>/start
    /ping/<uuid>/fail       failure          /ping/<ping-key>/<slug>/fail
    /ping/<uuid>/<0-255>    exit status      /ping/<ping-key>/<slug>/<0-255>

GET, HEAD and POST; a POST body is kept (cut at `uptime.max_ping_body_bytes`) as the run's log.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import Connection, select
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from watchkeeper.store.writer import WriterOverloaded, WriterStopped, call_each
from watchkeeper.uptime.heartbeats import PingKind, record_ping
from watchkeeper.uptime.monitors import Monitor, find_monitor_by_slug, find_monitor_by_uuid
from watchkeeper.uptime.tables import ping_keys

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
Target = tuple[str, ...]


def parse_ping_path(path: str) -> tuple[Target, PingKind, int | None] | None:
    """(who, kind, exit status) for a ping path, or None when it is not one.

    >>> parse_ping_path("3f2c3a8e-6a7e-4a39-9d47-0c1f7f4f6c10/1")
    (('3f2c3a8e-6a7e-4a39-9d47-0c1f7f4f6c10',), 'fail', 1)
    """
    parts = [p for p in path.split("/") if p]
    if not parts:
        return None
    if UUID.match(parts[0].lower()):
        target: Target = (parts[0].lower(),)
        rest = parts[1:]
    elif len(parts) >= 2:
        target, rest = (parts[0], parts[1].lower()), parts[2:]
    else:
        return None
    if not rest:
        return target, "success", None
    if len(rest) > 1:
        return None
    if rest[0] in ("start", "fail"):
        return target, rest[0], None  # type: ignore[return-value]
    if rest[0].isdigit() and int(rest[0]) <= 255:
        status = int(rest[0])
        return target, "success" if status == 0 else "fail", status
    return None


def _find(conn: Connection, target: Target) -> Monitor | None:
    """The heartbeat pinged (checked monitors are not: a ping must not override their checks)."""
    if len(target) == 1:
        monitor = find_monitor_by_uuid(conn, target[0])
    else:
        project_id = conn.execute(select(ping_keys.c.project_id).where(ping_keys.c.ping_key == target[0])).scalar()
        monitor = find_monitor_by_slug(conn, project_id, target[1]) if project_id is not None else None
    return monitor if monitor is not None and monitor.type == "heartbeat" else None


async def _body(request: Request, limit: int) -> str | None:
    if request.method != "POST":
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            break
    return b"".join(chunks)[:limit].decode("utf-8", errors="replace") if chunks else None


async def ping_endpoint(request: Request) -> Response:
    runtime: Any = request.app.state.runtime
    parsed = parse_ping_path(request.path_params["rest"])
    if parsed is None:
        return PlainTextResponse("not found", status_code=404)
    target, kind, exit_status = parsed
    body = await _body(request, runtime.settings.uptime.max_ping_body_bytes)
    now = runtime.clock.now()

    def apply(conn: Connection) -> dict[str, Any] | None:
        monitor = _find(conn, target)
        if monitor is None:
            return None
        return record_ping(conn, monitor, kind, now=now, exit_status=exit_status, body=body)

    try:
        outcome = await runtime.writer.run(call_each, apply)
    except (WriterOverloaded, WriterStopped):
        return PlainTextResponse("busy, retry", status_code=503, headers={"Retry-After": "1"})
    if outcome is None:
        return PlainTextResponse("not found", status_code=404)
    return PlainTextResponse("OK")


routes = [Route("/ping/{rest:path}", ping_endpoint, methods=["GET", "HEAD", "POST"])]
