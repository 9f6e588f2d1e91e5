"""Checkers: one async function per monitor type, each returning a CheckResult. Network access goes
through `Outbound` (the SSRF guard); a checker never raises for a failing target, it reports it."""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import dns.asyncresolver
import dns.exception
import dns.resolver
import httpx

from watchkeeper.lib.clock import Clock
from watchkeeper.lib.outbound import Outbound, TargetBlocked
from watchkeeper.uptime.conditions import parse_condition

log = logging.getLogger(__name__)

# Enough of a body for keywords and JSON assertions; a health endpoint that sends more is unusual.
MAX_BODY_BYTES = 1024 * 1024


@dataclass(slots=True)
class CheckResult:
    ok: bool
    response_ms: float | None = None
    status_code: int | None = None
    error: str | None = None
    cert_expires_at: float | None = None
    degraded: bool = False


@dataclass(slots=True)
class CheckContext:
    outbound: Outbound
    clock: Clock
    timeout: float
    shard: int = 0  # which outbound connection pool (the monitor id spreads monitors over them)
    facts: dict[str, Any] = field(default_factory=dict)


Checker = Callable[[dict[str, Any], CheckContext], Awaitable[CheckResult]]


def _elapsed_ms(ctx: CheckContext, started: float) -> float:
    # A measurement of the outside world, so the real timer, not the (injectable) scheduling clock.
    return round((time.perf_counter() - started) * 1000.0, 3)


def _judge(conditions: list[str], facts: dict[str, Any]) -> str | None:
    """The first failed condition's explanation, or None."""
    for text in conditions:
        failures = parse_condition(text).failures(facts)
        if failures:
            return failures[0]
    return None


def _certificate_expiry(der: bytes | None) -> float | None:
    if not der:
        return None
    from cryptography import x509  # here, not at the top: ~8 MB that only TLS checks need

    return x509.load_der_x509_certificate(der).not_valid_after_utc.timestamp()


def _peer_certificate(response: httpx.Response) -> bytes | None:
    stream = response.extensions.get("network_stream")
    ssl_object = stream.get_extra_info("ssl_object") if stream is not None else None
    return ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None


async def _read_capped(response: httpx.Response) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size >= MAX_BODY_BYTES:
            break
    return b"".join(chunks)[:MAX_BODY_BYTES]


def _http_request(config: dict[str, Any], ctx: CheckContext) -> dict[str, Any]:
    headers = dict(config["headers"])
    if config["bearer_token"]:
        headers["Authorization"] = f"Bearer {config['bearer_token']}"
    auth = config["basic_auth"]
    return {
        "method": config["method"], "url": config["url"], "headers": headers,
        "content": config["body"].encode() if config["body"] is not None else None,
        "auth": (auth["username"], auth["password"]) if auth else None,
        "follow_redirects": config["follow_redirects"], "timeout": ctx.timeout,
    }


async def check_http(config: dict[str, Any], ctx: CheckContext) -> CheckResult:
    client = ctx.outbound.client(verify_tls=config["verify_tls"], shard=ctx.shard)
    started = time.perf_counter()
    try:
        async with client.stream(**_http_request(config, ctx)) as response:
            der = _peer_certificate(response)
            body = await _read_capped(response)
    except TargetBlocked as exc:
        return CheckResult(False, error=str(exc))
    except httpx.TooManyRedirects:
        return CheckResult(False, error=f"more than {ctx.outbound.settings.max_redirects} redirects")
    except httpx.TimeoutException:
        return CheckResult(False, error=f"timed out after {ctx.timeout:g}s")
    except (httpx.HTTPError, OSError, ssl.SSLError) as exc:
        return CheckResult(False, error=_describe_http_error(exc))
    elapsed = _elapsed_ms(ctx, started)
    expires = _certificate_expiry(der)
    text = body.decode(response.encoding or "utf-8", errors="replace")
    ctx.facts.update({
        "status": response.status_code, "response_time": elapsed / 1000.0, "body": text,
        "headers": dict(response.headers), "cert_expires_in": expires - ctx.clock.now() if expires else None,
    })
    error = _http_failure(config, response.status_code, text, elapsed)
    return CheckResult(error is None, elapsed, response.status_code, error, expires,
                       degraded=config["degraded_ms"] is not None and elapsed > config["degraded_ms"])


def _describe_http_error(exc: Exception) -> str:
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ssl.SSLCertVerificationError):
            return f"TLS certificate not valid: {cause.verify_message}"
        cause = cause.__cause__ or cause.__context__
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _http_failure(config: dict[str, Any], status: int, text: str, elapsed_ms: float) -> str | None:
    expected = config["expected_status"]
    if expected and status not in expected:
        return f"status {status}, expected {', '.join(map(str, expected))}"
    if not expected and not 200 <= status < 400:
        return f"status {status}"
    if config["keyword"] is not None and config["keyword"] not in text:
        return f"keyword {config['keyword']!r} not in the body"
    if config["keyword_absent"] is not None and config["keyword_absent"] in text:
        return f"keyword {config['keyword_absent']!r} found in the body"
    if config["max_response_ms"] is not None and elapsed_ms > config["max_response_ms"]:
        return f"response took {elapsed_ms:.0f} ms, more than {config['max_response_ms']:g} ms"
    return None


async def check_http_and_conditions(config: dict[str, Any], ctx: CheckContext) -> CheckResult:
    result = await check_http(config, ctx)
    if result.ok:
        result.error = _judge(config["conditions"], ctx.facts)
        result.ok = result.error is None
    return result


async def check_tls(config: dict[str, Any], ctx: CheckContext) -> CheckResult:
    """Connect, complete the TLS handshake and read the certificate's expiry."""
    context = ssl.create_default_context()
    if not config["verify_tls"]:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    started = time.perf_counter()
    try:
        address = await ctx.outbound.resolve(config["host"], config["port"])
        _reader, writer = await asyncio.open_connection(
            address, config["port"], ssl=context, server_hostname=config["host"]
        )
    except ssl.SSLCertVerificationError as exc:
        return CheckResult(False, error=f"TLS certificate not valid: {exc.verify_message}")
    except (OSError, TargetBlocked) as exc:
        return CheckResult(False, error=str(exc) or type(exc).__name__)
    try:
        ssl_object = writer.get_extra_info("ssl_object")
        expires = _certificate_expiry(ssl_object.getpeercert(binary_form=True) if ssl_object else None)
    finally:
        writer.close()
    elapsed = _elapsed_ms(ctx, started)
    if expires is None:
        return CheckResult(False, elapsed, error="no certificate presented")
    left = expires - ctx.clock.now()
    ctx.facts.update({"cert_expires_in": left, "response_time": elapsed / 1000.0})
    if left <= 0:
        return CheckResult(False, elapsed, error="certificate expired", cert_expires_at=expires)
    error = _judge(config["conditions"], ctx.facts)
    return CheckResult(error is None, elapsed, error=error, cert_expires_at=expires)


async def check_tcp(config: dict[str, Any], ctx: CheckContext) -> CheckResult:
    started = time.perf_counter()
    try:
        address = await ctx.outbound.resolve(config["host"], config["port"])
        _reader, writer = await asyncio.open_connection(address, config["port"])
    except (OSError, TargetBlocked) as exc:
        return CheckResult(False, error=f"cannot connect to {config['host']}:{config['port']}: {exc}")
    writer.close()
    return CheckResult(True, _elapsed_ms(ctx, started))


async def check_dns(config: dict[str, Any], ctx: CheckContext) -> CheckResult:
    resolver = dns.asyncresolver.Resolver(configure=config["nameserver"] is None)
    if config["nameserver"] is not None:
        try:
            resolver.nameservers = [await ctx.outbound.resolve(config["nameserver"], config["port"])]
        except (OSError, TargetBlocked) as exc:
            return CheckResult(False, error=str(exc))
        resolver.port = config["port"]
    started = time.perf_counter()
    try:
        answer = await resolver.resolve(config["name"], config["record_type"], lifetime=ctx.timeout)
    except dns.resolver.NXDOMAIN:
        return CheckResult(False, _elapsed_ms(ctx, started), error=f"{config['name']}: no such domain")
    except dns.exception.DNSException as exc:
        return CheckResult(False, _elapsed_ms(ctx, started), error=f"{config['name']}: {exc}")
    elapsed = _elapsed_ms(ctx, started)
    answers = [record.to_text().strip('"') for record in answer]
    ctx.facts.update({"answers": answers, "response_time": elapsed / 1000.0})
    found = {a.lower().rstrip(".") for a in answers}
    missing = [e for e in config["expected"] if e.lower().rstrip(".") not in found]
    if missing:
        return CheckResult(False, elapsed, error=f"expected {missing[0]!r} among the answers {answers}")
    error = _judge(config["conditions"], ctx.facts)
    return CheckResult(error is None, elapsed, error=error)


async def run_check(monitor_type: str, config: dict[str, Any], ctx: CheckContext) -> CheckResult:
    """Run one check, bounded by the monitor's timeout; a checker bug is reported as a failed check."""
    from watchkeeper.uptime.probes import check_mysql, check_ping, check_postgres, check_redis

    checkers: dict[str, Checker] = {
        "http": check_http_and_conditions, "tls": check_tls, "tcp": check_tcp, "dns": check_dns,
        "ping": check_ping, "postgres": check_postgres, "mysql": check_mysql, "redis": check_redis,
    }
    try:
        return await asyncio.wait_for(checkers[monitor_type](config, ctx), ctx.timeout)
    except TimeoutError:
        return CheckResult(False, error=f"timed out after {ctx.timeout:g}s")
    except Exception as exc:  # a checker bug must not stop the scheduler; say what happened instead
        log.exception("%s check failed unexpectedly", monitor_type)
        return CheckResult(False, error=f"check failed: {type(exc).__name__}: {exc}")


def host_and_port(url: str, default_port: int) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "", parts.port or default_port
