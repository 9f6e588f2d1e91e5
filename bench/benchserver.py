"""Start/stop a throwaway Watchkeeper server in a temp dir (127.0.0.1 only) for the benchmarks."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

VENV_BIN = Path(sys.executable).parent
WATCHKEEPER = str(VENV_BIN / "watchkeeper")
PASSWORD = "bench-admin-password-123"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (the server and its processor processes)."""
    pids = [pid]
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        for child in task.read_text().split():
            pids += process_tree(int(child))
    return pids


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kib(pid: int) -> int:
    """Resident memory of the server and all its child processes (shared pages counted in each)."""
    total = 0
    for p in process_tree(pid):
        try:
            total += _rss_kib(p)
        except FileNotFoundError:
            pass
    return total


def cpu_seconds(pid: int) -> float:
    """CPU time of the server and its live child processes."""
    total = 0.0
    for p in process_tree(pid):
        try:
            total += _cpu_seconds(p)
        except FileNotFoundError:
            pass
    return total


class BenchServer:
    def __init__(self, workdir: Path | None = None) -> None:
        self.tmp = Path(workdir or tempfile.mkdtemp(prefix="wk-bench-"))
        self.data = self.tmp / "data"
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        # production profile: log level info, so no per-request access log (development logs every request)
        self.env = {**os.environ, "WATCHKEEPER_ADMIN_PASSWORD": PASSWORD,
                    "WATCHKEEPER_PROFILE": os.environ.get("WK_BENCH_PROFILE", "production")}
        self.base = f"http://127.0.0.1:{self.port}"

    @property
    def db(self) -> Path:
        return self.data / "watchkeeper.db"

    def cli(self, *args: str) -> dict:
        out = subprocess.run([WATCHKEEPER, "--data-dir", str(self.data), *args, "--json"], cwd=self.tmp,
                             env=self.env, check=True, capture_output=True, text=True).stdout
        return json.loads(out)

    def start(self) -> None:
        # The child keeps its own copy of the log descriptor; ours can close at once.
        with open(self.tmp / "server.log", "ab") as log:
            self.proc = subprocess.Popen(
                [WATCHKEEPER, "--data-dir", str(self.data), "serve", "--host", "127.0.0.1", "--port", str(self.port)],
                cwd=self.tmp, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: see {self.tmp / 'server.log'}")
            try:
                urllib.request.urlopen(self.base + "/health", timeout=1).read()
                return
            except Exception:
                time.sleep(0.2)
        raise RuntimeError("server did not start in 30 s")

    def build(self) -> str:
        """Which build of the processing modules the server runs ("compiled" or "pure Python"), from its log."""
        for line in (self.tmp / "server.log").read_text(errors="replace").splitlines():
            if "event processing: " in line:
                return line.split("event processing: ", 1)[1].strip()
        return "unknown"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def kill9(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.kill9()

    def setup_project(self) -> tuple[int, str, str]:
        """Start once (creates admin), create project and token; returns (project_id, key, token)."""
        project = self.cli("project", "create", "bench")
        token = self.cli("token", "create", "bench")
        key = project["dsn"].split("//", 1)[1].split("@", 1)[0]
        return project["id"], key, token.get("token") or token.get("value") or next(
            v for v in token.values() if isinstance(v, str) and len(v) > 20)

    def sql(self, query: str) -> str:
        return subprocess.run(["sqlite3", str(self.db), query], check=True, capture_output=True,
                              text=True).stdout.strip()
