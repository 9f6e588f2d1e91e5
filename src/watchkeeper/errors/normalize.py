"""Turn an event or transaction payload from any Sentry SDK into Watchkeeper's canonical event.

The canonical event always holds ``event_id``, ``type``, ``timestamp``, ``received``, ``level``,
``platform``, ``environment``, ``tags`` (list of pairs), ``contexts``, ``extra``, ``breadcrumbs``
and ``exception`` (both ``{"values": [...]}``) and ``errors``; the other attributes appear only
when the SDK sent something usable. Every size is bounded, so hostile input costs bounded memory.
"""

from __future__ import annotations

import re
import uuid
from itertools import islice
from typing import Any

import orjson

from watchkeeper.errors import interfaces as iface
from watchkeeper.errors.interfaces import MAX_ITEMS, MAX_STRING_BYTES, EventErrors, clip, string, trim

MAX_CLOCK_DRIFT = 60.0
MAX_TAG_CHARS = 200
MAX_MODULES = 500
MAX_TAG_INPUTS = 1000

_PLATFORM = re.compile(r"[a-z0-9_-]{1,64}")
_ENVIRONMENT_FORBIDDEN = re.compile(r"[\n\r\t\x0c/]")
_RELEASE_FORBIDDEN = re.compile(r"[\n\r\t\x0c/\\]")
_RELEASE_RESERVED = frozenset({".", "..", "latest"})

# raven-era SDKs name interfaces by their class path.
_LEGACY_NAMES = {
    "exception": "sentry.interfaces.Exception",
    "logentry": "sentry.interfaces.Message",
    "request": "sentry.interfaces.Http",
    "user": "sentry.interfaces.User",
    "stacktrace": "sentry.interfaces.Stacktrace",
}


class InvalidEvent(ValueError):
    """The payload cannot be stored at all; the message names the offending field."""


def normalize_event(
    data: Any,
    *,
    received_at: float,
    client_ip: str | None = None,
    event_type: str = "event",
    trim_vars: iface.TrimVars = trim,
) -> dict[str, Any]:
    """Return a new, bounded event in canonical shape; raises only :class:`InvalidEvent`.

    ``data`` is not modified, but free-form parts of it that are within bounds (frame variables,
    extra, contexts…) are taken over rather than copied: the caller gives ``data`` up.

    ``event_type`` comes from the envelope item type and decides between event and transaction.
    ``trim_vars`` trims frame variables and breadcrumb data, most of an event's size: scrubbing
    passes one that scrubs them in the same walk (see :meth:`EventScrubber.trim_and_scrub`).

    >>> event = normalize_event({"message": "hi", "level": "warn"}, received_at=1700000000.0)
    >>> event["level"], event["logentry"]["formatted"], event["type"]
    ('warning', 'hi', 'default')
    """
    if type(data) is not dict:
        raise InvalidEvent(f"event: payload must be a JSON object, not {type(data).__name__}")
    errors = EventErrors()
    is_transaction = event_type == "transaction"
    get = data.get
    if any(legacy in data for legacy in _LEGACY_NAMES.values()):
        data = {**{key: data[legacy] for key, legacy in _LEGACY_NAMES.items() if legacy in data}, **data}
        get = data.get

    timestamp, drift = _event_time(get("timestamp"), received_at, errors)
    exception = iface.exception(get("exception"), errors, trim_vars)
    event: dict[str, Any] = {
        "event_id": _event_id(get("event_id"), errors),
        "type": "transaction" if is_transaction else ("error" if exception["values"] else "default"),
        "timestamp": timestamp,
        "received": received_at,
        "level": _level(get("level"), "info" if is_transaction else "error", errors),
        "platform": _platform(get("platform"), errors),
        "environment": _environment(get("environment"), errors),
    }
    _copy_strings(event, data)
    release = _release(get("release"), errors)
    if release:
        event["release"] = release
    for key, value in (
        ("modules", _modules(get("modules"))),
        ("sdk", _sdk(get("sdk"))),
        ("user", iface.user(get("user"), errors, client_ip)),
        ("request", iface.request(get("request"), errors, client_ip)),
        ("logentry", _logentry(get("logentry"), get("message"), errors)),
        ("threads", iface.threads(get("threads"), errors, trim_vars)),
        ("stacktrace", iface.stacktrace(get("stacktrace"), trim_vars)),
        ("fingerprint", _fingerprint(get("fingerprint"), errors)),
    ):
        if value:
            event[key] = value
    event["tags"] = _tags(get("tags"), errors)
    event["contexts"] = iface.contexts(get("contexts"), errors)
    event["extra"] = iface.trim_dict(get("extra"), errors, "extra") or {}
    event["breadcrumbs"] = iface.breadcrumbs(get("breadcrumbs"), errors, timestamp, trim_vars)
    event["exception"] = exception
    if is_transaction:
        _add_transaction_parts(event, data, drift, errors)
    event["errors"] = errors.items
    return event


def _event_id(value: Any, errors: EventErrors) -> str:
    valid = iface.trace_id(value)
    if valid is None:
        if value is not None:
            errors.add("invalid_data", "event_id", value)
        return uuid.uuid4().hex
    return valid


def _event_time(value: Any, received_at: float, errors: EventErrors) -> tuple[float, float]:
    """The event time and the correction applied to it, so related times can move along."""
    sent = iface.timestamp(value)
    if sent is None:
        if value is not None:
            errors.add("invalid_data", "timestamp", value)
        return received_at, 0.0
    if sent > received_at + MAX_CLOCK_DRIFT:
        errors.add("clock_drift", "timestamp", value)
        return received_at, received_at - sent
    return sent, 0.0


def _level(value: Any, default: str, errors: EventErrors) -> str:
    result = iface.level(value, "")
    if not result:
        if value is not None:
            errors.add("invalid_data", "level", value)
        return default
    return result


def _platform(value: Any, errors: EventErrors) -> str:
    if type(value) is str:
        lowered = value.strip().lower()
        if _PLATFORM.fullmatch(lowered):
            return lowered
    if value is not None:
        errors.add("invalid_data", "platform", value)
    return "other"


def _environment(value: Any, errors: EventErrors) -> str:
    text = string(value, 1024)
    if text is not None:
        text = text.strip()
        if text and len(text) <= 64 and not _ENVIRONMENT_FORBIDDEN.search(text):
            return text
    if value is not None:
        errors.add("invalid_data", "environment", value)
    return "production"


def _release(value: Any, errors: EventErrors) -> str | None:
    """Sentry's release rules: a cut or cleaned release would name a release that never existed."""
    text = string(value, 1024)
    if text is not None:
        text = text.strip()
        if (
            text
            and len(text) <= 200
            and text not in _RELEASE_RESERVED
            and not _RELEASE_FORBIDDEN.search(text)
        ):
            return text
    if value is not None:
        errors.add("invalid_data", "release", value)
    return None


_SHORT_STRINGS = (
    ("logger", 64),
    ("dist", 64),
    ("server_name", 256),
    ("transaction", 200),
    ("culprit", 200),
)


def _copy_strings(event: dict[str, Any], data: dict[str, Any]) -> None:
    for key, chars in _SHORT_STRINGS:
        value = data.get(key)
        if value is not None:
            text = string(value, chars)
            if text is not None and (text := text.strip()):
                event[key] = text


def _modules(value: Any) -> dict[str, str] | None:
    if type(value) is not dict:
        return None
    return {
        clip(name, 256): version
        for name, raw in islice(value.items(), MAX_MODULES)
        if type(name) is str and (version := iface.short_string(raw, 256)) is not None
    }


def _sdk(value: Any) -> dict[str, Any] | None:
    if type(value) is not dict:
        return None
    sdk: dict[str, Any] = {}
    for key in ("name", "version"):
        text = string(value.get(key), 256)
        if text:
            sdk[key] = text
    integrations = value.get("integrations")
    if type(integrations) is list:
        sdk["integrations"] = [clip(i, 128) for i in integrations[:MAX_ITEMS] if type(i) is str]
    return sdk if "name" in sdk or "version" in sdk else None


def _tags(value: Any, errors: EventErrors) -> list[list[str]]:
    """``[[key, value], ...]``; a repeated key keeps its first position and its last value."""
    if type(value) is dict:
        pairs: Any = islice(value.items(), MAX_TAG_INPUTS)
    elif type(value) is list:
        pairs = (p for p in value[:MAX_TAG_INPUTS] if type(p) is list and len(p) == 2)
    else:
        if value is not None:
            errors.add("invalid_data", "tags", value)
        return []
    tags: dict[str, str] = {}
    for key, raw in pairs:
        if raw is None:
            continue
        if type(key) is not str or not (key := key.strip()) or len(key) > MAX_TAG_CHARS:
            errors.add("invalid_data", "tags", key)
            continue
        text = string(raw, MAX_TAG_CHARS)
        if text is None:
            errors.add("invalid_data", f"tags.{clip(key, 64)}", raw)
        elif text and (key in tags or len(tags) < MAX_ITEMS):
            tags[key] = text
    return [[key, text] for key, text in tags.items()]


def _fingerprint(value: Any, errors: EventErrors) -> list[str] | None:
    if type(value) is not list:
        if value is not None:
            errors.add("invalid_data", "fingerprint", value)
        return None
    parts = [text for item in value[:MAX_ITEMS] if (text := string(item, 1024)) is not None]
    return parts or None


def _add_transaction_parts(
    event: dict[str, Any], data: dict[str, Any], drift: float, errors: EventErrors
) -> None:
    raw_start = data.get("start_timestamp")
    start = iface.timestamp(raw_start)
    if start is None:
        kind = "missing_attribute" if raw_start is None else "invalid_data"
        errors.add(kind, "start_timestamp", raw_start)
        start = event["timestamp"]
    else:
        start += drift
    if start > event["timestamp"]:
        errors.add("invalid_data", "start_timestamp", raw_start)
        start = event["timestamp"]
    event["start_timestamp"] = start
    trace = event["contexts"].get("trace") or {}
    spans = iface.spans(data.get("spans"), errors, trace.get("trace_id"))
    if drift:
        # The SDK clock was off for the spans too: move them with the transaction.
        for span in spans:
            span["start_timestamp"] += drift
            span["timestamp"] += drift
    event["spans"] = spans
    measurements = iface.measurements(data.get("measurements"), errors)
    if measurements:
        event["measurements"] = measurements
    for key in ("transaction_info", "breakdowns"):
        extra = iface.trim_dict(data.get(key), errors, key)
        if extra:
            event[key] = extra


# --- log messages -------------------------------------------------------------------------------

# Only plain conversions are supported: widths and attribute lookups in a client-supplied format
# ("%999999999d", "{0.__class__}") would let a payload burn memory or peek at objects.
_PERCENT = re.compile(
    r"%(?:\((?P<name>[^()]{0,64})\))?[-#0 +]*\d{0,3}(?:\.(?P<precision>\d{1,2}))?(?P<conv>[sdirf%])"
)
_BRACE = re.compile(r"\{\{|\}\}|\{(?P<field>\d{0,3}|[A-Za-z_]\w{0,63})(?:![rsa])?(?::[^{}]{0,32})?\}")


def _logentry(logentry: Any, message: Any, errors: EventErrors) -> dict[str, Any] | None:
    """``{"message", "params", "formatted"}`` from ``logentry`` or the top-level ``message``."""
    source = logentry if logentry is not None else message
    if type(source) is str:
        source = {"message": source}
    if type(source) is not dict:
        if source is not None:
            errors.add("invalid_data", "logentry", source)
        return None
    template = string(source.get("message"))
    formatted = string(source.get("formatted"))
    params = source.get("params")
    if template is None and formatted is None:
        return None
    if formatted is None:
        formatted = format_message(template or "", params)
    entry: dict[str, Any] = {"message": template if template is not None else formatted}
    if type(params) is list or type(params) is dict:
        entry["params"] = trim(params)
    entry["formatted"] = formatted
    return entry


def format_message(template: str, params: Any) -> str:
    """Fill ``%s``/``%(name)s`` or ``{}``/``{0}``/``{name}`` placeholders; on a mismatch keep ``template``.

    >>> format_message("Order %s failed for %s", [1234, "bob"])
    'Order 1234 failed for bob'
    """
    if type(params) is not list and type(params) is not dict:
        return template
    percent = _PERCENT.search(template) is not None
    pattern = _PERCENT if percent else _BRACE
    parts: list[str] = []
    size = 0
    start = 0
    position = 0
    try:
        for match in pattern.finditer(template):
            token = match.group(0)
            if token in ("%%", "{{", "}}"):
                text = token[0]
            else:
                name = match.group("name" if percent else "field")
                if name:
                    value = _named_param(params, name)
                elif type(params) is list:
                    value = params[position]
                    position += 1
                elif position == 0:  # like Python: a lone mapping is the argument of "%s"
                    value = params
                    position += 1
                else:
                    raise IndexError(position)
                conversion = match.group("conv") if percent else "s"
                text = _param_text(value, conversion, match.group("precision") if percent else None)
            parts += (template[start : match.start()], text)
            start = match.end()
            # "%(big)s" a thousand times would build a huge string only to clip it: stop early.
            size += len(parts[-2]) + len(text)
            if size > MAX_STRING_BYTES:
                return clip("".join(parts))
    except (LookupError, ValueError, TypeError, OverflowError):
        return template
    parts.append(template[start:])
    return clip("".join(parts))


def _named_param(params: Any, name: str) -> Any:
    if type(params) is dict:
        return params[name]
    if name.isdigit():
        return params[int(name)]
    raise KeyError(name)


def _param_text(value: Any, conversion: str, precision: str | None) -> str:
    if conversion in "di":
        if type(value) is str:
            return str(int(value.strip()[:32]))
        if type(value) is bool or not isinstance(value, int | float):
            raise TypeError(conversion)
        return str(int(value))
    if conversion == "f":
        number = float(value[:64] if type(value) is str else value)
        return f"{number:.{6 if precision is None else int(precision)}f}"
    if type(value) is str:
        return clip(repr(value) if conversion == "r" else value)
    if value is None or type(value) is bool or type(value) is int or type(value) is float:
        return str(value)
    return orjson.dumps(trim(value)).decode()
