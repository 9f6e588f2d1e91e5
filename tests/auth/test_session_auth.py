"""The REST API with a session cookie: login sets it, writes need the CSRF header, expiry with the clock."""

from __future__ import annotations

import time

import httpx
from sqlalchemy import select

from tests.conftest import Server, make_project, make_user
from watchkeeper.auth.sessions import SESSION_COOKIE, resolve_session, start_session
from watchkeeper.auth.tables import sessions
from watchkeeper.store.engine import for_writing


def log_in(server: Server, browser: httpx.Client, email: str, password: str) -> str:
    """Log in as the pages do (sessions.login + start_session) and give the client the cookie; returns the CSRF
    token."""
    from watchkeeper.auth.sessions import login

    runtime = server.runtime
    with for_writing(runtime.engine).begin() as conn:
        result = login(conn, email, password, ip="127.0.0.1", now=runtime.clock.now())
        assert result.ok and result.user is not None, result
        raw, info = start_session(conn, result.user.id, now=runtime.clock.now(), user_agent="tests", ip="127.0.0.1")
    browser.cookies.set(SESSION_COOKIE, raw)
    return info.csrf_token


def test_a_session_cookie_reads_and_writes_only_with_the_csrf_header(server: Server) -> None:
    project = make_project(server)
    _, email = make_user(server, role="member", password="pass-word-1")
    with httpx.Client(base_url=server.url) as browser:
        csrf = log_in(server, browser, email, "pass-word-1")
        assert browser.get(f"/api/v1/projects/{project.id}").status_code == 200
        no_token = browser.patch(f"/api/v1/projects/{project.id}", json={"name": "X"})
        assert no_token.status_code == 403 and "CSRF" in no_token.json()["detail"]
        wrong = browser.patch(f"/api/v1/projects/{project.id}", json={"name": "X"}, headers={"X-CSRF-Token": "no"})
        assert wrong.status_code == 403
        ok = browser.patch(f"/api/v1/projects/{project.id}", json={"name": "X"}, headers={"X-CSRF-Token": csrf})
        assert ok.status_code == 200, ok.text


def test_no_credentials_or_a_forged_cookie_is_401(server: Server) -> None:
    with httpx.Client(base_url=server.url) as anonymous:
        assert anonymous.get("/api/v1/projects").status_code == 401
        anonymous.cookies.set(SESSION_COOKIE, "forged")
        assert anonymous.get("/api/v1/projects").status_code == 401


def test_sessions_expire_when_idle_with_the_runtimes_clock(server: Server) -> None:
    from watchkeeper.lib.clock import ManualClock

    clock = ManualClock(server.runtime.clock.now())
    server.runtime.clock = clock  # the handlers read the clock through the runtime on each request
    _, email = make_user(server, role="viewer", password="pass-word-1")
    with httpx.Client(base_url=server.url) as browser:
        log_in(server, browser, email, "pass-word-1")
        idle = server.settings.sessions.idle_timeout_seconds
        clock.advance(idle - 120)
        assert browser.get("/api/v1/me").status_code == 200  # this request refreshes the session (in the background)
        deadline = time.monotonic() + 10
        while _last_seen(server) != clock.now():
            assert time.monotonic() < deadline, "the session was not refreshed"
            time.sleep(0.02)
        clock.advance(200)  # past the first idle timeout, but within the refreshed one
        assert browser.get("/api/v1/me").status_code == 200
        clock.advance(idle + 1)
        assert browser.get("/api/v1/me").status_code == 401


def _last_seen(server: Server) -> float:
    with server.runtime.engine.connect() as conn:
        return float(conn.execute(select(sessions.c.last_seen_at)).scalar_one())


def test_the_session_id_is_not_stored(server: Server) -> None:
    user_id, _ = make_user(server)
    with for_writing(server.runtime.engine).begin() as conn:
        raw, _ = start_session(conn, user_id, now=1.0, user_agent=None, ip=None)
        assert conn.execute(select(sessions.c.id).where(sessions.c.id_hash == raw)).first() is None
        assert resolve_session(conn, raw, now=2.0) is not None
