"""Projects over HTTP: names unique within a team, the settings form (errors at the field, input kept),
deleting a project, and what a member in no team is told."""

from __future__ import annotations

import html
import re

import httpx

from tests.conftest import Server, make_project, make_user
from tests.web.conftest import form_token, log_in
from tests.web.test_pages import post_form
from watchkeeper.auth import projects as P


def field_error(page: str, name: str) -> str:
    """The error shown at a field (the one way every form shows them)."""
    match = re.search(rf'<p class="field-error" id="e-{name}">([^<]*)</p>', page)
    assert match, f"no error at the field {name}"
    return html.unescape(match.group(1))


def test_a_team_cannot_have_two_projects_of_one_name_and_the_switcher_tells_same_names_apart(
    server: Server, admin: httpx.Client, api: httpx.Client
) -> None:
    teams = {name: api.post("/api/v1/teams", json={"name": name}).json()["id"] for name in ("Payments", "Search")}
    first = api.post("/api/v1/projects", json={"name": "Shop", "team_id": teams["Payments"]})
    assert first.status_code == 201
    again = api.post("/api/v1/projects", json={"name": "shop", "team_id": teams["Payments"]})
    assert again.status_code == 422 and "team Payments already has a project called" in again.json()["detail"]
    assert api.post("/api/v1/projects", json={"name": "Shop", "team_id": teams["Search"]}).status_code == 201
    other = api.post("/api/v1/projects", json={"name": "Cart", "team_id": teams["Payments"]}).json()
    renamed = api.patch(f"/api/v1/projects/{other['id']}", json={"name": "Shop"})
    assert renamed.status_code == 422 and "already has a project" in renamed.json()["detail"]

    page = post_form(admin, "/projects/new", "/projects", {"name": "Shop", "team_id": str(teams["Payments"])})
    assert page.status_code == 422
    assert "already has a project called" in field_error(page.text, "name") and 'value="Shop"' in page.text
    switcher = admin.get("/projects").text.split('<details class="menu switcher">')[1].split("</details>")[0]
    assert 'Shop <span class="muted switcher-team">Payments</span>' in switcher
    assert 'Shop <span class="muted switcher-team">Search</span>' in switcher


def test_the_settings_form_shows_each_error_at_its_field_and_keeps_the_input(
    server: Server, admin: httpx.Client
) -> None:
    project = make_project(server, "Backend")
    path = f"/projects/{project.id}/settings"
    answer = post_form(admin, path, path, {
        "name": "Backend 2", "platform": "python", "retention_days": "forever", "events_per_minute": "-3",
        "events_per_hour": "", "sensitive_fields": "iban\ntax_id", "safe_fields": "", "scrub_data": "on"})
    assert answer.status_code == 422
    assert field_error(answer.text, "retention_days") == "a whole number from 1 to 3,650, or empty"
    assert field_error(answer.text, "events_per_minute").startswith("a whole number from 1 to ")
    assert "See the fields marked below" in answer.text
    for kept in ('value="Backend 2"', 'value="forever"', 'value="-3"', "iban\ntax_id"):
        assert kept in answer.text, kept
    assert 'name="scrub_ip_addresses">' in answer.text  # unticked stays unticked
    with server.runtime.engine.connect() as conn:
        assert P.get_project(conn, project.id).name == "Backend"  # type: ignore[union-attr]
    saved = post_form(admin, path, path, {"name": "Backend 2", "retention_days": "30", "scrub_data": "on"})
    assert saved.status_code == 303
    with server.runtime.engine.connect() as conn:
        stored = P.get_project(conn, project.id)
    assert stored is not None and (stored.name, stored.retention_days) == ("Backend 2", 30)


def test_an_admin_deletes_a_project_by_typing_its_name_and_a_member_cannot(server: Server, admin: httpx.Client) -> None:
    project = make_project(server, "Old shop")
    path = f"/projects/{project.id}/settings"
    assert "Delete project" in admin.get(path).text
    wrong = post_form(admin, path, f"/projects/{project.id}/delete", {"confirm_name": "old shop"})
    assert wrong.status_code == 422
    assert field_error(wrong.text, "confirm_name") == "type the project's name exactly as shown"
    _, email = make_user(server, role="member")
    member = log_in(server, email, "password-123")
    assert "Delete project" not in member.get(path).text
    refused = member.post(f"/projects/{project.id}/delete",
                          data={"csrf_token": form_token(member.get(path).text), "confirm_name": "Old shop"})
    assert refused.status_code == 403
    done = post_form(admin, path, f"/projects/{project.id}/delete", {"confirm_name": "Old shop"})
    assert done.status_code == 303 and done.headers["location"].startswith("/projects?deleted=")
    assert "Project “Old shop” deleted." in admin.get(done.headers["location"]).text
    assert admin.get(path).status_code == 404
    with server.runtime.engine.connect() as conn:
        assert P.get_project(conn, project.id) is None


def test_a_member_in_no_team_is_told_who_can_add_them_instead_of_a_form_that_fails(
    server: Server, admin: httpx.Client
) -> None:
    _, email = make_user(server, role="member", team=None)
    member = log_in(server, email, "password-123")
    listing = member.get("/projects").text
    assert "You are in no team yet" in listing and server.settings.admin_email in listing
    assert 'href="/projects/new"' not in listing
    new = member.get("/projects/new").text
    assert "You are in no team yet" in new and 'action="/projects"' not in new
    assert "team_id" not in new
