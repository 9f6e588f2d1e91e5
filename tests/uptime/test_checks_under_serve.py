"""Every monitor kind checked by the real `watchkeeper serve` process, so on the loop it really runs
(uvloop, whose socket methods differ from asyncio's: `sock_sendto` raises NotImplementedError there)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.uptime.conftest import HttpsTarget, HttpTarget
from watchkeeper.app import open_database
from watchkeeper.auth.projects import create_project, list_keys
from watchkeeper.auth.tokens import create_token
from watchkeeper.auth.users import create_user
from watchkeeper.config import Settings
from watchkeeper.store.engine import for_writing

CONSOLE_SCRIPT = Path(sys.executable).with_name("watchkeeper")


@dataclass
class ServeProcess:
    url: str
    api: httpx.Client
    project_id: int
    public_key: str
    token: str
    log: Path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def serve(settings: Settings, tmp_path: Path) -> Iterator[ServeProcess]:
    """`watchkeeper serve` in a subprocess (development profile: private targets allowed), with an admin
    token and a project; its stderr goes to a file the test can read."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("WATCHKEEPER_")}
    if settings.database_url:
        env["WATCHKEEPER_DATABASE_URL"] = settings.database_url
    env["WATCHKEEPER_LOG_LEVEL"] = "info"
    log = tmp_path / "serve.log"
    with log.open("w") as stderr:
        process = subprocess.Popen(
            [str(CONSOLE_SCRIPT), "--data-dir", str(settings.data_dir), "serve", "--port", str(port)],
            env=env, stdout=subprocess.DEVNULL, stderr=stderr,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/health").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline and process.poll() is None, log.read_text()
            time.sleep(0.05)
        engine = for_writing(open_database(settings))
        with engine.begin() as conn:
            project = create_project(conn, "Checks", now=time.time())
            public_key = list_keys(conn, project.id)[0].public_key
            user = create_user(conn, "checker@example.com", "password-123", role="admin", now=time.time())
            token = create_token(conn, user.id, "tests", read_only=False, now=time.time()).token
        engine.dispose()
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30) as api:
            yield ServeProcess(url, api, project.id, public_key, token, log)
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _mysql_running() -> bool:
    try:
        socket.create_connection(("127.0.0.1", 3306), timeout=1).close()
    except OSError:
        return False
    return True


def test_every_monitor_kind_is_checked_on_the_servers_own_loop(
    serve: ServeProcess, http_target: HttpTarget, https_target: HttpsTarget, tcp_listener: int, dns_server: int,
) -> None:
    kinds = {
        "http": {"url": http_target.url + "/ok", "conditions": ['body.status == "UP"']},
        "tls": {"host": https_target.host, "port": https_target.port, "verify_tls": False},
        "tcp": {"host": "127.0.0.1", "port": tcp_listener},
        "dns": {"name": "svc.test", "nameserver": "127.0.0.1", "port": dns_server, "expected": ["10.0.0.5"]},
        # We run as root: a raw ICMP socket when net.ipv4.ping_group_range leaves out our group.
        "ping": {"host": "127.0.0.1"},
        "postgres": {"url": "postgresql://postgres@127.0.0.1:5432/postgres"},
        "redis": {"url": "redis://127.0.0.1:6379/0"},
        "mysql": {"url": "mysql://root@127.0.0.1:3306/mysql"},
    }
    for kind, config in kinds.items():
        created = serve.api.post(f"/api/v1/projects/{serve.project_id}/monitors",
                                 json={"name": kind, "type": kind, "config": config, "paused": True})
        assert created.status_code == 201, created.text
        result = serve.api.post(f"/api/v1/monitors/{created.json()['id']}/test").json()
        if kind == "mysql" and not _mysql_running():
            assert result["error"].startswith("MySQL: "), result
            continue
        assert result["ok"], (kind, result)
        assert result["response_ms"] is not None and result["response_ms"] > 0, (kind, result)
    logged = serve.log.read_text()
    assert "NotImplementedError" not in logged and "failed unexpectedly" not in logged, logged
