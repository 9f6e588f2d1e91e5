"""The condition language: what holds, what fails and why, and errors that name the position."""

from __future__ import annotations

import pytest

from watchkeeper.uptime.conditions import ConditionError, parse_condition

FACTS = {
    "status": 200, "response_time": 0.25, "cert_expires_in": 20 * 86400,
    "body": '{"status": "UP", "items": [{"n": 3}], "ratio": 0.5, "ok": true, "none": null}',
    "headers": {"Content-Type": "application/json"}, "answers": ["10.0.0.5"],
}


@pytest.mark.parametrize("text", [
    "status == 200", "status != 500", "status >= 200 and status < 400", "response_time < 300ms",
    "response_time <= 1s", 'body.status == "UP"', "body.items[0].n == 3", "body.ratio < 1",
    "body.ok == true", "body.none == null", "cert_expires_in > 14d", "cert_expires_in < 30d",
    'body contains "UP"', 'body not contains "DOWN"',
    'headers.content-type contains "json"', 'answers contains "10.0.0.5"', 'status == "200"',
])
def test_conditions_that_hold(text: str) -> None:
    assert parse_condition(text).failures(FACTS) == []


@pytest.mark.parametrize(("text", "reason"), [
    ("status == 201", "status == 201: was 200"),
    ("response_time < 200ms", "response_time < 200ms: was 250ms"),
    ('body.status == "DOWN"', 'body.status == "DOWN": was "UP"'),
    ("body.missing == 1", "body.missing == 1: body.missing does not exist"),
    ("cert_expires_in > 30d", "cert_expires_in > 30d: was 20.0d"),
    ('body contains "nope"', 'body contains "nope": not in the body'),
    ('body not contains "UP"', 'body not contains "UP": found in the body'),
])
def test_failures_say_what_was_seen(text: str, reason: str) -> None:
    assert parse_condition(text).failures(FACTS) == [reason]


def test_a_missing_fact_fails_with_the_reason() -> None:
    assert parse_condition("cert_expires_in > 1d").failures({"status": 200}) == [
        "cert_expires_in > 1d: cert_expires_in is not available"]
    assert parse_condition("body.a == 1").failures({"body": "not json"}) == ["body.a == 1: the body is not JSON"]


@pytest.mark.parametrize(("text", "position", "message"), [
    ("status = 200", 7, "unexpected character '='"),
    ("status ==", 9, "unexpected end of condition"),
    ("response_time < 300", 16, "give a unit"),
    ("uptime > 1", 0, "unknown name 'uptime'"),
    ("status == 200 or status == 201", 14, "expected 'and'"),
    ("body contains 3", 14, "needs a string"),
    ("", 0, "empty condition"),
    ("status not 200", 11, "expected 'contains' after 'not'"),
])
def test_errors_name_the_position(text: str, position: int, message: str) -> None:
    with pytest.raises(ConditionError) as caught:
        parse_condition(text)
    assert caught.value.position == position and message in str(caught.value)
    assert str(caught.value).startswith(f"at position {position}:")


def test_nothing_is_evaluated_as_code() -> None:
    with pytest.raises(ConditionError):
        parse_condition("__import__('os').system('true') == 0")
