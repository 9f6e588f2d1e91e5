"""Alertmanager label matchers (`name=value`, `!=`, `=~`, `!~`) and durations (`30s`, `5m`, `1h30m`).

Regular expressions are fully anchored and a missing label matches as the empty string, as in
Alertmanager, so `severity!~"critical|high"` also matches an alert without a severity.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

OPERATORS = ("=~", "!~", "!=", "=")
_MATCHER = re.compile(r'^\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*(.*?)\s*$', re.DOTALL)
_DURATION = re.compile(r"^(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?(?:(\d+)ms)?$")
_UNITS = (7 * 86400, 86400, 3600, 60, 1, 0.001)


@dataclass(frozen=True)
class Matcher:
    name: str
    operator: str
    value: str

    def __post_init__(self) -> None:
        if self.operator not in OPERATORS:
            raise ValueError(f"unknown matcher operator {self.operator!r}")
        if self.is_regex:
            try:
                object.__setattr__(self, "_pattern", re.compile(f"^(?:{self.value})$", re.DOTALL))
            except re.error as exc:
                raise ValueError(f"bad regular expression {self.value!r}: {exc}") from None

    @property
    def is_regex(self) -> bool:
        return self.operator in ("=~", "!~")

    @property
    def is_equal(self) -> bool:
        return self.operator in ("=", "=~")

    def matches(self, labels: Mapping[str, str]) -> bool:
        value = labels.get(self.name, "")
        pattern: re.Pattern[str] | None = getattr(self, "_pattern", None)
        found = pattern.match(value) is not None if pattern is not None else value == self.value
        return found == self.is_equal

    def __str__(self) -> str:
        return f"{self.name}{self.operator}{_quote(self.value)}"

    def to_api(self) -> dict[str, Any]:
        """The Alertmanager API v2 form."""
        return {"name": self.name, "value": self.value, "isRegex": self.is_regex, "isEqual": self.is_equal}

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> Matcher:
        is_regex, is_equal = bool(data.get("isRegex")), data.get("isEqual", True) is not False
        operator = {(False, True): "=", (False, False): "!=", (True, True): "=~", (True, False): "!~"}
        return cls(str(data["name"]), operator[(is_regex, is_equal)], str(data["value"]))


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _unquote(raw: str) -> str:
    if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "\"'":
        body = raw[1:-1]
        return re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), body)
    return raw


def parse_matcher(text: str) -> Matcher:
    """One matcher in Alertmanager's syntax.

    >>> parse_matcher('severity=~"critical|high"').matches({"severity": "high"})
    True
    """
    found = _MATCHER.match(text)
    if found is None:
        raise ValueError(f"not a matcher: {text!r} (expected name=value, name!=value, name=~regex or name!~regex)")
    name, operator, raw = found.groups()
    return Matcher(name, operator, _unquote(raw))


def parse_matchers(items: list[str] | str) -> list[Matcher]:
    """A list of matchers, or one string `{a="1", b=~"x.*"}` as amtool and the v2 API filter accept."""
    if isinstance(items, str):
        body = items.strip()
        if body.startswith("{") and body.endswith("}"):
            body = body[1:-1]
        items = [part for part in _split_top_level(body) if part.strip()]
    return [parse_matcher(item) for item in items]


def _split_top_level(body: str) -> list[str]:
    parts, current, quote = [], "", ""
    for char in body:
        if quote:
            current += char
            if char == quote and not current.endswith("\\" + quote):
                quote = ""
        elif char in "\"'":
            quote = char
            current += char
        elif char == ",":
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    return parts


def matches_all(matchers: list[Matcher], labels: Mapping[str, str]) -> bool:
    return all(m.matches(labels) for m in matchers)


def parse_duration(text: str | float | int) -> float:
    """Seconds in a Prometheus duration.

    >>> parse_duration("1h30m"), parse_duration("30s"), parse_duration(0)
    (5400.0, 30.0, 0.0)
    """
    if isinstance(text, int | float) and not isinstance(text, bool):
        if text < 0:
            raise ValueError("a duration may not be negative")
        return float(text)
    found = _DURATION.match(str(text).strip())
    if found is None or not str(text).strip():
        raise ValueError(f"not a duration: {text!r} (use e.g. 30s, 5m, 4h, 1d, 1h30m)")
    return float(sum(int(part) * unit for part, unit in zip(found.groups(), _UNITS, strict=True) if part))


def format_duration(seconds: float) -> str:
    """>>> format_duration(5400)
    '1h30m'
    """
    if seconds == 0:
        return "0s"
    out, rest = "", int(seconds)
    for unit, suffix in ((86400, "d"), (3600, "h"), (60, "m"), (1, "s")):
        if rest >= unit:
            out += f"{rest // unit}{suffix}"
            rest %= unit
    return out
