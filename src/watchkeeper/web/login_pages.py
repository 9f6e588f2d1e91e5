"""Log in and log out. Passwords, lock-out and sessions are `watchkeeper.auth.sessions`; this module
is the form around them.

The login form has no session yet to carry a CSRF token, so it uses a double-submit cookie: a random
value set with the form and posted back in it. A page on another site can post the form but cannot
read or set our cookie, so it cannot log a victim into an account of the attacker's choosing.
"""

from __future__ import annotations

import hmac
import secrets
from datetime import datetime
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from watchkeeper.api import read, runtime_of
from watchkeeper.auth import sessions
from watchkeeper.store.writer import call_each
from watchkeeper.web.shell import html_page
from watchkeeper.web.viewer import CurrentViewer, checked_form

router = APIRouter(include_in_schema=False)
LOGIN_COOKIE = "wk_login"


def safe_next(target: str | None) -> str:
    """Where to go after logging in: only a path on this site (never `//evil.example` or a URL).

    >>> safe_next("//evil.example/x"), safe_next("/issues/3?range=7d")
    ('/projects', '/issues/3?range=7d')
    """
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target[:2000]
    return "/projects"


def _login_form(request: Request, *, next_url: str, email: str = "", error: str | None = None,
                status: int = 200) -> Response:
    token = secrets.token_urlsafe(24)
    context = {"request": request, "login_token": token, "next": next_url, "email": email, "error": error}
    response = html_page("login.html", context, status=status)
    options = sessions.cookie_options(runtime_of(request).settings)
    response.set_cookie(LOGIN_COOKIE, token, httponly=True, samesite="strict", secure=options["secure"],
                        path="/login", max_age=3600)
    return response


@router.get("/login")
async def login_page(request: Request) -> Response:
    next_url = safe_next(request.query_params.get("next"))
    raw = request.cookies.get(sessions.SESSION_COOKIE)
    if raw:
        runtime = runtime_of(request)
        now, limits = runtime.clock.now(), runtime.settings.sessions
        if await read(request, lambda conn: sessions.resolve_session(conn, raw, now=now, limits=limits)):
            return RedirectResponse(next_url, status_code=303)
    return _login_form(request, next_url=next_url)


def _text(value: object, limit: int) -> str:
    return value[:limit] if isinstance(value, str) else ""


@router.post("/login")
async def login(request: Request) -> Response:
    form = await request.form()
    email, password = _text(form.get("email"), 254).strip(), _text(form.get("password"), 1024)
    next_url = safe_next(_text(form.get("next"), 2000))
    cookie, posted = request.cookies.get(LOGIN_COOKIE, ""), _text(form.get(sessions.CSRF_FORM_FIELD), 100)
    if not cookie or not hmac.compare_digest(cookie.encode(), posted.encode()):
        return _login_form(request, next_url=next_url, email=email, status=403,
                           error="The login form expired. Please try again.")
    if "\x00" in email + password:  # no account can have it, and PostgreSQL cannot compare it
        return _login_form(request, next_url=next_url, email="", status=401, error="E-mail or password is not right.")
    runtime = runtime_of(request)
    ip = request.client.host if request.client else "unknown"
    result, raw = await sessions.sign_in(
        runtime, email, password, ip=ip, user_agent=request.headers.get("user-agent")
    )
    if result.ok and raw:
        response = RedirectResponse(next_url, status_code=303)
        sessions.set_session_cookie(response, raw, runtime.settings)
        response.delete_cookie(LOGIN_COOKIE, path="/login")
        return response
    if result.reason == "locked" and result.locked_until:
        until = datetime.fromtimestamp(result.locked_until, ZoneInfo("UTC")).strftime("%H:%M UTC")
        return _login_form(request, next_url=next_url, email=email, status=429,
                           error=f"Too many failed attempts. Try again after {until}.")
    return _login_form(request, next_url=next_url, email=email, status=401,
                       error="E-mail or password is not right.")


@router.post("/logout")
async def logout(request: Request, viewer: CurrentViewer) -> Response:
    await checked_form(request, viewer)
    runtime = runtime_of(request)
    raw = request.cookies.get(sessions.SESSION_COOKIE)
    await runtime.writer.run(call_each, lambda conn: sessions.end_session(conn, raw))
    response = RedirectResponse("/login", status_code=303)
    sessions.clear_session_cookie(response, runtime.settings)
    return response
