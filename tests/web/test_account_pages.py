"""The account page and the admin pages (users, teams, audit log) over HTTP (httpx)."""

from __future__ import annotations

import html
import re

import httpx

from tests.conftest import Server, make_project, make_user
from tests.web.conftest import ADMIN_PASSWORD, form_token, log_in
from tests.web.test_pages import XSS, post_form
from watchkeeper.auth import projects as P
from watchkeeper.auth import teams as T
from watchkeeper.auth import tokens as K
from watchkeeper.auth import users as U
from watchkeeper.auth.audit import AuditEntry, list_entries
from watchkeeper.store.engine import for_writing


def audit_actions(server: Server, limit: int = 20) -> list[str]:
    return [e.action for e in audit_entries(server, limit)]


def audit_entries(server: Server, limit: int = 20) -> list[AuditEntry]:
    with server.runtime.engine.connect() as conn:
        return list_entries(conn, limit=limit)[0]


def user_of(server: Server, email: str) -> U.User:
    with server.runtime.engine.connect() as conn:
        user = U.find_user(conn, email)
    assert user is not None
    return user


def shown_secret(page: str) -> str:
    match = re.search(r'id="(?:new-token|one-time-password)" class="mono" readonly value="([^"]+)"', page)
    assert match, "no secret on the page"
    return html.unescape(match.group(1))


# --- the account page ---------------------------------------------------------------------------------


def test_every_role_has_an_account_page_linked_from_the_shell(server: Server, admin: httpx.Client) -> None:
    for role in ("viewer", "member"):
        _, email = make_user(server, role=role)
        client = log_in(server, email, "password-123")
        projects = client.get("/projects").text
        assert 'href="/account"' in projects and 'href="/admin/users"' not in projects
        page = client.get("/account")
        assert page.status_code == 200 and email in page.text and "Change password" in page.text
        client.close()
    assert 'href="/admin/users"' in admin.get("/projects").text


def test_changing_the_password_needs_the_current_one_and_logs_out_the_other_sessions(
    server: Server, admin: httpx.Client
) -> None:
    _, email = make_user(server, role="viewer")
    client, other = log_in(server, email, "password-123"), log_in(server, email, "password-123")
    wrong = post_form(client, "/account", "/account/password",
                      {"current_password": "not-it-at-all", "new_password": "new-password-9",
                       "repeat_password": "new-password-9"})
    assert wrong.status_code == 422 and "not your current password" in wrong.text
    short = post_form(client, "/account", "/account/password",
                      {"current_password": "password-123", "new_password": "short", "repeat_password": "short"})
    assert short.status_code == 422 and "at least 8 characters" in short.text
    differ = post_form(client, "/account", "/account/password",
                       {"current_password": "password-123", "new_password": "new-password-9",
                        "repeat_password": "new-password-8"})
    assert differ.status_code == 422 and "differ" in differ.text
    assert audit_actions(server) == []

    right = post_form(client, "/account", "/account/password",
                      {"current_password": "password-123", "new_password": "new-password-9",
                       "repeat_password": "new-password-9"})
    assert right.status_code == 303 and right.headers["location"] == "/account?saved=password"
    assert "Password changed" in client.get(right.headers["location"]).text  # this session stays
    assert other.get("/account").status_code == 303  # the other one was logged out
    log_in(server, email, "new-password-9").close()
    [entry] = audit_entries(server)
    assert entry.action == "user.password_change" and entry.actor_email == email
    client.close()
    other.close()


def test_the_time_zone_is_validated_and_used_for_times(server: Server, admin: httpx.Client) -> None:
    unknown = post_form(admin, "/account", "/account/timezone", {"timezone": "Mars/Olympus_Mons"})
    assert unknown.status_code == 422 and "not an IANA time zone name" in unknown.text
    assert 'value="Mars/Olympus_Mons"' in unknown.text  # kept in the field to correct it
    for hostile in ("../../etc/passwd", "x" * 300, "Europe/Paris\x00"):
        assert post_form(admin, "/account", "/account/timezone", {"timezone": hostile}).status_code == 422

    saved = post_form(admin, "/account", "/account/timezone", {"timezone": "Asia/Tokyo"})
    assert saved.status_code == 303
    page = admin.get(saved.headers["location"])
    assert "Time zone saved." in page.text and "times in Asia/Tokyo" in page.text and 'value="Asia/Tokyo"' in page.text
    assert post_form(admin, "/account", "/account/timezone", {"timezone": ""}).status_code == 303
    assert "times in UTC" in admin.get("/account").text  # back to the browser's zone (none sent: UTC)


def test_tokens_are_shown_once_scoped_and_revoked(server: Server, admin: httpx.Client) -> None:
    project, hidden = make_project(server, "Shop"), make_project(server, "Hidden", team="Other team")
    user_id, email = make_user(server, role="member")
    member = log_in(server, email, "password-123")
    account = member.get("/account").text
    assert f'name="project_ids" value="{project.id}"> Shop</label>' in account and "Hidden" not in account

    made = post_form(member, "/account", "/account/tokens",
                     {"name": "CI <deploys>", "read_only": "on", "project_ids": [str(project.id)]})
    assert made.status_code == 200 and "shown only this once" in made.text
    token = shown_secret(made.text)
    assert token.startswith("wk_") and "CI &lt;deploys&gt;" in made.text
    again = member.get("/account").text
    assert token not in again and "read-only; projects: Shop" in again
    me = httpx.get(f"{server.url}/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert me.json()["auth"] == {"via": "token", "token_id": me.json()["auth"]["token_id"], "read_only": True,
                                 "project_ids": [project.id]}

    blank = post_form(member, "/account", "/account/tokens", {"name": "   "})
    assert blank.status_code == 422 and "name: must be 1-200 characters" in blank.text
    wider = post_form(member, "/account", "/account/tokens", {"name": "sneaky", "project_ids": [str(hidden.id)]})
    assert wider.status_code == 422 and f"no project {hidden.id}" in wider.text

    with server.runtime.engine.connect() as conn:
        [summary] = K.list_tokens(conn, user_id)
    revoked = post_form(member, "/account", f"/account/tokens/{summary.id}/revoke", {})
    assert revoked.status_code == 303 and "Token revoked." in member.get(revoked.headers["location"]).text
    assert httpx.get(f"{server.url}/api/v1/me", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    assert post_form(member, "/account", f"/account/tokens/{summary.id}/revoke", {}).status_code == 404
    assert audit_actions(server)[:2] == ["token.revoke", "token.create"]

    admin_token = form_token(admin.get("/account").text)  # someone else's token is not found
    for token_id in (summary.id, 2**40):
        answer = admin.post(f"/account/tokens/{token_id}/revoke", data={"csrf_token": admin_token})
        assert answer.status_code == 404, token_id
    member.close()


def test_account_forms_need_the_csrf_token(server: Server, admin: httpx.Client) -> None:
    forms = [
        ("/account/password", {"current_password": ADMIN_PASSWORD, "new_password": "hijacked-1",
                               "repeat_password": "hijacked-1"}),
        ("/account/timezone", {"timezone": "Asia/Tokyo"}),
        ("/account/tokens", {"name": "stolen"}),
        ("/admin/users", {"email": "intruder@example.com", "role": "admin"}),
        ("/admin/teams", {"name": "Intruders"}),
        ("/admin/users/1/role", {"role": "viewer"}),
        ("/admin/users/1/password", {}),
    ]
    for path, fields in forms:
        for token in ({}, {"csrf_token": "forged"}):
            assert admin.post(path, data={**fields, **token}).status_code == 403, path
    assert audit_actions(server) == []
    assert "times in UTC" in admin.get("/account").text
    log_in(server, server.settings.admin_email, ADMIN_PASSWORD).close()


# --- admin pages --------------------------------------------------------------------------------------


def test_members_and_viewers_are_refused_the_admin_pages(server: Server, admin: httpx.Client) -> None:
    target_id, _ = make_user(server, role="viewer")
    with for_writing(server.runtime.engine).begin() as conn:
        team_id = T.create_team(conn, "Refused", now=0).id
    for role in ("viewer", "member"):
        _, email = make_user(server, role=role)
        client = log_in(server, email, "password-123")
        for path in ("/admin/users", "/admin/teams", "/admin/audit"):
            answer = client.get(path)
            assert answer.status_code == 403 and "Only administrators" in answer.text, path
        token = form_token(client.get("/account").text)
        writes = [
            ("/admin/users", {"email": "made-by-viewer@example.com", "role": "admin"}),
            (f"/admin/users/{target_id}/role", {"role": "admin"}),
            (f"/admin/users/{target_id}/active", {"active": "0"}),
            (f"/admin/users/{target_id}/password", {}),
            ("/admin/teams", {"name": "Mine"}),
            (f"/admin/teams/{team_id}/members/add", {"user_id": str(target_id)}),
        ]
        for path, fields in writes:
            assert client.post(path, data={"csrf_token": token, **fields}).status_code == 403, path
        client.close()
    assert audit_actions(server) == []
    with server.runtime.engine.connect() as conn:
        assert U.find_user(conn, "made-by-viewer@example.com") is None
        target = U.get_user(conn, target_id)
    assert target is not None and (target.role, target.is_active) == ("viewer", True)


def test_an_admin_creates_a_user_who_logs_in_with_the_password_shown_once(
    server: Server, admin: httpx.Client
) -> None:
    made = post_form(admin, "/admin/users", "/admin/users", {"email": "Ann@Example.com", "role": "viewer"})
    assert made.status_code == 200 and "shown only this once" in made.text
    password = shown_secret(made.text)
    assert password not in admin.get("/admin/users").text
    ann = log_in(server, "ann@example.com", password)
    assert ann.get("/admin/users").headers["location"] == "/account?change=required"  # a one-time password
    post_form(ann, "/account", "/account/password",
              {"current_password": password, "new_password": "anns-password-1", "repeat_password": "anns-password-1"})
    assert ann.get("/admin/users").status_code == 403
    ann.close()

    duplicate = post_form(admin, "/admin/users", "/admin/users", {"email": "ann@example.com", "role": "member"})
    assert duplicate.status_code == 422 and "already exists" in duplicate.text
    for bad in ({"email": "", "role": "member"}, {"email": "no-at-sign", "role": "member"},
                {"email": "x@example.com", "role": "superuser"}):
        answer = post_form(admin, "/admin/users", "/admin/users", bad)
        assert answer.status_code == 422 and 'role="alert"' in answer.text, bad
    nul = post_form(admin, "/admin/users", "/admin/users", {"email": "a\x00@b.c", "role": "member"})
    assert nul.status_code == 422 and "may not contain NUL characters" in nul.text
    entry = audit_entries(server)[-1]
    assert (entry.action, entry.details) == ("user.create", {"email": "ann@example.com", "role": "viewer"})


def test_role_change_deactivation_and_password_reset(server: Server, admin: httpx.Client) -> None:
    user_id, email = make_user(server, role="viewer")
    session = log_in(server, email, "password-123")
    assert post_form(admin, "/admin/users", f"/admin/users/{user_id}/role", {"role": "member"}).status_code == 303
    assert user_of(server, email).role == "member"

    reset = post_form(admin, "/admin/users", f"/admin/users/{user_id}/password", {})
    assert reset.status_code == 200 and "New password for" in reset.text
    password = shown_secret(reset.text)
    assert session.get("/account").status_code == 303  # logged out everywhere
    session = log_in(server, email, password)

    off = post_form(admin, "/admin/users", f"/admin/users/{user_id}/active", {"active": "0"})
    assert off.status_code == 303 and not user_of(server, email).is_active
    assert session.get("/account").status_code == 303
    assert "deactivated" in admin.get("/admin/users").text
    assert post_form(admin, "/admin/users", f"/admin/users/{user_id}/active", {"active": "1"}).status_code == 303
    assert user_of(server, email).is_active
    assert post_form(admin, "/admin/users", f"/admin/users/{user_id}/role", {"role": "root"}).status_code == 422
    assert post_form(admin, "/admin/users", "/admin/users/999999/role", {"role": "member"}).status_code == 404
    assert post_form(admin, "/admin/users", f"/admin/users/{2**40}/active", {"active": "0"}).status_code == 404

    admin_id = user_of(server, server.settings.admin_email).id
    last = post_form(admin, "/admin/users", f"/admin/users/{admin_id}/role", {"role": "viewer"})
    assert last.status_code == 422 and "last active admin" in last.text
    assert post_form(admin, "/admin/users", f"/admin/users/{admin_id}/active", {"active": "0"}).status_code == 422
    assert audit_actions(server) == ["user.change", "user.change", "user.password_reset", "user.change"]
    assert all(e.actor_email == server.settings.admin_email for e in audit_entries(server))
    session.close()


def test_teams_members_and_projects(server: Server, admin: httpx.Client) -> None:
    project = make_project(server, "Payments API", team=None)
    user_id, email = make_user(server, role="member", team=None)
    member = log_in(server, email, "password-123")
    assert member.get(f"/projects/{project.id}/issues").status_code == 404

    made = post_form(admin, "/admin/teams", "/admin/teams", {"name": "Pay <ments>"})
    assert made.status_code == 303
    with server.runtime.engine.connect() as conn:
        team = T.find_team(conn, "Pay <ments>")
    assert team is not None
    page = admin.get("/admin/teams").text
    assert "Pay &lt;ments&gt;" in page and "<ments>" not in page
    for path, fields in ((f"/admin/teams/{team.id}/members/add", {"user_id": str(user_id)}),
                         (f"/admin/teams/{team.id}/projects/add", {"project_id": str(project.id)})):
        assert post_form(admin, "/admin/teams", path, fields).status_code == 303
    page = admin.get("/admin/teams").text
    section = page.split(f'id="team-{team.id}"')[1].split("</section>")[0]
    assert email in section and "Payments API" in section
    assert member.get(f"/projects/{project.id}/issues").status_code == 200  # the team's project is theirs now

    assert post_form(admin, "/admin/teams", f"/admin/teams/{team.id}/members/remove",
                     {"user_id": str(user_id)}).status_code == 303
    assert member.get(f"/projects/{project.id}/issues").status_code == 404

    duplicate = post_form(admin, "/admin/teams", "/admin/teams", {"name": "Pay <ments>"})
    assert duplicate.status_code == 422 and "already exists" in duplicate.text
    blank = post_form(admin, "/admin/teams", "/admin/teams", {"name": "  "})
    assert blank.status_code == 422 and "name: must be 1-100 characters" in blank.text
    nobody = post_form(admin, "/admin/teams", f"/admin/teams/{team.id}/members/add", {"user_id": "x"})
    assert nobody.status_code == 422 and "Choose a user" in nobody.text
    for missing in (999999, 2**40):
        assert post_form(admin, "/admin/teams", f"/admin/teams/{missing}/members/add",
                         {"user_id": str(user_id)}).status_code == 404
    nul = post_form(admin, "/admin/teams", "/admin/teams", {"name": "a\x00b"})
    assert nul.status_code == 422 and "NUL" in nul.text
    assert post_form(admin, "/admin/teams", f"/admin/teams/{team.id}/owners/add", {}).status_code == 404
    assert audit_actions(server) == ["team.member_remove", "team.project_add", "team.member_add", "team.create"]

    taken = post_form(admin, "/admin/teams", "/admin/teams", {"name": "Taken"})
    assert taken.status_code == 303
    clash = post_form(admin, "/admin/teams", f"/admin/teams/{team.id}/rename", {"name": "Taken"})
    assert clash.status_code == 422 and "already exists" in clash.text
    renamed = post_form(admin, "/admin/teams", f"/admin/teams/{team.id}/rename", {"name": "Payments"})
    assert renamed.status_code == 303
    with server.runtime.engine.connect() as conn:
        assert T.get_team(conn, team.id).name == "Payments"  # type: ignore[union-attr]
    assert post_form(admin, "/admin/teams", f"/admin/teams/{2**40}/rename", {"name": "X"}).status_code == 404
    assert post_form(admin, "/admin/teams", f"/admin/teams/{team.id}/delete", {}).status_code == 303
    with server.runtime.engine.connect() as conn:
        assert T.get_team(conn, team.id) is None
        assert P.get_project(conn, project.id) is not None  # a team's projects outlive it
    assert post_form(admin, "/admin/teams", f"/admin/teams/{team.id}/delete", {}).status_code == 404
    assert audit_actions(server)[:3] == ["team.delete", "team.rename", "team.create"]
    member.close()


def test_the_audit_log_is_newest_first_in_cursor_pages_and_escaped(server: Server, admin: httpx.Client) -> None:
    for i in range(55):
        assert post_form(admin, "/admin/teams", "/admin/teams", {"name": f"{XSS} {i:02}"}).status_code == 303
    first = admin.get("/admin/audit")
    assert first.status_code == 200
    assert first.text.count("team.create") == 50 and XSS not in first.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt; 54" in first.text
    assert first.text.index(" 54") < first.text.index(" 53")  # newest first
    assert server.settings.admin_email in first.text
    older = re.search(r'href="(/admin/audit\?cursor=[^"]+)" rel="next"', first.text)
    assert older
    second = admin.get(html.unescape(older.group(1)))
    assert second.text.count("team.create") == 5 and " 00" in second.text and 'rel="next"' not in second.text
    for cursor in ("garbage", "WyJ4Il0", "\x00"):
        assert admin.get("/admin/audit", params={"cursor": cursor}).status_code == 400


def test_a_one_time_password_must_be_changed_at_first_login_and_then_stops_working(
    server: Server, admin: httpx.Client
) -> None:
    made = post_form(admin, "/admin/users", "/admin/users", {"email": "newbie@example.com", "role": "member"})
    one_time = shown_secret(made.text)
    newbie = log_in(server, "newbie@example.com", one_time)
    # every page leads to the password form, and the API answers 403 to the session
    for path in ("/projects", "/admin/audit", "/alerting/alerts"):
        answer = newbie.get(path)
        assert answer.status_code == 303 and answer.headers["location"] == "/account?change=required", path
    assert newbie.get("/api/v1/projects").status_code == 403
    account = newbie.get("/account?change=required")
    assert account.status_code == 200 and "one-time password" in account.text
    changed = post_form(newbie, "/account", "/account/password", {
        "current_password": one_time, "new_password": "my-own-password-1", "repeat_password": "my-own-password-1"})
    assert changed.status_code == 303
    assert newbie.get("/projects").status_code == 200 and newbie.get("/api/v1/projects").status_code == 200
    assert "one-time password" not in newbie.get("/account").text
    newbie.close()
    # the one-time password no longer logs in; the new one does
    with httpx.Client(base_url=server.url) as other:
        page = other.get("/login")
        refused = other.post("/login", data={"email": "newbie@example.com", "password": one_time,
                                             "csrf_token": form_token(page.text), "next": "/projects"})
        assert refused.status_code == 401
    log_in(server, "newbie@example.com", "my-own-password-1").close()


def test_the_bootstrap_admins_generated_password_is_one_time_but_a_given_one_is_not(server: Server) -> None:
    from watchkeeper.app import bootstrap_admin

    settings = server.settings.model_copy(update={"admin_password": None})
    generated = bootstrap_admin(server.runtime.engine, settings, server.runtime.clock)
    assert generated is not None
    client = log_in(server, settings.admin_email, generated)
    assert client.get("/projects").headers["location"] == "/account?change=required"
    client.close()
