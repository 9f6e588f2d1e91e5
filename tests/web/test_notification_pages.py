"""Channels and routes edited in the web UI (httpx on the real server, the tree in the database): a fresh
install leads the admin to add a channel, the forms show errors at the field and keep the input, secrets
stay masked and kept, and with a routing file the pages are read-only and say where the tree comes from.
The same in a real browser, with screenshots: tests/web/test_notification_browser.py."""

from __future__ import annotations

import html
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.alerting.receivers import HttpReceiver
from tests.conftest import Server, make_user, run_server
from tests.web.conftest import ADMIN_PASSWORD, ensure_admin, log_in
from tests.web.test_alerting_pages import routing_file, text_of, wait_until
from tests.web.test_pages import post_form
from watchkeeper.alerting.routing_store import get_receiver, stored_tree
from watchkeeper.config import AlertingSettings, Settings

TOKEN_PATH = "/T0/B0/webhook-token-secret"


@pytest.fixture
def admin(fast_server: Server) -> Iterator[httpx.Client]:
    ensure_admin(fast_server)
    client = log_in(fast_server, fast_server.settings.admin_email, ADMIN_PASSWORD)
    yield client
    client.close()


def webhook_fields(name: str, url: str, **extra: str) -> dict[str, str]:
    return {"name": name, "kind": "webhook", "webhook.url": url, "webhook.send_resolved": "on",
            "webhook.max_alerts": "0", **extra}


def test_a_fresh_install_leads_the_admin_to_add_a_channel(fast_server: Server, admin: httpx.Client,
                                                          receiver: HttpReceiver) -> None:
    projects = admin.get("/projects").text
    assert 'class="setup-banner"' in projects and 'href="/alerting/channels/new"' in projects
    channels = text_of(admin.get("/alerting/channels").text)
    assert "No alert reaches a person yet" in channels and "Add a channel" in channels
    _, email = make_user(fast_server, role="member")
    member = log_in(fast_server, email, "password-123")
    assert "setup-banner" not in member.get("/projects").text  # only an admin can do something about it
    member.close()

    added = post_form(admin, "/alerting/channels/new", "/alerting/channels", webhook_fields("ops", receiver.url))
    assert added.status_code == 303, added.text
    assert "No alert reaches a person yet" not in admin.get("/alerting/channels").text
    # A channel no route uses still reaches no one: the banner now leads to the routing tree.
    projects = admin.get("/projects").text
    assert "no route sends them to a channel" in projects and 'href="/alerting/routing"' in projects
    root = _root_id(fast_server)
    routed = post_form(admin, f"/alerting/routes/new?parent={root}", "/alerting/routes",
                       {"parent_id": str(root), "receiver": "ops"})
    assert routed.status_code == 303, routed.text
    assert "setup-banner" not in admin.get("/projects").text


def test_channels_are_added_edited_and_deleted_through_the_form(fast_server: Server, admin: httpx.Client,
                                                                receiver: HttpReceiver) -> None:
    form = admin.get("/alerting/channels/new").text
    for kind in ("webhook", "email", "slack", "pagerduty", "opsgenie", "discord", "teams", "twilio", "log"):
        assert f'data-kind="{kind}"' in form, kind
    assert 'name="email.auth_password"' in form and 'name="email.smarthost"' in form

    # Errors at the field, the input kept.
    bad = post_form(admin, "/alerting/channels/new", "/alerting/channels",
                    {"name": "mail", "kind": "email", "email.to": "ops@example.com", "email.smarthost": "mail-host"})
    assert bad.status_code == 422
    assert 'id="rule-email-smarthost-error"' in bad.text and "must be host:port" in html.unescape(bad.text)
    assert 'value="ops@example.com"' in bad.text and 'value="mail"' in bad.text
    missing = post_form(admin, "/alerting/channels/new", "/alerting/channels", webhook_fields("hook", ""))
    assert missing.status_code == 422 and 'id="rule-webhook-url-error"' in missing.text
    taken = post_form(admin, "/alerting/channels/new", "/alerting/channels", webhook_fields("log", receiver.url))
    assert taken.status_code == 422 and "exists already" in html.unescape(taken.text)

    url = f"{receiver.url}{TOKEN_PATH}"
    added = post_form(admin, "/alerting/channels/new", "/alerting/channels",
                      webhook_fields("hook", url, **{"webhook.hmac_secret": "sign-me"}))
    assert added.status_code == 303 and added.headers["location"] == "/alerting/channels?done=channel-added"
    page = admin.get("/alerting/channels").text
    assert "Channel added." in page or "hook" in page
    assert TOKEN_PATH not in page and "sign-me" not in page

    edit = admin.get("/alerting/channels/hook/edit").text
    assert TOKEN_PATH not in edit and "sign-me" not in edit and "••••••" in edit
    # Saved with the masked values as shown and one change: secrets kept.
    saved = post_form(admin, "/alerting/channels/hook/edit", "/alerting/channels/hook/edit",
                      webhook_fields("hook", f"{receiver.url}/••••••", **{"webhook.hmac_secret": "••••••",
                                                                          "webhook.max_alerts": "7"}))
    assert saved.status_code == 303, saved.text
    edited = post_form(admin, "/alerting/channels/hook/edit", "/alerting/channels/hook/edit",
                       webhook_fields("hook", "https://elsewhere.example.com/••••••"))
    assert edited.status_code == 422 and 'id="rule-webhook-url-error"' in edited.text
    assert "still holds the hidden part" in html.unescape(edited.text)
    with fast_server.runtime.engine.connect() as conn:
        stored = get_receiver(conn, "hook")
    assert stored is not None and stored.webhook_configs[0].url == url and stored.webhook_configs[0].max_alerts == 7
    assert stored.webhook_configs[0].hmac_secret is not None
    assert stored.webhook_configs[0].hmac_secret.get_secret_value() == "sign-me"

    # The test button delivers to the local receiver.
    post_form(admin, "/alerting/channels", "/alerting/channels/hook/test", {})
    (request,) = receiver.wait_for(1)
    assert request.path == TOKEN_PATH and request.json()["alerts"][0]["labels"]["alertname"] == "TestNotification"
    wait_until(lambda: "badge delivery sent" in admin.get("/alerting/channels").text)

    # In use by a route: not deleted, and the page says why.
    root = _root_id(fast_server)
    post_form(admin, "/alerting/routing", f"/alerting/routes/{root}",
              {"receiver": "hook", "group_by": "alertname"})
    refused = post_form(admin, "/alerting/channels", "/alerting/channels/hook/delete", {})
    assert refused.status_code == 409 and "used by route" in html.unescape(refused.text)
    post_form(admin, "/alerting/routing", f"/alerting/routes/{root}", {"receiver": "log"})
    deleted = post_form(admin, "/alerting/channels", "/alerting/channels/hook/delete", {})
    assert deleted.status_code == 303
    after = admin.get(deleted.headers["location"]).text
    assert "Channel deleted." in after and 'aria-label="Edit hook"' not in after


def _root_id(server: Server) -> int:
    with server.runtime.engine.connect() as conn:
        return stored_tree(conn).id


def test_routes_are_added_edited_and_deleted_through_the_form(fast_server: Server, admin: httpx.Client,
                                                              receiver: HttpReceiver) -> None:
    post_form(admin, "/alerting/channels/new", "/alerting/channels", webhook_fields("pager", receiver.url))
    root = _root_id(fast_server)
    routing = admin.get("/alerting/routing").text
    assert f'href="/alerting/routes/new?parent={root}"' in routing and f'href="/alerting/routes/{root}"' in routing

    new = f"/alerting/routes/new?parent={root}"
    bad = post_form(admin, new, "/alerting/routes", {"parent_id": str(root), "matchers": 'severity="critical"\nteam=~(',
                                                     "receiver": "pager", "group_wait": "soon"})
    assert bad.status_code == 422
    error = html.unescape(bad.text.split('id="route-matchers-error">')[1].split("</p>")[0])
    assert error.startswith("team=~(: bad regular expression")
    assert 'id="route-group_wait-error"' in bad.text and "team=~(" in html.unescape(bad.text)  # input kept
    nobody = post_form(admin, new, "/alerting/routes", {"parent_id": str(root), "receiver": "nobody"})
    assert nobody.status_code == 422 and 'id="route-receiver-error"' in nobody.text

    added = post_form(admin, new, "/alerting/routes", {"parent_id": str(root), "matchers": 'severity="critical"',
                                                       "receiver": "pager", "group_wait": "10s", "continue": "on"})
    assert added.status_code == 303, added.text
    with fast_server.runtime.engine.connect() as conn:
        (child,) = stored_tree(conn).routes
    assert child.settings.receiver == "pager" and child.settings.continue_ and child.settings.group_wait == 10
    text = text_of(admin.get(added.headers["location"]).text)
    assert "Route added." in text and 'severity="critical"' in text and "group wait 10s" in text
    found = text_of(admin.get("/alerting/routing", params={"labels": "severity=critical"}).text)
    assert "1 route takes" in found and "pager" in found.split("1 route takes")[1][:300]

    edited = post_form(admin, f"/alerting/routes/{child.id}", f"/alerting/routes/{child.id}",
                       {"matchers": 'severity=~"critical|high"', "receiver": "", "repeat_interval": "1h"})
    assert edited.status_code == 303, edited.text
    with fast_server.runtime.engine.connect() as conn:
        (child,) = stored_tree(conn).routes
    assert child.settings.receiver is None and child.settings.repeat_interval == 3600 and not child.settings.continue_
    root_form = admin.get(f"/alerting/routes/{root}").text
    assert 'name="matchers"' not in root_form  # the root matches every alert
    deleted = post_form(admin, "/alerting/routing", f"/alerting/routes/{child.id}/delete", {})
    assert deleted.status_code == 303
    assert post_form(admin, "/alerting/routing", f"/alerting/routes/{root}/delete", {}).status_code == 409
    with fast_server.runtime.engine.connect() as conn:
        assert stored_tree(conn).routes == []


def test_with_a_routing_file_the_pages_are_read_only_and_say_so(settings: Settings, tmp_path: Path,
                                                                receiver: HttpReceiver) -> None:
    path = routing_file(tmp_path, receiver.url)
    alerting = AlertingSettings(config_file=path, evaluation_interval_seconds=0.1, dispatch_interval_seconds=0.1)
    with run_server(settings.model_copy(update={"alerting": alerting})) as server:
        ensure_admin(server)
        admin = log_in(server, server.settings.admin_email, ADMIN_PASSWORD)
        for page_path in ("/alerting/routing", "/alerting/channels"):
            page = admin.get(page_path).text
            assert "source-note" in page and str(path) in page and "read-only" in page, page_path
            assert "/alerting/routes/new" not in page and "/edit" not in page and "Add a channel" not in page
        assert "setup-banner" not in admin.get("/projects").text
        assert admin.get("/alerting/channels/new").status_code == 409
        refused = post_form(admin, "/alerting/channels", "/alerting/channels", webhook_fields("x", receiver.url))
        assert refused.status_code == 409 and str(path) in html.unescape(refused.text)
        assert post_form(admin, "/alerting/channels", "/alerting/routes/1/delete", {}).status_code == 409
        # A bad change to the file is shown, and the tree in use stays.
        path.write_text("route: {receiver: nobody}\nreceivers: [{name: log}]\n")
        page = wait_until(lambda: (t := admin.get("/alerting/routing").text) and "not taken" in t and t)
        assert "no receiver named &#39;nobody&#39;" in page and "pager" in page
        admin.close()
