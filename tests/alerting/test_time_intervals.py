"""Alertmanager time intervals: the format, its validation (errors name the key), wall-clock matching
across Europe/Berlin's DST changes, and routes muted or active by them, on the injected clock."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine

from tests.alerting.conftest import in_transaction
from tests.alerting.test_dispatch import tick
from watchkeeper.alerting.alerts import Alert, fingerprint, save_alerts
from watchkeeper.alerting.dispatch import Dispatcher
from watchkeeper.alerting.routing import parse_config
from watchkeeper.alerting.time_intervals import NamedTimeInterval, TimeInterval
from watchkeeper.config import ConfigError
from watchkeeper.lib.clock import ManualClock


def at(text: str) -> float:
    """An instant given in UTC, e.g. "2026-03-29 01:30"."""
    return datetime.strptime(text, "%Y-%m-%d %H:%M").replace(tzinfo=UTC).timestamp()


def minutes_inside(interval: TimeInterval, day: str) -> list[str]:
    start = at(f"{day} 00:00")
    return [datetime.fromtimestamp(start + m * 60, UTC).strftime("%H:%M") for m in range(1440)
            if interval.contains(start + m * 60)]


BERLIN_NIGHT = TimeInterval.model_validate(
    {"times": [{"start_time": "02:00", "end_time": "03:00"}], "location": "Europe/Berlin"})
BERLIN_OFFICE = TimeInterval.model_validate(
    {"weekdays": ["monday:friday"], "times": [{"start_time": "09:00", "end_time": "17:00"}],
     "location": "Europe/Berlin"})


def test_the_hour_skipped_in_spring_never_happens() -> None:
    # 29 March 2026, last Sunday of March: at 01:00 UTC Berlin goes from 02:00 CET to 03:00 CEST.
    assert minutes_inside(BERLIN_NIGHT, "2026-03-29") == []
    assert len(minutes_inside(BERLIN_NIGHT, "2026-03-28")) == 60  # 01:00-01:59 UTC the day before
    assert minutes_inside(BERLIN_NIGHT, "2026-03-30")[0] == "00:00"  # CEST: 02:00 local is 00:00 UTC


def test_the_hour_repeated_in_autumn_counts_twice() -> None:
    # 25 October 2026, last Sunday of October: at 01:00 UTC Berlin goes from 03:00 CEST back to 02:00 CET.
    inside = minutes_inside(BERLIN_NIGHT, "2026-10-25")
    assert len(inside) == 120 and inside[0] == "00:00" and inside[-1] == "01:59"


def test_office_hours_follow_the_wall_clock_across_dst() -> None:
    assert BERLIN_OFFICE.contains(at("2026-03-27 08:00"))  # Friday, CET: 09:00 local
    assert not BERLIN_OFFICE.contains(at("2026-03-27 07:59"))
    assert not BERLIN_OFFICE.contains(at("2026-03-28 10:00"))  # Saturday
    assert BERLIN_OFFICE.contains(at("2026-03-30 07:00"))  # Monday, CEST: 09:00 local
    assert not BERLIN_OFFICE.contains(at("2026-03-30 06:59"))
    assert BERLIN_OFFICE.contains(at("2026-03-30 14:59")) and not BERLIN_OFFICE.contains(at("2026-03-30 15:00"))
    assert BERLIN_OFFICE.contains(at("2026-10-26 08:00"))  # Monday after the change back: CET again
    assert not BERLIN_OFFICE.contains(at("2026-10-26 07:30"))


def test_days_of_month_months_and_years() -> None:
    last_day = TimeInterval.model_validate({"days_of_month": ["-1"]})
    assert last_day.contains(at("2026-02-28 12:00")) and not last_day.contains(at("2026-02-27 12:00"))
    assert last_day.contains(at("2028-02-29 12:00")) and not last_day.contains(at("2028-02-28 12:00"))  # leap year
    last_three = TimeInterval.model_validate({"days_of_month": ["-3:-1"]})
    assert [d for d in range(1, 31) if last_three.contains(at(f"2026-04-{d:02d} 12:00"))] == [28, 29, 30]
    whole = TimeInterval.model_validate({"days_of_month": ["1:-1"]})
    assert whole.contains(at("2026-02-01 00:00")) and whole.contains(at("2026-02-28 23:59"))
    late = TimeInterval.model_validate({"days_of_month": ["25:31"], "months": ["february"]})
    assert late.contains(at("2026-02-28 12:00")) and not late.contains(at("2026-03-28 12:00"))
    quarter = TimeInterval.model_validate({"months": ["january:march", 12], "years": ["2026:2027"]})
    assert quarter.contains(at("2026-03-31 23:59")) and quarter.contains(at("2027-12-01 00:00"))
    assert not quarter.contains(at("2026-04-01 00:00")) and not quarter.contains(at("2028-01-01 00:00"))
    # Days of the month are read in the location: 23:30 UTC on 31 May is already 1 June in Berlin.
    first = TimeInterval.model_validate({"days_of_month": [1], "location": "Europe/Berlin"})
    assert first.contains(at("2026-05-31 23:30")) and not first.contains(at("2026-06-01 22:30"))
    named = NamedTimeInterval.model_validate({"name": "x", "time_intervals": [{"weekdays": ["saturday"]},
                                                                               {"weekdays": ["sunday"]}]})
    assert named.contains(at("2026-03-29 12:00")) and not named.contains(at("2026-03-30 12:00"))


ROUTING = {
    "route": {"receiver": "team", "group_by": ["alertname"], "group_wait": "30s", "group_interval": "5m",
              "routes": [{"matchers": ['severity="low"'], "receiver": "team", "mute_time_intervals": ["weekend"]},
                         {"matchers": ['severity="medium"'], "receiver": "team",
                          "active_time_intervals": ["office"]}]},
    "receivers": [{"name": "team", "webhook_configs": [{"url": "http://127.0.0.1:9/hook"}]}],
    "time_intervals": [{"name": "weekend", "time_intervals": [{"weekdays": ["saturday", "sunday"],
                                                                "location": "Europe/Berlin"}]},
                       {"name": "office", "time_intervals": [{"weekdays": ["monday:friday"],
                                                               "times": [{"start_time": "09:00",
                                                                          "end_time": "17:00"}],
                                                               "location": "Europe/Berlin"}]}],
}


def fire(engine: Engine, clock: ManualClock, name: str, severity: str) -> None:
    labels = {"alertname": name, "severity": severity}
    now = clock.now()
    alert = Alert(fingerprint(labels), labels, {}, "firing", now, now, None, updated_at=now)
    in_transaction(engine, lambda conn: save_alerts(conn, [alert], []))


def test_a_route_muted_on_weekends_notifies_when_the_weekend_ends(engine: Engine) -> None:
    clock = ManualClock(at("2026-03-29 21:50"))  # Sunday 23:50 in Berlin (CEST)
    dispatcher = Dispatcher(parse_config(ROUTING))
    fire(engine, clock, "DiskFilling", "low")
    assert tick(engine, dispatcher, clock) == []
    clock.advance(30)
    assert tick(engine, dispatcher, clock) == []  # due, but the weekend mutes the route
    clock.advance(300)
    assert tick(engine, dispatcher, clock) == []  # 23:55:30
    clock.advance(300)  # Monday 00:00:30 in Berlin
    (sent,) = tick(engine, dispatcher, clock)
    assert sent["groupLabels"] == {"alertname": "DiskFilling"}


def test_a_route_active_in_office_hours_waits_for_them(engine: Engine) -> None:
    clock = ManualClock(at("2026-10-26 07:55"))  # Monday 08:55 in Berlin (CET)
    dispatcher = Dispatcher(parse_config(ROUTING))
    fire(engine, clock, "SlowReports", "medium")
    fire(engine, clock, "Outage", "critical")  # the root route: no time intervals
    tick(engine, dispatcher, clock)
    clock.advance(30)
    assert [n["groupLabels"] for n in tick(engine, dispatcher, clock)] == [{"alertname": "Outage"}]
    clock.advance(300)  # 09:00:30 in Berlin
    assert [n["groupLabels"] for n in tick(engine, dispatcher, clock)] == [{"alertname": "SlowReports"}]


@pytest.mark.parametrize(("change", "message"), [
    ({"time_intervals": [{"name": "w", "time_intervals": [{"weekdays": ["funday"]}]}]},
     "time_intervals.0.time_intervals.0.weekdays: Value error, 'funday' is not a weekday"),
    ({"time_intervals": [{"name": "w", "time_intervals": [{"times": [{"start_time": "9:00", "end_time": "8:00"}]}]}]},
     "time_intervals.0.time_intervals.0.times.0: Value error, start_time 9:00 must be before end_time 8:00"),
    ({"time_intervals": [{"name": "w", "time_intervals": [{"times": [{"start_time": "25:00", "end_time": "26:00"}]}]}]},
     "time_intervals.0.time_intervals.0.times.0: Value error, '25:00' is not a time of day"),
    ({"time_intervals": [{"name": "w", "time_intervals": [{"location": "Mars/Olympus"}]}]},
     "time_intervals.0.time_intervals.0.location: Value error, unknown time zone 'Mars/Olympus'"),
    ({"time_intervals": [{"name": "w", "time_intervals": [{"days_of_month": ["0"]}]}]},
     "time_intervals.0.time_intervals.0.days_of_month: Value error, '0': days of the month are 1 to 31"),
    ({"time_intervals": [{"name": "w", "time_intervals": [{"days_of_month": ["5:2"]}]}]},
     "days_of_month: Value error, day of month '5:2': the start comes after the end"),
    ({"time_intervals": [{"name": "w", "time_intervals": [{"months": ["smarch"]}]}]},
     "months: Value error, 'smarch' is not a month"),
    ({"time_intervals": [{"name": "w", "time_intervals": [{"wekdays": ["monday"]}]}]},
     "time_intervals.0.time_intervals.0.wekdays: Extra inputs are not permitted"),
    ({"route": {"receiver": "team", "mute_time_intervals": ["w"]}},
     "route: the root route cannot have mute_time_intervals or active_time_intervals"),
    ({"route": {"receiver": "team", "routes": [{"receiver": "team", "active_time_intervals": ["nope"]}]}},
     "route.routes.0.active_time_intervals: no time interval named 'nope'"),
])
def test_mistakes_name_the_key(change: dict[str, object], message: str) -> None:
    config = {"route": {"receiver": "team"}, "receivers": [{"name": "team"}],
              "time_intervals": [{"name": "w", "time_intervals": [{"weekdays": ["saturday"]}]}], **change}
    with pytest.raises(ConfigError) as raised:
        parse_config(config, "alerting.yml")
    assert message in str(raised.value)
