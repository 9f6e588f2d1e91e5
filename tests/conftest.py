"""Shared fixtures: a real database (SQLite, or PostgreSQL from WATCHKEEPER_TEST_DATABASE_URL), a real
server on a free local port, projects with DSNs and API tokens."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvicorn
from sqlalchemy import create_engine, text

from watchkeeper.app import Runtime, build_runtime, create_app
from watchkeeper.auth.projects import create_project, list_keys
from watchkeeper.auth.tokens import create_token
from watchkeeper.auth.users import create_user
from watchkeeper.config import Settings, load_settings
from watchkeeper.store.engine import for_writing

TEST_DATABASE_URL = os.environ.get("WATCHKEEPER_TEST_DATABASE_URL")


def _reset_postgres(url: str) -> None:
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    overrides: dict[str, object] = {"data_dir": tmp_path / "data", "admin_password": "admin-password-1"}
    if TEST_DATABASE_URL:
        _reset_postgres(TEST_DATABASE_URL)
        overrides["database_url"] = TEST_DATABASE_URL
    return load_settings(environ={}, overrides=overrides)


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
def run_server(settings: Settings) -> Iterator[Server]:
    """The real application served by uvicorn on 127.0.0.1, in a background thread."""
    port = _free_port()
    settings = settings.model_copy(update={"port": port})
    runtime = build_runtime(settings)
    app = create_app(settings, runtime=runtime)
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
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


def make_project(server: Server, name: str = "Backend") -> ProjectFixture:
    with for_writing(server.runtime.engine).begin() as conn:
        project = create_project(conn, name, now=time.time())
        key = list_keys(conn, project.id)[0]
    return ProjectFixture(project.id, key.dsn(server.settings.base_url), key.public_key)


@pytest.fixture
def project(server: Server) -> ProjectFixture:
    return make_project(server)


def make_token(server: Server, *, role: str = "admin", read_only: bool = False) -> str:
    with for_writing(server.runtime.engine).begin() as conn:
        user = create_user(
            conn, f"{role}-{time.monotonic_ns()}@example.com", "password-123", role=role, now=time.time()
        )
        return create_token(conn, user.id, "tests", read_only=read_only, now=time.time()).token


@pytest.fixture
def api(server: Server) -> Iterator[httpx.Client]:
    """An httpx client for /api/v1 with an admin token."""
    token = make_token(server)
    with httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=30
    ) as client:
        yield client
