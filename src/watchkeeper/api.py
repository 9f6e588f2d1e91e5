"""What every `/api/v1` endpoint shares: bearer-token auth, JSON errors, cursors, writes via the writer."""

from __future__ import annotations

import base64
import binascii
import contextlib
import math
from collections.abc import Callable
from typing import Annotated, Any

import orjson
from fastapi import Depends, FastAPI, HTTPException, Path, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import AfterValidator
from sqlalchemy import Connection
from starlette.concurrency import run_in_threadpool

from watchkeeper.app import Runtime
from watchkeeper.auth.tokens import TOUCH_INTERVAL, TokenOwner, authenticate_token, touch_token
from watchkeeper.store.writer import WriterOverloaded, WriterStopped, call_each

# Ids and counters the client sends must fit the columns they are compared with (PostgreSQL INTEGER and
# BIGINT), so an absurd number is a 422 naming the field, not a database error.
MAX_INT = 2**31 - 1
MAX_BIGINT = 2**63 - 1
ProjectId = Annotated[int, Path(ge=1, le=MAX_INT)]
KeyId = Annotated[int, Path(ge=1, le=MAX_INT)]
IssueId = Annotated[int, Path(ge=1, le=MAX_BIGINT)]


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("may not contain NUL characters")  # PostgreSQL text cannot store them
    return value


# A string a client sends that we store: anything but NUL.
Text = Annotated[str, AfterValidator(_no_nul)]

_bearer = HTTPBearer(auto_error=False, description="An API token made with `watchkeeper token create`")


def runtime_of(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def _authenticate(runtime: Runtime, token: str) -> TokenOwner | None:
    with runtime.engine.connect() as conn:
        return authenticate_token(conn, token)


async def token_owner(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> TokenOwner:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise HTTPException(
            401, "missing API token: send 'Authorization: Bearer <token>'", headers={"WWW-Authenticate": "Bearer"}
        )
    owner = await run_in_threadpool(_authenticate, runtime_of(request), credentials.credentials)
    if owner is None:
        raise HTTPException(401, "invalid or revoked API token", headers={"WWW-Authenticate": "Bearer"})
    runtime = runtime_of(request)
    now = runtime.clock.now()
    if owner.last_used_at is None or now - owner.last_used_at >= TOUCH_INTERVAL:
        # Not awaited: the answer does not depend on it, and a busy writer must not slow reads.
        with contextlib.suppress(WriterOverloaded, WriterStopped):
            runtime.writer.submit(call_each, lambda conn: touch_token(conn, owner.token_id, now))
    return owner


async def writer_owner(owner: Annotated[TokenOwner, Depends(token_owner)]) -> TokenOwner:
    if not owner.can_write:
        raise HTTPException(403, "this token may only read")
    return owner


Reader = Annotated[TokenOwner, Depends(token_owner)]
Editor = Annotated[TokenOwner, Depends(writer_owner)]


async def read(request: Request, function: Callable[[Connection], Any]) -> Any:
    """Run a read query off the event loop."""
    runtime = runtime_of(request)

    def run() -> Any:
        with runtime.engine.connect() as conn:
            return function(conn)

    return await run_in_threadpool(run)


async def write(request: Request, function: Callable[[Connection], Any]) -> Any:
    """Run a change through the one writer and wait for its commit."""
    try:
        return await runtime_of(request).writer.run(call_each, function)
    except WriterOverloaded as exc:
        raise HTTPException(503, f"server busy: {exc}", headers={"Retry-After": "1"}) from None


def encode_cursor(values: list[Any]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(values)).decode().rstrip("=")


def decode_cursor(cursor: str, length: int) -> list[Any]:
    try:
        values = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError, orjson.JSONDecodeError):
        raise HTTPException(400, "cursor: not a cursor returned by this API") from None
    if not isinstance(values, list) or len(values) != length or not all(_sortable_number(v) for v in values):
        # Our cursors hold sort keys and ids: numbers the database can compare with its columns.
        raise HTTPException(400, "cursor: not a cursor returned by this API")
    return values


def _sortable_number(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return -(2**63) <= value < 2**63
    return isinstance(value, float) and math.isfinite(value)


def _field_name(error: Any) -> str:
    """The field a validation error is about: `status`, `ids.0`, or `body` for an unreadable body."""
    loc = [str(p) for p in error.get("loc", ())]
    if error.get("type") == "json_invalid" or not loc:
        return "body"  # the location of a JSON syntax error is a character position, not a field
    if loc[0] in ("body", "query", "path", "header", "cookie") and len(loc) > 1:
        loc = loc[1:]
    return ".".join(loc)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [{"field": _field_name(e), "message": e["msg"]} for e in exc.errors()]
        summary = "; ".join(f"{p['field']}: {p['message']}" for p in problems)
        return JSONResponse({"detail": f"invalid request: {summary}", "errors": problems}, status_code=422)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        import logging

        logging.getLogger("watchkeeper").exception("unhandled error on %s", request.url.path)
        return JSONResponse({"detail": "internal error; see the server log"}, status_code=500)
