import pytest

from watchkeeper.alerting.matchers import Matcher, format_duration, parse_duration, parse_matcher, parse_matchers


@pytest.mark.parametrize(("text", "labels", "expected"), [
    ('severity="critical"', {"severity": "critical"}, True),
    ("severity=critical", {"severity": "high"}, False),
    ('severity!="critical"', {}, True),
    ('service=~"api|web"', {"service": "web"}, True),
    ('service=~"api|web"', {"service": "webshop"}, False),  # anchored, as in Alertmanager
    ('service!~"api|web"', {}, True),  # a missing label matches as ""
    ('team=~".*"', {}, True),
    ('team=~".+"', {}, False),
])
def test_matchers_follow_alertmanager_semantics(text: str, labels: dict[str, str], expected: bool) -> None:
    assert parse_matcher(text).matches(labels) is expected


def test_a_brace_list_parses_like_amtool() -> None:
    matchers = parse_matchers('{alertname="Disk, full", severity=~"high|critical"}')
    assert [str(m) for m in matchers] == ['alertname="Disk, full"', 'severity=~"high|critical"']


def test_api_form_round_trips() -> None:
    matcher = parse_matcher('job!~"node.*"')
    assert matcher.to_api() == {"name": "job", "value": "node.*", "isRegex": True, "isEqual": False}
    assert Matcher.from_api(matcher.to_api()) == matcher


@pytest.mark.parametrize("bad", ["severity", "=x", 'a=~"("'])
def test_bad_matchers_say_why(bad: str) -> None:
    with pytest.raises(ValueError, match=r"matcher|regular expression"):
        parse_matcher(bad)


def test_durations() -> None:
    assert parse_duration("30s") == 30
    assert parse_duration("4h") == 14400
    assert parse_duration("1d2h") == 93600
    assert format_duration(300) == "5m"
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration("5 minutes")
