"""The routing tree, receivers and inhibition rules, in Alertmanager's YAML and with its semantics.

The root route matches every alert; a child inherits receiver, `group_by` and timers from its parent;
the first matching child wins unless it says `continue: true`; an alert no child matches stays at the
parent. `group_by: ['...']` groups by all labels. Group keys are spelled like Alertmanager's
(`{}/{severity="critical"}:{alertname="Down"}`), so they can be compared across both. A route's
`mute_time_intervals` and `active_time_intervals` name entries of `time_intervals`
(alerting.time_intervals); like Alertmanager's, they are the route's own (not inherited), and the
root route takes none.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from watchkeeper.alerting.matchers import Matcher, parse_duration, parse_matchers
from watchkeeper.alerting.time_intervals import NamedTimeInterval
from watchkeeper.config import ConfigError

DEFAULT_GROUP_WAIT, DEFAULT_GROUP_INTERVAL, DEFAULT_REPEAT_INTERVAL = 30.0, 300.0, 4 * 3600.0
ALL_LABELS = "..."


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


def _durations(value: Any) -> Any:
    return None if value is None else parse_duration(value)


def _http_url(value: str) -> str:
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http:// or https:// URL")
    return value.strip()


# An endpoint a channel posts to (checked here, not at the first delivery).
HttpUrl = Annotated[str, AfterValidator(_http_url)]


class _Integration(_Model):
    send_resolved: bool = True


class WebhookConfig(_Integration):
    url: HttpUrl
    # Alertmanager's max_alerts: 0 = all; the rest are counted in truncatedAlerts.
    max_alerts: int = Field(0, ge=0)
    # Signs the body: X-Watchkeeper-Signature: sha256=<hex HMAC-SHA256 of the body>.
    hmac_secret: SecretStr | None = None


class SlackConfig(_Integration):
    send_resolved: bool = False
    api_url: HttpUrl
    channel: str | None = None
    username: str | None = None


class EmailConfig(_Integration):
    send_resolved: bool = False
    to: str
    from_: str = Field("watchkeeper@localhost", alias="from")
    smarthost: str = Field(description="host:port of the SMTP server")
    auth_username: str | None = None
    auth_password: SecretStr | None = None
    # STARTTLS (Alertmanager's require_tls, default on); `tls` is implicit TLS (port 465).
    require_tls: bool = True
    tls: bool = False
    # Only for test servers with self-signed certificates.
    insecure_skip_verify: bool = False

    @field_validator("smarthost")
    @classmethod
    def _host_port(cls, value: str) -> str:
        host, _, port = value.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError("must be host:port")
        return value


class PagerDutyConfig(_Integration):
    routing_key: SecretStr
    url: HttpUrl = "https://events.pagerduty.com/v2/enqueue"
    source: str = "watchkeeper"


class OpsgenieConfig(_Integration):
    api_key: SecretStr
    api_url: HttpUrl = "https://api.opsgenie.com/"


class DiscordConfig(_Integration):
    webhook_url: HttpUrl


class TeamsConfig(_Integration):
    # A Teams Workflows ("Post to a channel when a webhook request is received") URL.
    webhook_url: HttpUrl


class TwilioConfig(_Integration):
    send_resolved: bool = False
    account_sid: str = Field(pattern=r"^[A-Za-z0-9]+$", max_length=64)
    auth_token: SecretStr
    from_: str = Field(alias="from")
    to: list[str] = Field(min_length=1, max_length=20)
    api_url: HttpUrl = "https://api.twilio.com"


class LogConfig(_Integration):
    pass


INTEGRATION_KINDS = ("webhook", "slack", "email", "pagerduty", "opsgenie", "discord", "teams", "twilio", "log")


class Receiver(_Model):
    name: str = Field(min_length=1, max_length=200)
    webhook_configs: list[WebhookConfig] = Field(default_factory=list)
    slack_configs: list[SlackConfig] = Field(default_factory=list)
    email_configs: list[EmailConfig] = Field(default_factory=list)
    pagerduty_configs: list[PagerDutyConfig] = Field(default_factory=list)
    opsgenie_configs: list[OpsgenieConfig] = Field(default_factory=list)
    discord_configs: list[DiscordConfig] = Field(default_factory=list)
    teams_configs: list[TeamsConfig] = Field(default_factory=list)
    twilio_configs: list[TwilioConfig] = Field(default_factory=list)
    log_configs: list[LogConfig] = Field(default_factory=list)

    def integrations(self) -> dict[str, _Integration]:
        """Each integration by its name in the notification log: `webhook/0`, `email/1`…"""
        found: dict[str, _Integration] = {}
        for kind in INTEGRATION_KINDS:
            for index, config in enumerate(getattr(self, f"{kind}_configs")):
                found[f"{kind}/{index}"] = config
        return found


class RouteConfig(_Model):
    receiver: str | None = None
    group_by: list[str] | None = None
    matchers: list[str] = Field(default_factory=list)
    match: dict[str, str] = Field(default_factory=dict)  # deprecated in Alertmanager, still accepted
    match_re: dict[str, str] = Field(default_factory=dict)
    continue_: bool = Field(False, alias="continue")
    group_wait: float | None = None
    group_interval: float | None = None
    repeat_interval: float | None = None
    mute_time_intervals: list[str] = Field(default_factory=list)
    active_time_intervals: list[str] = Field(default_factory=list)
    routes: list[RouteConfig] = Field(default_factory=list)

    _to_seconds = field_validator("group_wait", "group_interval", "repeat_interval", mode="before")(_durations)

    def parsed_matchers(self) -> list[Matcher]:
        found = parse_matchers(self.matchers)
        found += [Matcher(k, "=", v) for k, v in self.match.items()]
        found += [Matcher(k, "=~", v) for k, v in self.match_re.items()]
        return found

    @field_validator("matchers")
    @classmethod
    def _parse(cls, items: list[str]) -> list[str]:
        parse_matchers(items)
        return items


class InhibitRule(_Model):
    source_matchers: list[str] = Field(min_length=1)
    target_matchers: list[str] = Field(min_length=1)
    equal: list[str] = Field(default_factory=list)

    @field_validator("source_matchers", "target_matchers")
    @classmethod
    def _parse(cls, items: list[str]) -> list[str]:
        parse_matchers(items)
        return items


class AlertingConfig(_Model):
    route: RouteConfig
    receivers: list[Receiver] = Field(min_length=1)
    inhibit_rules: list[InhibitRule] = Field(default_factory=list)
    time_intervals: list[NamedTimeInterval] = Field(default_factory=list)
    # Alertmanager's older spelling of the same list (deprecated there, still read).
    mute_time_intervals: list[NamedTimeInterval] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self) -> AlertingConfig:
        names = [r.name for r in self.receivers]
        if len(set(names)) != len(names):
            raise ValueError("receivers: names must be unique")
        if self.route.receiver is None:
            raise ValueError("route.receiver: the root route needs a receiver")
        if self.route.mute_time_intervals or self.route.active_time_intervals:
            raise ValueError("route: the root route cannot have mute_time_intervals or active_time_intervals")
        intervals = [i.name for i in self.time_intervals + self.mute_time_intervals]
        if len(set(intervals)) != len(intervals):
            raise ValueError("time_intervals: names must be unique (across time_intervals and mute_time_intervals)")
        _check_references(self.route, set(names), set(intervals), "route")
        return self

    def receiver(self, name: str) -> Receiver | None:
        return next((r for r in self.receivers if r.name == name), None)

    def intervals(self) -> dict[str, NamedTimeInterval]:
        return {i.name: i for i in self.time_intervals + self.mute_time_intervals}


def _check_references(route: RouteConfig, names: set[str], intervals: set[str], where: str) -> None:
    if route.receiver is not None and route.receiver not in names:
        raise ValueError(f"{where}.receiver: no receiver named {route.receiver!r}")
    for key in ("mute_time_intervals", "active_time_intervals"):
        for name in getattr(route, key):
            if name not in intervals:
                raise ValueError(f"{where}.{key}: no time interval named {name!r}")
    for index, child in enumerate(route.routes):
        _check_references(child, names, intervals, f"{where}.routes.{index}")


DEFAULT_CONFIG: dict[str, Any] = {
    "route": {"receiver": "log", "group_by": ["alertname", "project"]},
    "receivers": [{"name": "log", "log_configs": [{}]}],
}


def load_config(path: Path | None) -> AlertingConfig:
    """The alerting config file, or the default (everything to the log); ConfigError names the bad key."""
    if path is None:
        return AlertingConfig.model_validate(DEFAULT_CONFIG)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except OSError as exc:
        raise ConfigError(f"alerting.config_file {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"alerting.config_file {path}: not valid YAML: {exc}") from None
    return parse_config(data, str(path))


def parse_config(data: Any, source: str = "alerting config") -> AlertingConfig:
    try:
        return AlertingConfig.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'config'}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"{source}: {problems}") from None


@dataclass
class Route:
    """A route with its inherited settings resolved."""

    key: str
    matchers: list[Matcher]
    receiver: str
    group_by: list[str]
    group_wait: float
    group_interval: float
    repeat_interval: float
    continue_: bool = False
    routes: list[Route] = field(default_factory=list)
    mute_time_intervals: list[str] = field(default_factory=list)
    active_time_intervals: list[str] = field(default_factory=list)

    def muted_at(self, epoch: float, intervals: Mapping[str, NamedTimeInterval]) -> bool:
        """Whether the route's time intervals hold its notifications back at this instant: inside a mute
        interval, or outside every active interval (when it has any)."""
        if any(intervals[name].contains(epoch) for name in self.mute_time_intervals):
            return True
        return bool(self.active_time_intervals) and not any(
            intervals[name].contains(epoch) for name in self.active_time_intervals)

    def match(self, labels: Mapping[str, str]) -> list[Route]:
        """The routes that take the alert: the deepest matching ones, Alertmanager's way.

        >>> root = build_routes(AlertingConfig.model_validate(DEFAULT_CONFIG).route)
        >>> [r.receiver for r in root.match({"alertname": "Down"})]
        ['log']
        """
        if not all(m.matches(labels) for m in self.matchers):
            return []
        found: list[Route] = []
        for child in self.routes:
            matched = child.match(labels)
            found.extend(matched)
            if matched and not child.continue_:
                break
        return found or [self]

    def group_labels(self, labels: Mapping[str, str]) -> dict[str, str]:
        if ALL_LABELS in self.group_by:
            return dict(labels)
        return {name: labels[name] for name in self.group_by if name in labels}

    def group_key(self, labels: Mapping[str, str]) -> str:
        return f"{self.key}:{label_set(self.group_labels(labels))}"


def label_set(labels: Mapping[str, str]) -> str:
    """`{a="1", b="2"}` as Alertmanager prints a label set (sorted)."""
    return "{" + ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"


def build_routes(config: RouteConfig, parent: Route | None = None, same_before: int = 0) -> Route:
    """The route tree. A route's key is its parent's key and its own matchers, as Alertmanager spells it;
    a sibling with the same matchers as `same_before` earlier siblings gets `#n` added, so two catch-all
    children (the first with `continue`) are two aggregation groups, each notifying its own receiver.
    The first keeps the plain key, so notification logs of existing trees stay valid."""
    matchers = config.parsed_matchers()
    own_key = "{" + ",".join(str(m) for m in matchers) + "}" + (f"#{same_before}" if same_before else "")
    route = Route(
        key=own_key if parent is None else f"{parent.key}/{own_key}",
        matchers=matchers,
        receiver=config.receiver or (parent.receiver if parent else ""),
        group_by=config.group_by if config.group_by is not None else (parent.group_by if parent else []),
        group_wait=_pick(config.group_wait, parent.group_wait if parent else DEFAULT_GROUP_WAIT),
        group_interval=_pick(config.group_interval, parent.group_interval if parent else DEFAULT_GROUP_INTERVAL),
        repeat_interval=_pick(config.repeat_interval,
                              parent.repeat_interval if parent else DEFAULT_REPEAT_INTERVAL),
        continue_=config.continue_,
        mute_time_intervals=list(config.mute_time_intervals),
        active_time_intervals=list(config.active_time_intervals),
    )
    seen: dict[str, int] = {}
    for child in config.routes:
        spelled = ",".join(str(m) for m in child.parsed_matchers())
        route.routes.append(build_routes(child, route, seen.get(spelled, 0)))
        seen[spelled] = seen.get(spelled, 0) + 1
    return route


def _pick(own: float | None, inherited: float) -> float:
    return own if own is not None else inherited


class Inhibitor:
    """Alertmanager's inhibition: a target is muted while a firing source alert matches and the `equal`
    labels agree (a missing label equals a missing label). An alert never inhibits itself."""

    def __init__(self, rules: list[InhibitRule]) -> None:
        self.rules = [(parse_matchers(r.source_matchers), parse_matchers(r.target_matchers), r.equal) for r in rules]

    def inhibited(self, sources: Sequence[tuple[str, Mapping[str, str]]],
                  targets: Sequence[tuple[str, Mapping[str, str]]]) -> set[str]:
        """Fingerprints of the `targets` inhibited by the (firing) `sources`."""
        return set(self.inhibitors(sources, targets))

    def inhibitors(self, sources: Sequence[tuple[str, Mapping[str, str]]],
                   targets: Sequence[tuple[str, Mapping[str, str]]]) -> dict[str, set[str]]:
        """For each inhibited target, the fingerprints of the sources inhibiting it."""
        muted: dict[str, set[str]] = {}
        for source_matchers, target_matchers, equal in self.rules:
            found: dict[tuple[str, ...], set[str]] = {}
            for fp, labels in sources:
                if all(m.matches(labels) for m in source_matchers):
                    found.setdefault(tuple(labels.get(n, "") for n in equal), set()).add(fp)
            if not found:
                continue
            for fp, labels in targets:
                if not all(m.matches(labels) for m in target_matchers):
                    continue
                by = found.get(tuple(labels.get(n, "") for n in equal), set()) - {fp}
                if by:
                    muted.setdefault(fp, set()).update(by)
        return muted
