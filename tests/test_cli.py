"""The `watchkeeper` command line, run as a user runs it."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from watchkeeper.cli import main
from watchkeeper.config import Settings
from watchkeeper.store.migrate import describe, head_revisions

CONSOLE_SCRIPT = Path(sys.executable).with_name("watchkeeper")


def _environ(settings: Settings, **extra: str) -> dict[str, str]:
    """The process environment without our variables, plus the test database when it is PostgreSQL."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WATCHKEEPER_")}
    if settings.database_url:
        env["WATCHKEEPER_DATABASE_URL"] = settings.database_url
    return {**env, **extra}


@pytest.fixture
def cli_env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """In-process runs of `main` see only the test database setting."""
    for name in list(os.environ):
        if name.startswith("WATCHKEEPER_"):
            monkeypatch.delenv(name)
    if settings.database_url:
        monkeypatch.setenv("WATCHKEEPER_DATABASE_URL", settings.database_url)
    return settings


def run(capsys: pytest.CaptureFixture[str], settings: Settings, *args: str) -> tuple[int, str, str]:
    code = main(["--data-dir", str(settings.data_dir), *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_migrate_then_create_and_list_projects(
    cli_env: Settings, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WATCHKEEPER_PUBLIC_URL", "https://wk.example.com/")
    code, out, _ = run(capsys, cli_env, "migrate")
    assert code == 0 and out.strip() == f"database schema at revisions {describe(head_revisions())}"  # every branch
    code, out, _ = run(capsys, cli_env, "project", "create", "My App", "--json")
    assert code == 0
    created = json.loads(out)
    assert created["name"] == "My App" and created["slug"] == "my-app"
    assert created["dsn"].startswith("https://") and created["dsn"].endswith(f"@wk.example.com/{created['id']}")
    code, out, _ = run(capsys, cli_env, "project", "list")
    assert code == 0 and "my-app" in out and created["dsn"] in out
    code, out, _ = run(capsys, cli_env, "project", "list", "--json")
    assert [p["dsn"] for p in json.loads(out)] == [created["dsn"]]


def test_token_create_needs_a_user_and_then_makes_a_working_token(
    cli_env: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, cli_env, "token", "create", "ci", "--json")
    assert code == 2 and "user create" in err
    code, out, _ = run(
        capsys,
        cli_env,
        "user",
        "create",
        "Ops@Example.com",
        "--password",
        "long-password-1",
        "--role",
        "admin",
        "--json",
    )
    assert code == 0 and json.loads(out)["email"] == "ops@example.com" and "password" not in json.loads(out)
    code, _, err = run(capsys, cli_env, "user", "create", "ops@example.com", "--password", "long-password-1")
    assert code == 2 and "already exists" in err
    code, _, err = run(capsys, cli_env, "user", "create", "x@example.com", "--password", "short")
    assert code == 2 and "8 characters" in err
    code, out, _ = run(capsys, cli_env, "token", "create", "ci", "--json")
    assert code == 0
    token = json.loads(out)
    assert token["token"].startswith("wk_") and token["user"] == "ops@example.com"

    from watchkeeper.app import open_database
    from watchkeeper.auth.tokens import authenticate_token

    engine = open_database(cli_env)
    with engine.connect() as conn:
        owner = authenticate_token(conn, token["token"])
    engine.dispose()
    assert owner is not None and owner.email == "ops@example.com" and owner.can_write


def test_config_check_prints_settings_and_hides_secrets(
    cli_env: Settings, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WATCHKEEPER_ADMIN_PASSWORD", "admin-secret-123")
    monkeypatch.setenv("WATCHKEEPER_SECRET_KEY", "signing-secret-456")
    monkeypatch.setenv("WATCHKEEPER_DATABASE_URL", "postgresql+psycopg://wk:db-secret-789@db.internal/wk")
    monkeypatch.setenv("WATCHKEEPER_INGEST__MAX_BODY_BYTES", "4096")
    code, out, _ = run(capsys, cli_env, "config", "check")
    assert code == 0 and "configuration OK" in out
    assert "4096" in out and "db.internal" in out
    for secret in ("admin-secret-123", "signing-secret-456", "db-secret-789"):
        assert secret not in out
    code, out, _ = run(capsys, cli_env, "config", "check", "--json")
    shown = json.loads(out)
    assert shown["ingest"]["max_body_bytes"] == 4096 and shown["admin_password"] == "**********"


@pytest.mark.parametrize(
    ("environ", "config", "named"),
    [
        ({"WATCHKEEPER_PORT": "abc"}, None, "port"),
        ({"WATCHKEEPER_BOGUS": "1"}, None, "bogus"),
        ({}, "retention:\n  keep_days: 3\n", "retention.keep_days"),
    ],
)
def test_a_bad_setting_exits_2_naming_the_key(
    settings: Settings, tmp_path: Path, environ: dict[str, str], config: str | None, named: str
) -> None:
    args = [str(CONSOLE_SCRIPT), "--data-dir", str(settings.data_dir)]
    if config is not None:
        (tmp_path / "wk.yaml").write_text(config)
        args += ["--config", str(tmp_path / "wk.yaml")]
    result = subprocess.run(
        [*args, "config", "check"], env=_environ(settings, **environ), capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"'{named}'" in result.stderr and "Traceback" not in result.stderr


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_serve_on_an_empty_data_dir_prints_the_url_and_a_one_time_admin_password(settings: Settings) -> None:
    port = _free_port()
    process = subprocess.Popen(
        [str(CONSOLE_SCRIPT), "--data-dir", str(settings.data_dir), "serve", "--port", str(port)],
        env=_environ(settings, WATCHKEEPER_LOG_LEVEL="warning"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        second = process.stdout.readline()
        assert f"http://127.0.0.1:{port}" in first, first
        assert "admin@example.com" in second and "one-time password: " in second, second
        password = second.rsplit(": ", 1)[1].strip()
        assert len(password) >= 12
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline and process.poll() is None, process.stderr.read()  # type: ignore[union-attr]
            time.sleep(0.05)
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    assert process.returncode == 0

    from watchkeeper.app import open_database
    from watchkeeper.auth.tables import users
    from watchkeeper.auth.users import verify_password

    engine = open_database(settings)
    with engine.connect() as conn:
        row = conn.execute(users.select()).one()
    engine.dispose()
    assert row.email == "admin@example.com" and verify_password(row.password_hash, password)


def test_data_dir_and_config_are_accepted_after_the_command_too(tmp_path: Path) -> None:
    from watchkeeper.cli import build_parser

    after = build_parser().parse_args(["serve", "--data-dir", str(tmp_path), "--port", "9001"])
    before = build_parser().parse_args(["--data-dir", str(tmp_path), "project", "list"])
    assert after.data_dir == tmp_path and after.port == 9001
    assert before.data_dir == tmp_path


def _start_server(settings: Settings, port: int, **environ: str) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [str(CONSOLE_SCRIPT), "--data-dir", str(settings.data_dir), "serve", "--port", str(port)],
        env=_environ(settings, **({"WATCHKEEPER_LOG_LEVEL": "warning"} | environ)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health").status_code == 200:
                return process
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline and process.poll() is None, process.stderr.read()  # type: ignore[union-attr]
        time.sleep(0.05)


def _stop(process: subprocess.Popen[str]) -> None:
    process.send_signal(signal.SIGINT)
    try:
        process.wait(20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def test_project_create_prints_the_dsn_of_the_port_serve_listens_on_and_the_server_accepts_it(
    settings: Settings, tmp_path: Path
) -> None:
    port = _free_port()
    server = _start_server(settings, port)
    try:
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        result = subprocess.run(
            [str(CONSOLE_SCRIPT), "project", "create", "My App", "--data-dir", str(settings.data_dir), "--json"],
            env=_environ(settings), cwd=elsewhere, capture_output=True, text=True, timeout=60,
        )
        assert result.returncode == 0, result.stderr
        dsn = json.loads(result.stdout)["dsn"]
        assert f"@127.0.0.1:{port}/" in dsn, dsn
        key = dsn.split("//", 1)[1].split("@", 1)[0]
        project_id = dsn.rsplit("/", 1)[1]
        sent = httpx.post(f"http://127.0.0.1:{port}/api/{project_id}/store/?sentry_key={key}",
                          json={"message": "hello from the printed DSN", "level": "error"})
        assert sent.status_code == 200, sent.text
        listed = subprocess.run(
            [str(CONSOLE_SCRIPT), "--data-dir", str(settings.data_dir), "project", "list"],
            env=_environ(settings), cwd=elsewhere, capture_output=True, text=True, timeout=60,
        )
        assert dsn in listed.stdout, listed.stdout + listed.stderr
        assert not (elsewhere / "watchkeeper-data").exists()
    finally:
        _stop(server)
    # public_url wins over the recorded address
    result = subprocess.run(
        [str(CONSOLE_SCRIPT), "--data-dir", str(settings.data_dir), "project", "create", "Other", "--json"],
        env=_environ(settings, WATCHKEEPER_PUBLIC_URL="https://wk.example.com"),
        capture_output=True, text=True, timeout=60,
    )
    assert json.loads(result.stdout)["dsn"].startswith("https://") and "@wk.example.com/" in result.stdout


def test_cli_commands_refuse_to_create_a_new_empty_data_directory(settings: Settings, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("WATCHKEEPER_")}  # SQLite: the data dir matters
    for command in (["project", "create", "My App"], ["project", "list"], ["token", "create", "ci"],
                    ["user", "create", "a@example.com", "--generate"], ["team", "create", "Ops"]):
        result = subprocess.run([str(CONSOLE_SCRIPT), *command], env=env, cwd=elsewhere,
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 2, (command, result.stdout, result.stderr)
        assert str(elsewhere / "watchkeeper-data") in result.stderr and "--data-dir" in result.stderr, result.stderr
        assert "Traceback" not in result.stderr and "DSN" not in result.stdout
        assert not (elsewhere / "watchkeeper-data").exists()
    # migrate (like serve) does create one
    result = subprocess.run([str(CONSOLE_SCRIPT), "migrate"], env=env, cwd=elsewhere,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and (elsewhere / "watchkeeper-data" / "watchkeeper.db").is_file(), result.stderr


def test_project_create_says_it_does_not_know_the_address_before_serve_ran_and_without_public_url(
    settings: Settings,
) -> None:
    result = subprocess.run(
        [str(CONSOLE_SCRIPT), "--data-dir", str(settings.data_dir), "project", "create", "My App"],
        env=_environ(settings), capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "http" not in result.stdout and "DSN: unknown" in result.stdout, result.stdout
    assert "not known" in result.stderr and "public_url" in result.stderr and "WATCHKEEPER_PUBLIC_URL" in result.stderr


def _server_log_after_one_check(settings: Settings, **environ: str) -> str:
    """Start `serve` with the default log level (the development profile's debug), run one HTTP check
    through the REST API, stop it; its stderr."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    from threading import Thread

    class Ok(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: object) -> None:
            pass

    target = ThreadingHTTPServer(("127.0.0.1", 0), Ok)
    Thread(target=target.serve_forever, daemon=True).start()
    port = _free_port()
    server = _start_server(settings, port, **environ)
    try:
        token = subprocess.run(
            [str(CONSOLE_SCRIPT), "--data-dir", str(settings.data_dir), "token", "create", "t", "--json"],
            env=_environ(settings), capture_output=True, text=True, timeout=60,
        )
        headers = {"Authorization": f"Bearer {json.loads(token.stdout)['token']}"}
        base = f"http://127.0.0.1:{port}/api/v1"
        project = httpx.post(f"{base}/projects", json={"name": f"Shop {port}"}, headers=headers).json()
        monitor = httpx.post(f"{base}/projects/{project['id']}/monitors", headers=headers, json={
            "name": "Target", "type": "http", "config": {"url": f"http://127.0.0.1:{target.server_address[1]}/"}})
        assert monitor.status_code == 201, monitor.text
        tested = httpx.post(f"{base}/monitors/{monitor.json()['id']}/test", headers=headers, timeout=30)
        assert tested.status_code == 200 and tested.json()["ok"], tested.text
    finally:
        target.shutdown()
        _stop(server)
    assert server.stderr is not None
    return server.stderr.read()


def test_the_default_profiles_debug_level_prints_no_http_client_debug_lines_unless_asked(settings: Settings) -> None:
    default = _server_log_after_one_check(settings, WATCHKEEPER_LOG_LEVEL="debug")
    assert "httpcore" not in default and "DEBUG httpx" not in default, default[-2000:]
    asked = _server_log_after_one_check(
        settings, WATCHKEEPER_LOG_LEVEL="debug", WATCHKEEPER_OUTBOUND__LOG_LEVEL="debug"
    )
    assert "DEBUG httpcore" in asked, asked[-2000:]
