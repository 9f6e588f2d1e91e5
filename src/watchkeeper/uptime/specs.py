"""What a monitor is made of, as the API and the monitors file give it: validated, each type its settings.

    {"name": "Shop", "type": "http", "interval_seconds": 60,
     "config": {"url": "https://shop.example.com/health", "conditions": ["body.status == \\"UP\\""]}}
"""

from __future__ import annotations

import ipaddress
import socket
import zoneinfo
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from croniter import croniter
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from watchkeeper.lib.outbound import refused_literal
from watchkeeper.uptime.conditions import ConditionError, parse_condition

MonitorType = Literal["http", "tls", "tcp", "dns", "ping", "postgres", "mysql", "redis", "heartbeat"]


def standard_host(host: str) -> str:
    """`host`, unless it is an IPv4 address written another way than a dotted quad (0177.0.0.1 octal,
    0x7f.1 hex, 2130706433 a single number, 127.1 short): resolvers read those as an address while
    people and URL parsers read them differently, so a monitor states the address plainly.

    >>> standard_host("0177.0.0.1")  # ValueError: 0177.0.0.1 is an IPv4 address in a non-standard … 127.0.0.1
    """
    try:
        packed = socket.inet_aton(host)
    except (OSError, ValueError, UnicodeError):
        return host
    try:
        ipaddress.IPv4Address(host)
    except ValueError:
        raise ValueError(f"{host} is an IPv4 address in a non-standard form (octal, hex, a single number or "
                         f"fewer than four parts): write {socket.inet_ntoa(packed)}") from None
    return host


def _url_with_standard_host(url: str) -> str:
    standard_host(urlsplit(url).hostname or "")
    return url


Host = Annotated[str, Field(min_length=1, max_length=253, pattern=r"^[A-Za-z0-9_.:\-\[\]]+$"),
                 AfterValidator(standard_host)]
Port = Annotated[int, Field(ge=1, le=65535)]
WarnDays = Annotated[list[Annotated[int, Field(ge=1, le=365)]], Field(max_length=10)]
Slug = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9_\-]*$")]


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _check_conditions(conditions: list[str]) -> list[str]:
    for index, text in enumerate(conditions):
        try:
            parse_condition(text)
        except ConditionError as exc:
            raise ValueError(f"conditions[{index}] {exc}") from None
    return conditions


Conditions = Annotated[list[Annotated[str, Field(max_length=500)]], Field(max_length=50)]


class BasicAuth(_Config):
    username: str = Field(max_length=200)
    password: str = Field(max_length=500)


class HttpConfig(_Config):
    url: str = Field(max_length=2000)
    method: Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"] = "GET"
    headers: dict[str, str] = Field(default_factory=dict, max_length=50)
    body: str | None = Field(None, max_length=64 * 1024)
    basic_auth: BasicAuth | None = None
    bearer_token: str | None = Field(None, max_length=2000)
    # Empty: any 2xx or 3xx (like a Kubernetes HTTP probe).
    expected_status: list[Annotated[int, Field(ge=100, le=599)]] = Field(default_factory=list, max_length=50)
    keyword: str | None = Field(None, max_length=500)
    keyword_absent: str | None = Field(None, max_length=500)
    max_response_ms: float | None = Field(None, gt=0)
    # Slower than this but otherwise fine: "degraded" (a signal), still up.
    degraded_ms: float | None = Field(None, gt=0)
    follow_redirects: bool = True
    verify_tls: bool = True
    conditions: Conditions = Field(default_factory=list)
    cert_warn_days: WarnDays = Field(default_factory=lambda: [30, 14, 7])

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL with a host")
        return _url_with_standard_host(url)

    _conditions = field_validator("conditions")(_check_conditions)


class TlsConfig(_Config):
    host: Host
    port: Port = 443
    verify_tls: bool = True
    warn_days: WarnDays = Field(default_factory=lambda: [30, 14, 7])
    conditions: Conditions = Field(default_factory=list)
    _conditions = field_validator("conditions")(_check_conditions)


class TcpConfig(_Config):
    host: Host
    port: Port


class DnsConfig(_Config):
    name: Host
    record_type: Literal["A", "AAAA", "CNAME", "MX", "NS", "TXT", "SOA", "SRV", "CAA", "PTR"] = "A"
    # None: the system resolver.
    nameserver: Annotated[str, AfterValidator(standard_host)] | None = Field(None, max_length=100)
    port: Port = 53
    # Each of these must be among the answers (compared as text, case-insensitive).
    expected: list[Annotated[str, Field(max_length=500)]] = Field(default_factory=list, max_length=50)
    conditions: Conditions = Field(default_factory=list)
    _conditions = field_validator("conditions")(_check_conditions)


class PingConfig(_Config):
    host: Host


class DatabaseConfig(_Config):
    # postgresql://user:pass@host:5432/db, mysql://user:pass@host:3306/db, redis://:pass@host:6379/0
    url: str = Field(max_length=2000)

    @field_validator("url")
    @classmethod
    def _with_host(cls, url: str) -> str:
        if not urlsplit(url).hostname:
            raise ValueError("must be a URL with a host, e.g. postgresql://user@db.example.com:5432/app")
        return _url_with_standard_host(url)


class HeartbeatConfig(_Config):
    # Either a period (a ping at least every N seconds) or a cron expression in a time zone.
    period_seconds: int | None = Field(None, ge=60, le=366 * 86400)
    cron: str | None = Field(None, max_length=100)
    timezone: str = "UTC"
    # How late a ping may be before the heartbeat is down (healthchecks' default: an hour).
    grace_seconds: int = Field(3600, ge=0, le=366 * 86400)
    # A run that pinged /start and sent neither success nor failure within this many seconds failed.
    max_run_seconds: int | None = Field(None, ge=1, le=366 * 86400)

    @field_validator("cron")
    @classmethod
    def _valid_cron(cls, cron: str | None) -> str | None:
        if cron is not None and not croniter.is_valid(cron):
            raise ValueError(f"not a cron expression: {cron!r}")
        return cron

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, zone: str) -> str:
        try:
            zoneinfo.ZoneInfo(zone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {zone!r}") from None
        return zone

    @model_validator(mode="after")
    def _period_or_cron(self) -> HeartbeatConfig:
        if (self.period_seconds is None) == (self.cron is None):
            if self.period_seconds is None:
                self.period_seconds = 86400  # healthchecks' default: a daily job
            else:
                raise ValueError("give period_seconds or cron, not both")
        return self


CONFIG_MODELS: dict[str, type[_Config]] = {
    "http": HttpConfig, "tls": TlsConfig, "tcp": TcpConfig, "dns": DnsConfig, "ping": PingConfig,
    "postgres": DatabaseConfig, "mysql": DatabaseConfig, "redis": DatabaseConfig, "heartbeat": HeartbeatConfig,
}


class MonitorSpec(BaseModel):
    """A monitor as given by a person or the monitors file."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    slug: Slug | None = None
    type: MonitorType
    config: dict[str, Any] = Field(default_factory=dict)
    interval_seconds: int = Field(60, ge=10, le=86400)
    timeout_seconds: float = Field(10.0, gt=0, le=120)
    failures_to_down: int = Field(2, ge=1, le=100, description="consecutive failed checks before down")
    successes_to_up: int = Field(1, ge=1, le=100, description="consecutive good checks before up again")
    sla_target: float | None = Field(None, gt=0, lt=100, description="percent, e.g. 99.9")
    paused: bool = False

    @model_validator(mode="after")
    def _typed_config(self) -> MonitorSpec:
        self.config = validate_config(self.type, self.config)
        return self


def validate_config(monitor_type: str, config: dict[str, Any]) -> dict[str, Any]:
    """The config with defaults filled in; ValueError naming `config.<field>` when it is wrong."""
    try:
        return CONFIG_MODELS[monitor_type].model_validate(config).model_dump(mode="json")
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            where = ".".join(str(p) for p in ("config", *error["loc"]))
            problems.append(f"{where}: {error['msg']}")
        raise ValueError("; ".join(problems)) from None


def target_hosts(monitor_type: str, config: dict[str, Any]) -> list[tuple[str, str]]:
    """The hosts a monitor connects to, each with its field (`config.url`); what the outbound guard judges.

    >>> target_hosts("http", {"url": "http://10.0.0.1/health"})
    [('config.url', '10.0.0.1')]
    """
    if monitor_type in ("http", "postgres", "mysql", "redis"):
        return [("config.url", urlsplit(config["url"]).hostname or "")]
    if monitor_type in ("tls", "tcp", "ping"):
        return [("config.host", config["host"])]
    if monitor_type == "dns" and config.get("nameserver"):
        return [("config.nameserver", config["nameserver"])]
    return []


def refused_target(monitor_type: str, config: dict[str, Any], *, allow_private: bool) -> tuple[str, str] | None:
    """(field, why) when a target is written as an address the outbound guard refuses, so the monitor is
    refused when made rather than failing at every check; names are judged when resolved.

    >>> refused_target("tcp", {"host": "10.0.0.1", "port": 22}, allow_private=False)[0]
    'config.host'
    """
    for field, host in target_hosts(monitor_type, config):
        reason = refused_literal(host, allow_private=allow_private)
        if reason is not None:
            return field, reason
    return None
