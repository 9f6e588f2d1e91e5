"""Logins with lock-out, server-side sessions with idle and absolute expiry, CSRF tokens, cookie flags."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select

from watchkeeper.app import Runtime
from watchkeeper.auth.sessions import (
    check_csrf,
    cookie_options,
    end_session,
    end_user_sessions,
    login,
    needs_touch,
    resolve_session,
    sign_in,
    start_session,
    touch_session,
)
from watchkeeper.auth.tables import sessions
from watchkeeper.auth.users import create_user
from watchkeeper.config import SessionSettings, load_settings
from watchkeeper.lib.clock import ManualClock
from watchkeeper.store.engine import for_writing

LIMITS = SessionSettings(idle_timeout_seconds=3600, absolute_lifetime_seconds=86400, lockout_seconds=900)
PASSWORD = "correct horse battery"


@pytest.fixture
def user_id(runtime: Runtime) -> int:
    with for_writing(runtime.engine).begin() as conn:
        return create_user(conn, "ann@example.com", PASSWORD, role="member", now=0).id


def attempt(runtime: Runtime, password: str, now: float, *, email: str = "ann@example.com", ip: str = "10.0.0.1"):  # type: ignore[no-untyped-def]
    with for_writing(runtime.engine).begin() as conn:
        return login(conn, email, password, ip=ip, now=now, limits=LIMITS)


def test_it_logs_in_with_the_right_password_only(runtime: Runtime, user_id: int) -> None:
    ok = attempt(runtime, PASSWORD, 1000, email=" Ann@Example.com ")
    assert ok.ok and ok.user is not None and ok.user.id == user_id
    assert attempt(runtime, "wrong password", 1000).reason == "bad_credentials"
    assert attempt(runtime, PASSWORD, 1000, email="nobody@example.com").reason == "bad_credentials"


def test_it_locks_an_account_after_five_failures_for_fifteen_minutes(runtime: Runtime, user_id: int) -> None:
    clock = ManualClock(10_000)
    reasons = [attempt(runtime, f"wrong-{i}", clock.now()).reason for i in range(5)]
    assert reasons == ["bad_credentials"] * 4 + ["locked"]
    locked = attempt(runtime, PASSWORD, clock.now(), ip="10.9.9.9")  # the right password, from elsewhere
    assert locked.reason == "locked" and locked.locked_until == clock.now() + 900
    clock.advance(899)
    assert attempt(runtime, PASSWORD, clock.now()).reason == "locked"
    clock.advance(1)
    assert attempt(runtime, PASSWORD, clock.now()).ok


def test_a_success_resets_the_count_and_old_failures_expire(runtime: Runtime, user_id: int) -> None:
    clock = ManualClock(10_000)
    for _ in range(4):
        attempt(runtime, "wrong", clock.now())
    assert attempt(runtime, PASSWORD, clock.now()).ok
    for _ in range(4):
        attempt(runtime, "wrong", clock.now())
    clock.advance(901)  # the window of those four has passed
    assert attempt(runtime, "wrong", clock.now()).reason == "bad_credentials"
    assert attempt(runtime, PASSWORD, clock.now()).ok


def test_one_address_trying_many_accounts_is_throttled(runtime: Runtime, user_id: int) -> None:
    limits = SessionSettings(max_failures_per_ip=3)
    with for_writing(runtime.engine).begin() as conn:
        reasons = [
            login(conn, f"guess{i}@example.com", "x", ip="192.0.2.7", now=50, limits=limits).reason for i in range(3)
        ]
        assert reasons == ["bad_credentials", "bad_credentials", "locked"]
        assert login(conn, "ann@example.com", PASSWORD, ip="192.0.2.7", now=51, limits=limits).reason == "locked"
        assert login(conn, "ann@example.com", PASSWORD, ip="192.0.2.8", now=51, limits=limits).ok


def test_a_deactivated_user_cannot_log_in(runtime: Runtime, user_id: int) -> None:
    from sqlalchemy import update

    from watchkeeper.auth.tables import users

    with for_writing(runtime.engine).begin() as conn:
        conn.execute(update(users).where(users.c.id == user_id).values(is_active=False))
    assert attempt(runtime, PASSWORD, 10).reason == "bad_credentials"


def test_sessions_store_only_a_hash_and_resolve_until_idle_or_absolute_expiry(runtime: Runtime, user_id: int) -> None:
    clock = ManualClock(100_000)
    with for_writing(runtime.engine).begin() as conn:
        raw, info = start_session(conn, user_id, now=clock.now(), user_agent="pytest", ip="10.0.0.1", limits=LIMITS)
        stored = conn.execute(select(sessions.c.id_hash)).scalar_one()
    assert raw not in stored and len(raw) >= 40
    assert info.user_id == user_id and info.role == "member" and info.email == "ann@example.com"

    def resolve() -> object:
        with runtime.engine.connect() as conn:
            return resolve_session(conn, raw, now=clock.now(), limits=LIMITS)

    clock.advance(3599)
    assert resolve() is not None
    clock.advance(1)
    assert resolve() is None  # idle for an hour


def test_activity_pushes_the_idle_timeout_back_but_not_past_the_absolute_lifetime(
    runtime: Runtime, user_id: int
) -> None:
    clock = ManualClock(100_000)
    with for_writing(runtime.engine).begin() as conn:
        raw, info = start_session(conn, user_id, now=clock.now(), user_agent=None, ip=None, limits=LIMITS)
    alive_until = clock.now()
    while True:
        clock.advance(3000)
        with runtime.engine.connect() as conn:
            session = resolve_session(conn, raw, now=clock.now(), limits=LIMITS)
        if session is None:
            break
        alive_until = clock.now()
        assert needs_touch(session, clock.now())
        with for_writing(runtime.engine).begin() as conn:
            touch_session(conn, info.id, clock.now())
    assert 100_000 + 86400 - 3000 <= alive_until < 100_000 + 86400


def test_ending_a_session_and_all_of_a_users_sessions(runtime: Runtime, user_id: int) -> None:
    with for_writing(runtime.engine).begin() as conn:
        first, _ = start_session(conn, user_id, now=10, user_agent=None, ip=None)
        second, keep = start_session(conn, user_id, now=10, user_agent=None, ip=None)
        third, _ = start_session(conn, user_id, now=10, user_agent=None, ip=None)
        assert end_session(conn, first) and not end_session(conn, first)
        assert resolve_session(conn, first, now=11) is None
        assert end_user_sessions(conn, user_id, keep_session_id=keep.id) == 1
        assert resolve_session(conn, second, now=11) is not None
        assert resolve_session(conn, third, now=11) is None
        assert resolve_session(conn, "forged", now=11) is None and resolve_session(conn, None, now=11) is None


def test_csrf_tokens_are_per_session_and_compared_exactly(runtime: Runtime, user_id: int) -> None:
    with for_writing(runtime.engine).begin() as conn:
        _, one = start_session(conn, user_id, now=10, user_agent=None, ip=None)
        _, two = start_session(conn, user_id, now=10, user_agent=None, ip=None)
    assert one.csrf_token != two.csrf_token
    assert check_csrf(one, one.csrf_token)
    assert not check_csrf(one, two.csrf_token)
    assert not check_csrf(one, None) and not check_csrf(one, "") and not check_csrf(one, one.csrf_token[:-1])


def test_cookie_flags_follow_the_public_url() -> None:
    plain = cookie_options(load_settings(environ={}))
    assert plain["httponly"] and plain["samesite"] == "lax" and not plain["secure"]
    tls = cookie_options(load_settings(environ={}, overrides={"public_url": "https://wk.example.com"}))
    assert tls["secure"]


def test_sign_in_creates_a_session_through_the_writer(runtime: Runtime, user_id: int) -> None:
    result, raw = asyncio.run(sign_in(runtime, "ann@example.com", PASSWORD, ip="10.0.0.2", user_agent="ua"))
    assert result.ok and raw
    with runtime.engine.connect() as conn:
        assert resolve_session(conn, raw, now=runtime.clock.now()) is not None
    failed, none = asyncio.run(sign_in(runtime, "ann@example.com", "nope", ip="10.0.0.2", user_agent="ua"))
    assert failed.reason == "bad_credentials" and none is None


def test_expired_sessions_and_finished_lockouts_are_purged(runtime: Runtime, user_id: int) -> None:
    from watchkeeper.auth.sessions import purge_expired
    from watchkeeper.auth.tables import login_throttle

    with for_writing(runtime.engine).begin() as conn:
        start_session(conn, user_id, now=0, user_agent=None, ip=None, limits=LIMITS)
        fresh, _ = start_session(conn, user_id, now=5000, user_agent=None, ip=None, limits=LIMITS)
        login(conn, "ann@example.com", "wrong", ip="10.0.0.1", now=0, limits=LIMITS)
        login(conn, "ann@example.com", "wrong", ip="10.0.0.3", now=5000, limits=LIMITS)
        assert purge_expired(conn, now=5001, limits=LIMITS) == 1
        assert resolve_session(conn, fresh, now=5001, limits=LIMITS) is not None
        keys = {r.key for r in conn.execute(select(login_throttle.c.key))}
    assert keys == {"email:ann@example.com", "ip:10.0.0.3"}
