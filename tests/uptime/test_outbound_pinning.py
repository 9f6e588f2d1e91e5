"""DNS rebinding: the guarded client connects to the address it resolved and checked, never to a
second resolution of the name. The system resolver is the outside world here, so it is replaced by
one whose answers change between calls (what a rebinding attacker's DNS server does)."""

from __future__ import annotations

import asyncio
import socket
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from tests.uptime.conftest import HttpTarget
from watchkeeper.config import OutboundSettings
from watchkeeper.lib.outbound import Outbound, TargetBlocked

HOST = "rebind.test"


class ChangingResolver:
    """Answers `answers[0]` for HOST on the first lookup, `answers[1]` on every later one."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, answers: tuple[str, str]) -> None:
        self.answers = answers
        self.lookups = 0
        self._real = socket.getaddrinfo
        monkeypatch.setattr(socket, "getaddrinfo", self)

    def __call__(self, host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else host  # anyio asks with bytes
        if name != HOST:
            return self._real(host, port, *args, **kwargs)
        address = self.answers[min(self.lookups, 1)]
        self.lookups += 1
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, int(port or 80)))]


def fetch(url: str, *, private: bool, timeout: float = 2.0) -> httpx.Response:
    async def run() -> httpx.Response:
        async with Outbound(OutboundSettings(allow_private_targets=private, timeout_seconds=timeout)) as outbound:
            return await outbound.client().get(url)

    # In a thread of its own: Playwright's sync API (other test files) keeps a loop running in this one.
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, run()).result()


def test_the_connection_goes_to_the_address_that_was_resolved(monkeypatch: pytest.MonkeyPatch,
                                                               http_target: HttpTarget) -> None:
    # 127.0.0.2 has no listener on the target's port: a second resolution would be refused.
    resolver = ChangingResolver(monkeypatch, ("127.0.0.1", "127.0.0.2"))
    port = http_target.url.rsplit(":", 1)[1]
    answer = fetch(f"http://{HOST}:{port}/ok", private=True)
    assert answer.status_code == 200 and http_target.hits == 1
    assert resolver.lookups == 1


def test_a_name_rebound_to_loopback_after_the_check_never_reaches_loopback(monkeypatch: pytest.MonkeyPatch,
                                                                            http_target: HttpTarget) -> None:
    # First a public address (passes the guard), then loopback (where the attacker wants to go).
    resolver = ChangingResolver(monkeypatch, ("192.0.43.10", "127.0.0.1"))
    port = http_target.url.rsplit(":", 1)[1]
    with pytest.raises((httpx.HTTPError, OSError)):
        fetch(f"http://{HOST}:{port}/ok", private=False, timeout=1.0)
    assert http_target.hits == 0
    assert resolver.lookups == 1


def test_a_name_that_resolves_to_loopback_is_refused_before_connecting(monkeypatch: pytest.MonkeyPatch,
                                                                        http_target: HttpTarget) -> None:
    ChangingResolver(monkeypatch, ("127.0.0.1", "127.0.0.1"))
    port = http_target.url.rsplit(":", 1)[1]
    with pytest.raises(TargetBlocked, match="private or loopback"):
        fetch(f"http://{HOST}:{port}/ok", private=False)
    assert http_target.hits == 0
