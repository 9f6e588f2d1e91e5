"""Every form says what is wrong in human words at the field and keeps the input: no schema pattern
(`^[a-z0-9]…`), no internal field name (`must be after starts_at`, `team_id: …`)."""

from __future__ import annotations

import re

import httpx

from tests.conftest import ProjectFixture, Server
from tests.web.conftest import form_token
from tests.web.test_pages import post_form
from tests.web.test_project_pages import field_error
from tests.web.test_uptime_pages import create_http

INTERNALS = re.compile(r"\^\[|\]\*\$|starts_at|ends_at|team_id:|String should match|Value error")


def assert_human(page: str) -> None:
    errors = re.findall(r'<p class="(?:field-error|error)"[^>]*>(.*?)</p>', page, re.S)
    assert errors, "no error shown"
    for error in errors:
        assert not INTERNALS.search(error), error


def test_the_monitor_form_explains_a_bad_slug_and_keeps_it(admin: httpx.Client, project: ProjectFixture) -> None:
    answer = create_http(admin, project.id, "http://127.0.0.1:9/", slug="Shop API!")
    assert answer.status_code == 422
    assert field_error(answer.text, "slug") == (
        "use lower-case letters, digits, - and _, starting with a letter or digit")
    assert 'value="Shop API!"' in answer.text
    assert_human(answer.text)


def test_the_status_page_form_explains_a_bad_logo_address(admin: httpx.Client, project: ProjectFixture) -> None:
    listing = f"/projects/{project.id}/status-pages"
    answer = post_form(admin, listing, listing, {"slug": "acme", "title": "Acme", "logo_url": "ftp://x/logo.png"})
    assert answer.status_code == 422 and "an address starting with https:// or http://" in answer.text
    assert 'value="ftp://x/logo.png"' in answer.text
    assert_human(answer.text)


def test_the_maintenance_form_says_the_end_must_be_after_the_start(
    admin: httpx.Client, project: ProjectFixture
) -> None:
    listing = f"/projects/{project.id}/status-pages"
    answer = post_form(admin, listing, f"/projects/{project.id}/maintenance", {
        "title": "Upgrade", "kind": "once", "starts": "2030-01-02T10:00", "ends": "2030-01-02T09:00"})
    assert answer.status_code == 422
    assert field_error(answer.text, "ends") == "must be after the start"
    assert 'value="2030-01-02T10:00"' in answer.text and 'value="Upgrade"' in answer.text
    assert_human(answer.text)


def test_the_schedule_form_explains_a_bad_hand_off_time(server: Server, admin: httpx.Client) -> None:
    token = form_token(admin.get("/oncall/new").text)
    answer = admin.post("/oncall", data={
        "csrf_token": token, "name": "Ops", "time_zone": "Europe/Berlin", "rotation_0": "daily",
        "length_days_0": "1", "handoff_0": "9am", "start_date_0": "2026-03-20", "users_0": server.settings.admin_email})
    assert answer.status_code == 422
    assert "layer 1, hand-off time: a time of day like 09:00" in answer.text and 'value="9am"' in answer.text
    assert_human(answer.text)


def test_the_rule_form_explains_a_bad_label_name_and_keeps_it(admin: httpx.Client, project: ProjectFixture) -> None:
    from tests.web.test_alerting_pages import rule_fields

    fields = rule_fields(labels="team name=payments")
    answer = post_form(admin, f"/projects/{project.id}/rules/new", f"/projects/{project.id}/rules", fields)
    assert answer.status_code == 422
    assert "use letters, digits and _, not starting with a digit" in answer.text and "team name=payments" in answer.text
    assert_human(answer.text)


def test_the_monitor_page_offers_no_environment_filter_it_would_ignore(
    admin: httpx.Client, project: ProjectFixture
) -> None:
    from tests.web.test_uptime_pages import monitor_id_of

    monitor_id = monitor_id_of(create_http(admin, project.id, "http://127.0.0.1:9/"))
    page = admin.get(f"/monitors/{monitor_id}?range=7d").text
    assert 'id="filterbar"' in page and 'name="range"' in page  # the time range stays: it drives the charts
    assert 'name="environment"' not in page and "Environment" not in page


def test_the_override_form_says_the_end_must_be_after_the_start_and_keeps_the_input(
    server: Server, admin: httpx.Client
) -> None:
    token = form_token(admin.get("/oncall/new").text)
    created = admin.post("/oncall", data={
        "csrf_token": token, "name": "Ops", "time_zone": "Europe/Berlin", "rotation_0": "daily",
        "length_days_0": "1", "handoff_0": "09:00", "start_date_0": "2026-03-20",
        "users_0": server.settings.admin_email})
    url = created.headers["location"]
    answer = admin.post(url + "/overrides", data={"csrf_token": token, "user_id": "1",
                                                  "starts_at": "2026-03-27 12:00", "ends_at": "2026-03-27 09:00"})
    assert answer.status_code == 422
    assert field_error(answer.text, "ends_at") == "must be after the start"
    assert 'value="2026-03-27 12:00"' in answer.text and "On call now" in answer.text  # the page, not an error page
    bad_date = admin.post(url + "/overrides", data={"csrf_token": token, "user_id": "1",
                                                    "starts_at": "27/03/2026", "ends_at": "2026-03-27 09:00"})
    assert field_error(bad_date.text, "starts_at") == "a date and time like 2026-11-20 08:00"
    assert_human(answer.text)
    ok = admin.post(url + "/overrides", data={"csrf_token": token, "user_id": "1",
                                              "starts_at": "2026-03-27 09:00", "ends_at": "2026-03-27 12:00"})
    assert ok.status_code == 303
