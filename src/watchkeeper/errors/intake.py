"""The Sentry ingest endpoints: `POST /api/<project_id>/envelope/` and `/store/`.

Plain Starlette endpoints (no FastAPI dependency machinery): this is the hot path. A 200 is sent only
after the writer has committed the data.
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from watchkeeper.auth.key_cache import KeyGrant
from watchkeeper.errors.decoding import BodyDecodingError, BodyTooLarge, decode_body
from watchkeeper.errors.envelope import EnvelopeItem
from watchkeeper.errors.interfaces import trace_id
from watchkeeper.errors.processing import (
    EnvelopeJob,
    IngestError,
    ItemsJob,
    ProcessedItems,
    count_refused,
    decode_request_body,
    dsn_agrees,
    merge_processed,
    process_envelope_for_writer,
    process_items,
    read_admitted,
    read_envelope_header,
)
from watchkeeper.errors.processors import ProcessorUnavailable
from watchkeeper.errors.rate_limits import Refusal, rate_limits_header
from watchkeeper.errors.scrubbing import ScrubbingRules
from watchkeeper.errors.sentry_auth import AuthError, find_public_key
from watchkeeper.errors.storage import save_envelopes, save_packed_envelopes
from watchkeeper.store.writer import WriterOverloaded, WriterStopped

if TYPE_CHECKING:
    from watchkeeper.app import Runtime

CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "POST, OPTIONS",
    "Access-Control-Allow-Headers": "x-sentry-auth, x-requested-with, origin, accept, content-type, "
    "content-encoding, authentication, authorization, sentry-trace, baggage",
    "Access-Control-Expose-Headers": "x-sentry-error, x-sentry-rate-limits, retry-after",
    "Access-Control-Max-Age": "3600",
}
EVENT_TYPES = ("event", "transaction")
log = logging.getLogger(__name__)
J = TypeVar("J")
R = TypeVar("R")


def _json(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    return Response(
        orjson.dumps(body),
        status_code=status,
        media_type="application/json",
        headers={**CORS_HEADERS, **(headers or {})},
    )


def _error(exc: IngestError) -> Response:
    message = str(exc)
    # Header values must be latin-1; messages may quote client input (project id, JSON errors).
    header = message[:200].encode("ascii", "backslashreplace").decode("ascii")
    return _json(exc.status, {"detail": message}, {"X-Sentry-Error": header, **exc.headers})


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise IngestError(413, f"request body is {declared} bytes, over the {limit} byte limit", "too_large")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise IngestError(413, f"request body is over the {limit} byte limit", "too_large")
        chunks.append(chunk)
    return b"".join(chunks)


def _project_id(request: Request) -> int:
    raw = request.path_params["project_id"]
    # str.isdigit() is also true for "²" and other non-ASCII digits that int() refuses.
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 12:
        raise IngestError(400, f"invalid project id {raw[:40]!r}: must be a number", "invalid")
    return int(raw)


def _query_key(request: Request) -> str | None:
    # Most SDKs send the X-Sentry-Auth header and no query string: then there is none to parse.
    return request.query_params.get("sentry_key") if request.scope.get("query_string") else None


async def _authorize(runtime: Runtime, request: Request, project_id: int, dsn: Any) -> KeyGrant:
    try:
        public_key = find_public_key(
            request.headers.get("x-sentry-auth"),
            _query_key(request),
            dsn if isinstance(dsn, str) else None,
        )
    except AuthError as exc:
        raise IngestError(exc.status, str(exc), "unauthorized") from None
    return await _grant(runtime, project_id, public_key)


async def _grant(runtime: Runtime, project_id: int, public_key: str) -> KeyGrant:
    found, grant = runtime.key_cache.cached(public_key)
    if not found:
        # A miss queries the database: keep it off the event loop (scanners send random keys).
        grant = await run_in_threadpool(runtime.key_cache.lookup, public_key)
    if grant is None or grant.project_id != project_id:
        raise IngestError(403, "invalid key for this project: unknown key or project", "unauthorized")
    if not grant.is_active:
        raise IngestError(403, "this key is disabled", "unauthorized")
    return grant


async def _authorize_early(runtime: Runtime, request: Request, project_id: int) -> KeyGrant | None:
    """Authorise from the header or query string before the body is read; None if neither names a key.

    Unauthenticated clients must not make us read and decompress a body of up to max_decompressed_bytes.
    Only a request without any key there is read first, to find the envelope header's `dsn`.
    """
    try:
        public_key = find_public_key(request.headers.get("x-sentry-auth"), _query_key(request), None)
    except AuthError as exc:
        if exc.status == 401:
            return None
        raise IngestError(exc.status, str(exc), "unauthorized") from None
    return await _grant(runtime, project_id, public_key)


def _rules(runtime: Runtime, grant: KeyGrant) -> ScrubbingRules:
    cached = runtime.scrubbing_cache.get(grant.key_id)
    if cached is not None and cached[0] is grant:
        return cached[1]
    try:
        rules = ScrubbingRules.from_settings(grant.project_settings.get("scrubbing"))
    except ValueError:
        rules = ScrubbingRules()  # invalid settings never turn scrubbing off
    runtime.scrubbing_cache[grant.key_id] = (grant, rules)
    return rules


def _limits(runtime: Runtime) -> dict[str, int]:
    settings = runtime.settings.ingest
    return {
        "event": settings.max_event_bytes,
        "attachment": settings.max_attachment_bytes,
        "check_in": settings.max_check_in_bytes,
    }


def _context(runtime: Runtime, request: Request, grant: KeyGrant, items: list[EnvelopeItem]) -> ItemsJob:
    client_ip = request.client.host if request.client else None
    rules = _rules(runtime, grant)
    return ItemsJob(grant.project_id, runtime.clock.now(), items, None, client_ip, rules, _limits(runtime))


async def _accept(runtime: Runtime, request: Request, grant: KeyGrant, body: bytes, encoding: str | None) -> Response:
    """Read and process an envelope in this process, each item taken from its quota before it is read
    (the /store/ endpoint, no processor pool, or a quota that the pool's budget did not foresee)."""
    refusals: dict[str, Refusal] = {}

    def admit(category: str, quantity: int) -> bool:
        refusal = runtime.quotas.take(grant, category, quantity)
        if refusal is not None:
            refusals.setdefault(category, refusal)
        return refusal is None

    admitted = read_admitted(
        body,
        encoding,
        runtime.settings.ingest.max_decompressed_bytes,
        admit,
        dsn_agrees(request.headers.get("x-sentry-auth"), _query_key(request)),
    )
    # Stored with attachments and kept items (a 32-character column) and echoed back: only a real id.
    envelope_id = trace_id(admitted.headers.get("event_id"))

    def job(of: list[EnvelopeItem]) -> ItemsJob:
        context = _context(runtime, request, grant, of)
        context.envelope_event_id = envelope_id
        return context

    # Events and transactions are the CPU-heavy items: they go to a processor process when there is a
    # pool. The rest (sessions, check-ins, attachments of up to 20 MiB) is cheap or large: done here.
    heavy = [item for item in admitted.items if item.type in EVENT_TYPES]
    light = [item for item in admitted.items if item.type not in EVENT_TYPES]
    done = process_items(job(light))
    if heavy:
        merge_processed(done, await _in_processor(runtime, process_items, job(heavy)))
    count_refused(done.records, admitted.refused)
    return await _answer(runtime, done, envelope_id, refusals, admitted.nothing_admitted)


async def _answer(
    runtime: Runtime, done: ProcessedItems, envelope_id: str | None, refusals: dict[str, Refusal], refused_all: bool
) -> Response:
    """Commit what was admitted; the answer names every category a quota refused, and is a 429 when
    every item a quota applies to was refused."""
    headers = {"X-Sentry-Rate-Limits": rate_limits_header(refusals)} if refusals else {}
    if refused_all:
        await _commit(runtime, done)
        headers["Retry-After"] = str(max(refusal.retry_after for refusal in refusals.values()))
        names = ", ".join(refusals)
        raise IngestError(429, f"rate limit exceeded ({names}: over quota)", "rate_limited", headers)
    return await _commit_and_answer(runtime, done, envelope_id, headers)


async def _accept_body(runtime: Runtime, request: Request, grant: KeyGrant, body: bytes) -> Response | None:
    """Hand the whole body to a processor process: it decompresses, parses and processes it, so this
    process — HTTP, quotas and the writer for every core — only moves compressed bytes. The process
    admits items against what their quotas had left; this one then takes what was admitted. None when
    another request took the same quota meanwhile: the caller then reads it here, item by item."""
    job = EnvelopeJob(
        body,
        request.headers.get("content-encoding"),
        runtime.settings.ingest.max_decompressed_bytes,
        request.headers.get("x-sentry-auth"),
        _query_key(request),
        _context(runtime, request, grant, []),
        runtime.quotas.budget(grant),
    )
    processed = await _in_processor(runtime, process_envelope_for_writer, job)
    if processed.usage and runtime.quotas.take_all(grant, processed.usage) is not None:
        return None
    refusals = {category: runtime.quotas.refusal(grant, category) for category in processed.refused_categories}
    return await _answer(runtime, processed.done, processed.envelope_id, refusals, processed.nothing_admitted)


async def _in_processor(runtime: Runtime, function: Callable[[J], R], job: J) -> R:
    if runtime.processors is None:
        return function(job)
    try:
        return await runtime.processors.process(function, job)
    except ProcessorUnavailable as exc:
        raise IngestError(503, f"server busy: {exc}", "overloaded", {"Retry-After": "1"}) from None


async def _commit(runtime: Runtime, done: ProcessedItems) -> None:
    records = done.records
    for (category, outcome), n in records.outcomes.items():
        runtime.metrics.items.labels(category, outcome).inc(n)
    if done.nothing_to_store:
        return
    try:
        if done.packed is not None:
            await runtime.writer.run(save_packed_envelopes, done.packed)
        else:
            await runtime.writer.run(save_envelopes, records)
    except WriterOverloaded as exc:
        raise IngestError(503, f"server busy: {exc}", "overloaded", {"Retry-After": "1"}) from None
    except WriterStopped:
        raise IngestError(503, "server is shutting down", "overloaded", {"Retry-After": "5"}) from None


async def _commit_and_answer(
    runtime: Runtime, done: ProcessedItems, envelope_id: str | None, headers: dict[str, str]
) -> Response:
    await _commit(runtime, done)
    if done.rejected is not None and done.stored_id is None:
        raise IngestError(done.rejected[0], done.rejected[1], "invalid")
    return _json(200, {"id": done.stored_id or envelope_id}, headers)


def _ingest_endpoint(
    handle: Callable[[Runtime, Request], Awaitable[Response]],
) -> Callable[[Request], Awaitable[Response]]:
    """Wrap an ingest handler: IngestError becomes its JSON answer; rejections and latency are measured."""

    async def endpoint(request: Request) -> Response:
        runtime: Runtime = request.app.state.runtime
        started = runtime.clock.monotonic()
        try:
            response = await handle(runtime, request)
        except IngestError as exc:
            runtime.metrics.rejected.labels(exc.reason).inc()
            response = _error(exc)
        runtime.metrics.ingest_seconds.observe(runtime.clock.monotonic() - started)
        return response

    return endpoint


@_ingest_endpoint
async def envelope_endpoint(runtime: Runtime, request: Request) -> Response:
    project_id = _project_id(request)
    grant = await _authorize_early(runtime, request, project_id)
    body = await _read_body(request, runtime.settings.ingest.max_body_bytes)
    encoding = request.headers.get("content-encoding")
    if grant is None:
        # No key in the header or query: it may be in the envelope header's dsn. Only that first line
        # is decoded before the key is checked; the rest waits until the request is authorised.
        header = read_envelope_header(body, encoding, runtime.settings.ingest.max_decompressed_bytes)
        grant = await _authorize(runtime, request, project_id, header.get("dsn"))
    # The common case — a processor pool — never decompresses the body in this process.
    if runtime.processors is not None:
        answer = await _accept_body(runtime, request, grant, body)
        if answer is not None:
            return answer
    return await _accept(runtime, request, grant, body, encoding)


def _store_payload(body: bytes, limit: int) -> bytes:
    """`/store/` bodies are JSON, or (old SDKs) base64 of zlib-compressed JSON."""
    if body.lstrip()[:1] == b"{":
        return body
    try:
        raw = base64.b64decode(body, validate=False)
    except (binascii.Error, ValueError):
        raise IngestError(400, "store body is neither JSON nor base64", "invalid") from None
    try:
        return decode_body(raw, "deflate", max_size=limit)
    except BodyTooLarge as exc:
        raise IngestError(413, str(exc), "too_large") from None
    except BodyDecodingError:
        raise IngestError(400, "store body is neither JSON nor base64-encoded zlib", "invalid") from None


@_ingest_endpoint
async def store_endpoint(runtime: Runtime, request: Request) -> Response:
    project_id = _project_id(request)
    grant = await _authorize(runtime, request, project_id, None)
    settings = runtime.settings.ingest
    raw = await _read_body(request, settings.max_body_bytes)
    body = decode_request_body(raw, request.headers.get("content-encoding"), settings.max_decompressed_bytes)
    payload = _store_payload(body, runtime.settings.ingest.max_decompressed_bytes)
    kind = "event"
    if payload.lstrip()[:1] == b"{" and b'"transaction"' in payload[:4096]:
        try:
            if orjson.loads(payload).get("type") == "transaction":
                kind = "transaction"
        except orjson.JSONDecodeError:
            pass
    # The event as a one-item envelope: read, admitted and processed the way envelopes are.
    envelope = b"{}\n" + orjson.dumps({"type": kind, "length": len(payload)}) + b"\n" + payload
    return await _accept(runtime, request, grant, envelope, None)


async def preflight(request: Request) -> Response:
    return Response(status_code=200, headers=CORS_HEADERS)


async def method_not_allowed(request: Request) -> Response:
    error = IngestError(405, f"method {request.method} not allowed: send POST", "invalid", {"Allow": "POST, OPTIONS"})
    return _error(error)


_OTHER_METHODS = ["GET", "PUT", "PATCH", "DELETE"]  # Starlette adds HEAD to GET

# With and without the trailing slash: SDKs send it, hand-written clients often don't, and a redirect
# would make them send the body twice.
routes = [
    route
    for path in ("/api/{project_id}/envelope/", "/api/{project_id}/envelope")
    for route in (
        Route(path, envelope_endpoint, methods=["POST"]),
        Route(path, preflight, methods=["OPTIONS"]),
        Route(path, method_not_allowed, methods=_OTHER_METHODS),
    )
] + [
    route
    for path in ("/api/{project_id}/store/", "/api/{project_id}/store")
    for route in (
        Route(path, store_endpoint, methods=["POST"]),
        Route(path, preflight, methods=["OPTIONS"]),
        Route(path, method_not_allowed, methods=_OTHER_METHODS),
    )
]

# `POST /api/<id>/envelope/` is nearly all of the requests a server sees. Matching it before the
# framework's middleware stack and router (exception middlewares, an exit stack, a scan of every
# route) saves about a tenth of the CPU the server process spends on an event; anything else about
# the request (a bad id, a wrong key, a huge body) is still answered by envelope_endpoint itself.
_ENVELOPE_PATH = re.compile(r"/api/([^/]{1,40})/envelope/?")


def envelope_fast_path(scope: Scope) -> dict[str, str] | None:
    """The path parameters when `scope` is an envelope POST, else None."""
    if scope["type"] != "http" or scope["method"] != "POST" or scope.get("root_path"):
        return None
    match = _ENVELOPE_PATH.fullmatch(scope["path"])
    return {"project_id": match.group(1)} if match else None


async def serve_envelope(scope: Scope, receive: Receive, send: Send, path_params: dict[str, str]) -> None:
    """Answer an envelope POST without the framework's routing (see `envelope_fast_path`)."""
    scope["path_params"] = path_params
    try:
        response = await envelope_endpoint(Request(scope, receive))
    except ClientDisconnect:
        # The SDK went away before its body arrived (a closed app, a dropped mobile connection): nothing
        # to answer and nothing wrong with the server.
        log.info("client disconnected before its envelope was read")
        return
    except Exception:
        # What the framework's error middleware would do, in the JSON SDKs read.
        log.exception("envelope request failed")
        response = _json(500, {"detail": "internal error"}, {"X-Sentry-Error": "internal error"})
    await response(scope, receive, send)
