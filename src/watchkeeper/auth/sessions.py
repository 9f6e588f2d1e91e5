"""Logins and browser sessions: server-side rows, a random cookie, a CSRF token per session.

Interface for the web pages (all times are epoch seconds from the runtime's clock):

    # Log in (async, from a request handler): argon2 runs off the event loop, the writes go through the
    # one writer. `result.ok`; else `result.reason` is "bad_credentials" or "locked" (until `result.locked_until`).
    result, raw = await sign_in(runtime, email, password, ip=client_ip, user_agent=ua)
    if result.ok:
        set_session_cookie(response, raw, runtime.settings)      # HttpOnly, SameSite=Lax, Secure on https

    # Every request: read the cookie, resolve it (a read), refresh it now and then (a write).
    raw = request.cookies.get(SESSION_COOKIE)
    session = resolve_session(conn, raw, now=now, limits=settings.sessions)   # None: log in again
    if session and needs_touch(session, now):
        runtime.writer.submit(call_each, lambda conn: touch_session(conn, session.id, now))

    # Forms: put session.csrf_token in a hidden field CSRF_FORM_FIELD (or header CSRF_HEADER for htmx),
    # and on every POST: if not check_csrf(session, submitted): 403.

    # Log out: await runtime.writer.run(call_each, lambda conn: end_session(conn, raw)); clear_session_cookie(...)

The synchronous pieces (`login`, `start_session`, `resolve_session`, `end_session`) take a connection, so
tests and the CLI can use them inside `for_writing(engine).begin()`. Only a SHA-256 of the cookie value is
stored: a leaked database does not leak usable sessions.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy import Connection, delete, insert, select, update
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from watchkeeper.auth import throttle
from watchkeeper.auth.tables import sessions, users
from watchkeeper.auth.users import User, hash_password, verify_password
from watchkeeper.config import SessionSettings, Settings
from watchkeeper.store.writer import call_each

if TYPE_CHECKING:
    from watchkeeper.app import Runtime

SESSION_COOKIE = "wk_session"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FORM_FIELD = "csrf_token"
DEFAULT_LIMITS = SessionSettings()
# Refreshing last_seen_at on every page view would turn each read into a write; a minute is precise
# enough for an idle timeout measured in hours.
TOUCH_INTERVAL = 60.0
_dummy_hash: list[str] = []


@dataclass(frozen=True, slots=True)
class LoginResult:
    reason: Literal["ok", "bad_credentials", "locked"]
    user: User | None = None
    locked_until: float | None = None

    @property
    def ok(self) -> bool:
        return self.reason == "ok"


@dataclass(frozen=True, slots=True)
class SessionInfo:
    id: int
    user_id: int
    email: str
    role: str
    timezone: str | None
    csrf_token: str
    created_at: float
    last_seen_at: float
    expires_at: float
    # Logged in with a one-time password: only the password form opens until a new one is set.
    must_change_password: bool = False


def _digest(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def _verify_in_constant_time(password_hash: str | None, password: str) -> bool:
    """An unknown e-mail costs the same argon2 work as a wrong password, so timing does not tell them apart."""
    if password_hash:
        return verify_password(password_hash, password)
    if not _dummy_hash:
        _dummy_hash.append(hash_password(secrets.token_urlsafe(16)))
    verify_password(_dummy_hash[0], password)
    return False


def check_login(
    conn: Connection, email: str, password: str, *, ip: str, now: float, limits: SessionSettings = DEFAULT_LIMITS
) -> LoginResult:
    """Read-only half of a login: lock-out check and password check (no counters changed)."""
    keys = [throttle.account_key(email), throttle.address_key(ip)]
    until = throttle.locked_until(conn, keys, now)
    if until is not None:
        return LoginResult("locked", locked_until=until)
    row = conn.execute(select(users).where(users.c.email == email.strip().lower())).first()
    if not _verify_in_constant_time(row.password_hash if row else None, password) or row is None:
        return LoginResult("bad_credentials")
    if not row.is_active:
        return LoginResult("bad_credentials")  # same answer: do not tell an attacker the account exists
    return LoginResult("ok", User(row.id, row.email, row.role, row.is_active))


def record_login(
    conn: Connection, result: LoginResult, email: str, *, ip: str, now: float, limits: SessionSettings = DEFAULT_LIMITS
) -> LoginResult:
    """Writing half: count a failure (which may lock the account or address) or clear the account's count."""
    if result.reason == "locked":
        return result
    if result.ok:
        # A lock set by parallel failures after this attempt was checked still wins.
        until = throttle.locked_until(conn, [throttle.account_key(email), throttle.address_key(ip)], now)
        if until is not None:
            return LoginResult("locked", locked_until=until)
        throttle.clear(conn, throttle.account_key(email))
        return result
    ends = [
        throttle.record_failure(conn, throttle.account_key(email), limits.max_failures_per_account, now, limits),
        throttle.record_failure(conn, throttle.address_key(ip), limits.max_failures_per_ip, now, limits),
    ]
    locked = [end for end in ends if end is not None]
    return LoginResult("locked", locked_until=max(locked)) if locked else result


def login(
    conn: Connection, email: str, password: str, *, ip: str, now: float, limits: SessionSettings = DEFAULT_LIMITS
) -> LoginResult:
    """Check a password with lock-out, in one transaction (tests, CLI).

    >>> # login(conn, "ann@example.com", "wrong", ip="10.0.0.1", now=clock.now()).reason -> "bad_credentials"
    """
    result = check_login(conn, email, password, ip=ip, now=now, limits=limits)
    return record_login(conn, result, email, ip=ip, now=now, limits=limits)


def start_session(
    conn: Connection, user_id: int, *, now: float, user_agent: str | None, ip: str | None,
    limits: SessionSettings = DEFAULT_LIMITS,
) -> tuple[str, SessionInfo]:
    """Create a session; returns the raw cookie value (shown only here) and the session."""
    raw = secrets.token_urlsafe(32)
    conn.execute(
        insert(sessions).values(
            id_hash=_digest(raw), user_id=user_id, csrf_token=secrets.token_urlsafe(32), created_at=now,
            last_seen_at=now, user_agent=(user_agent or "")[:300] or None, ip=(ip or "")[:45] or None,
        )
    )
    info = resolve_session(conn, raw, now=now, limits=limits)
    assert info is not None
    return raw, info


def resolve_session(
    conn: Connection, raw: str | None, *, now: float, limits: SessionSettings = DEFAULT_LIMITS
) -> SessionInfo | None:
    """The live session for a cookie value, or None (unknown, expired, or its user deactivated)."""
    if not raw or len(raw) > 200:
        return None
    row = conn.execute(
        select(sessions, users.c.email, users.c.role, users.c.timezone, users.c.must_change_password)
        .join(users, users.c.id == sessions.c.user_id)
        .where(sessions.c.id_hash == _digest(raw), users.c.is_active.is_(True))
    ).first()
    if row is None:
        return None
    expires = min(row.created_at + limits.absolute_lifetime_seconds, row.last_seen_at + limits.idle_timeout_seconds)
    if now >= expires:
        return None
    return SessionInfo(
        row.id, row.user_id, row.email, row.role, row.timezone, row.csrf_token, row.created_at, row.last_seen_at,
        expires, bool(row.must_change_password),
    )


def needs_touch(session: SessionInfo, now: float) -> bool:
    return now - session.last_seen_at >= TOUCH_INTERVAL


def touch_session(conn: Connection, session_id: int, now: float) -> None:
    """Record activity, which pushes the idle timeout back (never past the absolute lifetime)."""
    conn.execute(update(sessions).where(sessions.c.id == session_id).values(last_seen_at=now))


def end_session(conn: Connection, raw: str | None) -> bool:
    if not raw:
        return False
    return conn.execute(delete(sessions).where(sessions.c.id_hash == _digest(raw))).rowcount > 0


def end_user_sessions(conn: Connection, user_id: int, *, keep_session_id: int | None = None) -> int:
    """Log a user out everywhere (password reset, deactivation), optionally keeping the current session."""
    query = delete(sessions).where(sessions.c.user_id == user_id)
    if keep_session_id is not None:
        query = query.where(sessions.c.id != keep_session_id)
    return int(conn.execute(query).rowcount)


def purge_expired(conn: Connection, *, now: float, limits: SessionSettings = DEFAULT_LIMITS) -> int:
    """Delete expired sessions and finished login counters (run with retention); returns sessions deleted."""
    throttle.purge(conn, now, limits)
    return int(
        conn.execute(
            delete(sessions).where(
                (sessions.c.created_at <= now - limits.absolute_lifetime_seconds)
                | (sessions.c.last_seen_at <= now - limits.idle_timeout_seconds)
            )
        ).rowcount
    )


def check_csrf(session: SessionInfo, submitted: str | None) -> bool:
    """True when the form or header carries this session's token (constant-time compare).

    >>> # check_csrf(session, request.headers.get(CSRF_HEADER))
    """
    if not submitted:
        return False
    return hmac.compare_digest(session.csrf_token.encode(), submitted.encode())


def cookie_options(settings: Settings) -> dict[str, Any]:
    """Flags for the session cookie: HttpOnly, SameSite=Lax, Secure when the public URL is https."""
    return {
        "httponly": True,
        "samesite": "lax",
        "secure": settings.base_url.startswith("https://"),
        "path": "/",
        "max_age": settings.sessions.absolute_lifetime_seconds,
    }


def set_session_cookie(response: Response, raw: str, settings: Settings) -> None:
    response.set_cookie(SESSION_COOKIE, raw, **cookie_options(settings))


def clear_session_cookie(response: Response, settings: Settings) -> None:
    options = cookie_options(settings)
    del options["max_age"]
    response.delete_cookie(SESSION_COOKIE, **options)


async def sign_in(
    runtime: Runtime, email: str, password: str, *, ip: str, user_agent: str | None
) -> tuple[LoginResult, str | None]:
    """Log in from a request handler: returns the result and, when it is ok, the raw cookie value."""
    limits = runtime.settings.sessions
    now = runtime.clock.now()

    def check() -> LoginResult:
        with runtime.engine.connect() as conn:
            return check_login(conn, email, password, ip=ip, now=now, limits=limits)

    checked = await run_in_threadpool(check)

    def record(conn: Connection) -> tuple[LoginResult, str | None]:
        result = record_login(conn, checked, email, ip=ip, now=now, limits=limits)
        if not result.ok or result.user is None:
            return result, None
        raw, _ = start_session(conn, result.user.id, now=now, user_agent=user_agent, ip=ip, limits=limits)
        return result, raw

    outcome: tuple[LoginResult, str | None] = await runtime.writer.run(call_each, record)
    return outcome
