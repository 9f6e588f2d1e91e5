"""Every scrubbing switch of a project applies to every field it names, with events from the real
sentry-sdk carrying the data in the user, extra, request headers, cookies and query, and breadcrumbs."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest
import sentry_sdk
from sqlalchemy import select

from tests.conftest import ProjectFixture, Server
from tests.errors.test_ingest_e2e import capture, issues_of, sdk, stored_event
from watchkeeper.errors.tables import events, issue_tags
from watchkeeper.lib.blobs import unpack_document

# Built from pieces so that no source line the SDK sends as context carries them whole.
EMAIL = "jane.doe" + "@customer-mail.example"
IP = "203.0.113" + ".57"
ANONYMISED_IP = "203.0.113.0"
IBAN = "DE89" + "370400440532013000"
CONTACT = "ops" + "@partner-mail.example"  # under the key "contact", listed as a safe field below

PLACES = ("user", "extra", "headers", "cookies", "query", "breadcrumbs", "title")


def _lookup_failure() -> None:
    raise LookupError("no account for " + EMAIL + " from " + IP)


def send_event(project: ProjectFixture) -> str:
    """One error event from the real SDK with the e-mail, IP, IBAN and safe contact in every place."""

    def add_request(event: dict[str, Any], hint: dict[str, Any]) -> dict[str, Any]:
        event["request"] = {
            "method": "POST",
            "url": "https://shop.example/checkout",
            "query_string": f"email={EMAIL}&from={IP}&iban={IBAN}&contact={CONTACT}&page=2",
            "headers": {"X-Customer": EMAIL, "X-Forwarded-For": IP, "X-Iban": IBAN, "Contact": CONTACT},
            "cookies": {"customer": EMAIL, "peer": IP, "iban": IBAN, "contact": CONTACT},
        }
        return event

    with sdk(project), sentry_sdk.new_scope() as scope:
        scope.add_event_processor(add_request)
        scope.set_user({"id": "42", "email": EMAIL, "ip_address": IP, "iban": IBAN, "contact": CONTACT})
        scope.set_extra("customer", EMAIL)
        scope.set_extra("peer", f"connected from {IP}")
        scope.set_extra("iban", IBAN)
        scope.set_extra("contact", CONTACT)
        sentry_sdk.add_breadcrumb(
            category="auth", message=f"login {EMAIL} from {IP}", data={"iban": IBAN, "contact": CONTACT}
        )
        return capture(_lookup_failure)


def places(event: dict[str, Any], title: str) -> dict[str, str]:
    request = event["request"]
    return {
        "user": orjson.dumps(event["user"]).decode(),
        "extra": orjson.dumps(event["extra"]).decode(),
        "headers": orjson.dumps(request["headers"]).decode(),
        "cookies": orjson.dumps(request.get("cookies")).decode(),
        "query": orjson.dumps(request["query_string"]).decode(),
        "breadcrumbs": orjson.dumps(event["breadcrumbs"]).decode(),
        "title": title,
    }


def where(value: str, found: dict[str, str]) -> set[str]:
    return {place for place, text in found.items() if value in text}


# (switches, where the e-mail, the IP, the IBAN and the safe contact are expected to survive)
SWITCHES = {
    "scrub_data and IPs (the defaults)": (
        {"scrub_data": True, "scrub_ip_addresses": True},
        set(),
        set(),
        {"user", "extra", "headers", "query", "breadcrumbs"},
    ),
    "nothing": ({"scrub_data": False, "scrub_ip_addresses": False}, set(PLACES), set(PLACES), None),
    "IPs only": (
        {"scrub_data": False, "scrub_ip_addresses": True},
        set(PLACES),
        set(),
        None,
    ),
    "scrub_data only": (
        {"scrub_data": True, "scrub_ip_addresses": False},
        set(),
        {"user", "extra", "headers", "query", "breadcrumbs", "title"},
        None,
    ),
    "a sensitive field alone": (
        {"scrub_data": False, "scrub_ip_addresses": False, "sensitive_fields": ["iban"]},
        set(PLACES),
        set(PLACES),
        set(),
    ),
}


@pytest.mark.parametrize("name", list(SWITCHES))
def test_each_switch_applies_to_every_field_it_names(
    server: Server, project: ProjectFixture, api: httpx.Client, name: str
) -> None:
    switches, email_kept, ip_kept, iban_kept = SWITCHES[name]
    assert api.patch(f"/api/v1/projects/{project.id}", json={"scrubbing": switches}).status_code == 200
    event_id = send_event(project)
    event = stored_event(api, project, event_id)
    (issue,) = issues_of(api, project)
    found = places(event, issue["title"])
    # The SDK did send each value everywhere: what is missing was scrubbed by the server.
    assert where(EMAIL, found) == email_kept
    assert where(IP, found) == ip_kept
    if iban_kept is not None:
        assert where(IBAN, found) == iban_kept
    if switches["scrub_data"]:
        assert event["user"]["email"] == "[email]"
        assert set(event["request"]["cookies"].values()) == {"[Filtered]"}
    else:
        assert event["user"]["email"] == EMAIL
    if switches["scrub_ip_addresses"]:
        assert event["user"]["ip_address"] == ANONYMISED_IP
        assert ANONYMISED_IP in found["extra"] and ANONYMISED_IP in found["breadcrumbs"]
    # Nor is anything scrubbed kept beside the event: its columns, its tags, the issue's tags.
    with server.runtime.engine.connect() as conn:
        (row,) = conn.execute(select(events).where(events.c.project_id == project.id))
        tag_values = [r.value for r in conn.execute(select(issue_tags.c.value))]
    columns = orjson.dumps([row.title, row.user_key]).decode() + " ".join(tag_values)
    raw = orjson.dumps(unpack_document(row.data)).decode() + columns
    for value, kept in ((EMAIL, email_kept), (IP, ip_kept)):
        assert (value in raw) == bool(kept), (value, name)
    # The user tag names the user by a value that survived, never by a placeholder.
    assert row.user_key == "id:42"


def test_safe_fields_keep_what_they_name_wherever_it_is(
    server: Server, project: ProjectFixture, api: httpx.Client
) -> None:
    switches = {"scrub_data": True, "scrub_ip_addresses": True, "safe_fields": ["contact"]}
    assert api.patch(f"/api/v1/projects/{project.id}", json={"scrubbing": switches}).status_code == 200
    event = stored_event(api, project, send_event(project))
    (issue,) = issues_of(api, project)
    found = places(event, issue["title"])
    assert where(CONTACT, found) == {"user", "extra", "headers", "cookies", "query", "breadcrumbs"}
    assert where(EMAIL, found) == set()
