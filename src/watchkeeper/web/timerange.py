"""The global time range and environment filter every page reads from its query string.

`?range=24h` (1h, 24h, 7d, 14d, 30d) or `?range=custom&start=2026-11-20T08:00&end=2026-11-21T08:00` (in the
viewer's time zone), plus `?environment=production`. Links between pages carry them along, so a
filter chosen once follows the user around.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from starlette.datastructures import QueryParams

PRESETS: dict[str, int] = {"1h": 3600, "24h": 86400, "7d": 7 * 86400, "14d": 14 * 86400, "30d": 30 * 86400}
DEFAULT_RANGE = "24h"
MAX_CUSTOM_SECONDS = 366 * 86400
# Dates people type and read: 2026-11-20 08:00 in their zone, the same on every page and in every browser
# (a datetime-local input shows mm/dd/yyyy in an American browser, dd.mm.yyyy in a German one).
LOCAL_FORMAT = "%Y-%m-%d %H:%M"
LOCAL_EXAMPLE = "2026-11-20 08:00"


class TimeRangeError(ValueError):
    """A custom range that cannot be read; the message says which part."""


@dataclass(frozen=True, slots=True)
class TimeRange:
    key: str  # a preset or "custom"
    since: float
    until: float
    start_text: str = ""  # the custom bounds as typed (datetime-local), kept for the form
    end_text: str = ""

    @property
    def seconds(self) -> float:
        return self.until - self.since

    @property
    def is_custom(self) -> bool:
        return self.key == "custom"


@dataclass(frozen=True, slots=True)
class PageFilter:
    """What the shell keeps in the query string: time range and environment."""

    time_range: TimeRange
    environment: str | None

    def params(self) -> dict[str, str]:
        out = {"range": self.time_range.key}
        if self.time_range.is_custom:
            out |= {"start": self.time_range.start_text, "end": self.time_range.end_text}
        if self.environment:
            out["environment"] = self.environment
        return out

    def query(self, **extra: str | int | None) -> str:
        """The query string for a link that keeps the filter, e.g. `?range=7d&status=resolved`."""
        params = self.params() | {k: str(v) for k, v in extra.items() if v is not None and v != ""}
        return "?" + urlencode(params)


def parse_local(text: str, zone: ZoneInfo) -> float:
    """A typed local date and time as an epoch; also takes the T of ISO 8601 and seconds. ValueError if
    it is none.

    >>> parse_local("1970-01-01 01:00", ZoneInfo("UTC")), parse_local("1970-01-01T01:00:30", ZoneInfo("UTC"))
    (3600.0, 3630.0)
    """
    cleaned = " ".join(text.strip().replace("T", " ").split())
    for layout in (LOCAL_FORMAT, LOCAL_FORMAT + ":%S"):
        try:
            return datetime.strptime(cleaned, layout).replace(tzinfo=zone).timestamp()
        except ValueError:
            continue
    raise ValueError(f"a date and time like {LOCAL_EXAMPLE}")


def _parse_local(text: str, zone: ZoneInfo, name: str) -> float:
    try:
        return parse_local(text, zone)
    except ValueError as exc:
        raise TimeRangeError(f"{name}: {exc}") from None


def parse_time_range(params: QueryParams, now: float, zone: ZoneInfo) -> TimeRange:
    """The range a page shows; presets end now.

    >>> parse_time_range(QueryParams("range=1h"), 7200.0, ZoneInfo("UTC")).since
    3600.0
    """
    key = params.get("range") or DEFAULT_RANGE
    if key in PRESETS:
        return TimeRange(key, now - PRESETS[key], now)
    if key != "custom":
        raise TimeRangeError(f"range: one of {', '.join(PRESETS)} or custom")
    start_text, end_text = params.get("start", ""), params.get("end", "")
    since = _parse_local(start_text, zone, "start")
    until = _parse_local(end_text, zone, "end") if end_text else now
    if until <= since:
        raise TimeRangeError("end: must be after start")
    if until - since > MAX_CUSTOM_SECONDS:
        raise TimeRangeError("range: at most 366 days")
    return TimeRange("custom", since, until, start_text, end_text or local_input_value(now, zone))


def parse_page_filter(params: QueryParams, now: float, zone: ZoneInfo) -> PageFilter:
    environment = (params.get("environment") or "").strip()[:64] or None
    if environment and "\x00" in environment:
        environment = None  # cannot be stored, so nothing can match it
    return PageFilter(parse_time_range(params, now, zone), environment)


def local_input_value(epoch: float, zone: ZoneInfo) -> str:
    """An epoch as the value of a date-and-time input in `zone` (2026-11-20 08:00)."""
    return datetime.fromtimestamp(epoch, zone).strftime(LOCAL_FORMAT)
