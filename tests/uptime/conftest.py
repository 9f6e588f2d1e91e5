"""Real local targets for the checkers: an HTTP(S) server (self-signed certificate near expiry), a TCP
listener and a DNS responder, all on 127.0.0.1."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from prometheus_client import CollectorRegistry
from sqlalchemy import Connection

from watchkeeper.app import Runtime, build_runtime
from watchkeeper.auth.projects import create_project
from watchkeeper.config import Settings
from watchkeeper.lib.clock import ManualClock
from watchkeeper.lib.outbound import Outbound
from watchkeeper.lib.signals import Signal, read_signals
from watchkeeper.store.engine import for_writing
from watchkeeper.store.writer import call_each
from watchkeeper.uptime.monitors import Monitor, create_monitor, get_monitor
from watchkeeper.uptime.scheduler import Scheduler, SchedulerMetrics
from watchkeeper.uptime.specs import MonitorSpec

CERT_DAYS_LEFT = 10


class TargetHandler(BaseHTTPRequestHandler):
    """Paths: /ok (JSON UP), /down (503), /slow (0.3 s), /sleep (5 s), /redirect, /loop, /auth, /echo."""

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _send(self, status: int, body: bytes, content_type: str = "application/json",
              headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            try:
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the checker gave up (its timeout): expected in these tests

    def do_GET(self) -> None:
        self.server.hits += 1  # type: ignore[attr-defined]
        path = self.path
        if path == "/health":
            healthy = self.server.healthy  # type: ignore[attr-defined]
            self._send(200 if healthy else 500, b'{"status": "UP"}' if healthy else b'{"status": "DOWN"}')
        elif path == "/ok":
            self._send(200, b'{"status": "UP", "checks": [{"name": "db", "ok": true}]}')
        elif path == "/down":
            self._send(503, b'{"status": "DOWN"}')
        elif path == "/slow":
            time.sleep(0.3)
            self._send(200, b"ok")
        elif path == "/sleep":
            time.sleep(5)
            self._send(200, b"late")
        elif path == "/redirect":
            self._send(302, b"", headers={"Location": "/ok"})
        elif path == "/loop":
            self._send(302, b"", headers={"Location": "/loop"})
        elif path == "/auth":
            expected = {"Bearer s3cret", "Basic " + base64.b64encode(b"user:pw").decode()}
            ok = self.headers.get("Authorization") in expected
            self._send(200 if ok else 401, b"welcome" if ok else b"who are you")
        else:
            self._send(404, b"not found", "text/plain")

    do_HEAD = do_GET

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        self._send(200, json.dumps({"got": body.decode(), "x": self.headers.get("X-Test")}).encode())


@dataclass
class HttpTarget:
    url: str
    server: ThreadingHTTPServer

    @property
    def hits(self) -> int:
        return int(self.server.hits)  # type: ignore[attr-defined]

    def set_healthy(self, healthy: bool) -> None:
        """What /health answers: 200 or 500."""
        self.server.healthy = healthy  # type: ignore[attr-defined]


def _serve(server: ThreadingHTTPServer) -> Iterator[ThreadingHTTPServer]:
    server.hits = 0  # type: ignore[attr-defined]
    server.healthy = True  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def http_target() -> Iterator[HttpTarget]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), TargetHandler)
    server.daemon_threads = True
    for running in _serve(server):
        yield HttpTarget(f"http://127.0.0.1:{running.server_address[1]}", running)


def make_certificate(directory: Path, days_left: float) -> tuple[Path, Path, float]:
    """A self-signed certificate for localhost/127.0.0.1 that expires in `days_left` days."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    expires = now + dt.timedelta(days=days_left)
    import ipaddress

    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(expires)
        .add_extension(x509.SubjectAlternativeName(
            [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path, cert.not_valid_after_utc.timestamp()


@dataclass
class HttpsTarget(HttpTarget):
    host: str
    port: int
    cert_expires_at: float


@pytest.fixture
def https_target(tmp_path: Path) -> Iterator[HttpsTarget]:
    cert, key, expires = make_certificate(tmp_path, CERT_DAYS_LEFT)
    server = ThreadingHTTPServer(("127.0.0.1", 0), TargetHandler)
    server.daemon_threads = True
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    for running in _serve(server):
        port = running.server_address[1]
        yield HttpsTarget(f"https://127.0.0.1:{port}", running, "127.0.0.1", port, expires)


@pytest.fixture
def tcp_listener() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        sock.settimeout(0.2)
        stop = threading.Event()

        def accept() -> None:
            while not stop.is_set():
                try:
                    conn, _ = sock.accept()
                except OSError:
                    continue
                conn.close()

        thread = threading.Thread(target=accept, daemon=True)
        thread.start()
        yield int(sock.getsockname()[1])
        stop.set()
        thread.join(2)


# The zone the test DNS responder knows.
DNS_RECORDS = {("svc.test.", "A"): ["10.0.0.5", "10.0.0.6"], ("svc.test.", "TXT"): ['"v=ok"']}


@pytest.fixture
def dns_server() -> Iterator[int]:
    """A tiny authoritative UDP responder built with dnspython; returns its port on 127.0.0.1."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                wire, peer = sock.recvfrom(4096)
            except OSError:
                continue
            query = dns.message.from_wire(wire)
            response = dns.message.make_response(query)
            question = query.question[0]
            records = DNS_RECORDS.get((question.name.to_text(), dns.rdatatype.to_text(question.rdtype)))
            if records is None:
                response.set_rcode(dns.rcode.NXDOMAIN)
            else:
                response.answer.append(dns.rrset.from_text_list(
                    question.name, 60, "IN", dns.rdatatype.to_text(question.rdtype), records))
            sock.sendto(response.to_wire(), peer)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield int(sock.getsockname()[1])
    stop.set()
    thread.join(2)
    sock.close()


@dataclass
class UptimeWorld:
    """A runtime on the test database with a manual clock, one project, and a scheduler to drive."""

    runtime: Runtime
    clock: ManualClock
    project_id: int
    scheduler: Scheduler
    outbound: Outbound

    def create(self, spec: dict[str, Any]) -> Monitor:
        def run(conn: Connection) -> Monitor:
            return create_monitor(conn, self.project_id, MonitorSpec.model_validate(spec), now=self.clock.now())

        return self.write(run)  # type: ignore[no-any-return]

    def write(self, function: Any) -> Any:
        return self.runtime.writer.run_sync(call_each, function)

    def monitor(self, monitor_id: int) -> Monitor:
        with self.runtime.engine.connect() as conn:
            found = get_monitor(conn, monitor_id)
        assert found is not None
        return found

    def signals(self, kind: str | None = None) -> list[Signal]:
        with self.runtime.engine.connect() as conn:
            return read_signals(conn, kinds=[kind] if kind else None)

    def run(self, coroutine: Any) -> Any:
        return self.loop.run_until_complete(coroutine)

    def tick(self, seconds: float = 0.0) -> None:
        """Move the clock, then run every due check and write the outcomes."""
        self.clock.advance(seconds)
        self.run(self.scheduler.tick())

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return _LOOP[0]


_LOOP: list[asyncio.AbstractEventLoop] = []


def new_scheduler(runtime: Runtime, outbound: Outbound, registry: CollectorRegistry | None = None) -> Scheduler:
    return Scheduler(runtime.engine, runtime.writer, runtime.clock, runtime.settings.uptime, outbound,
                     SchedulerMetrics(registry or CollectorRegistry()))


@pytest.fixture
def world(settings: Settings) -> Iterator[UptimeWorld]:
    clock = ManualClock(time.time())
    runtime = build_runtime(settings, clock)
    runtime.writer.start()
    loop = asyncio.new_event_loop()
    _LOOP[:] = [loop]
    outbound = Outbound(settings.outbound)
    with for_writing(runtime.engine).begin() as conn:
        project = create_project(conn, "Uptime", now=clock.now())
    try:
        yield UptimeWorld(runtime, clock, project.id, new_scheduler(runtime, outbound), outbound)
    finally:
        loop.run_until_complete(outbound.aclose())
        loop.close()
        runtime.writer.stop()
        runtime.engine.dispose()
