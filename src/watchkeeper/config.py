"""The one settings object: defaults by profile, then a YAML file, then WATCHKEEPER_* variables.

Every default is here with the reason for it. Unknown keys and bad values stop start-up with a
message that names the key, so a typo never silently falls back to a default.
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

ENV_PREFIX = "WATCHKEEPER_"
# Variables with our prefix that are not settings (read by the CLI or the test suite).
_NOT_SETTINGS = {"WATCHKEEPER_CONFIG", "WATCHKEEPER_TEST_DATABASE_URL"}

MiB = 1024 * 1024


class ConfigError(Exception):
    """A setting is unknown or has a bad value; the message names it."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class CategoryQuota(_Section):
    # At most this many in any minute; None = no per-minute limit.
    per_minute: int | None = Field(None, gt=0)
    # At most this many in any hour; None = no hourly limit.
    per_hour: int | None = Field(None, gt=0)


class IngestSettings(_Section):
    # Relay's defaults: SDKs are built around them, so larger bodies are a bug or an attack.
    # A request body as sent (compressed) may be this large.
    max_body_bytes: int = Field(20 * MiB, gt=0)
    # The same body once decompressed: bounds a zip bomb.
    max_decompressed_bytes: int = Field(200 * MiB, gt=0)
    # One event (error, transaction) in an envelope or sent to /store/.
    max_event_bytes: int = Field(1 * MiB, gt=0)
    # One attachment item (minidump, log file, screenshot).
    max_attachment_bytes: int = Field(20 * MiB, gt=0)
    # One cron check-in item (a few hundred bytes in practice).
    max_check_in_bytes: int = Field(100 * 1024, gt=0)
    # Per-project and per-key limits are set on the project/key; these apply when those are unset.
    # None = unlimited: a self-hoster's own apps should not be throttled by surprise.
    default_events_per_minute: int | None = Field(None, gt=0)
    # The same over an hour (None = unlimited).
    default_events_per_hour: int | None = Field(None, gt=0)
    # Quotas of the other Sentry data categories (transaction, span, attachment, session, profile,
    # profile_chunk, replay, monitor, log_item, feedback, metric_bucket) where a project sets none of
    # its own; attachments count bytes. Attachments fill the disk fastest (up to 20 MiB an item, 200
    # MiB an envelope), so they are bounded by default: 100 MiB a minute, 1 GiB an hour per project.
    default_quotas: dict[str, CategoryQuota] = Field(
        default_factory=lambda: {"attachment": CategoryQuota(per_minute=100 * MiB, per_hour=1024 * MiB)}
    )
    # Processes that normalise, scrub and group events, so ingest uses more than one core (Python runs
    # one thread at a time). At most `processors` (None = one per core; none on a 1-core machine;
    # 0 = process in the server process), of which `min_processors` always run: the others start
    # while envelopes queue up and stop after a minute without a queue. See errors/processors.py.
    processors: int | None = Field(None, ge=0, le=64)
    # Processor processes kept running when ingest is quiet (see `processors` above).
    min_processors: int = Field(1, ge=1, le=64)
    # Envelopes waiting for a processor before new ones get a 503 (bounds memory under overload).
    max_processing_backlog: int = Field(10_000, gt=0)

    @field_validator("default_quotas")
    @classmethod
    def _known_categories(cls, value: dict[str, CategoryQuota]) -> dict[str, CategoryQuota]:
        from watchkeeper.errors.rate_limits import QUOTA_CATEGORIES

        for category in value:
            if category not in QUOTA_CATEGORIES:
                raise ValueError(f"unknown category {category!r} (known: {', '.join(sorted(QUOTA_CATEGORIES))})")
        return value


class WriterSettings(_Section):
    # Group commit: the writer takes everything queued (up to max_batch) into one transaction.
    max_batch: int = Field(1000, gt=0)
    # While envelopes are still in the processor processes, a batch of fewer than 32 waits up to this
    # long for them (see store/writer.py): fewer, larger transactions cost the writer less CPU per event.
    gather_ms: float = Field(3.0, ge=0, le=100)
    # A bounded queue turns overload into fast 503s instead of unbounded memory.
    max_queue: int = Field(20_000, gt=0)
    # FULL survives power loss, NORMAL (WAL) survives a process crash; group commit pays for FULL.
    sqlite_synchronous: Literal["FULL", "NORMAL"] = "FULL"
    # Run ingest batches in a writer process of their own (see store/writer_process.py): in the server
    # process they wait for the GIL after every database call. None = when there are processor processes,
    # and then only while ingest is busy (it stops after a minute of quiet); true = always.
    separate_process: bool | None = None


class RetentionSettings(_Section):
    """Days each data class is kept (docs/privacy.md lists them); the one retention job deletes what is
    older, in batches. The defaults here are production's (staging's too); the development profile keeps
    what was never deleted before for months, not years (PROFILE_DEFAULTS says why not less)."""

    # Error events and their issues (90 days: Sentry's business plan); a project's `retention_days` overrides.
    error_events_days: int = Field(90, gt=0)
    # Performance transactions sent by SDKs, as long as the errors they explain.
    transactions_days: int = Field(90, gt=0)
    # Release-health sessions, client reports, logs and check-ins as sent, as long as the errors.
    envelope_items_days: int = Field(90, gt=0)
    # Files sent with events (minidumps, screenshots), as long as their events.
    attachments_days: int = Field(90, gt=0)
    # Raw check results are for "recent checks"; ranges beyond use the per-minute/hour/day rollups.
    check_results_days: int = Field(7, gt=0)
    # Heartbeat pings and their logs, like the raw check results.
    heartbeat_pings_days: int = Field(7, gt=0)
    # Per-minute rollups are for charts of the last days; hour and day rollups for long ranges.
    minute_rollups_days: int = Field(14, gt=0)
    # Hour rollups (with response-time sketches) are for charts over weeks and months.
    hour_rollups_days: int = Field(120, gt=0)
    # Day rollups make the monthly SLA reports, so they are kept for years (they were never deleted before).
    day_rollups_days: int = Field(3650, gt=0)
    # Ended outages are in the SLA reports too, kept as long as the day rollups.
    outages_days: int = Field(3650, gt=0)
    # Every resolved firing of every alert (alert history, alert volume); over a year, for yearly comparisons.
    alert_history_days: int = Field(400, gt=0)
    # Notifications sent or given up (the outbox), for "what was sent to whom" questions of the last month.
    notifications_days: int = Field(30, gt=0)
    # Silences after their end (Alertmanager keeps them 5 days); a month shows who muted what recently.
    expired_silences_days: int = Field(30, gt=0)
    # Resolved incidents with their timeline; two years covers a yearly review.
    incidents_days: int = Field(730, gt=0)
    # Who changed what; a year covers a yearly audit.
    audit_log_days: int = Field(365, gt=0)
    # How often the background task deletes expired data.
    interval_seconds: int = Field(3600, gt=0)
    # Rows deleted per table per transaction, so the cleanup never holds the writer for long.
    batch_size: int = Field(5000, gt=0)


class OutboundSettings(_Section):
    # SSRF guard: checks and webhooks may not reach private/loopback addresses unless allowed.
    allow_private_targets: bool = False
    # A check or webhook request that takes longer fails (checks may set their own timeout).
    timeout_seconds: float = Field(10.0, gt=0)
    # Redirects followed, each through the same SSRF guard; more is a failed check.
    max_redirects: int = Field(5, ge=0)
    # The HTTP client's own loggers (httpx, httpcore). At debug they print every connection step of
    # every check and webhook (~20 lines per request), which buried our own debug lines; ask for them
    # with WATCHKEEPER_OUTBOUND__LOG_LEVEL=debug.
    log_level: Literal["debug", "info", "warning", "error"] = "warning"


class UptimeSettings(_Section):
    # Run the checks and heartbeat sweeps in this process (off for API-only processes and some tests).
    scheduler: bool = True
    # Enough to keep 10,000 monitors at 60 s busy without opening thousands of sockets at once.
    max_concurrent_checks: int = Field(200, gt=0)
    # Monitors as code: a YAML file synced at start (see docs/uptime.md). None = none.
    monitors_file: Path | None = None
    # Heartbeat pings may carry a log; more than this is cut (healthchecks keeps 100 KiB too).
    max_ping_body_bytes: int = Field(100 * 1024, gt=0)
    # Results are written in one batch per this many seconds (one transaction for many checks).
    flush_seconds: float = Field(1.0, gt=0, le=60)
    # How often late heartbeats and new Sentry check-ins are looked at.
    sweep_seconds: float = Field(5.0, gt=0, le=300)
    # A public status page is computed at most once per this many seconds (it is opened by everyone
    # during an outage).
    status_page_cache_seconds: float = Field(5.0, ge=0, le=300)


class AlertingSettings(_Section):
    # Evaluate rules and deliver notifications in this process (off for API-only processes and some tests).
    evaluator: bool = True
    # Routing tree, receivers and inhibition rules in Alertmanager's YAML (see docs/alerting.md).
    # None = every alert goes to the "log" receiver.
    config_file: Path | None = None
    # Alert rules as code, per project slug (see docs/alerting.md); synced at start. None = none.
    rules_file: Path | None = None
    # Prometheus evaluates every 15 s by default; alerts then arrive within seconds of the data.
    evaluation_interval_seconds: float = Field(15.0, gt=0, le=3600)
    # Group timers (group_wait, group_interval) are checked this often.
    dispatch_interval_seconds: float = Field(1.0, gt=0, le=60)
    # Alertmanager's resolve_timeout: an API alert without endsAt resolves this long after it was last sent.
    resolve_timeout_seconds: float = Field(300.0, gt=0)
    # Resolved alerts are kept this long so their resolved notification can go out (Prometheus: 15 min).
    resolved_retention_seconds: float = Field(900.0, gt=0)
    # Flap detection for threshold alerts (percent state change over 21 rounds, Nagios' marks): a
    # flapping alert stays firing instead of paging on every change. Start 0 = off.
    flap_start_percent: float = Field(20.0, ge=0, le=100)
    # A flapping alert stops flapping when the state change falls below this percent.
    flap_stop_percent: float = Field(5.0, ge=0, le=100)
    # New projects get the default rule pack (error spike, new error type, monitor down, …).
    default_rule_pack: bool = True
    # Delivery retries: exponential backoff from 1 s doubling up to this, with jitter, at most this many tries.
    delivery_max_backoff_seconds: float = Field(300.0, gt=0)
    # After this many failed tries a notification is given up (and counted as failed).
    delivery_max_attempts: int = Field(12, gt=0, le=100)
    # How long one notification may take before it counts as a timeout (retried).
    delivery_timeout_seconds: float = Field(10.0, gt=0, le=120)
    # Incidents (see docs/alerting.md "On-call and incidents"): alerts of these severities declare one
    # (a project may choose others); the pages people answer are for what needs a human now.
    incident_severities: list[Literal["critical", "high", "medium", "low"]] = ["critical", "high"]
    # How often new alerts are turned into incidents and escalation timers are looked at.
    incident_interval_seconds: float = Field(2.0, gt=0, le=60)
    # Signs the acknowledge/resolve links in notifications. None = secret_key, else one kept in the database.
    link_secret: SecretStr | None = None
    # A link in a page older than a day is more likely forwarded or leaked than wanted.
    link_expiry_seconds: float = Field(86400.0, gt=0)
    # The receiver (routing file) whose first e-mail integration mails on-call users; None = no e-mail.
    oncall_email_receiver: str | None = None


class SessionSettings(_Section):
    # A dashboard left open over a working day stays logged in; a laptop left overnight does not.
    idle_timeout_seconds: int = Field(12 * 3600, gt=0)
    # Even an active session logs in again weekly, so a stolen cookie does not live forever.
    absolute_lifetime_seconds: int = Field(7 * 24 * 3600, gt=0)
    # Account lock-out: enough for typos, far too few for guessing (OWASP suggests 3-10).
    max_failures_per_account: int = Field(5, gt=0)
    # Per client address, to slow one machine trying many accounts; high enough for a shared office NAT.
    max_failures_per_ip: int = Field(50, gt=0)
    # Failures are counted over this window; reaching the limit locks for the same time.
    lockout_seconds: int = Field(15 * 60, gt=0)


class Settings(_Section):
    # Chooses the defaults below that differ by environment (PROFILE_DEFAULTS).
    profile: Literal["development", "staging", "production"] = "development"
    # Where the SQLite database and the server's address file live (relative to the working directory).
    data_dir: Path = Path("watchkeeper-data")
    # None = SQLite in data_dir. PostgreSQL: postgresql+psycopg://user@host/db
    database_url: str | None = None
    # Address `serve` listens on: loopback by default, so nothing is exposed until the operator says so.
    host: str = "127.0.0.1"
    # Port `serve` listens on.
    port: int = Field(8000, gt=0, lt=65536)
    # The address SDKs and browsers use to reach us (put in DSNs); default http://host:port.
    public_url: str | None = None
    # Signs the acknowledge/resolve links in notifications unless alerting.link_secret is set.
    # None = a secret generated once and kept in the database.
    secret_key: SecretStr | None = None
    # The admin user created at the first start on an empty database.
    admin_email: str = "admin@example.com"
    # That admin's password; None = a one-time password printed at start, to be changed at first login.
    admin_password: SecretStr | None = None
    # Our own log lines (the HTTP client's have outbound.log_level).
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    # What this process does (`serve --role`): all of it; or, with several processes on one PostgreSQL
    # database, `web` (pages, REST API, status pages), `ingest` (SDK envelopes and pings) or `worker`
    # (uptime checks, alerting, retention). See docs/deployment.md.
    role: Literal["all", "web", "ingest", "worker"] = "all"
    # Background work runs in one process at a time, the holder of a lease in the database; a standby
    # takes over this long after the holder stopped renewing it (see store/leases.py).
    lease_seconds: float = Field(30.0, ge=1, le=600)
    # Reverse proxies (addresses or CIDR networks) whose X-Forwarded-For and X-Forwarded-Proto are believed:
    # a request from one of them counts as from the last address in X-Forwarded-For that is not itself a
    # trusted proxy. Empty (the default) believes nobody, so a client cannot pick its own address (the
    # per-address login lock-out and event IPs use it). Behind nginx on the same machine: ["127.0.0.1"].
    # From the environment: WATCHKEEPER_TRUSTED_PROXIES=127.0.0.1,10.0.0.0/8
    trusted_proxies: list[str] = Field(default_factory=list, max_length=100)
    # Sentry ingest: size limits, default rate limits and quotas, the event processor processes.
    ingest: IngestSettings = IngestSettings()
    # The single database writer: group commit batches, queue bound, durability.
    writer: WriterSettings = WriterSettings()
    # Deleting old errors and transactions.
    retention: RetentionSettings = RetentionSettings()
    # The one outbound HTTP client (uptime checks, webhooks, notification channels).
    outbound: OutboundSettings = OutboundSettings()
    # Web app logins: session lifetime and lock-out after failed logins.
    sessions: SessionSettings = SessionSettings()
    # Uptime checks, heartbeats, rollups and status pages.
    uptime: UptimeSettings = UptimeSettings()
    # Alert rules, routing, notifications, on-call and incidents.
    alerting: AlertingSettings = AlertingSettings()

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _proxy_networks(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [part for part in (p.strip() for p in value.split(",")) if part]
        if not isinstance(value, list):
            return value  # pydantic says what is wrong with it
        networks = []
        for entry in value:
            try:
                networks.append(str(ipaddress.ip_network(str(entry).strip(), strict=False)))
            except ValueError:
                raise ValueError(f"{str(entry)[:64]!r} is not an IP address or CIDR network") from None
        return networks

    @property
    def sqlalchemy_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'watchkeeper.db').resolve()}"

    @property
    def base_url(self) -> str:
        if self.public_url:
            return self.public_url.rstrip("/")
        return self.listen_url

    @property
    def listen_url(self) -> str:
        """Where `serve` listens, as a URL this machine can open (0.0.0.0 → 127.0.0.1)."""
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::") else self.host
        return f"http://{host}:{self.port}"


# What each profile changes from the defaults above, and why.
PROFILE_DEFAULTS: dict[str, dict[str, Any]] = {
    # On a laptop the services under test live on localhost, and data is for trying things out: the data
    # classes that were never deleted before are kept months, not years. The classes that had a retention
    # before (events, transactions, check results, rollups) keep it in every profile: development is the
    # default profile, and an install upgraded without naming one must not lose data it kept yesterday.
    "development": {
        "outbound": {"allow_private_targets": True}, "log_level": "debug",
        "retention": {
            "day_rollups_days": 365, "outages_days": 365, "alert_history_days": 90, "notifications_days": 14,
            "expired_silences_days": 14, "incidents_days": 180, "audit_log_days": 90,
        },
    },
    "staging": {},
    # Production: nothing outbound reaches the private network unless the operator says so.
    "production": {"outbound": {"allow_private_targets": False}, "log_level": "info"},
}


# Settings that were renamed: an old config file or variable still works (the old name sets the new
# ones), and giving both names is an error rather than a silent pick.
RENAMED: dict[tuple[str, str], tuple[tuple[str, str], ...]] = {
    ("retention", "default_days"): (("retention", "error_events_days"), ("retention", "transactions_days"),
                                    ("retention", "envelope_items_days"), ("retention", "attachments_days")),
    ("uptime", "raw_retention_days"): (("retention", "check_results_days"), ("retention", "heartbeat_pings_days")),
    ("uptime", "minute_rollup_retention_days"): (("retention", "minute_rollups_days"),),
    ("uptime", "hour_rollup_retention_days"): (("retention", "hour_rollups_days"),),
}


def _rename_old_settings(values: dict[str, Any]) -> dict[str, Any]:
    """{"uptime": {"raw_retention_days": 3}} → {"retention": {"check_results_days": 3, …}}."""
    for (section, old), targets in RENAMED.items():
        node = values.get(section)
        if not isinstance(node, dict) or old not in node:
            continue
        node = dict(node)
        value = node.pop(old)
        values = {**values, section: node}
        for target_section, target in targets:
            into = values.get(target_section)
            into = dict(into) if isinstance(into, dict) else {}
            if target in into:
                raise ConfigError(f"setting '{section}.{old}' is the old name of '{target_section}.{target}': "
                                  "give only one")
            into[target] = value
            values = {**values, target_section: into}
    return values


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _set_path(target: dict[str, Any], path: list[str], value: Any) -> None:
    for part in path[:-1]:
        node = target.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"{'.'.join(path)}: {part} is not a section")
        target = node
    target[path[-1]] = value


def _names_a_setting(path: list[str]) -> bool:
    """Whether `path` is a setting of its own (alerting.config_file), which *_FILE must not read as a file.

    >>> _names_a_setting(["alerting", "config_file"]), _names_a_setting(["sessions", "secret_file"])
    (True, False)
    """
    model: Any = Settings
    for part in path:
        field = getattr(model, "model_fields", {}).get(part)
        if field is None:
            return False
        model = field.annotation
    return True


def _from_environment(environ: dict[str, str]) -> dict[str, Any]:
    """WATCHKEEPER_INGEST__MAX_BODY_BYTES=1 → {"ingest": {"max_body_bytes": "1"}}; *_FILE reads a file,
    unless the name is a setting itself (WATCHKEEPER_ALERTING__CONFIG_FILE is the routing file's path)."""
    values: dict[str, Any] = {}
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX) or name in _NOT_SETTINGS:
            continue
        key = name[len(ENV_PREFIX) :].lower()
        value: Any = raw
        if key.endswith("_file") and not _names_a_setting(key.split("__")):
            key = key[: -len("_file")]
            try:
                value = Path(raw).read_text().strip()
            except OSError as exc:
                raise ConfigError(f"{name}: cannot read {raw}: {exc.strerror}") from None
        path = key.split("__")
        if len(path) > 1 or not isinstance(values.get(path[0]), dict):
            _set_path(values, path, value)
    return values


def _describe(error: ValidationError, source: str) -> str:
    lines = []
    for problem in error.errors():
        key = ".".join(str(part) for part in problem["loc"])
        if problem["type"] == "extra_forbidden":
            lines.append(f"unknown setting '{key}' (from {source})")
        else:
            lines.append(f"setting '{key}': {problem['msg']} (from {source})")
    return "; ".join(lines)


def load_settings(
    config_file: Path | None = None,
    environ: dict[str, str] | None = None,
    overrides: dict[str, Any] | None = None,
) -> Settings:
    """Build the settings: profile defaults, YAML file, environment, then explicit overrides (CLI flags).

    >>> load_settings(environ={"WATCHKEEPER_PORT": "9000"}).port
    9000
    """
    environ = dict(os.environ if environ is None else environ)
    if config_file is None and environ.get("WATCHKEEPER_CONFIG"):
        config_file = Path(environ["WATCHKEEPER_CONFIG"])
    from_file: dict[str, Any] = {}
    if config_file is not None:
        try:
            loaded = yaml.safe_load(config_file.read_text()) or {}
        except OSError as exc:
            raise ConfigError(f"config file {config_file}: {exc.strerror}") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"config file {config_file}: not valid YAML: {exc}") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"config file {config_file}: must be a mapping of settings")
        from_file = loaded
    from_env = _from_environment(environ)
    layered = _merge(_merge(_rename_old_settings(from_file), _rename_old_settings(from_env)),
                     _rename_old_settings(overrides or {}))
    profile = layered.get("profile", "development")
    if profile not in PROFILE_DEFAULTS:
        raise ConfigError(f"setting 'profile': must be one of {', '.join(PROFILE_DEFAULTS)}, not {profile!r}")
    source = " and ".join(
        s for s, present in (("config file", from_file), ("environment", from_env), ("flags", overrides)) if present
    )
    try:
        return Settings.model_validate(_merge(PROFILE_DEFAULTS[profile], layered))
    except ValidationError as exc:
        raise ConfigError(_describe(exc, source or "defaults")) from None
