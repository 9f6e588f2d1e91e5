"""Helpers for the page tests: a logged-in httpx client per user, form tokens read from the pages; a
fresh page of the session's browser (tests/conftest.py) that fails the test on any console error."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import sentry_sdk
from playwright.sync_api import Browser, Dialog, Page

from tests.alerting.receivers import HttpReceiver
from tests.conftest import Server, run_server
from watchkeeper.app import bootstrap_admin
from watchkeeper.config import AlertingSettings, Settings

ADMIN_PASSWORD = "admin-password-1"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "web"
_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


def form_token(html: str) -> str:
    match = _TOKEN.search(html)
    assert match, "page has no form with a CSRF token"
    return match.group(1)


def log_in(server: Server, email: str, password: str) -> httpx.Client:
    client = httpx.Client(base_url=server.url, timeout=30)
    page = client.get("/login")
    assert page.status_code == 200
    answer = client.post(
        "/login", data={"email": email, "password": password, "csrf_token": form_token(page.text), "next": "/projects"}
    )
    assert answer.status_code == 303, answer.text
    return client


def ensure_admin(server: Server) -> None:
    """The admin `watchkeeper serve` creates on an empty database (the test server does not)."""
    bootstrap_admin(server.runtime.engine, server.settings, server.runtime.clock)


@pytest.fixture
def admin(server: Server) -> Iterator[httpx.Client]:
    ensure_admin(server)
    client = log_in(server, server.settings.admin_email, ADMIN_PASSWORD)
    yield client
    client.close()


@contextmanager
def sentry(dsn: str) -> Iterator[sentry_sdk.Scope]:
    """The real sentry-sdk pointed at the test server, in scopes of its own (tags and breadcrumbs set on
    the yielded scope stay in this block); flushed when the block ends."""
    client = sentry_sdk.Client(dsn=dsn, default_integrations=False, environment="production", release="shop@1.2.3")
    with sentry_sdk.isolation_scope(), sentry_sdk.new_scope() as scope:
        scope.set_client(client)
        yield scope
    client.flush(timeout=10)
    client.close(timeout=10)


@dataclass
class Console:
    """Everything the page complained about."""

    errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)

    def watch(self, page: Page) -> None:
        page.on("console", lambda m: self.errors.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(f"page error: {e}"))
        page.on("dialog", self._dialog)

    def _dialog(self, dialog: Dialog) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()


@pytest.fixture
def console() -> Console:
    return Console()


@pytest.fixture
def page(browser: Browser, console: Console) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, timezone_id="Europe/Paris")
    page = context.new_page()
    console.watch(page)
    yield page
    context.close()
    assert console.errors == []
    assert console.dialogs == []


# A local HTTP receiver for webhooks, and a server whose alert loops run every 0.1 s (the notification and
# alerting page tests).
@pytest.fixture
def receiver() -> Iterator[HttpReceiver]:
    with HttpReceiver() as http:
        yield http


@pytest.fixture
def fast_server(settings: Settings) -> Iterator[Server]:
    alerting = AlertingSettings(evaluation_interval_seconds=0.1, dispatch_interval_seconds=0.1)
    with run_server(settings.model_copy(update={"alerting": alerting})) as server:
        yield server
