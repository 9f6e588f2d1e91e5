"""What every `/api/v1` endpoint shares: auth (bearer token or session cookie), JSON errors, cursors,
writes via the writer."""

from __future__ import annotations

import base64
import binascii
import contextlib
import math
import re
from collections.abc import Callable
from typing import Annotated, Any

import orjson
from fastapi import Depends, FastAPI, HTTPException, Path, Query, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import AfterValidator, Field
from sqlalchemy import Connection
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from watchkeeper.app import Runtime
from watchkeeper.auth import sessions
from watchkeeper.auth.access import Principal, principal_for
from watchkeeper.auth.tokens import TOUCH_INTERVAL, TokenOwner, authenticate_token, touch_token
from watchkeeper.lib.clock import MAX_EPOCH
from watchkeeper.openapi import CONFLICT as CONFLICT
from watchkeeper.openapi import NOT_FOUND as NOT_FOUND
from watchkeeper.store.writer import WriterOverloaded, WriterStopped, call_each

# Ids and counters the client sends must fit the columns they are compared with (PostgreSQL INTEGER and
# BIGINT), so an absurd number is a 422 naming the field, not a database error.
MAX_INT = 2**31 - 1
MAX_BIGINT = 2**63 - 1
ProjectId = Annotated[int, Path(ge=1, le=MAX_INT)]
KeyId = Annotated[int, Path(ge=1, le=MAX_INT)]
IssueId = Annotated[int, Path(ge=1, le=MAX_BIGINT)]


# A calendar month a client names (`YYYY-MM`), within the times a client may send (MAX_EPOCH).
MONTH_PATTERN = r"^(19[7-9][0-9]|[2-9][0-9]{3})-(0[1-9]|1[0-2])$"


def epoch_query(description: str = "epoch seconds") -> Any:
    """A time in the query string: finite epoch seconds from 1970 to the end of year 9999 (MAX_EPOCH)."""
    return Query(ge=0, le=MAX_EPOCH, allow_inf_nan=False, description=description)


def epoch_field(default: Any = ..., description: str = "epoch seconds") -> Any:
    """A time in a request body, bounded as `epoch_query`."""
    return Field(default, ge=0, le=MAX_EPOCH, allow_inf_nan=False, description=description)


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


def _authenticate(runtime: Runtime, token: str) -> tuple[TokenOwner, Principal] | None:
    with runtime.engine.connect() as conn:
        owner = authenticate_token(conn, token)
        if owner is None:
            return None
        try:
            principal = principal_for(
                conn, owner.user_id, scope=owner.project_scope, read_only=owner.read_only, token_id=owner.token_id
            )
        except LookupError:  # deactivated between the two queries
            return None
        return owner, principal


def _resolve_session(runtime: Runtime, raw: str) -> tuple[sessions.SessionInfo, Principal] | None:
    now = runtime.clock.now()
    with runtime.engine.connect() as conn:
        session = sessions.resolve_session(conn, raw, now=now, limits=runtime.settings.sessions)
        if session is None:
            return None
        try:
            return session, principal_for(conn, session.user_id, session_id=session.id)
        except LookupError:
            return None


def _touch_later(runtime: Runtime, function: Callable[[Connection], Any]) -> None:
    # Not awaited: the answer does not depend on it, and a busy writer must not slow reads.
    with contextlib.suppress(WriterOverloaded, WriterStopped):
        runtime.writer.submit(call_each, function)


async def _token_principal(runtime: Runtime, token: str) -> Principal:
    found = await run_in_threadpool(_authenticate, runtime, token)
    if found is None:
        raise HTTPException(401, "invalid or revoked API token", headers={"WWW-Authenticate": "Bearer"})
    owner, principal = found
    now = runtime.clock.now()
    if owner.last_used_at is None or now - owner.last_used_at >= TOUCH_INTERVAL:
        _touch_later(runtime, lambda conn: touch_token(conn, owner.token_id, now))
    return principal


SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


async def _session_principal(request: Request, runtime: Runtime, raw: str) -> Principal:
    found = await run_in_threadpool(_resolve_session, runtime, raw)
    if found is None:
        raise HTTPException(401, "session expired or unknown: log in again, or send an API token")
    session, principal = found
    if session.must_change_password and request.url.path not in ("/api/v1/me", "/api/v1/me/password"):
        raise HTTPException(403, "you logged in with a one-time password: set a new one first (/account, "
                                 "or POST /api/v1/me/password)")
    # A cookie is sent by the browser on any site's request; only our pages know the session's token.
    if request.method not in SAFE_METHODS and not sessions.check_csrf(
        session, request.headers.get(sessions.CSRF_HEADER)
    ):
        raise HTTPException(403, f"missing or wrong CSRF token: send the session's token in {sessions.CSRF_HEADER}")
    now = runtime.clock.now()
    if sessions.needs_touch(session, now):
        _touch_later(runtime, lambda conn: sessions.touch_session(conn, session.id, now))
    return principal


async def current_principal(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Principal:
    """Who is calling: a bearer token (`Authorization: Bearer wk_…`) or the session cookie of a logged-in user.

    A `{project_id}` in the path that the caller cannot see is a 404 here already, for every endpoint of
    every domain, before the body is validated: the answer cannot depend on whether the project exists.
    """
    principal = await _authenticated(request, credentials)
    project_id = _path_project_id(request)
    if project_id is not None and not principal.can_read(project_id):
        raise HTTPException(404, f"project {project_id} not found")
    return principal


def _path_project_id(request: Request) -> int | None:
    value = request.path_params.get("project_id")
    if not isinstance(value, str) or not value.isascii() or not value.isdigit() or len(value) > 10:
        return None  # not a valid id: the endpoint's validation answers
    number = int(value)
    return number if 1 <= number <= MAX_INT else None


async def _authenticated(request: Request, credentials: HTTPAuthorizationCredentials | None) -> Principal:
    runtime = runtime_of(request)
    if credentials is not None and credentials.scheme.lower() == "bearer":
        return await _token_principal(runtime, credentials.credentials)
    raw = request.cookies.get(sessions.SESSION_COOKIE)
    if raw and credentials is None:
        return await _session_principal(request, runtime, raw)
    raise HTTPException(
        401,
        "missing API token: send 'Authorization: Bearer <token>' (or log in for a session cookie)",
        headers={"WWW-Authenticate": "Bearer"},
    )


async def writing_principal(principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
    if principal.read_only:
        raise HTTPException(403, "this token may only read")
    if not principal.may_write:
        raise HTTPException(403, f"your role ({principal.role}) may only read")
    return principal


# Why a project-limited token is refused an account-level action (tokens, password, teams, users,
# incidents of no project): it must reach only its projects' objects.
LIMITED_TOKEN = "a token limited to projects cannot do this; use a token not limited to projects, or log in"


async def account_principal(principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
    """The caller acting on their account (tokens, password, preferences, teams): not a limited token."""
    if principal.scope is not None:
        raise HTTPException(403, LIMITED_TOKEN)
    return principal


async def admin_reader(principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
    if principal.scope is not None:
        raise HTTPException(403, LIMITED_TOKEN)
    if not principal.is_admin:
        raise HTTPException(403, "only an admin may do this")
    return principal


async def admin_editor(principal: Annotated[Principal, Depends(admin_reader)]) -> Principal:
    if principal.read_only:
        raise HTTPException(403, "this token may only read")
    return principal


Reader = Annotated[Principal, Depends(current_principal)]
Editor = Annotated[Principal, Depends(writing_principal)]
Account = Annotated[Principal, Depends(account_principal)]
AdminReader = Annotated[Principal, Depends(admin_reader)]
AdminEditor = Annotated[Principal, Depends(admin_editor)]


def check_project_access(principal: Principal, project_id: int, *, exists: bool, write: bool, what: str) -> None:
    """404 when the project (or the thing in it) does not exist or is invisible to the principal, so a
    user of another team cannot probe for it; 403 when it is visible but the change is not allowed."""
    if not exists or not principal.can_read(project_id):
        raise HTTPException(404, f"{what} not found")
    if write and not principal.can_write(project_id):
        raise HTTPException(403, "you may read this project but not change it")


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


# What an endpoint's 422 message starts with when it names fields: `name`, `layers.0.users`, `start, end`.
_FIELDS = re.compile(r"[A-Za-z_][\w.\[\]]*(, ?[A-Za-z_][\w.\[\]]*)*")


def install_error_handlers(app: FastAPI) -> None:
    """JSON errors everywhere, and a schema that declares them (see openapi.py)."""
    from watchkeeper import openapi

    openapi.install(app, {admin_reader, admin_editor, account_principal, writing_principal})

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [{"field": _field_name(e), "message": e["msg"]} for e in exc.errors()]
        summary = "; ".join(f"{p['field']}: {p['message']}" for p in problems)
        return JSONResponse({"detail": f"invalid request: {summary}", "errors": problems}, status_code=422)

    @app.exception_handler(ClientDisconnect)
    async def _gone(request: Request, exc: ClientDisconnect) -> Response:
        # The client hung up before its body arrived: normal traffic, not a server error (no traceback,
        # and handled here so the server's own error log does not report it either). Nobody reads this.
        import logging

        logging.getLogger("watchkeeper").info("client disconnected during %s %s", request.method, request.url.path)
        return Response(status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code != 422 or not isinstance(exc.detail, str):
            return await http_exception_handler(request, exc)
        # One shape for every 422: the checks in the endpoints say "field: why", as validation does.
        field, sep, message = exc.detail.partition(": ")
        if not sep or not _FIELDS.fullmatch(field):
            field, message = "body", exc.detail
        problems = [{"field": name.strip(), "message": message} for name in field.split(",")]
        return JSONResponse({"detail": exc.detail, "errors": problems}, status_code=422, headers=exc.headers)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        import logging

        logging.getLogger("watchkeeper").exception("unhandled error on %s", request.url.path)
        return JSONResponse({"detail": "internal error; see the server log"}, status_code=500)
