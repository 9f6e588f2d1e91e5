"""The one outbound HTTP client (checks, webhooks, channels), with the guard against private targets.

Every request resolves its host and refuses loopback, private, link-local and other non-public
addresses unless `outbound.allow_private_targets` is on, so a monitor or webhook URL cannot be used to
probe the internal network (SSRF). Redirects are followed hop by hop through the same guard, at most
`outbound.max_redirects` times. Other protocols (TCP, DNS, databases) call `resolve_target` themselves
and connect to the address it returns, so the name cannot resolve differently in between.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import socket
import ssl
from collections.abc import Iterable
from typing import Any

import httpcore
import httpx

from watchkeeper.config import OutboundSettings


class TargetBlocked(Exception):
    """The target resolves to an address outbound traffic may not reach; the message says which."""


# IPv6 forms that carry an IPv4 address in their last 32 bits and reach it through a translator: NAT64
# (RFC 6052), IPv4-translated (RFC 2765). They are judged by the IPv4 address they lead to.
_TRANSLATED = (ipaddress.IPv6Network("64:ff9b::/96"), ipaddress.IPv6Network("::ffff:0:0:0/96"))
# Never public, whatever follows: local-use NAT64 (RFC 8215), deprecated site-local (RFC 3879) and
# IPv4-compatible addresses (RFC 4291), which some stacks still route to the embedded IPv4 address.
_REFUSED = (ipaddress.IPv6Network("64:ff9b:1::/48"), ipaddress.IPv6Network("fec0::/10"),
            ipaddress.IPv6Network("::/96"))


def _judged_address(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> ipaddress.IPv4Address | \
        ipaddress.IPv6Address | None:
    """The address whose reach decides: the embedded IPv4 one of a mapped, translated or 6to4 IPv6
    address, None for a form that is refused outright, else the address itself."""
    if isinstance(ip, ipaddress.IPv4Address):
        return ip
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if any(ip in network for network in _TRANSLATED):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if any(ip in network for network in _REFUSED):
        return None
    return ip


def is_public_address(address: str) -> bool:
    """True for addresses on the public internet; an IPv6 address that embeds an IPv4 one (mapped,
    NAT64, translated, 6to4) is public only when that IPv4 address is.

    >>> is_public_address("8.8.8.8"), is_public_address("127.0.0.1"), is_public_address("64:ff9b::a00:1")
    (True, False, False)
    """
    judged = _judged_address(ipaddress.ip_address(address.split("%", 1)[0]))
    return judged is not None and judged.is_global and not judged.is_multicast


def refused_literal(host: str, *, allow_private: bool) -> str | None:
    """Why a target written as an IP address is refused, or None (names are judged when resolved).

    >>> refused_literal("10.0.0.1", allow_private=False)
    '10.0.0.1 is a private or loopback address (allow with outbound.allow_private_targets)'
    """
    try:
        ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return None
    if allow_private or is_public_address(host.strip("[]")):
        return None
    return f"{host} is a private or loopback address (allow with outbound.allow_private_targets)"


async def resolve_target(host: str, port: int, *, allow_private: bool) -> str:
    """The address to connect to for `host`, or TargetBlocked when any of its addresses is not public."""
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise OSError(f"cannot resolve {host}: {exc.strerror}") from None
    addresses = [str(info[4][0]) for info in infos]
    if not addresses:
        raise OSError(f"cannot resolve {host}")
    if not allow_private:
        # Every address must be public: a name with one public and one private address could be
        # steered to the private one.
        blocked = [a for a in addresses if not is_public_address(a)]
        if blocked:
            raise TargetBlocked(
                f"{host} resolves to {blocked[0]}, a private or loopback address "
                "(allow with outbound.allow_private_targets)"
            )
    return addresses[0]


class _PinnedBackend(httpcore.AsyncNetworkBackend):
    """Opens each connection to the address `resolve_target` checked, not to a second resolution."""

    def __init__(self, allow_private: bool) -> None:
        self._inner = httpcore.AnyIOBackend()
        self._allow_private = allow_private

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                          local_address: str | None = None,
                          socket_options: Iterable[Any] | None = None) -> httpcore.AsyncNetworkStream:
        address = await resolve_target(host, port, allow_private=self._allow_private)
        return await self._inner.connect_tcp(address, port, timeout=timeout, local_address=local_address,
                                             socket_options=socket_options)

    async def connect_unix_socket(self, path: str, timeout: float | None = None,
                                  socket_options: Iterable[Any] | None = None) -> httpcore.AsyncNetworkStream:
        raise TargetBlocked("outbound requests may not use Unix sockets")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class _GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport whose connection pool connects through `_PinnedBackend`."""

    def __init__(self, verify: ssl.SSLContext, limits: httpx.Limits, allow_private: bool) -> None:
        super().__init__(verify=verify, limits=limits)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=verify, max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections, keepalive_expiry=limits.keepalive_expiry,
            network_backend=_PinnedBackend(allow_private),
        )


# httpcore scans every connection of a pool for each request, so one pool of hundreds of connections
# costs more CPU than the requests themselves; several small pools keep that scan short.
POOLS = 8


@functools.cache
def _tls_context(verify: bool) -> ssl.SSLContext:
    """One TLS context per verification mode for every client: each context loads the whole CA bundle
    (about 1 MB and 20 ms), and a pool per client made that 16 copies per Outbound."""
    return httpx.create_ssl_context(verify=verify)


class Outbound:
    """Guarded httpx clients: ones that verify TLS and ones that do not (for monitors that ask), each
    spread over a few connection pools (`shard` picks one, e.g. the monitor id).

    >>> # async with Outbound(settings.outbound) as outbound: await outbound.client().get(url)
    """

    def __init__(self, settings: OutboundSettings, *, max_connections: int = 200) -> None:
        self.settings = settings
        per_pool = max(4, -(-max_connections // POOLS))
        limits = httpx.Limits(max_connections=per_pool, max_keepalive_connections=per_pool)
        self._clients = {
            verify: [
                httpx.AsyncClient(
                    transport=_GuardedTransport(_tls_context(verify), limits, settings.allow_private_targets),
                    timeout=settings.timeout_seconds,
                    max_redirects=settings.max_redirects,
                    headers={"User-Agent": "Watchkeeper"},
                )
                for _ in range(POOLS)
            ]
            for verify in (True, False)
        }

    @property
    def allow_private(self) -> bool:
        return self.settings.allow_private_targets

    def client(self, *, verify_tls: bool = True, shard: int = 0) -> httpx.AsyncClient:
        return self._clients[verify_tls][shard % POOLS]

    async def resolve(self, host: str, port: int) -> str:
        return await resolve_target(host, port, allow_private=self.allow_private)

    async def aclose(self) -> None:
        for clients in self._clients.values():
            for client in clients:
                await client.aclose()

    async def __aenter__(self) -> Outbound:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()
