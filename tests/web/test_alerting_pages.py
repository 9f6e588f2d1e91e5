"""The alerting pages over HTTP (httpx) on the real server: alerts (per project and for admins), rules
with the schema-driven form and the back-test, silences, the routing view and the channels with their
delivery history. The server runs the alerting loops on a manual clock, with a routing file whose
receivers are local HTTP receivers."""

from __future__ import annotations

import html
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, get_args

import httpx
import orjson
import pytest
import yaml
from sqlalchemy import Engine

from tests.alerting.conftest import START, add_errors, signal
from tests.alerting.receivers import Answer, HttpReceiver
from tests.conftest import ProjectFixture, Server, make_project, make_token, make_user, run_server
from tests.web.conftest import ADMIN_PASSWORD, ensure_admin, form_token, log_in
from tests.web.test_pages import XSS, post_form
from watchkeeper.alerting import rules as R
from watchkeeper.alerting.alerts import Alert, load_alerts
from watchkeeper.alerting.silences import list_silences
from watchkeeper.config import AlertingSettings, Settings
from watchkeeper.lib.clock import ManualClock
from watchkeeper.store.engine import for_writing

SLACK_PATH = "/services/T000/B000/slack-secret-path"
HMAC_SECRET = "hmac-top-secret"


def routing_file(tmp_path: Path, hook: str) -> Path:
    path = tmp_path / "alerting.yml"
    path.write_text(yaml.safe_dump({
        "route": {"receiver": "team", "group_by": ["alertname", "project"], "group_wait": "0s",
                  "routes": [
                      {"matchers": ['severity="critical"'], "receiver": "pager", "continue": True,
                       "repeat_interval": "1h"},
                      {"matchers": ['alertname=~"Error spike|DiskFull"'], "receiver": "hook",
                       "group_by": ["alertname"]},
                  ]},
        "receivers": [
            {"name": "team", "log_configs": [{}]},
            {"name": "pager", "slack_configs": [{"api_url": f"{hook}{SLACK_PATH}", "channel": "#pager"}]},
            {"name": "hook", "webhook_configs": [{"url": f"{hook}/hook", "hmac_secret": HMAC_SECRET}]},
        ],
        "inhibit_rules": [{"source_matchers": ['alertname="Monitor down"'],
                           "target_matchers": ['alertname="Error spike"'], "equal": ["project"]}],
    }))
    return path


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def alerting_server(settings: Settings, tmp_path: Path, receiver: HttpReceiver, clock: ManualClock) -> Iterator[Server]:
    alerting = AlertingSettings(config_file=routing_file(tmp_path, receiver.url), evaluation_interval_seconds=0.1,
                                dispatch_interval_seconds=0.1, delivery_max_attempts=2)
    with run_server(settings.model_copy(update={"alerting": alerting}), clock) as server:
        yield server


@pytest.fixture
def admin(alerting_server: Server) -> Iterator[httpx.Client]:
    ensure_admin(alerting_server)
    client = log_in(alerting_server, alerting_server.settings.admin_email, ADMIN_PASSWORD)
    yield client
    client.close()


def engine_of(server: Server) -> Engine:
    return for_writing(server.runtime.engine)


def wait_until(what: Callable[[], Any], timeout: float = 20.0) -> Any:
    """Poll the real server's state (its loops run on their own schedule) until `what` is truthy."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = what()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError("condition not reached in time")


def alerts_of(server: Server, **filters: Any) -> list[Alert]:
    with server.runtime.engine.connect() as conn:
        return load_alerts(conn, **filters)


def rules_of(server: Server, project_id: int) -> list[R.AlertRule]:
    with server.runtime.engine.connect() as conn:
        return R.list_rules(conn, project_id)


def create_rule(server: Server, project_id: int, body: dict[str, Any], managed_by: str = "api") -> R.AlertRule:
    with engine_of(server).begin() as conn:
        return R.create_rule(conn, project_id, R.RuleIn.model_validate(body), now=START, managed_by=managed_by)


SLOW_BURN: dict[str, Any] = {
    "name": "Slow burn", "kind": "threshold", "severity": "low",
    "threshold": {"metric": "errors", "aggregation": "count", "window_minutes": 5, "op": ">", "threshold": 5,
                  "for_seconds": 3600},
    "annotations": {"summary": "{{ value }} errors in 5 min"},
}


def post_alerts(server: Server, alerts: list[dict[str, Any]]) -> None:
    token = make_token(server)
    answer = httpx.post(f"{server.url}/api/v2/alerts", json=alerts, headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200, answer.text


def text_of(page: str) -> str:
    """The page's text with tags and extra spaces removed (for phrases split over elements)."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())


@pytest.fixture
def shop(alerting_server: Server) -> ProjectFixture:
    project = make_project(alerting_server, "Shop")
    wait_until(lambda: len(rules_of(alerting_server, project.id)) >= 5)  # the default pack
    return project


def spike(server: Server, clock: ManualClock, project: ProjectFixture) -> Alert:
    """An error spike (30 errors this minute): the default pack's "Error spike" fires."""
    add_errors(engine_of(server), project.id, clock.now(), 30)
    return wait_until(lambda: next((a for a in alerts_of(server, project_id=project.id)
                                    if a.labels["alertname"] == "Error spike" and a.state == "firing"), None))


# --- alerts -------------------------------------------------------------------------------------------


def test_the_project_alerts_page_shows_firing_and_pending_alerts_in_their_routing_groups(
    alerting_server: Server, admin: httpx.Client, shop: ProjectFixture, clock: ManualClock
) -> None:
    create_rule(alerting_server, shop.id, {**SLOW_BURN, "annotations": {
        "summary": "{{ value }} errors in 5 min", "runbook_url": "https://wiki.example.com/slow-burn"}})
    spike(alerting_server, clock, shop)
    wait_until(lambda: any(a.labels["alertname"] == "Slow burn" and a.state == "pending"
                           for a in alerts_of(alerting_server, project_id=shop.id)))
    page = admin.get(f"/projects/{shop.id}/alerts")
    assert page.status_code == 200
    text = text_of(page.text)
    assert "firing 1" in text and "pending 1" in text and "silenced 0" in text
    firing = page.text.split('id="state-firing"')[1].split('id="state-pending"')[0]
    # The routing tree's groups: receiver + group labels (the "hook" route groups by alertname only).
    assert "receiver</span> hook" in firing and '{alertname=&#34;Error spike&#34;}' in firing
    assert "shop: 30.0 errors per minute (more than 10)" in html.unescape(firing)
    assert "high · P1" in firing
    pending = page.text.split('id="state-pending"')[1]
    assert "receiver</span> team" in pending and "Slow burn" in pending
    assert 'href="https://wiki.example.com/slow-burn"' in pending
    # "Silence this" carries the alert's labels to the silence form.
    link = re.search(r'class="button" href="(/alerting/silences\?[^"]+)">Silence this', firing)
    assert link is not None
    form = admin.get(html.unescape(link.group(1)))
    assert form.status_code == 200
    assert 'value="alertname"' in form.text and 'value="Error spike"' in form.text and 'value="shop"' in form.text

    group = re.search(r'class="group-silence" href="([^"]+)"', firing)
    assert group is not None
    prefilled = admin.get(html.unescape(group.group(1))).text
    assert prefilled.count('name="matcher_name" value="alertname"') == 1 and 'value="project"' not in prefilled

    only = admin.get(f"/projects/{shop.id}/alerts", params={"state": "pending"}).text
    assert "Slow burn" in only and 'id="state-firing"' not in only


def test_the_all_projects_view_shows_external_silenced_and_resolved_alerts(
    alerting_server: Server, admin: httpx.Client, shop: ProjectFixture, clock: ManualClock
) -> None:
    now = clock.now()
    iso = lambda t: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))  # noqa: E731
    post_alerts(alerting_server, [
        {"labels": {"alertname": "DiskFull", "instance": "db1", "severity": "medium"},
         "annotations": {"summary": f"disk 95% full {XSS}", "runbook_url": "javascript:alert(1)"},
         "generatorURL": "http://prometheus/graph"},
        {"labels": {"alertname": "HighLoad", "instance": "web1"}, "startsAt": iso(now - 600),
         "endsAt": iso(now - 60)},
    ])
    post_form(admin, "/alerting/silences", "/alerting/silences", {
        "matcher_name": "instance", "matcher_op": "=~", "matcher_value": "db.*", "duration": "1h",
        "comment": "disk swap"})
    page = admin.get("/alerting/alerts")
    assert page.status_code == 200
    text = text_of(page.text)
    assert "silenced 1" in text and "resolved recently 1" in text
    silenced = page.text.split('id="state-silenced"')[1].split('id="state-resolved"')[0]
    assert "DiskFull" in silenced and "silenced by" in silenced and "disk swap" in silenced
    assert XSS not in page.text and html.escape(XSS) in page.text.replace("&#39;", "'")
    assert 'href="javascript:' not in page.text and 'href="http://prometheus/graph"' in page.text  # only web links
    assert "HighLoad" in page.text.split('id="state-resolved"')[1]
    # A project's page shows only that project's alerts.
    assert "DiskFull" not in admin.get(f"/projects/{shop.id}/alerts").text


def test_an_inhibited_alert_shows_as_silenced_and_says_why(
    alerting_server: Server, admin: httpx.Client, shop: ProjectFixture, clock: ManualClock
) -> None:
    spike(alerting_server, clock, shop)
    signal(engine_of(alerting_server), "monitor.down", shop.id, "monitor:9", clock.now(), name="checkout",
           error="connection refused")
    wait_until(lambda: any(a.labels["alertname"] == "Monitor down" and a.state == "firing"
                           for a in alerts_of(alerting_server, project_id=shop.id)))
    page = admin.get(f"/projects/{shop.id}/alerts").text
    silenced = page.split('id="state-silenced"')[1]
    assert "Error spike" in silenced and "inhibited by another firing alert" in silenced
    firing = page.split('id="state-firing"')[1].split('id="state-silenced"')[0]
    assert "Monitor down" in firing and "checkout is down" in firing and "connection refused" in firing
    assert 'hx-trigger="every 30s"' in page  # the list refreshes itself


def test_a_big_group_shows_its_newest_alerts_and_the_count(alerting_server: Server, admin: httpx.Client) -> None:
    post_alerts(alerting_server, [{"labels": {"alertname": "DiskFull", "instance": f"db{i}"}} for i in range(60)])
    page = admin.get("/alerting/alerts", params={"state": "firing"}).text
    assert "60 alerts (the newest 50 shown)" in text_of(page)
    assert page.count("Silence this") == 50


# --- rules --------------------------------------------------------------------------------------------


def rule_fields(**changes: str) -> dict[str, str]:
    fields = {"name": "Checkout errors", "kind": "threshold", "severity": "high", "enabled": "on",
              "threshold.metric": "errors", "threshold.aggregation": "rate", "threshold.window_minutes": "5",
              "threshold.op": ">", "threshold.threshold": "3", "threshold.for_seconds": "120",
              "threshold.keep_firing_for_seconds": "0", "labels": "team=payments\nservice=checkout",
              "annotations.summary": "{{ value }} errors/min", "annotations.runbook_url": "https://wiki/checkout",
              "annotations.other": "dashboard=https://grafana/d/1"}
    return fields | changes


def test_rules_are_created_edited_disabled_and_deleted_through_the_form(
    alerting_server: Server, admin: httpx.Client, shop: ProjectFixture
) -> None:
    listing = admin.get(f"/projects/{shop.id}/rules")
    assert listing.status_code == 200 and "Error spike" in listing.text and "default pack" in listing.text
    created = post_form(admin, f"/projects/{shop.id}/rules/new", f"/projects/{shop.id}/rules", rule_fields())
    assert created.status_code == 303, created.text
    rule = next(r for r in rules_of(alerting_server, shop.id) if r.name == "Checkout errors")
    assert rule.threshold is not None and rule.threshold.window_minutes == 5 and rule.threshold.for_seconds == 120
    assert rule.labels == {"team": "payments", "service": "checkout"}
    assert rule.annotations == {"summary": "{{ value }} errors/min", "runbook_url": "https://wiki/checkout",
                                "dashboard": "https://grafana/d/1"}
    assert rule.enabled and rule.severity == "high" and rule.managed_by == "api"

    edit = admin.get(f"/rules/{rule.id}")
    assert edit.status_code == 200 and 'value="Checkout errors"' in edit.text
    assert re.search(r'<option selected>rate</option>', edit.text)
    saved = post_form(admin, f"/rules/{rule.id}", f"/rules/{rule.id}",
                      rule_fields(name="Checkout errors (5xx)", **{"threshold.threshold": "7.5"}))
    assert saved.status_code == 303
    changed = next(r for r in rules_of(alerting_server, shop.id) if r.id == rule.id)
    assert changed.name == "Checkout errors (5xx)" and changed.threshold and changed.threshold.threshold == 7.5

    toggled = post_form(admin, f"/projects/{shop.id}/rules", f"/rules/{rule.id}/enabled", {"enabled": "0"})
    assert toggled.status_code == 303
    assert not next(r for r in rules_of(alerting_server, shop.id) if r.id == rule.id).enabled
    assert "Enable Checkout errors (5xx)" in admin.get(f"/projects/{shop.id}/rules").text

    event = post_form(admin, f"/projects/{shop.id}/rules/new", f"/projects/{shop.id}/rules", {
        "name": "Cert soon", "kind": "event", "severity": "medium", "enabled": "on",
        "event.signal": "certificate.expiring", "event.where": "threshold_days <= 7\nname == \"shop 1\"",
        "event.resolve_after_seconds": "86400"})
    assert event.status_code == 303, event.text
    cert = next(r for r in rules_of(alerting_server, shop.id) if r.name == "Cert soon")
    assert cert.event is not None and cert.event.signal == "certificate.expiring"
    assert [(c.field, c.op, c.value) for c in cert.event.where] == [("threshold_days", "<=", 7.0),
                                                                     ("name", "==", "shop 1")]
    assert "threshold_days &lt;= 7\nname == shop 1</textarea>" in admin.get(f"/rules/{cert.id}").text

    deleted = post_form(admin, f"/projects/{shop.id}/rules", f"/rules/{rule.id}/delete", {})
    assert deleted.status_code == 303
    assert rule.id not in [r.id for r in rules_of(alerting_server, shop.id)]


def test_bad_rule_input_gives_the_form_back_with_the_error_next_to_the_field(
    alerting_server: Server, admin: httpx.Client, shop: ProjectFixture
) -> None:
    cases = [
        ({"threshold.window_minutes": "0"}, "threshold.window_minutes", "greater than or equal to 1"),
        ({"threshold.threshold": "lots"}, "threshold.threshold", "a number"),
        ({"threshold.aggregation": "median"}, "threshold.aggregation", "Input should be"),
        ({"name": ""}, "name", "cannot be empty"),
        ({"labels": "team payments"}, "labels", "name=value"),
        ({"labels": "severity=x"}, "labels", "labels set by Watchkeeper"),
        ({"annotations.summary": "{% if %}"}, "annotations.summary", "template error"),
        ({"annotations.other": "note={{ x"}, "annotations.other", "note: template error"),
        ({"annotations.summary": "{{ 'a' * 50000000 }}"}, "annotations.summary", "larger than the template limit"),
        ({"annotations.description": "{% for i in range(9999) %}{% for j in range(9999) %}{% endfor %}{% endfor %}"},
         "annotations.description", "took longer than 0.2 s"),
        ({"kind": "event", "event.signal": "no.such"}, "event.signal", "unknown signal"),
        ({"kind": "event", "event.signal": "issue.new", "event.where": "just words"}, "event.where", "line 1"),
        ({"kind": "nonsense"}, "kind", "Input should be"),
        ({"name": "x\x00y"}, "name", "NUL"),
    ]
    before = len(rules_of(alerting_server, shop.id))
    for fields, name, message in cases:
        answer = post_form(admin, f"/projects/{shop.id}/rules/new", f"/projects/{shop.id}/rules", rule_fields(**fields))
        assert answer.status_code == 422, (fields, answer.status_code)
        error_id = "rule-" + name.replace(".", "-").replace("_", "-") + "-error"
        if name.startswith("annotations."):
            error_id = "rule-ann-" + name.removeprefix("annotations.") + "-error"
        found = re.search(rf'id="{error_id}">([^<]*)<', answer.text)
        assert found is not None, (fields, name, answer.text[:3000])
        assert message in html.unescape(found.group(1)), (fields, found.group(1))
        assert 'value="Checkout errors"' in answer.text or fields.get("name") is not None  # the values stay
    assert len(rules_of(alerting_server, shop.id)) == before


def offers(page: str, choice: str) -> bool:
    return re.search(rf"<option( selected)?>{re.escape(html.escape(choice))}</option>", page) is not None


def test_the_form_offers_every_kind_and_choice_of_the_rule_schema(admin: httpx.Client, shop: ProjectFixture) -> None:
    page = admin.get(f"/projects/{shop.id}/rules/new").text
    for kind in get_args(R.RuleIn.model_fields["kind"].annotation):
        assert f'data-kind="{kind}"' in page and offers(page, kind), kind
    threshold = R.ThresholdSpec.model_fields
    for name in ("aggregation", "metric", "op"):
        for choice in get_args(threshold[name].annotation):
            assert offers(page, choice), (name, choice)
    assert offers(page, "monitor.down")  # signals from the catalogue


def test_the_back_test_shows_when_the_rule_would_have_fired(
    alerting_server: Server, admin: httpx.Client, shop: ProjectFixture, clock: ManualClock
) -> None:
    engine = engine_of(alerting_server)
    for minutes_ago in (180, 179, 178, 60):
        add_errors(engine, shop.id, clock.now() - minutes_ago * 60, 8)
    token = form_token(admin.get(f"/projects/{shop.id}/rules/new").text)
    fields = rule_fields(**{"threshold.aggregation": "count", "threshold.window_minutes": "1",
                            "threshold.threshold": "5", "threshold.for_seconds": "0"})
    answer = admin.post(f"/projects/{shop.id}/rules/backtest", data={"csrf_token": token, **fields},
                        headers={"HX-Request": "true"})
    assert answer.status_code == 200
    assert "It would have fired 2 times" in text_of(answer.text)
    found = re.search(r"data-firing-chart='([^']*)'", answer.text)
    assert found is not None
    chart = orjson.loads(html.unescape(found.group(1)))
    assert len(chart["x"]) == 24 * 60 + 1 and max(chart["y"]) == 1 and sum(chart["y"]) == 4
    assert answer.text.count("<tr>") == 1 + 2  # header + two firings
    assert "8" in answer.text.split("backtest-table")[1]  # the peak value

    invalid = admin.post(f"/projects/{shop.id}/rules/backtest",
                         data={"csrf_token": token, **rule_fields(**{"threshold.window_minutes": "-1"})})
    assert invalid.status_code == 200 and "cannot be back-tested" in invalid.text
    assert "threshold.window_minutes" in invalid.text
    assert rules_of(alerting_server, shop.id)[-1].name != "Checkout errors"  # nothing stored


def test_rules_from_the_rules_file_are_read_only(
    alerting_server: Server, admin: httpx.Client, shop: ProjectFixture
) -> None:
    rule = create_rule(alerting_server, shop.id, SLOW_BURN, managed_by="file")
    page = admin.get(f"/rules/{rule.id}").text
    assert "comes from the rules file" in page and "<fieldset class=\"grid-fields\" disabled>" in page
    assert "Save rule" not in page and "read-only (rules file)" in admin.get(f"/projects/{shop.id}/rules").text
    for action, fields in ((f"/rules/{rule.id}", rule_fields()), (f"/rules/{rule.id}/enabled", {"enabled": "0"}),
                           (f"/rules/{rule.id}/delete", {})):
        assert post_form(admin, f"/projects/{shop.id}/rules", action, fields).status_code == 409, action
    assert [r.name for r in rules_of(alerting_server, shop.id) if r.id == rule.id] == ["Slow burn"]


# --- silences -----------------------------------------------------------------------------------------


def test_silences_are_created_counted_and_expired(
    alerting_server: Server, admin: httpx.Client, shop: ProjectFixture, clock: ManualClock
) -> None:
    spike(alerting_server, clock, shop)
    answer = post_form(admin, "/alerting/silences", "/alerting/silences", {
        "matcher_name": ["alertname", "project", ""], "matcher_op": ["=", "=~", "="],
        "matcher_value": ["Error spike", "sh.p", ""], "duration": "2h", "comment": "deploying the fix"})
    assert answer.status_code == 303, answer.text
    with alerting_server.runtime.engine.connect() as conn:
        [silence] = list_silences(conn)
    assert [str(m) for m in silence.matchers] == ['alertname="Error spike"', 'project=~"sh.p"']
    assert silence.created_by == alerting_server.settings.admin_email
    assert silence.ends_at - silence.starts_at == 7200 and silence.starts_at == clock.now()
    page = admin.get(answer.headers["location"]).text
    active = page.split('id="silences-active"')[1].split('id="silences-pending"')[0]
    assert "deploying the fix" in active and re.search(r'class="matching">1</strong>', active)
    assert "silenced 1" in text_of(admin.get(f"/projects/{shop.id}/alerts").text)

    later = post_form(admin, "/alerting/silences", "/alerting/silences", {
        "matcher_name": "team", "matcher_op": "!=", "matcher_value": "ops", "starts_at": "2026-01-02T10:00",
        "ends_at": "2026-01-02T12:00", "comment": "maintenance"})
    assert later.status_code == 303
    page = admin.get("/alerting/silences").text
    assert "maintenance" in page.split('id="silences-pending"')[1].split('id="silences-expired"')[0]

    expired = post_form(admin, "/alerting/silences", f"/alerting/silences/{silence.id}/expire", {})
    assert expired.status_code == 303
    page = admin.get("/alerting/silences").text
    assert "deploying the fix" in page.split('id="silences-expired"')[1]
    assert "silenced 0" in text_of(admin.get(f"/projects/{shop.id}/alerts").text)
    assert post_form(admin, "/alerting/silences", "/alerting/silences/no-such-id/expire", {}).status_code == 404


def test_bad_silence_input_gives_the_form_back_with_field_errors(
    alerting_server: Server, admin: httpx.Client
) -> None:
    good = {"matcher_name": "alertname", "matcher_op": "=", "matcher_value": "Down", "duration": "1h",
            "comment": "why"}
    cases = [
        ({"matcher_name": "", "matcher_value": ""}, "matchers-error", "at least one matcher"),
        ({"matcher_op": "=~", "matcher_value": "(unclosed"}, "matchers-error", "bad regular expression"),
        ({"matcher_name": "bad-name"}, "matchers-error", "not a matcher"),
        ({"duration": "soon"}, "duration-error", "not a duration"),
        ({"duration": "", "ends_at": ""}, "ends-error", "give an end or a duration"),
        ({"ends_at": "2020-01-01T00:00"}, "ends-error", "end after it starts"),
        ({"starts_at": "2020-01-01T00:00", "ends_at": "2020-01-02T00:00"}, "ends-error", "in the future"),
        ({"starts_at": "yesterday"}, "starts-error", "a date and time"),
        ({"duration": "2000d"}, "duration-error", "at most 5 years"),
        ({"comment": ""}, "comment-error", "say why"),
    ]
    for fields, error_id, message in cases:
        answer = post_form(admin, "/alerting/silences", "/alerting/silences", good | fields)
        assert answer.status_code == 422, fields
        found = re.search(rf'id="{error_id}">([^<]*)<', answer.text)
        assert found is not None and message in html.unescape(found.group(1)), (fields, answer.text[-4000:])
    with alerting_server.runtime.engine.connect() as conn:
        assert list_silences(conn) == []


# --- routing and channels -----------------------------------------------------------------------------


def test_the_routing_view_shows_the_tree_and_which_route_a_label_set_takes(
    alerting_server: Server, admin: httpx.Client, receiver: HttpReceiver
) -> None:
    page = admin.get("/alerting/routing")
    assert page.status_code == 200
    text = text_of(page.text)
    assert 'severity="critical"' in text and "continue" in text and 'alertname=~"Error spike|DiskFull"' in text
    assert "repeat 1h" in text and "group wait 0s" in text
    assert "alertname=\"Monitor down\"" in text and "with the same project" in text
    assert HMAC_SECRET not in page.text and SLACK_PATH not in page.text and "hmac_secret: ••••••" in text

    found = admin.get("/alerting/routing", params={"labels": "alertname=Error spike\nseverity=critical\nproject=shop"})
    result = text_of(found.text.split('class="route-result"')[1].split("</table>")[0])
    assert "2 routes take" in result and "pager" in result and "hook" in result
    assert '{alertname="Error spike"}' in result  # the hook route groups by alertname only
    assert found.text.count("takes the label set") == 2
    other = admin.get("/alerting/routing", params={"labels": '{alertname="Other"}'})
    assert "1 route takes" in text_of(other.text) and "team" in text_of(other.text).split("1 route takes")[1][:200]
    bad = admin.get("/alerting/routing", params={"labels": "severity=~crit.*"})
    assert bad.status_code == 422 and "only name=value pairs" in html.unescape(bad.text)


def test_channels_show_integrations_masked_delivery_history_and_send_test_notifications(
    alerting_server: Server, admin: httpx.Client, receiver: HttpReceiver
) -> None:
    page = admin.get("/alerting/channels")
    assert page.status_code == 200
    assert HMAC_SECRET not in page.text and SLACK_PATH not in page.text
    assert "Nothing sent yet." in page.text
    queued = post_form(admin, "/alerting/channels", "/alerting/channels/hook/test", {})
    assert queued.status_code == 303
    [request] = receiver.wait_for(1)
    assert request.path == "/hook" and request.json()["alerts"][0]["labels"]["alertname"] == "TestNotification"
    wait_until(lambda: "badge delivery sent" in admin.get("/alerting/channels").text)
    shown = admin.get(queued.headers["location"]).text
    assert "Test notification queued for hook (1 integration)" in text_of(shown)

    receiver.default = Answer(400, body=b"no such channel")  # not retried: failed at once
    post_form(admin, "/alerting/channels", "/alerting/channels/pager/test", {})
    receiver.wait_for(2)
    failed = wait_until(lambda: (t := admin.get("/alerting/channels").text) and "badge delivery failed" in t and t)
    pager = failed.split('id="receiver-2"')[1].split('id="receiver-3"')[0]
    assert "slack/0" in pager and "400" in pager and "1 failed" in text_of(pager)
    receiver.default = Answer(503, body=b"busy")  # retried with backoff (the manual clock holds it there)
    post_form(admin, "/alerting/channels", "/alerting/channels/hook/test", {})
    receiver.wait_for(3)
    retrying = wait_until(lambda: (t := admin.get("/alerting/channels").text) and "badge delivery retrying" in t and t)
    row = retrying.split('class="delivery-retrying"')[1].split("</tr>")[0]
    assert "webhook/0" in row and "503" in row and '<td class="num">1</td>' in row and "next " in row
    assert post_form(admin, "/alerting/channels", "/alerting/channels/nobody/test", {}).status_code == 404


# --- permissions --------------------------------------------------------------------------------------


def test_viewers_see_alerts_and_rules_without_edit_controls_and_cannot_change_them(
    alerting_server: Server, admin: httpx.Client, shop: ProjectFixture, clock: ManualClock
) -> None:
    spike(alerting_server, clock, shop)
    rule = rules_of(alerting_server, shop.id)[0]
    _, email = make_user(alerting_server, role="viewer")
    viewer = log_in(alerting_server, email, "password-123")
    alerts = viewer.get(f"/projects/{shop.id}/alerts")
    assert alerts.status_code == 200 and "Error spike" in alerts.text and "Silence this" not in alerts.text
    rules = viewer.get(f"/projects/{shop.id}/rules").text
    assert re.search(r'class="badge alert-firing">1 firing</a>', rules)  # the rule's alerts now
    assert rule.name in rules and "New rule" not in rules and "Disable" not in rules and "Delete" not in rules
    form = viewer.get(f"/rules/{rule.id}").text
    assert "disabled>" in form and "Save rule" not in form and "Back-test" not in form
    assert viewer.get(f"/projects/{shop.id}/rules/new").status_code == 403
    token = form_token(alerts.text)
    for action, fields in ((f"/projects/{shop.id}/rules", rule_fields()), (f"/rules/{rule.id}", rule_fields()),
                           (f"/rules/{rule.id}/enabled", {"enabled": "0"}), (f"/rules/{rule.id}/delete", {}),
                           (f"/projects/{shop.id}/rules/backtest", rule_fields())):
        assert viewer.post(action, data={"csrf_token": token, **fields}).status_code == 403, action
    for path in ("/alerting/alerts", "/alerting/silences", "/alerting/routing", "/alerting/channels"):
        assert viewer.get(path).status_code == 403, path
    for action in ("/alerting/silences", "/alerting/channels/hook/test"):
        assert viewer.post(action, data={"csrf_token": token, "comment": "x"}).status_code == 403, action
    assert 'href="/alerting/alerts"' not in alerts.text
    assert rules_of(alerting_server, shop.id)[0] == rule
    viewer.close()


def test_members_of_other_teams_get_404_and_members_403_on_the_global_pages(
    alerting_server: Server, admin: httpx.Client, shop: ProjectFixture
) -> None:
    rule = rules_of(alerting_server, shop.id)[0]
    _, email = make_user(alerting_server, role="member", team="Elsewhere")
    stranger = log_in(alerting_server, email, "password-123")
    for path in (f"/projects/{shop.id}/alerts", f"/projects/{shop.id}/rules", f"/projects/{shop.id}/rules/new",
                 f"/rules/{rule.id}", "/rules/99999999999", "/projects/99999999999/alerts"):
        assert stranger.get(path).status_code == 404, path
    token = form_token(stranger.get("/account").text)
    for action in (f"/rules/{rule.id}/delete", f"/projects/{shop.id}/rules/backtest"):
        assert stranger.post(action, data={"csrf_token": token}).status_code == 404, action
    assert stranger.get("/alerting/silences").status_code == 403
    stranger.close()

    _, email = make_user(alerting_server, role="member")
    member = log_in(alerting_server, email, "password-123")
    assert f'href="/projects/{shop.id}/rules/new"' in member.get(f"/projects/{shop.id}/rules").text
    assert member.get("/alerting/routing").status_code == 403
    member.close()


def test_alerting_forms_need_the_csrf_token(alerting_server: Server, admin: httpx.Client,
                                            shop: ProjectFixture) -> None:
    rule = rules_of(alerting_server, shop.id)[0]
    for action in (f"/projects/{shop.id}/rules", f"/rules/{rule.id}", f"/rules/{rule.id}/delete",
                   f"/projects/{shop.id}/rules/backtest", "/alerting/silences", "/alerting/channels/hook/test"):
        assert admin.post(action, data={"csrf_token": "forged", **rule_fields()}).status_code == 403, action
    assert rules_of(alerting_server, shop.id)[0] == rule


def test_the_newer_kinds_and_aggregations_of_the_schema_work_through_the_same_form(
    alerting_server: Server, admin: httpx.Client, shop: ProjectFixture
) -> None:
    new, create = f"/projects/{shop.id}/rules/new", f"/projects/{shop.id}/rules"
    ratio = post_form(admin, new, create, rule_fields(**{"threshold.aggregation": "ratio"}))
    assert ratio.status_code == 422
    found = re.search(r'id="rule-threshold-error"[^>]*>([^<]*)<', ratio.text)  # the spec as a whole
    assert found is not None and "denominator" in html.unescape(found.group(1))

    p95 = post_form(admin, new, create, rule_fields(name="Slow checkout", **{
        "threshold.metric": "transaction_duration", "threshold.aggregation": "percentile",
        "threshold.percentile": "95", "threshold.threshold": "800"}))
    assert p95.status_code == 303, p95.text
    assert "p95 of transaction_duration over 5 min &gt; 800" in admin.get(create).text

    anomaly = post_form(admin, new, create, {
        "name": "Sales drop", "kind": "anomaly", "severity": "high", "enabled": "on", "anomaly.metric": "transactions",
        "anomaly.baseline": "ewma", "anomaly.direction": "down", "anomaly.window_minutes": "30",
        "anomaly.history": "12", "anomaly.z_threshold": "2.5"})
    assert anomaly.status_code == 303, anomaly.text
    rule = next(r for r in rules_of(alerting_server, shop.id) if r.name == "Sales drop")
    spec = rule.anomaly
    assert spec is not None
    assert (spec.baseline, spec.direction, spec.window_minutes, spec.history, spec.z_threshold, spec.days) == (
        "ewma", "down", 30, 12, 2.5, 28)
    edit = admin.get(f"/rules/{rule.id}").text
    assert 'data-kind="anomaly"' in edit and 'id="rule-anomaly-history" name="anomaly.history" value="12"' in edit
    token = form_token(edit)
    backtest = admin.post(f"/projects/{shop.id}/rules/backtest", data={
        "csrf_token": token, "name": "Sales drop", "kind": "anomaly", "anomaly.metric": "transactions"})
    assert backtest.status_code == 200 and "would not have fired" in text_of(backtest.text)


def test_settings_the_routing_page_has_no_place_for_are_listed_masked() -> None:
    from watchkeeper.alerting.routing import RouteConfig, WebhookConfig
    from watchkeeper.web.routing_pages import ROUTE_FIELDS_SHOWN, extra_settings, masked

    route = RouteConfig.model_validate({"receiver": "x", "group_wait": "45s", "match": {"team": "web"}})
    assert extra_settings(route, ROUTE_FIELDS_SHOWN) == []
    assert extra_settings(route, ROUTE_FIELDS_SHOWN - {"group_wait", "match"}) == [
        ("match", "{'team': 'web'}"), ("group_wait", "45.0")]
    hook = WebhookConfig.model_validate({"url": "https://hooks.example.com/T0/secret?sig=1", "hmac_secret": "k"})
    assert extra_settings(hook, {"send_resolved", "max_alerts"}) == [
        ("url", "https://hooks.example.com/••••••"), ("hmac_secret", "••••••")]
    assert masked("https://api.opsgenie.com/", "api_url") == "https://api.opsgenie.com/"
    assert masked("not a url", "webhook_url") == "••••••"
