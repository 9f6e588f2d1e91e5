"""Normalisers for the structured parts of a Sentry event (frames, exceptions, breadcrumbs, ...).

Every function accepts any JSON value and returns a bounded, canonical value or ``None``; none of
them raises. Problems are written to an :class:`EventErrors` list, like Sentry's event errors.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Callable
from datetime import UTC, datetime
from functools import lru_cache
from itertools import islice
from typing import Any

import orjson

MAX_STRING_BYTES = 16 * 1024
MAX_DEPTH = 10
MAX_ITEMS = 100
MAX_FRAMES = 250
MAX_EXCEPTIONS = 50
MAX_THREADS = 50
MAX_BREADCRUMBS = 100
MAX_SPANS = 1000
MAX_ERRORS = 20
MAX_CONTEXT_LINES = 10
NAME_CHARS = 1024  # module, function, filename: long enough for Java generics and webpack paths

LEVELS = frozenset({"fatal", "error", "warning", "info", "debug"})
LEVEL_ALIASES = {"warn": "warning", "critical": "fatal", "log": "info"}

_HEX32 = re.compile(r"[0-9a-f]{32}")
_HEX16 = re.compile(r"[0-9a-f]{16}")
_TOO_DEEP = "[...]"
# The int range orjson can encode (scalar() turns others into text).
_INT_MIN = -(2**63)
_INT_END = 2**64
_isfinite = math.isfinite
_INT63 = 2**63


class EventErrors:
    """Bounded list of ``{"type", "name", "value"}`` problems found while normalising."""

    __slots__ = ("items",)

    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []

    def add(self, kind: str, name: str, value: Any = None) -> None:
        if len(self.items) < MAX_ERRORS:
            self.items.append({"type": kind, "name": name, "value": _preview(value)})


def _preview(value: Any) -> Any:
    """A small stand-in for an offending value, so an error entry can't carry a 1 MB payload."""
    if type(value) is str:
        return clip(value, 200)
    if type(value) is dict:
        return f"<object with {len(value)} keys>"
    if type(value) is list:
        return f"<array of {len(value)} items>"
    return scalar(value)


def clip(text: str, chars: int = MAX_STRING_BYTES) -> str:
    """Cut ``text`` to ``chars`` characters and 16 KiB of UTF-8, marking the cut with "…".

    >>> clip("abcdef", 4)
    'abc…'
    """
    if len(text) > chars:
        text = text[: chars - 1] + "…"
    if text.isascii():  # O(1) in CPython: ASCII length is the byte length
        return text
    try:
        raw = text.encode()
    except UnicodeEncodeError:
        # Lone surrogates (stdlib json lets "\ud800" through) would make every later orjson.dumps fail.
        raw = text.encode("utf-8", "replace")
        text = raw.decode()
    if len(raw) <= MAX_STRING_BYTES:
        return text
    return raw[: MAX_STRING_BYTES - 3].decode("utf-8", "ignore") + "…"


def scalar(value: Any) -> Any:
    """Return a JSON scalar that orjson can always encode (huge ints and NaN are not)."""
    t = type(value)
    if t is int:
        if _INT_MIN <= value < _INT_END:
            return value
        return _int_text(value)
    if t is float:
        return value if math.isfinite(value) else None
    if t is str:
        return clip(value)
    if value is None or t is bool:
        return value
    return None


def _int_text(value: int) -> str:
    try:
        return clip(str(value), 64)
    except ValueError:  # more digits than sys.get_int_max_str_digits()
        return "<huge int>"


def string(value: Any, chars: int = MAX_STRING_BYTES) -> str | None:
    """Coerce a scalar to a clipped string; containers and null give ``None``.

    >>> string(42), string(True), string([1])
    ('42', 'true', None)
    """
    t = type(value)
    if t is str:
        return clip(value, chars)
    if t is bool:
        return "true" if value else "false"
    if t is int:
        return _int_text(value) if chars >= 64 else clip(_int_text(value), chars)
    if t is float:
        return clip(repr(value), chars) if math.isfinite(value) else None
    return None


def integer(value: Any) -> int | None:
    """A non-negative integer (line numbers, ids); integral floats and digit strings count."""
    t = type(value)
    if t is int:
        return value if 0 <= value < 2**63 else None
    if t is float and value.is_integer() and 0 <= value < 2**63:
        return int(value)
    if t is str and 0 < len(value) < 19 and value.isdigit() and value.isascii():
        return int(value)
    return None


def trim(value: Any, depth: int = 0) -> Any:
    """Bound free-form data: 10 levels, 100 items per container, clipped strings.

    Data already within bounds — nearly all of it — is returned as it is, not copied: checking costs
    less than half of rebuilding every dict and list (frame variables are most of an event).

    >>> trim({"a": [1, "x" * 3]})
    {'a': [1, 'xxx']}
    >>> small = {"a": [1, "x"]}; trim(small) is small
    True
    """
    t = type(value)
    if (t is dict or t is list) and within_bounds(value, depth):
        return value
    return _trimmed(value, depth)


def within_bounds(value: dict[Any, Any] | list[Any], depth: int) -> bool:
    """Whether `_trimmed` would return an equal copy of ``value`` (a dict or list parsed from JSON)."""
    if depth >= MAX_DEPTH or len(value) > MAX_ITEMS:
        return False
    if type(value) is dict:
        for key in value:
            if type(key) is not str or len(key) > 256 or not key.isascii():
                return False
        items: Any = value.values()
    else:
        items = value
    for item in items:
        kind = type(item)
        if kind is str:
            if len(item) > MAX_STRING_BYTES or not item.isascii():
                return False
        elif kind is int:
            if not _INT_MIN <= item < _INT_END:
                return False
        elif kind is float:
            if not _isfinite(item):
                return False
        elif kind is dict or kind is list:
            if not within_bounds(item, depth + 1):
                return False
        elif kind is not bool and item is not None:
            return False
    return True


def _trimmed(value: Any, depth: int) -> Any:
    """`trim` by copying (the input breaks a bound somewhere)."""
    t = type(value)
    if t is str:
        return value if value.isascii() and len(value) <= MAX_STRING_BYTES else clip(value)
    if t is dict:
        if depth >= MAX_DEPTH:
            return _TOO_DEEP
        out: dict[str, Any] = {}
        for key, item in islice(value.items(), MAX_ITEMS):
            if type(key) is not str or len(key) > 256 or not key.isascii():
                key = string(key, 256)
                if key is None:
                    continue
            # Scalars are most leaves (sentry-python sends vars as reprs, numbers and flags): keep
            # the ones already in bounds inline, as a recursive call per leaf dominated the cost.
            kind = type(item)
            if kind is str:
                out[key] = item if item.isascii() and len(item) <= MAX_STRING_BYTES else clip(item)
            elif (
                (kind is int and _INT_MIN <= item < _INT_END)
                or (kind is float and _isfinite(item))
                or kind is bool
                or item is None
            ):
                out[key] = item
            else:
                out[key] = _trimmed(item, depth + 1)
        return out
    if t is list or t is tuple:
        if depth >= MAX_DEPTH:
            return _TOO_DEEP
        return [
            item
            if (type(item) is str and item.isascii() and len(item) <= MAX_STRING_BYTES)
            or (type(item) is int and _INT_MIN <= item < _INT_END)
            or (type(item) is float and _isfinite(item))
            or item is None
            or type(item) is bool
            else _trimmed(item, depth + 1)
            for item in value[:MAX_ITEMS]
        ]
    if value is None or t is bool:
        return value
    if t is int or t is float:
        return scalar(value)
    return clip(f"<{t.__name__}>")


def trim_dict(value: Any, errors: EventErrors, name: str) -> dict[str, Any] | None:
    if type(value) is dict:
        return trim(value)
    if value is not None:
        errors.add("invalid_data", name, value)
    return None


def level(value: Any, default: str) -> str:
    """Canonical Sentry level; unknown or missing values give ``default``."""
    if type(value) is str:
        lowered = value.strip().lower()
        if lowered in LEVELS:
            return lowered
        alias = LEVEL_ALIASES.get(lowered)
        if alias is not None:
            return alias
    return default


def timestamp(value: Any) -> float | None:
    """Epoch seconds from a number or an RFC 3339 string (naive times are UTC); else ``None``.

    >>> timestamp("2024-01-02T03:04:05.5Z")
    1704164645.5
    """
    t = type(value)
    if t is float or t is int:
        if 0 <= value <= 1e11:  # 1e11 s is year 5138: anything larger is milliseconds or junk
            return float(value)
        return None
    if t is not str or not 0 < len(value) <= 64:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        try:  # RFC 3339 allows a lowercase "t" and "z", which fromisoformat rejects
            parsed = datetime.fromisoformat(value.upper())
        except ValueError:
            try:
                return timestamp(float(value))
            except ValueError:
                return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:
        seconds = parsed.timestamp()
    except (OverflowError, ValueError, OSError):
        return None
    return seconds if seconds >= 0 else None


def hex_id(value: Any, pattern: re.Pattern[str]) -> str | None:
    """Lowercase hex id (trace, span, event ids); UUID dashes are accepted."""
    if type(value) is not str or len(value) > 40:
        return None
    value = value.replace("-", "").lower()
    return value if pattern.fullmatch(value) else None


def trace_id(value: Any) -> str | None:
    return hex_id(value, _HEX32)


def span_id(value: Any) -> str | None:
    return hex_id(value, _HEX16)


# --- stack traces -----------------------------------------------------------------------------

_FRAME_NAMES = ("filename", "abs_path", "module", "function", "package")


def short_string(value: Any, chars: int) -> str | None:
    """``string(value, chars)`` with the common case (a short ASCII str) kept inline by callers."""
    if type(value) is str and value.isascii() and len(value) <= chars:
        return value
    return string(value, chars)


def _lines(value: Any, keep_last: bool) -> list[str] | None:
    if type(value) is not list:
        return None
    # Usually all lines fit: then the list is taken over, like free-form data within bounds.
    if len(value) <= MAX_CONTEXT_LINES:
        window = value
    else:
        window = value[-MAX_CONTEXT_LINES:] if keep_last else value[:MAX_CONTEXT_LINES]
    # Lines are almost always short ASCII strings: then the window is the answer, and a plain
    # loop checks that faster than a comprehension rebuilds it.
    for line in window:
        if type(line) is not str or not line.isascii() or len(line) > 1024:
            break
    else:
        return window
    return [
        line if type(line) is str and line.isascii() and len(line) <= 1024 else (string(line, 1024) or "")
        for line in window
    ]


# How frame variables and breadcrumb data are trimmed: scrubbing passes one that also scrubs them.
TrimVars = Callable[[dict[str, Any]], Any]


def frame(data: Any, trim_vars: TrimVars = trim) -> dict[str, Any] | None:
    """One stack frame; ``in_app`` is always present (``True``, ``False`` or ``None``)."""
    if type(data) is not dict:
        return None
    get = data.get
    out: dict[str, Any] = {}
    for key in _FRAME_NAMES:
        value = get(key)
        if value is None:
            continue
        if type(value) is str and value.isascii() and 0 < len(value) <= NAME_CHARS:
            out[key] = value
        elif text := string(value, NAME_CHARS):
            out[key] = text
    platform = get("platform")
    if platform is not None and type(platform) is str and len(platform) <= 64:
        out["platform"] = platform.lower()
    # The int and short-ASCII checks inline what integer() and short_string() would accept: those
    # calls are most of a frame's cost and every event carries dozens of frames.
    lineno = get("lineno")
    if (type(lineno) is int and 0 <= lineno < _INT63) or (
        lineno is not None and (lineno := integer(lineno)) is not None
    ):
        out["lineno"] = lineno
    colno = get("colno")
    if colno is not None and (colno := integer(colno)) is not None:
        out["colno"] = colno
    context_line = get("context_line")
    if type(context_line) is str:
        out["context_line"] = (
            context_line if context_line.isascii() and len(context_line) <= 1024 else short_string(context_line, 1024)
        )
    pre = get("pre_context")
    if pre and (pre := _lines(pre, keep_last=True)):
        out["pre_context"] = pre
    post = get("post_context")
    if post and (post := _lines(post, keep_last=False)):
        out["post_context"] = post
    in_app = get("in_app")
    out["in_app"] = in_app if in_app is True or in_app is False else None
    variables = get("vars")
    if type(variables) is dict:
        out["vars"] = trim_vars(variables)
    elif type(variables) is list:  # some SDKs send positional arguments
        out["vars"] = trim_vars({str(i): v for i, v in enumerate(variables[:MAX_ITEMS])})
    return out if len(out) > 1 else None


def stacktrace(data: Any, trim_vars: TrimVars = trim) -> dict[str, Any] | None:
    """``{"frames": [...]}`` oldest call first; over 250 frames the middle is dropped, like Sentry."""
    if type(data) is not dict:
        return None
    raw = data.get("frames")
    if type(raw) is not list:
        return None
    total = len(raw)
    half = MAX_FRAMES // 2
    if total > MAX_FRAMES:
        raw = raw[:half] + raw[-half:]
    frames = [f for item in raw if (f := frame(item, trim_vars)) is not None]
    if not frames:
        return None
    out: dict[str, Any] = {"frames": frames}
    if total > MAX_FRAMES:
        out["frames_omitted"] = [half, total - half]
    return out


# --- exceptions and threads ---------------------------------------------------------------------


def values_of(data: Any, errors: EventErrors, name: str, limit: int, single: bool = False) -> list[Any]:
    """The item list of an interface sent as ``{"values": [...]}`` or a bare list.

    With ``single``, an object without ``values`` is one item (old SDKs send one exception so).
    """
    if type(data) is dict and ("values" in data or single):
        data = data.get("values", [data])
    if type(data) is not list:
        if data is not None:
            errors.add("invalid_data", name, data)
        return []
    if len(data) > limit:
        errors.add("value_too_long", name, data)
        # The last value is the one raised (and the newest crumb): keep the end.
        data = data[-limit:]
    return data


def _mechanism(data: Any) -> dict[str, Any] | None:
    if type(data) is not dict:
        return None
    out: dict[str, Any] = {"type": string(data.get("type"), 128) or "generic"}
    for key in ("handled", "synthetic", "is_exception_group"):
        flag = data.get(key)
        if type(flag) is bool:
            out[key] = flag
    for key in ("exception_id", "parent_id"):
        number = integer(data.get(key))
        if number is not None:
            out[key] = number
    for key in ("source", "description"):
        text = string(data.get(key), 1024)
        if text:
            out[key] = text
    return out


def _exception_value(value: Any) -> str | None:
    if value is None:
        return None
    if type(value) is dict or type(value) is list:
        return clip(orjson.dumps(trim(value)).decode())
    return string(value)


def exception(data: Any, errors: EventErrors, trim_vars: TrimVars = trim) -> dict[str, list[dict[str, Any]]]:
    """``{"values": [...]}`` in the SDK's order (the last value is the exception raised)."""
    out = []
    for item in values_of(data, errors, "exception", MAX_EXCEPTIONS, single=True):
        if type(item) is not dict:
            errors.add("invalid_data", "exception.values", item)
            continue
        value: dict[str, Any] = {
            "type": string(item.get("type"), NAME_CHARS) or None,
            "value": _exception_value(item.get("value")),
        }
        module = string(item.get("module"), NAME_CHARS)
        if module:
            value["module"] = module
        mechanism = _mechanism(item.get("mechanism"))
        if mechanism is not None:
            value["mechanism"] = mechanism
        trace = stacktrace(item.get("stacktrace"), trim_vars)
        if trace is not None:
            value["stacktrace"] = trace
        if value["type"] is None and not value["value"] and trace is None:
            errors.add("invalid_data", "exception.values", item)
            continue
        out.append(value)
    return {"values": out}


def threads(data: Any, errors: EventErrors, trim_vars: TrimVars = trim) -> dict[str, list[dict[str, Any]]] | None:
    out = []
    for item in values_of(data, errors, "threads", MAX_THREADS):
        if type(item) is not dict:
            continue
        thread: dict[str, Any] = {}
        ident = item.get("id")
        if type(ident) is int and 0 <= ident < 2**63:
            thread["id"] = ident
        elif type(ident) is str and ident:
            thread["id"] = clip(ident, 128)
        name = string(item.get("name"), 256)
        if name:
            thread["name"] = name
        for key in ("crashed", "current", "main"):
            if type(item.get(key)) is bool:
                thread[key] = item[key]
        trace = stacktrace(item.get("stacktrace"), trim_vars)
        if trace is not None:
            thread["stacktrace"] = trace
        if thread:
            out.append(thread)
    return {"values": out} if out else None


# --- breadcrumbs, request, user, contexts -------------------------------------------------------


def breadcrumbs(
    data: Any, errors: EventErrors, default_time: float, trim_data: TrimVars = trim
) -> dict[str, list[dict[str, Any]]]:
    """``{"values": [...]}`` holding the newest 100 crumbs, oldest first."""
    out = []
    for item in values_of(data, errors, "breadcrumbs", MAX_BREADCRUMBS):
        if type(item) is not dict:
            continue
        get = item.get
        # Inline fast paths (a float time, a short ASCII type) give what timestamp() and
        # short_string() would: those calls were most of a crumb's cost.
        when = get("timestamp")
        if type(when) is not float or not 0 <= when <= 1e11:
            when = timestamp(when)
        crumb_type = get("type")
        if type(crumb_type) is not str or not crumb_type.isascii() or len(crumb_type) > 64:
            crumb_type = short_string(crumb_type, 64)
        crumb_level = get("level")
        crumb: dict[str, Any] = {
            "timestamp": default_time if when is None else when,
            "type": crumb_type or "default",
            "level": crumb_level if type(crumb_level) is str and crumb_level in LEVELS else level(crumb_level, "info"),
        }
        category = get("category")
        if (type(category) is str and category.isascii() and 0 < len(category) <= 256) or (
            category is not None and (category := short_string(category, 256))
        ):
            crumb["category"] = category
        message = get("message")
        if (type(message) is str and message.isascii() and 0 < len(message) <= MAX_STRING_BYTES) or (
            message is not None and (message := short_string(message, MAX_STRING_BYTES))
        ):
            crumb["message"] = message
        crumb_data = get("data")
        if type(crumb_data) is dict:
            crumb["data"] = trim_data(crumb_data)
        out.append(crumb)
    return {"values": out}


@lru_cache(maxsize=1024)
def _header_name(name: str) -> str:
    return "-".join(part.capitalize() for part in name.strip().split("-"))


def _pairs(data: Any) -> list[tuple[Any, Any]]:
    if type(data) is dict:
        return list(islice(data.items(), MAX_ITEMS))
    if type(data) is list:
        return [(pair[0], pair[1]) for pair in data[:MAX_ITEMS] if type(pair) is list and len(pair) == 2]
    return []


def headers(data: Any) -> list[list[str]]:
    """``[[Title-Case-Name, value], ...]`` from a mapping or a list of pairs."""
    out = []
    for name, value in _pairs(data):
        if type(name) is not str or not name or len(name) > 256:
            continue
        text = string(value)
        if text is not None:
            out.append([_header_name(name), text])
    return out


def _query_string(value: Any) -> str | None:
    if type(value) is str:
        return clip(value.removeprefix("?")) or None
    pairs = [(string(k, 1024), string(v)) for k, v in _pairs(value)]
    return "&".join(f"{k}={v or ''}" for k, v in pairs if k) or None


def request(data: Any, errors: EventErrors, client_ip: str | None) -> dict[str, Any] | None:
    if type(data) is not dict:
        if data is not None:
            errors.add("invalid_data", "request", data)
        return None
    out: dict[str, Any] = {}
    url = string(data.get("url"))
    query = _query_string(data.get("query_string"))
    fragment = string(data.get("fragment"))
    if url:
        # SDKs that put the query or fragment in the URL get them split out, as Sentry does.
        url, has_fragment, url_fragment = url.partition("#")
        url, has_query, url_query = url.partition("?")
        query = query or (url_query if has_query else None) or None
        fragment = fragment or (url_fragment if has_fragment else None) or None
        out["url"] = url
    method = string(data.get("method"), 32)
    if method:
        out["method"] = method.strip().upper()
    if query:
        out["query_string"] = query
    if fragment:
        out["fragment"] = fragment
    for key in ("data", "cookies"):
        if data.get(key) is not None:
            out[key] = trim(data[key])
    if data.get("headers") is not None:
        out["headers"] = headers(data["headers"])
    env = data.get("env")
    if type(env) is dict:
        env = trim(env)
        if env.get("REMOTE_ADDR") == "{{auto}}":
            if client_ip:
                env["REMOTE_ADDR"] = client_ip
            else:
                del env["REMOTE_ADDR"]
        out["env"] = env
    return out or None


_USER_FIELDS = ("id", "username", "email", "name", "segment")
_GEO_FIELDS = ("country_code", "city", "subdivision", "region")
_AUTO_IP = frozenset({"{{auto}}", "{{ auto }}"})
_KNOWN_USER_KEYS = frozenset({*_USER_FIELDS, "ip_address", "geo", "data"})
# ASCII digits, no leading zeros (ipaddress refuses those); octets over 255 are checked apart.
_OCTET = r"(0|[1-9][0-9]{0,2})"
_CANONICAL_IPV4 = re.compile(rf"{_OCTET}\.{_OCTET}\.{_OCTET}\.{_OCTET}")


def _ip(value: Any, client_ip: str | None, errors: EventErrors) -> str | None:
    if type(value) is not str:
        if value is not None:
            errors.add("invalid_data", "user.ip_address", value)
        return None
    if value in _AUTO_IP:
        return client_ip
    address = value.strip()
    # A canonical dotted quad (the usual case) is what ipaddress would give back, at a tenth of the cost.
    if (dotted := _CANONICAL_IPV4.fullmatch(address)) is not None and all(
        int(octet) <= 255 for octet in dotted.groups()
    ):
        return address
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        errors.add("invalid_data", "user.ip_address", value)
        return None


def user(data: Any, errors: EventErrors, client_ip: str | None) -> dict[str, Any] | None:
    """Known user fields as strings; unknown keys move into ``data`` as Sentry does."""
    if type(data) is not dict:
        if data is not None:
            errors.add("invalid_data", "user", data)
        return None
    out: dict[str, Any] = {}
    for key in _USER_FIELDS:
        text = string(data.get(key), 512)
        if text:
            out[key] = text
    address = _ip(data.get("ip_address"), client_ip, errors)
    if address:
        out["ip_address"] = address
    geo = data.get("geo")
    if type(geo) is dict:
        geo = {key: text for key in _GEO_FIELDS if (text := string(geo.get(key), 256))}
        if geo:
            out["geo"] = geo
    extra = dict(data["data"]) if type(data.get("data")) is dict else {}
    extra.update((key, value) for key, value in islice(data.items(), MAX_ITEMS) if key not in _KNOWN_USER_KEYS)
    if extra:
        out["data"] = trim(extra)
    return out or None


def contexts(data: Any, errors: EventErrors) -> dict[str, dict[str, Any]]:
    """Dict of context dicts; the ``trace`` context gets validated ids."""
    if type(data) is not dict:
        if data is not None:
            errors.add("invalid_data", "contexts", data)
        return {}
    out = {}
    for key, value in islice(data.items(), MAX_ITEMS):
        if type(value) is dict and type(key) is str and key:
            out[clip(key, 256)] = trim(value)
    trace = out.get("trace")
    if trace is not None:
        _trace_context(trace, errors)
    return out


def _trace_context(trace: dict[str, Any], errors: EventErrors) -> None:
    for key, check in (("trace_id", trace_id), ("span_id", span_id), ("parent_span_id", span_id)):
        if key in trace:
            valid = check(trace[key])
            if valid is None:
                if trace[key] is not None:
                    errors.add("invalid_data", f"contexts.trace.{key}", trace[key])
                del trace[key]
            else:
                trace[key] = valid
    for key in ("op", "status"):
        if key in trace:
            text = string(trace[key], 128)
            if text:
                trace[key] = text.lower() if key == "status" else text
            else:
                del trace[key]


# --- transactions -------------------------------------------------------------------------------


def spans(data: Any, errors: EventErrors, default_trace_id: str | None) -> list[dict[str, Any]]:
    """Finished spans with valid ids and times; at most 1000."""
    if type(data) is not list:
        if data is not None:
            errors.add("invalid_data", "spans", data)
        return []
    if len(data) > MAX_SPANS:
        errors.add("value_too_long", "spans", data)
    out = []
    for item in data[:MAX_SPANS]:
        converted = _span(item, default_trace_id)
        if converted is None:
            errors.add("invalid_data", "spans", item)
        else:
            out.append(converted)
    return out


def _span(data: Any, default_trace_id: str | None) -> dict[str, Any] | None:
    if type(data) is not dict:
        return None
    ident = span_id(data.get("span_id"))
    start = timestamp(data.get("start_timestamp"))
    end = timestamp(data.get("timestamp"))
    if ident is None or start is None or end is None:
        return None
    out: dict[str, Any] = {
        "span_id": ident,
        "parent_span_id": span_id(data.get("parent_span_id")),
        "trace_id": trace_id(data.get("trace_id")) or default_trace_id,
        "start_timestamp": start,
        "timestamp": max(start, end),
    }
    for key, chars in (("op", 256), ("description", MAX_STRING_BYTES), ("status", 64)):
        text = string(data.get(key), chars)
        if text:
            out[key] = text
    if type(data.get("data")) is dict:
        out["data"] = trim(data["data"])
    if type(data.get("tags")) is dict:
        out["tags"] = {
            clip(key, 200): text
            for key, value in islice(data["tags"].items(), MAX_ITEMS)
            if type(key) is str and key and (text := string(value, 200)) is not None
        }
    return out


def measurements(data: Any, errors: EventErrors) -> dict[str, dict[str, Any]] | None:
    """``{name: {"value": float, "unit": str}}`` with lowercase names, as Sentry stores them."""
    if type(data) is not dict:
        if data is not None:
            errors.add("invalid_data", "measurements", data)
        return None
    out = {}
    for name, item in islice(data.items(), MAX_ITEMS):
        if type(name) is not str or not name or len(name) > 64 or type(item) is not dict:
            continue
        value = scalar(item.get("value"))
        if type(value) is not int and type(value) is not float:  # scalar() has removed NaN and huge ints
            errors.add("invalid_data", f"measurements.{name}", item.get("value"))
            continue
        measurement: dict[str, Any] = {"value": float(value)}
        unit = string(item.get("unit"), 32)
        if unit:
            measurement["unit"] = unit
        out[name.lower()] = measurement
    return out
