"""Checkers that are not HTTP: ICMP ping and database/cache connectivity with the real drivers."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import socket
import struct
import time
from typing import Any
from urllib.parse import unquote, urlsplit

from watchkeeper.lib.outbound import TargetBlocked
from watchkeeper.uptime.checkers import CheckContext, CheckResult, _elapsed_ms

PING_NOT_ALLOWED = (
    "ICMP ping is not allowed for this process: add its group to the sysctl net.ipv4.ping_group_range "
    "(e.g. 'sysctl net.ipv4.ping_group_range=\"0 2147483647\"'), or grant it CAP_NET_RAW"
)


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def _echo_request(ident: int, sequence: int, v6: bool) -> bytes:
    kind = 128 if v6 else 8
    payload = b"watchkeeper-ping"
    header = struct.pack("!BBHHH", kind, 0, 0, ident, sequence)
    return struct.pack("!BBHHH", kind, 0, _checksum(header + payload), ident, sequence) + payload


def _icmp_socket(v6: bool) -> tuple[socket.socket, bool]:
    """An unprivileged datagram ICMP socket where the OS allows it, else a raw one (root/CAP_NET_RAW)."""
    family, proto = (socket.AF_INET6, socket.IPPROTO_ICMPV6) if v6 else (socket.AF_INET, socket.IPPROTO_ICMP)
    try:
        return socket.socket(family, socket.SOCK_DGRAM, proto), False
    except PermissionError:
        pass
    try:
        return socket.socket(family, socket.SOCK_RAW, proto), True
    except PermissionError:
        raise PermissionError(PING_NOT_ALLOWED) from None


def _is_reply(packet: bytes, raw: bool, v6: bool, ident: int, sequence: int) -> bool:
    if raw and not v6:
        packet = packet[(packet[0] & 0x0F) * 4 :]  # IPv4 raw sockets include the IP header
    if len(packet) < 8:
        return False
    kind, _code, _sum, got_ident, got_sequence = struct.unpack("!BBHHH", packet[:8])
    # A datagram socket's identifier is chosen by the kernel, so only a raw socket compares it.
    return kind == (129 if v6 else 0) and got_sequence == sequence and (not raw or got_ident == ident)


async def check_ping(config: dict[str, Any], ctx: CheckContext) -> CheckResult:
    try:
        address = await ctx.outbound.resolve(config["host"], 0)
    except (OSError, TargetBlocked) as exc:
        return CheckResult(False, error=str(exc))
    v6 = ":" in address
    try:
        sock, raw = _icmp_socket(v6)
    except PermissionError as exc:
        return CheckResult(False, error=str(exc))
    loop = asyncio.get_running_loop()
    ident, sequence = os.getpid() & 0xFFFF, random.getrandbits(16)
    with sock:
        sock.setblocking(False)
        # Connected, so the send is a plain `sock_sendall`: uvloop (the server's loop) has no
        # `sock_sendto` (NotImplementedError), and the kernel then delivers only this host's replies.
        sock.connect((address, 0))
        started = time.perf_counter()
        await loop.sock_sendall(sock, _echo_request(ident, sequence, v6))
        while not _is_reply(await loop.sock_recv(sock, 2048), raw, v6, ident, sequence):
            pass
    return CheckResult(True, _elapsed_ms(ctx, started))


# The database drivers are imported by the checks that use them: redis and PyMySQL alone add 14 MB to
# every server, most of which never checks a database.


async def check_postgres(config: dict[str, Any], ctx: CheckContext) -> CheckResult:
    import psycopg

    parts = urlsplit(config["url"])
    started = time.perf_counter()
    try:
        address = await ctx.outbound.resolve(parts.hostname or "", parts.port or 5432)
        # hostaddr pins the checked address; host stays for TLS verification and the server's logs.
        async with await psycopg.AsyncConnection.connect(
            config["url"], hostaddr=address, connect_timeout=max(1, int(ctx.timeout)), autocommit=True
        ) as conn:
            await conn.execute("SELECT 1")
    except (psycopg.Error, OSError, TargetBlocked) as exc:
        return CheckResult(False, error=f"PostgreSQL: {str(exc).strip() or type(exc).__name__}")
    return CheckResult(True, _elapsed_ms(ctx, started))


def _mysql_ping(address: str, parts: Any, timeout: float) -> None:
    import pymysql

    conn = pymysql.connect(
        host=address, port=parts.port or 3306, user=unquote(parts.username or "root"),
        password=unquote(parts.password or ""), database=parts.path.lstrip("/") or None,
        connect_timeout=timeout, read_timeout=timeout,
    )
    try:
        conn.ping(reconnect=False)
    finally:
        conn.close()


async def check_mysql(config: dict[str, Any], ctx: CheckContext) -> CheckResult:
    import pymysql

    parts = urlsplit(config["url"])
    started = time.perf_counter()
    try:
        address = await ctx.outbound.resolve(parts.hostname or "", parts.port or 3306)
        # PyMySQL is synchronous: run it in a thread so the scheduler's loop never waits on it.
        await asyncio.to_thread(_mysql_ping, address, parts, ctx.timeout)
    except (pymysql.MySQLError, OSError, TargetBlocked) as exc:
        return CheckResult(False, error=f"MySQL: {exc}")
    return CheckResult(True, _elapsed_ms(ctx, started))


async def check_redis(config: dict[str, Any], ctx: CheckContext) -> CheckResult:
    import redis.asyncio as aioredis
    import redis.exceptions

    parts = urlsplit(config["url"])
    started = time.perf_counter()
    client: aioredis.Redis | None = None
    try:
        address = await ctx.outbound.resolve(parts.hostname or "", parts.port or 6379)
        client = aioredis.Redis(
            host=address, port=parts.port or 6379, db=int(parts.path.lstrip("/") or 0),
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            ssl=parts.scheme == "rediss", socket_timeout=ctx.timeout, socket_connect_timeout=ctx.timeout,
        )
        await client.ping()
    except (redis.exceptions.RedisError, OSError, TargetBlocked, ValueError) as exc:
        return CheckResult(False, error=f"Redis: {exc}")
    finally:
        if client is not None:
            with contextlib.suppress(Exception):
                await client.aclose()
    return CheckResult(True, _elapsed_ms(ctx, started))
