"""A client that goes away in the middle of its request or of the answer is normal traffic, not a server error: the
real `watchkeeper serve` logs no ERROR and no traceback for it, and keeps serving."""

from __future__ import annotations

import socket
import time

import httpx

from tests.uptime.test_checks_under_serve import ServeProcess, serve  # noqa: F401  (the server fixture)


def _send_half_and_hang_up(server: ServeProcess, path: str, headers: dict[str, str], body: bytes) -> None:
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as sock:
        head = [f"POST {path} HTTP/1.1", f"Host: {host}", f"Content-Length: {len(body) * 4}"]
        head += [f"{name}: {value}" for name, value in headers.items()]
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + body)
        time.sleep(0.3)  # the server is now waiting for the rest of the body


def test_a_client_hanging_up_mid_request_is_not_logged_as_an_error(serve: ServeProcess) -> None:  # noqa: F811
    auth = {"X-Sentry-Auth": f"Sentry sentry_key={serve.public_key}, sentry_version=7",
            "Content-Type": "application/x-sentry-envelope"}
    envelope = b'{"event_id": "9ec79c33ec9942ab8353589fcb2e04dc"}\n{"type": "event"}\n{"message": "' + b"x" * 5000
    _send_half_and_hang_up(serve, f"/api/{serve.project_id}/envelope/", auth, envelope)
    token = {"Authorization": f"Bearer {serve.token}", "Content-Type": "application/json"}
    _send_half_and_hang_up(serve, f"/api/v1/projects/{serve.project_id}/monitors", token, b'{"name": "' + b"y" * 5000)
    _send_half_and_hang_up(serve, "/login", {"Content-Type": "application/x-www-form-urlencoded"},
                           b"email=a%40example.com&password=" + b"z" * 5000)
    # And in the middle of a response: the OpenAPI schema is a few hundred KB, read 1 KB of it and hang up.
    host, port = serve.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.sendall(f"GET /api/openapi.json HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        assert sock.recv(1024).startswith(b"HTTP/1.1 200")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")  # RST
    time.sleep(0.5)
    assert httpx.get(f"{serve.url}/health").status_code == 200
    logged = serve.log.read_text()
    assert " ERROR " not in logged and "Traceback" not in logged, logged
