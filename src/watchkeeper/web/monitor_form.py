"""The monitor form: the fields of each monitor type, read from a posted form into a MonitorSpec with an
error per field (shown next to it), and filled from a stored monitor (secrets masked, as the API does).

Config fields are named `c_<key>` so they cannot collide with the common ones (a DNS `name` is not the
monitor's name).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from starlette.datastructures import FormData

from watchkeeper.uptime.monitors import Monitor
from watchkeeper.uptime.secrets import keep_masked_secrets, masked_config
from watchkeeper.uptime.specs import CONFIG_MODELS, MonitorSpec
from watchkeeper.web.form_errors import human_message

TYPE_LABELS = {
    "http": "HTTP(S)", "tls": "TLS certificate", "tcp": "TCP port", "dns": "DNS", "ping": "Ping (ICMP)",
    "postgres": "PostgreSQL", "mysql": "MySQL / MariaDB", "redis": "Redis", "heartbeat": "Heartbeat / cron job",
}
METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
RECORD_TYPES = ("A", "AAAA", "CNAME", "MX", "NS", "TXT", "SOA", "SRV", "CAA", "PTR")
CONDITIONS_HELP = 'One per line, e.g. status == 200, response_time < 300ms, body.status == "UP", body contains "ok"'


@dataclass(frozen=True, slots=True)
class Field:
    key: str  # the config key ("basic_auth.username" for the nested one)
    label: str
    kind: str = "text"  # text, secret, int, float, bool, ints, lines, headers, choice, textarea
    help: str = ""
    choices: tuple[str, ...] = ()
    placeholder: str = ""

    @property
    def name(self) -> str:
        return "c_" + self.key.replace(".", "_")


_CONDITIONS = Field("conditions", "Conditions", "lines", CONDITIONS_HELP)
FIELDS: dict[str, tuple[Field, ...]] = {
    "http": (
        Field("url", "URL", placeholder="https://example.com/health"),
        Field("method", "Method", "choice", choices=METHODS),
        Field("expected_status", "Expected status codes", "ints", "Comma-separated; empty: any 2xx or 3xx"),
        Field("keyword", "Keyword present", help="The body must contain this text"),
        Field("keyword_absent", "Keyword absent", help="The body must not contain this text"),
        _CONDITIONS,
        Field("max_response_ms", "Maximum response time (ms)", "float", "Slower fails"),
        Field("degraded_ms", "Degraded above (ms)", "float", "Slower is degraded but up"),
        Field("headers", "Headers", "headers", "One per line: Name: value"),
        Field("body", "Request body", "textarea"),
        Field("basic_auth.username", "Basic auth user"),
        Field("basic_auth.password", "Basic auth password", "secret"),
        Field("bearer_token", "Bearer token", "secret"),
        Field("follow_redirects", "Follow redirects", "bool"),
        Field("verify_tls", "Verify TLS certificate", "bool"),
        Field("cert_warn_days", "Certificate warnings (days left)", "ints", "Comma-separated, e.g. 30, 14, 7"),
    ),
    "tls": (
        Field("host", "Host", placeholder="example.com"), Field("port", "Port", "int"),
        Field("verify_tls", "Verify certificate", "bool"),
        Field("warn_days", "Warnings (days left)", "ints", "Comma-separated, e.g. 30, 14, 7"), _CONDITIONS,
    ),
    "tcp": (Field("host", "Host", placeholder="db.example.com"), Field("port", "Port", "int")),
    "dns": (
        Field("name", "Name to resolve", placeholder="example.com"),
        Field("record_type", "Record type", "choice", choices=RECORD_TYPES),
        Field("nameserver", "Name server", help="Empty: the system resolver"), Field("port", "Port", "int"),
        Field("expected", "Expected answers", "lines", "One per line; each must be among the answers"), _CONDITIONS,
    ),
    "ping": (Field("host", "Host", placeholder="example.com"),),
    "postgres": (Field("url", "URL", "secret", placeholder="postgresql://user:password@db.example.com:5432/app"),),
    "mysql": (Field("url", "URL", "secret", placeholder="mysql://user:password@db.example.com:3306/app"),),
    "redis": (Field("url", "URL", "secret", placeholder="redis://:password@cache.example.com:6379/0"),),
    "heartbeat": (
        Field("period_seconds", "Period (seconds)", "int", "A ping at least this often; or give a cron expression"),
        Field("cron", "Cron expression", placeholder="0 3 * * *"),
        Field("timezone", "Time zone of the cron expression", placeholder="Europe/Paris"),
        Field("grace_seconds", "Grace (seconds)", "int", "How late a ping may be before the heartbeat is down"),
        Field("max_run_seconds", "Maximum run time (seconds)", "int",
              "After /start, a run not finished within this time failed; empty: no limit"),
    ),
}
COMMON = ("name", "slug", "interval_seconds", "timeout_seconds", "failures_to_down", "successes_to_up", "sla_target")
DEFAULTS = {"interval_seconds": "60", "timeout_seconds": "10", "failures_to_down": "2", "successes_to_up": "1"}


class FormProblems(Exception):
    """The form's values with an error per field name."""

    def __init__(self, values: dict[str, str], errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.values = values
        self.errors = errors


def _get(config: dict[str, Any], key: str) -> Any:
    value: Any = config
    for part in key.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _shown(field: Field, value: Any) -> str:
    if value is None:
        return ""
    if field.kind == "bool":
        return "on" if value else ""
    if field.kind == "ints":
        return ", ".join(str(v) for v in value)
    if field.kind == "lines":
        return "\n".join(str(v) for v in value)
    if field.kind == "headers":
        return "\n".join(f"{k}: {v}" for k, v in value.items())
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def form_values(monitor_type: str, monitor: Monitor | None, *, reveal: bool = False) -> dict[str, str]:
    """What the form shows: a stored monitor (secrets masked unless an editor asked to `reveal` them) or
    the type's defaults."""
    if monitor is None:
        config = _defaults(monitor_type)
        values = {name: DEFAULTS.get(name, "") for name in COMMON}
    else:
        config = monitor.config if reveal else masked_config(monitor.config)
        values = {name: _shown(Field(name, name), getattr(monitor, name)) for name in COMMON}
    for field in FIELDS[monitor_type]:
        values[field.name] = _shown(field, _get(config, field.key))
    return values


def _defaults(monitor_type: str) -> dict[str, Any]:
    model = CONFIG_MODELS[monitor_type]
    defaults = {}
    for key, info in model.model_fields.items():
        if not info.is_required():
            defaults[key] = info.get_default(call_default_factory=True)
    if monitor_type == "heartbeat":
        defaults["period_seconds"] = 86400
    return defaults


def _text(form: FormData, name: str, limit: int = 70_000) -> str:
    value = form.get(name)
    text = value if isinstance(value, str) else ""
    return text.replace("\x00", "").strip()[:limit]


def _number(text: str, whole: bool) -> int | float:
    try:
        return int(text) if whole else float(text)
    except ValueError:
        raise ValueError("a whole number" if whole else "a number") from None


def _read_field(field: Field, text: str) -> Any:
    """The config value of one field's text (ValueError with a message for the page)."""
    if field.kind == "bool":
        return text == "on"
    if not text:
        return None  # the type's default
    if field.kind in ("int", "float"):
        return _number(text, field.kind == "int")
    if field.kind == "ints":
        return [_number(part, True) for part in text.replace(",", " ").split()]
    if field.kind == "lines":
        return [line.strip() for line in text.splitlines() if line.strip()]
    if field.kind == "headers":
        headers = {}
        for line in text.splitlines():
            if not line.strip():
                continue
            name, colon, value = line.partition(":")
            if not colon or not name.strip():
                raise ValueError(f"not a header (Name: value): {line.strip()[:60]!r}")
            headers[name.strip()] = value.strip()
        return headers
    return text


def _config_of(monitor_type: str, values: dict[str, str], errors: dict[str, str]) -> dict[str, Any]:
    config: dict[str, Any] = {}
    if monitor_type == "heartbeat" and values.get("c_cron"):
        values = {**values, "c_period_seconds": ""}  # a cron expression replaces the period
    for field in FIELDS[monitor_type]:
        try:
            value = _read_field(field, values[field.name])
        except ValueError as exc:
            errors[field.name] = str(exc)
            continue
        if field.key.startswith("basic_auth."):
            if value:
                config.setdefault("basic_auth", {})[field.key.split(".", 1)[1]] = value
        elif value is not None:
            config[field.key] = value
    if "basic_auth" in config:
        config["basic_auth"].setdefault("username", "")
        config["basic_auth"].setdefault("password", "")
    return config


def _field_for(monitor_type: str, loc: tuple[Any, ...]) -> str:
    key = ".".join(str(p) for p in loc if not isinstance(p, int))
    for field in FIELDS[monitor_type]:
        if key == field.key or key.startswith(field.key + "."):
            return field.name
    if key == "basic_auth":
        return "c_basic_auth_username"
    return "c_" + key.split(".")[0] if any(f.key == key.split(".")[0] for f in FIELDS[monitor_type]) else "config"


def read_monitor_form(form: FormData, monitor_type: str, stored: Monitor | None) -> tuple[dict[str, str], MonitorSpec]:
    """The form's values (to show again) and the spec; FormProblems when a field is wrong.

    >>> # values, spec = read_monitor_form(await request.form(), "http", None)
    """
    values = {name: _text(form, name, 500) for name in COMMON}
    values |= {f.name: _text(form, f.name) for f in FIELDS[monitor_type]}
    errors: dict[str, str] = {}
    config = _config_of(monitor_type, values, errors)
    if stored is not None and stored.type == monitor_type:
        config = keep_masked_secrets(config, stored.config)
    try:
        config = CONFIG_MODELS[monitor_type].model_validate(config).model_dump(mode="json")
    except ValidationError as exc:
        for error in exc.errors():
            errors.setdefault(_field_for(monitor_type, error["loc"]), _message(error))
    common: dict[str, Any] = {"type": monitor_type, "paused": stored.paused if stored else False}
    common |= {name: values[name] for name in COMMON if values[name]}
    if not errors:
        try:
            return values, MonitorSpec.model_validate({**common, "config": config})
        except ValidationError as exc:
            for error in exc.errors():
                where = str(error["loc"][0]) if error["loc"] else "config"
                errors.setdefault(where if where in COMMON else "config", _message(error))
    _common_errors(common, errors)
    raise FormProblems(values, errors or {"config": "not valid"})


def _common_errors(common: dict[str, Any], errors: dict[str, str]) -> None:
    """Errors of the common fields too, when the config already failed (so all show at once)."""
    try:
        MonitorSpec.model_validate({**common, "type": "ping", "config": {"host": "x"}})
    except ValidationError as exc:
        for error in exc.errors():
            if error["loc"] and str(error["loc"][0]) in COMMON:
                errors.setdefault(str(error["loc"][0]), _message(error))


def _message(error: Any) -> str:
    return human_message(error)
