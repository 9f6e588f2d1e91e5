"""Shared fixtures: a real database (SQLite, or PostgreSQL from WATCHKEEPER_TEST_DATABASE_URL), a real
server on a free local port, projects with DSNs and API tokens."""

from __future__ import annotations

import contextlib
import os
import resource
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvicorn
from hypothesis import settings as hypothesis_settings
from playwright.sync_api import Browser, Playwright, sync_playwright
from sqlalchemy import URL, Connection, create_engine, make_url, text

from watchkeeper.app import Runtime, build_runtime, create_app
from watchkeeper.auth.projects import create_project, list_keys
from watchkeeper.auth.teams import add_member, add_project, create_team, find_team
from watchkeeper.auth.tokens import create_token
from watchkeeper.auth.users import create_user
from watchkeeper.config import Settings, load_settings
from watchkeeper.lib.clock import Clock
from watchkeeper.store import migrate
from watchkeeper.store.engine import for_writing, make_engine

TEST_DATABASE_URL = os.environ.get("WATCHKEEPER_TEST_DATABASE_URL")

# Property tests are reproducible by default: the same examples on every machine and every run, so a
# green suite stays green by construction rather than by the luck of a seed. `.ci/run` runs them once
# more with HYPOTHESIS_PROFILE=random and a seed it prints, to keep looking for new failures.
hypothesis_settings.register_profile("default", derandomize=True, print_blob=True)
hypothesis_settings.register_profile("random", derandomize=False, print_blob=True)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

# A runaway test (a strategy that expands to billions of nodes, a leak) fails alone with MemoryError
# instead of taking the machine down: the test process and its children get an address-space limit.
# Chromium and Node reserve tens of GB of address space they never use, so the browser fixture lifts the
# soft limit while Playwright starts its driver (which then starts Chromium) and restores it after.
MEMORY_LIMIT_BYTES = int(float(os.environ.get("WATCHKEEPER_TEST_MEMORY_LIMIT_GB", "8")) * 2**30)
_soft, _hard = resource.getrlimit(resource.RLIMIT_AS)
if _hard == resource.RLIM_INFINITY or _hard > MEMORY_LIMIT_BYTES:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT_BYTES, _hard))


@contextlib.contextmanager
def without_memory_limit() -> Iterator[None]:
    """Processes started inside inherit no address-space limit (for Chromium and Playwright's Node)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (hard, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


# Each test starts from a copy of one database migrated once per session, instead of running every
# migration per test (about a third of the suite's time before): a file copy on SQLite, CREATE DATABASE
# … TEMPLATE on PostgreSQL (the test database is dropped and recreated, so the URL's user must be
# allowed to; the template is "<database>_template").
@pytest.fixture(scope="session")
def migrated_template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if TEST_DATABASE_URL:
        url = make_url(TEST_DATABASE_URL)
        template = f"{url.database}_template"
        with _maintenance(url) as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{template}" WITH (FORCE)'))
            conn.execute(text(f'CREATE DATABASE "{template}"'))
        engine = make_engine(url.set(database=template).render_as_string(hide_password=False))
        migrate.upgrade(engine)
        engine.dispose()
        yield template
        with _maintenance(url) as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{template}" WITH (FORCE)'))
        return
    path = tmp_path_factory.mktemp("template") / "watchkeeper.db"
    engine = make_engine(f"sqlite:///{path}")
    migrate.upgrade(engine)
    engine.dispose()  # the last connection checkpoints the WAL into the file
    yield str(path)


@contextlib.contextmanager
def _maintenance(url: URL) -> Iterator[Connection]:
    engine = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            yield conn
    finally:
        engine.dispose()


def fresh_database(template: str, data_dir: Path) -> None:
    """The test database as the template left it (every migration applied, no rows)."""
    if TEST_DATABASE_URL:
        url = make_url(TEST_DATABASE_URL)
        with _maintenance(url) as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)'))
            conn.execute(text(f'CREATE DATABASE "{url.database}" TEMPLATE "{template}"'))
        return
    data_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(template, data_dir / "watchkeeper.db")


@pytest.fixture
def settings(tmp_path: Path, migrated_template: str) -> Settings:
    overrides: dict[str, object] = {"data_dir": tmp_path / "data", "admin_password": "admin-password-1"}
    if TEST_DATABASE_URL:
        overrides["database_url"] = TEST_DATABASE_URL
    settings = load_settings(environ={}, overrides=overrides)
    fresh_database(migrated_template, settings.data_dir)
    return settings


@pytest.fixture
def runtime(settings: Settings) -> Iterator[Runtime]:
    runtime = build_runtime(settings)
    runtime.writer.start()
    yield runtime
    runtime.writer.stop()
    runtime.engine.dispose()


@dataclass
class Server:
    url: str
    runtime: Runtime
    settings: Settings


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def run_server(settings: Settings, clock: Clock | None = None) -> Iterator[Server]:
    """The real application served by uvicorn on 127.0.0.1, in a background thread (on `clock`, e.g. a
    ManualClock, when given)."""
    port = _free_port()
    settings = settings.model_copy(update={"port": port})
    runtime = build_runtime(settings, clock)
    app = create_app(settings, runtime=runtime)
    # As `watchkeeper serve`: X-Forwarded-For is believed from the `trusted_proxies` setting only.
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on",
                            proxy_headers=False)
    uv = uvicorn.Server(config)
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not uv.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("test server did not start")
        time.sleep(0.02)
    try:
        yield Server(f"http://127.0.0.1:{port}", runtime, settings)
    finally:
        uv.should_exit = True
        thread.join(15)
        runtime.engine.dispose()


@pytest.fixture
def server(settings: Settings) -> Iterator[Server]:
    with run_server(settings) as server:
        yield server


@dataclass
class ProjectFixture:
    id: int
    dsn: str
    public_key: str


# Test projects and non-admin test users share this team unless a test says otherwise, so a viewer or
# member made by make_token sees the projects made by make_project.
TEST_TEAM = "Tests"


def team_id(conn: Connection, name: str) -> int:
    team = find_team(conn, name)
    return team.id if team else create_team(conn, name, now=time.time()).id


def make_project(server: Server, name: str = "Backend", *, team: str | None = TEST_TEAM) -> ProjectFixture:
    with for_writing(server.runtime.engine).begin() as conn:
        project = create_project(conn, name, now=time.time())
        if team is not None:
            add_project(conn, team_id(conn, team), project.id)
        key = list_keys(conn, project.id)[0]
    return ProjectFixture(project.id, key.dsn(server.settings.base_url), key.public_key)


@pytest.fixture
def project(server: Server) -> ProjectFixture:
    return make_project(server)


def make_user(
    server: Server, *, role: str = "member", team: str | None = TEST_TEAM, password: str = "password-123"
) -> tuple[int, str]:
    """A user (in `team` unless None); returns its id and e-mail."""
    with for_writing(server.runtime.engine).begin() as conn:
        user = create_user(conn, f"{role}-{time.monotonic_ns()}@example.com", password, role=role, now=time.time())
        if team is not None:
            add_member(conn, team_id(conn, team), user.id)
    return user.id, user.email


def make_token(
    server: Server,
    *,
    role: str = "admin",
    read_only: bool = False,
    team: str | None = TEST_TEAM,
    projects: list[int] | None = None,
) -> str:
    """An API token of a new user with `role`, in `team`; `projects` limits the token to those projects."""
    user_id, _ = make_user(server, role=role, team=team)
    with for_writing(server.runtime.engine).begin() as conn:
        return create_token(conn, user_id, "tests", read_only=read_only, now=time.time(), project_ids=projects).token


@pytest.fixture
def api(server: Server) -> Iterator[httpx.Client]:
    """An httpx client for /api/v1 with an admin token."""
    token = make_token(server)
    with httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=30
    ) as client:
        yield client


CLIENTS_DIR = Path(__file__).parent / "clients"


def client_packages(name: str) -> Path:
    """A folder holding the pinned packages of tests/clients/<name>.txt (e.g. sentry-sdk 3.x, which cannot
    share the venv with the 2.x line), installed once per venv; put it first on a subprocess's PYTHONPATH."""
    requirements = CLIENTS_DIR / f"{name}.txt"
    target = Path(sys.prefix) / "test-clients" / name
    stamp = target / ".requirements"
    wanted = requirements.read_text()
    if not stamp.exists() or stamp.read_text() != wanted:
        shutil.rmtree(target, ignore_errors=True)
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target),
             "-r", str(requirements)],
            check=True,
        )
        stamp.write_text(wanted)
    return target


# One Playwright and one Chromium (Debian's) for the whole session, shared by every module's browser
# tests: a second sync Playwright cannot start in the same thread while the first runs.
@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    with without_memory_limit():
        manager = sync_playwright()
        p = manager.start()
    try:
        yield p
    finally:
        manager.__exit__(None, None, None)


@pytest.fixture(scope="session")
def browser(playwright: Playwright) -> Iterator[Browser]:
    executable = shutil.which("chromium")
    assert executable, "Debian's chromium is needed: apt-get install chromium"
    browser = playwright.chromium.launch(
        executable_path=executable,
        args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
    )
    yield browser
    browser.close()
