"""Each checker against a real local target."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest

from tests.uptime.conftest import CERT_DAYS_LEFT, HttpsTarget, HttpTarget
from watchkeeper.config import OutboundSettings
from watchkeeper.lib.clock import SystemClock
from watchkeeper.lib.outbound import Outbound
from watchkeeper.uptime.checkers import CheckContext, CheckResult, run_check
from watchkeeper.uptime.probes import PING_NOT_ALLOWED
from watchkeeper.uptime.specs import validate_config


def check(monitor_type: str, config: dict[str, Any], *, timeout: float = 5, private: bool = True,
          max_redirects: int = 5) -> CheckResult:
    async def run() -> CheckResult:
        settings = OutboundSettings(allow_private_targets=private, max_redirects=max_redirects)
        async with Outbound(settings) as outbound:
            ctx = CheckContext(outbound, SystemClock(), timeout)
            return await run_check(monitor_type, validate_config(monitor_type, config), ctx)

    return asyncio.run(run())


def test_http_up_with_conditions_on_the_json_body(http_target: HttpTarget) -> None:
    result = check("http", {"url": http_target.url + "/ok", "expected_status": [200], "keyword": "UP",
                            "conditions": ['status == 200 and body.status == "UP"', "response_time < 2s",
                                           "body.checks[0].ok == true", 'headers.content-type contains "json"']})
    assert result.ok, result.error
    assert result.status_code == 200 and result.response_ms is not None and result.response_ms > 0


def test_http_failures_say_why(http_target: HttpTarget) -> None:
    assert check("http", {"url": http_target.url + "/down"}).error == "status 503"
    assert check("http", {"url": http_target.url + "/ok", "keyword": "nope"}).error == "keyword 'nope' not in the body"
    assert check("http", {"url": http_target.url + "/ok", "keyword_absent": "UP"}).error == \
        "keyword 'UP' found in the body"
    assert check("http", {"url": http_target.url + "/ok", "conditions": ['body.status == "DOWN"']}).error == \
        'body.status == "DOWN": was "UP"'
    slow = check("http", {"url": http_target.url + "/slow", "max_response_ms": 100})
    assert not slow.ok and "more than 100 ms" in (slow.error or "")


def test_http_slow_but_fine_is_degraded(http_target: HttpTarget) -> None:
    result = check("http", {"url": http_target.url + "/slow", "degraded_ms": 100})
    assert result.ok and result.degraded


def test_http_redirects_followed_or_not(http_target: HttpTarget) -> None:
    assert check("http", {"url": http_target.url + "/redirect"}).status_code == 200
    not_followed = check("http", {"url": http_target.url + "/redirect", "follow_redirects": False,
                                  "expected_status": [200]})
    assert not_followed.status_code == 302 and not not_followed.ok
    looping = check("http", {"url": http_target.url + "/loop"}, max_redirects=3)
    assert looping.error == "more than 3 redirects"


def test_http_auth_method_headers_and_body(http_target: HttpTarget) -> None:
    assert not check("http", {"url": http_target.url + "/auth"}).ok
    assert check("http", {"url": http_target.url + "/auth", "bearer_token": "s3cret"}).ok
    assert check("http", {"url": http_target.url + "/auth", "basic_auth": {"username": "user", "password": "pw"}}).ok
    posted = check("http", {"url": http_target.url + "/echo", "method": "POST", "body": "hello",
                            "headers": {"X-Test": "yes"}, "conditions": ['body.got == "hello"', 'body.x == "yes"']})
    assert posted.ok, posted.error


def test_http_timeout_is_a_failure_within_the_timeout(http_target: HttpTarget) -> None:
    result = check("http", {"url": http_target.url + "/sleep"}, timeout=0.5)
    assert not result.ok and result.error == "timed out after 0.5s"


def test_private_targets_are_refused_unless_allowed(http_target: HttpTarget) -> None:
    result = check("http", {"url": http_target.url + "/ok"}, private=False)
    assert not result.ok and "outbound.allow_private_targets" in (result.error or "")
    assert http_target.hits == 0
    assert "private or loopback" in (check("tcp", {"host": "127.0.0.1", "port": 80}, private=False).error or "")


# IPv6 forms that lead to a private IPv4 address (NAT64, IPv4-translated, 6to4, IPv4-compatible) or
# that are never public (site-local, local-use NAT64).
TRANSLATED_PRIVATE = ["64:ff9b::7f00:1", "64:ff9b::a00:1", "::ffff:0:7f00:1", "::ffff:0:10.0.0.1",
                      "2002:7f00:1::1", "2002:a00:1::1", "2002:c0a8:101::1", "fec0::1", "::7f00:1",
                      "64:ff9b:1::808:808"]


@pytest.mark.parametrize("address", TRANSLATED_PRIVATE)
def test_ipv6_translation_prefixes_are_judged_by_their_ipv4_address(address: str) -> None:
    for kind, config in (("http", {"url": f"http://[{address}]:8080/"}), ("tcp", {"host": address, "port": 80})):
        result = check(kind, config, private=False, timeout=2)
        assert not result.ok and "outbound.allow_private_targets" in (result.error or ""), (kind, result)


def test_ipv6_translation_prefixes_of_public_ipv4_addresses_stay_public() -> None:
    from watchkeeper.lib.outbound import is_public_address

    for address in ("64:ff9b::808:808", "::ffff:0:8.8.8.8", "2002:808:808::1", "2001:4860:4860::8888"):
        assert is_public_address(address), address


def test_https_self_signed_certificate_verified_or_not(https_target: HttpsTarget) -> None:
    verified = check("http", {"url": https_target.url + "/ok"})
    assert not verified.ok and "certificate" in (verified.error or "")
    unverified = check("http", {"url": https_target.url + "/ok", "verify_tls": False,
                                "conditions": ["cert_expires_in < 14d", "cert_expires_in > 9d"]})
    assert unverified.ok, unverified.error
    assert unverified.cert_expires_at == pytest.approx(https_target.cert_expires_at, abs=1)


def test_tls_monitor_reads_the_expiry(https_target: HttpsTarget) -> None:
    result = check("tls", {"host": "127.0.0.1", "port": https_target.port, "verify_tls": False})
    assert result.ok and result.cert_expires_at == pytest.approx(https_target.cert_expires_at, abs=1)
    failing = check("tls", {"host": "127.0.0.1", "port": https_target.port, "verify_tls": False,
                            "conditions": ["cert_expires_in > 14d"]})
    assert failing.error is not None and failing.error.startswith("cert_expires_in > 14d: was")
    assert CERT_DAYS_LEFT < 14


def test_tcp_port_open_and_closed(tcp_listener: int) -> None:
    assert check("tcp", {"host": "127.0.0.1", "port": tcp_listener}).ok
    closed = check("tcp", {"host": "127.0.0.1", "port": 1})
    assert not closed.ok and "cannot connect to 127.0.0.1:1" in (closed.error or "")


def test_dns_answers_expected_and_missing(dns_server: int) -> None:
    base = {"name": "svc.test", "nameserver": "127.0.0.1", "port": dns_server}
    assert check("dns", base | {"expected": ["10.0.0.5"]}).ok
    assert check("dns", base | {"record_type": "TXT", "conditions": ['answers contains "v=ok"']}).ok
    wrong = check("dns", base | {"expected": ["10.9.9.9"]})
    assert not wrong.ok and "10.9.9.9" in (wrong.error or "")
    missing = check("dns", base | {"name": "nope.test"})
    assert missing.error == "nope.test: no such domain"


def _ping_allowed() -> bool:
    for kind in (socket.SOCK_DGRAM, socket.SOCK_RAW):
        try:
            socket.socket(socket.AF_INET, kind, socket.IPPROTO_ICMP).close()
            return True
        except PermissionError:
            continue
    return False


def test_ping_answers_or_says_clearly_why_not() -> None:
    result = check("ping", {"host": "127.0.0.1"})
    if _ping_allowed():
        assert result.ok and result.response_ms is not None
    else:
        assert result.error == PING_NOT_ALLOWED


def test_postgres_connectivity() -> None:
    assert check("postgres", {"url": "postgresql://postgres@127.0.0.1:5432/postgres"}).ok
    wrong = check("postgres", {"url": "postgresql://postgres@127.0.0.1:5432/no_such_database_here"})
    assert not wrong.ok and "no_such_database_here" in (wrong.error or "")


def test_redis_connectivity() -> None:
    assert check("redis", {"url": "redis://127.0.0.1:6379/0"}).ok
    assert not check("redis", {"url": "redis://127.0.0.1:1/0"}).ok


def _mysql_running() -> bool:
    try:
        socket.create_connection(("127.0.0.1", 3306), timeout=1).close()
    except OSError:
        return False
    return True


def test_mysql_connectivity_reports_the_server_answer() -> None:
    result = check("mysql", {"url": "mysql://root@127.0.0.1:3306/no_such_db"})
    assert not result.ok
    if _mysql_running():
        assert "no_such_db" in (result.error or "")  # the server itself answered
        assert check("mysql", {"url": "mysql://root@127.0.0.1:3306/mysql"}).ok
    else:
        assert "MySQL" in (result.error or "")
