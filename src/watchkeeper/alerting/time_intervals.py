"""Alertmanager's time intervals: named sets of recurring times (`times`, `weekdays`, `days_of_month`,
`months`, `years`, in a `location`) that routes name in `mute_time_intervals` (no notifications while
now is inside one) and `active_time_intervals` (notifications only while now is inside one).

Same format and meaning as Alertmanager's `time_intervals`:

- an interval holds when every field it gives holds (a missing field is any);
- `times`: `start_time` (inclusive) to `end_time` (exclusive), `HH:MM`, `24:00` allowed as an end;
- `weekdays` (`monday:friday`, `saturday`), `days_of_month` (`1:5`, `-1` = the last day, `-3:-1`),
  `months` (`january:march`, `12`), `years` (`2026:2027`): inclusive ranges;
- all of them read on the wall clock of `location` (an IANA zone, default UTC), so `09:00-17:00` in
  Europe/Berlin follows daylight saving time: on the day clocks go forward, 02:00-03:00 never happens;
  on the day they go back, it happens twice and both count.
"""

from __future__ import annotations

import calendar
import re
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

WEEKDAYS = {name: index for index, name in enumerate(
    ["sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday"])}
MONTHS = {name.lower(): index for index, name in enumerate(calendar.month_name) if name}
_TIME = re.compile(r"^([01]?\d|2[0-4]):([0-5]\d)$")

Range = tuple[int, int]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _minutes(text: str) -> int:
    found = _TIME.match(text)
    if not found or (found[1] == "24" and found[2] != "00"):
        raise ValueError(f"{text!r} is not a time of day HH:MM (00:00 to 24:00)")
    return int(found[1]) * 60 + int(found[2])


class TimeRange(_Model):
    start_time: str
    end_time: str
    _range: Range = PrivateAttr()

    @model_validator(mode="after")
    def _ordered(self) -> TimeRange:
        start, end = _minutes(self.start_time), _minutes(self.end_time)
        if start >= end:
            raise ValueError(f"start_time {self.start_time} must be before end_time {self.end_time}")
        self._range = (start, end)
        return self

    def contains(self, minute_of_day: int) -> bool:
        return self._range[0] <= minute_of_day < self._range[1]


def _ranges(items: list[str], parse: Any, what: str) -> list[Range]:
    """`a:b` and `a` items as inclusive ranges (each end read by `parse`)."""
    found = []
    for item in items:
        text = str(item).strip().lower()
        first, _, last = text.partition(":")
        begin = parse(first)
        end = parse(last) if last else begin
        if begin * end > 0 and begin > end:
            raise ValueError(f"{what} {item!r}: the start comes after the end")
        found.append((begin, end))
    return found


def _weekday(text: str) -> int:
    if text not in WEEKDAYS:
        raise ValueError(f"{text!r} is not a weekday (sunday … saturday)")
    return WEEKDAYS[text] + 1  # 1-based so that range checks above see no zero


def _day_of_month(text: str) -> int:
    try:
        day = int(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a day of the month") from None
    if day == 0 or not -31 <= day <= 31:
        raise ValueError(f"{text!r}: days of the month are 1 to 31, or -1 (the last) to -31")
    return day


def _month(text: str) -> int:
    if text in MONTHS:
        return MONTHS[text]
    if text.isdigit() and 1 <= int(text) <= 12:
        return int(text)
    raise ValueError(f"{text!r} is not a month (january … december, or 1 to 12)")


def _year(text: str) -> int:
    if not text.isdigit() or len(text) != 4:
        raise ValueError(f"{text!r} is not a year")
    return int(text)


class TimeInterval(_Model):
    times: list[TimeRange] | None = None
    weekdays: list[str] | None = None
    days_of_month: list[str | int] | None = None
    months: list[str | int] | None = None
    years: list[str | int] | None = None
    location: str | None = Field(None, description="IANA time zone, e.g. Europe/Berlin (default UTC)")
    _parsed: dict[str, list[Range]] = PrivateAttr(default_factory=dict)
    _zone: ZoneInfo = PrivateAttr()

    @field_validator("location")
    @classmethod
    def _known_zone(cls, name: str | None) -> str | None:
        if name is not None:
            try:
                ZoneInfo(name)
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError(f"unknown time zone {name!r} (an IANA name like Europe/Berlin)") from None
        return name

    @field_validator("weekdays")
    @classmethod
    def _weekdays(cls, items: list[str] | None) -> list[str] | None:
        if items is not None:
            _ranges(items, _weekday, "weekday")
        return items

    @field_validator("days_of_month")
    @classmethod
    def _days(cls, items: list[str | int] | None) -> list[str | int] | None:
        if items is not None:
            _ranges([str(i) for i in items], _day_of_month, "day of month")
        return items

    @field_validator("months")
    @classmethod
    def _months(cls, items: list[str | int] | None) -> list[str | int] | None:
        if items is not None:
            _ranges([str(i) for i in items], _month, "month")
        return items

    @field_validator("years")
    @classmethod
    def _years(cls, items: list[str | int] | None) -> list[str | int] | None:
        if items is not None:
            _ranges([str(i) for i in items], _year, "year")
        return items

    @model_validator(mode="after")
    def _parse(self) -> TimeInterval:
        self._zone = ZoneInfo(self.location or "UTC")
        parsers = {"weekdays": _weekday, "days_of_month": _day_of_month, "months": _month, "years": _year}
        for name, parse in parsers.items():
            items = getattr(self, name)
            if items is not None:
                self._parsed[name] = _ranges([str(i) for i in items], parse, name)
        return self

    def contains(self, epoch: float) -> bool:
        """Whether the instant falls in this interval, read on the wall clock of `location`.

        >>> TimeInterval(weekdays=["monday:friday"], times=[{"start_time": "09:00", "end_time": "17:00"}],
        ...              location="Europe/Berlin").contains(1_767_600_000)  # Monday 5 Jan 2026, 09:00 in Berlin
        True
        """
        local = datetime.fromtimestamp(epoch, self._zone)
        if self.times is not None and not any(t.contains(local.hour * 60 + local.minute) for t in self.times):
            return False
        parsed = self._parsed
        weekday = (local.isoweekday() % 7) + 1
        if "weekdays" in parsed and not any(a <= weekday <= b for a, b in parsed["weekdays"]):
            return False
        if "days_of_month" in parsed and not _day_matches(parsed["days_of_month"], local):
            return False
        if "months" in parsed and not any(a <= local.month <= b for a, b in parsed["months"]):
            return False
        return "years" not in parsed or any(a <= local.year <= b for a, b in parsed["years"])


def _day_matches(ranges: list[Range], local: datetime) -> bool:
    """Negative days count from the end of this month (-1 the last); ranges are clamped to the month."""
    length = calendar.monthrange(local.year, local.month)[1]
    for begin, end in ranges:
        first = length + begin + 1 if begin < 0 else begin
        last = length + end + 1 if end < 0 else end
        if first > length:
            continue
        if max(first, 1) <= local.day <= min(last, length):
            return True
    return False


class NamedTimeInterval(_Model):
    name: str = Field(min_length=1, max_length=200)
    time_intervals: list[TimeInterval] = Field(min_length=1)

    def contains(self, epoch: float) -> bool:
        return any(interval.contains(epoch) for interval in self.time_intervals)
