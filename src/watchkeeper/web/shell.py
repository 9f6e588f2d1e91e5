"""What every page shares: the Jinja2 environment, time formatting in the viewer's zone, security
headers, and the error page.

Templates autoescape everything: data from events is only ever inserted as text. Pages carry a
Content-Security-Policy that allows scripts and styles from our own origin only, so even a missed
escape could not run an injected script.
"""

from __future__ import annotations

import math
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import jinja2
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, Response

from watchkeeper import __version__

WEB_DIR = Path(__file__).parent
STATIC_DIR = WEB_DIR / "static"

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    # Pages show DSNs and event data: keep them out of shared caches and the back-forward disk cache.
    "Cache-Control": "no-store",
}


class PageError(Exception):
    """Ends a page request with an HTML error page (404 for anything the viewer may not see)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class PasswordChangeRequired(Exception):
    """Logged in with a one-time password: the account page's password form comes first."""


# What a user who must change a one-time password may still open.
PASSWORD_CHANGE_PATHS = frozenset({"/account", "/account/password", "/logout"})


class LoginRequired(Exception):
    """No valid session: the browser is sent to the login page and comes back afterwards."""

    def __init__(self, next_url: str) -> None:
        super().__init__(next_url)
        self.next_url = next_url


@jinja2.pass_context
def format_time(context: Any, epoch: float | None, seconds: bool = True) -> str:
    """An epoch in the viewer's zone: `2026-11-23 17:02:11`."""
    if epoch is None or not math.isfinite(epoch):
        return "—"
    zone: ZoneInfo = context.get("zone") or ZoneInfo("UTC")
    return datetime.fromtimestamp(epoch, zone).strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")


def iso_time(epoch: float | None) -> str:
    if epoch is None or not math.isfinite(epoch):
        return ""
    return datetime.fromtimestamp(epoch, ZoneInfo("UTC")).isoformat()


@jinja2.pass_context
def time_ago(context: Any, epoch: float | None) -> str:
    """`3 min ago`, relative to the request's clock."""
    if epoch is None or not math.isfinite(epoch):
        return "—"
    delta = max(0.0, float(context.get("now", epoch)) - epoch)
    for size, unit in ((86400 * 365, "y"), (86400, "d"), (3600, "h"), (60, "min")):
        if delta >= size:
            return f"{int(delta // size)} {unit} ago"
    return "just now"


def sparkline_points(counts: list[int], width: int = 120, height: int = 24) -> str:
    """The `points` of an SVG polyline for a series of bucket counts.

    >>> sparkline_points([0, 2], width=10, height=10)
    '0.0,9.0 10.0,1.0'
    """
    if not counts:
        return ""
    top = max(counts) or 1
    step = width / max(1, len(counts) - 1)
    usable = height - 2
    return " ".join(f"{i * step:.1f},{height - 1 - usable * c / top:.1f}" for i, c in enumerate(counts))


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(WEB_DIR / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(when=format_time, iso=iso_time, ago=time_ago, sparkline=sparkline_points)
    env.globals.update(version=__version__)
    return env


TEMPLATES = _environment()


def html_page(template: str, context: dict[str, Any], status: int = 200) -> HTMLResponse:
    body = TEMPLATES.get_template(template).render(context)
    return HTMLResponse(body, status_code=status, headers=PAGE_HEADERS)


def install_page_errors(app: FastAPI) -> None:
    from fastapi.responses import RedirectResponse

    @app.exception_handler(PageError)
    async def _page_error(request: Request, exc: PageError) -> Response:
        context = {"request": request, "status": exc.status, "message": exc.message, "zone": ZoneInfo("UTC")}
        return html_page("error.html", context, status=exc.status)

    @app.exception_handler(PasswordChangeRequired)
    async def _change_password(request: Request, exc: PasswordChangeRequired) -> Response:
        return RedirectResponse("/account?change=required", status_code=303)

    @app.exception_handler(LoginRequired)
    async def _login(request: Request, exc: LoginRequired) -> Response:
        from urllib.parse import urlencode

        return RedirectResponse("/login?" + urlencode({"next": exc.next_url}), status_code=303)
