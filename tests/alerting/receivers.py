"""Local stand-ins for the outside world: an HTTP server that records requests and answers as told,
and an SMTP server (aiosmtpd) that records messages."""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson
from aiosmtpd.controller import Controller

from tests.conftest import _free_port as free_port


@dataclass
class Captured:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    status: int = 200  # what the receiver answered

    def json(self) -> Any:
        return orjson.loads(self.body)


@dataclass
class Answer:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b"ok"
    delay: float = 0.0  # a slow receiver, to provoke client timeouts


class HttpReceiver:
    """Records every request; answers with queued Answers, then with 200 "ok"."""

    def __init__(self) -> None:
        self.requests: list[Captured] = []
        self.answers: deque[Answer] = deque()
        # The answer once the queue is empty: set Answer(503) to take the receiver "down".
        self.default = Answer()
        self._arrived = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                with receiver._arrived:
                    answer = receiver.answers.popleft() if receiver.answers else receiver.default
                if answer.delay:
                    time.sleep(answer.delay)  # the slowness under test, not synchronisation
                with receiver._arrived:
                    receiver.requests.append(Captured("POST", self.path, dict(self.headers.items()), body,
                                                      answer.status))
                    receiver._arrived.notify_all()
                self.send_response(answer.status)
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(answer.body)))
                self.end_headers()
                self.wfile.write(answer.body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def answer(self, *answers: Answer) -> None:
        with self._arrived:
            self.answers.extend(answers)

    def wait_for(self, count: int, timeout: float = 30.0) -> list[Captured]:
        """Block until `count` requests arrived (an event, not a sleep); returns them."""
        with self._arrived:
            if not self._arrived.wait_for(lambda: len(self.requests) >= count, timeout):
                raise AssertionError(f"expected {count} requests, got {len(self.requests)}")
            return list(self.requests)

    def __enter__(self) -> HttpReceiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()


class _Recorder:
    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], Message]] = []
        self.arrived = threading.Condition()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.arrived:
            self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), message_from_bytes(envelope.content)))
            self.arrived.notify_all()
        return "250 Message accepted"


class SmtpReceiver:
    """aiosmtpd on a free port; `auth` = (user, password) requires login (over STARTTLS when given a
    TLS context)."""

    def __init__(self, *, tls_context: Any = None, auth: tuple[str, str] | None = None) -> None:
        self.recorder = _Recorder()
        options: dict[str, Any] = {}
        if tls_context is not None:
            options |= {"tls_context": tls_context, "require_starttls": True}
        if auth is not None:
            user, password = auth

            def authenticate(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> Any:
                from aiosmtpd.smtp import AuthResult

                ok = data.login.decode() == user and data.password.decode() == password
                return AuthResult(success=ok)

            options |= {"authenticator": authenticate, "auth_require_tls": tls_context is not None}
        self.controller = Controller(self.recorder, hostname="127.0.0.1", port=free_port(), **options)

    @property
    def smarthost(self) -> str:
        return f"127.0.0.1:{self.controller.port}"

    @property
    def messages(self) -> list[tuple[str, list[str], Message]]:
        return self.recorder.messages

    def __enter__(self) -> SmtpReceiver:
        self.controller.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.controller.stop()

