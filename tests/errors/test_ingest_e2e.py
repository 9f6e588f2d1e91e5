"""End to end with the real sentry-sdk 2.x: what an application sends is stored, scrubbed and grouped."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import orjson
import sentry_sdk
from sentry_sdk.scrubber import EventScrubber
from sqlalchemy import select

from tests.conftest import ProjectFixture, Server
from watchkeeper.errors.tables import attachments, events, transactions
from watchkeeper.lib.blobs import unpack_document

# Kept far from the code that raises: the SDK sends source lines around each frame, and these must
# reach the server only through frame variables. The SDK's own scrubber is turned off below so that
# what is proven is the server's scrubbing.
SECRET_PASSWORD = "hunter2-" + "correct-horse"
SECRET_API_KEY = "sk_live_" + "51HqZxK9aBcDeFgHiJkLmNo"
SECRET_EMAIL = "jane.doe" + "@customer-mail.example"
SECRET_CARD = "4111" + " 1111 1111 " + "1111"
SECRETS = (SECRET_PASSWORD, SECRET_API_KEY, SECRET_EMAIL, SECRET_CARD, SECRET_CARD.replace(" ", ""))


@contextmanager
def sdk(project: ProjectFixture, **options: Any) -> Iterator[sentry_sdk.Client]:
    client = sentry_sdk.Client(
        dsn=project.dsn,
        event_scrubber=EventScrubber(denylist=[], pii_denylist=[]),
        default_integrations=False,
        **options,
    )
    with sentry_sdk.new_scope() as scope:
        scope.set_client(client)
        yield client
    client.flush(timeout=10)
    client.close(timeout=10)


def capture(function: Callable[[], object]) -> str:
    try:
        function()
    except Exception:
        event_id = sentry_sdk.capture_exception()
        assert event_id is not None
        return event_id
    raise AssertionError("the function did not raise")


def issues_of(api: httpx.Client, project: ProjectFixture) -> list[dict[str, Any]]:
    response = api.get(f"/api/v1/projects/{project.id}/issues", params={"status": "all"})
    assert response.status_code == 200
    return response.json()["issues"]  # type: ignore[no-any-return]


def stored_event(api: httpx.Client, project: ProjectFixture, event_id: str) -> dict[str, Any]:
    response = api.get(f"/api/v1/projects/{project.id}/events/{event_id}")
    assert response.status_code == 200, response.text
    return response.json()["data"]  # type: ignore[no-any-return]


# --- errors -------------------------------------------------------------------------------------------


class PaymentDeclined(Exception):
    pass


def _charge() -> None:
    try:
        {}["card"]
    except KeyError as exc:
        raise PaymentDeclined("the bank said no") from exc


def test_a_chained_exception_is_stored_with_both_exceptions(
    server: Server, project: ProjectFixture, api: httpx.Client
) -> None:
    with sdk(project):
        event_id = capture(_charge)
    event = stored_event(api, project, event_id)
    chain = [(value["type"], value["value"]) for value in event["exception"]["values"]]
    assert chain == [("KeyError", "'card'"), ("PaymentDeclined", "the bank said no")]
    (issue,) = issues_of(api, project)
    assert issue["title"] == "PaymentDeclined: the bank said no"


def test_a_message_with_breadcrumbs_is_stored(server: Server, project: ProjectFixture, api: httpx.Client) -> None:
    with sdk(project):
        sentry_sdk.add_breadcrumb(category="auth", message="user logged in", level="info")
        sentry_sdk.add_breadcrumb(category="query", message="SELECT 1", data={"rows": 1})
        event_id = sentry_sdk.capture_message("disk almost full", level="warning")
    assert event_id is not None
    event = stored_event(api, project, event_id)
    assert event["level"] == "warning"
    assert "disk almost full" in orjson.dumps(event.get("logentry") or event.get("message")).decode()
    crumbs = [(c.get("category"), c.get("message")) for c in event["breadcrumbs"]["values"]]
    assert crumbs == [("auth", "user logged in"), ("query", "SELECT 1")]
    (issue,) = issues_of(api, project)
    assert issue["title"] == "disk almost full"
    assert issue["level"] == "warning"


def _leak_secrets() -> None:
    password = SECRET_PASSWORD
    api_key = SECRET_API_KEY
    contact = SECRET_EMAIL
    card_number = SECRET_CARD
    note = "card on file: " + SECRET_CARD.replace(" ", "")
    raise RuntimeError(f"login failed ({len(password + api_key + contact + card_number + note)} characters)")


def test_secrets_in_frame_variables_never_reach_the_database(
    server: Server, project: ProjectFixture, api: httpx.Client
) -> None:
    with sdk(project, include_local_variables=True):
        sentry_sdk.set_extra("customer", SECRET_EMAIL)
        event_id = capture(_leak_secrets)
    event = stored_event(api, project, event_id)
    frame = event["exception"]["values"][-1]["stacktrace"]["frames"][-1]
    assert frame["function"] == "_leak_secrets"
    assert set(frame["vars"]) >= {"password", "api_key", "contact", "card_number", "note"}
    dumped = orjson.dumps(event).decode()
    for secret in SECRETS:
        assert secret not in dumped
    with server.runtime.engine.connect() as conn:
        (row,) = conn.execute(select(events.c.data).where(events.c.project_id == project.id))
    raw = orjson.dumps(unpack_document(row.data)).decode()
    for secret in SECRETS:
        assert secret not in raw
    assert "hunter2" not in raw and "sk_live" not in raw and "customer-mail" not in raw


def _fail_in_checkout(n: int) -> None:
    raise ValueError(f"no stock for item {n}")


def _fail_in_search(n: int) -> None:
    raise ValueError(f"no stock for item {n}")


def test_grouping_follows_the_call_site_not_the_values(
    server: Server, project: ProjectFixture, api: httpx.Client
) -> None:
    with sdk(project):
        for n in (1, 2):
            capture(lambda n=n: _fail_in_checkout(n))  # type: ignore[misc]
        capture(lambda: _fail_in_search(1))
    counts = sorted((issue["culprit"], issue["count"]) for issue in issues_of(api, project))
    assert len(counts) == 2
    assert sorted(count for _, count in counts) == [1, 2]
    by_culprit = dict(counts)
    assert by_culprit[next(c for c in by_culprit if "_fail_in_checkout" in c)] == 2
    assert by_culprit[next(c for c in by_culprit if "_fail_in_search" in c)] == 1


def test_users_tags_release_and_environment_are_counted_on_the_issue(
    server: Server, project: ProjectFixture, api: httpx.Client
) -> None:
    with sdk(project, release="shop@2.4.1", environment="staging"):
        for user in ("alice", "bob", "alice"):
            with sentry_sdk.new_scope() as scope:
                scope.set_user({"id": user})
                scope.set_tag("region", "eu-west" if user == "alice" else "us-east")
                capture(lambda: _fail_in_checkout(7))
    (issue,) = issues_of(api, project)
    assert issue["count"] == 3
    assert issue["user_count"] == 2
    detail = api.get(f"/api/v1/issues/{issue['id']}").json()
    tags = {t["key"]: {v["value"]: v["count"] for v in t["top_values"]} for t in detail["tags"]}
    assert tags["release"] == {"shop@2.4.1": 3}
    assert tags["environment"] == {"staging": 3}
    assert tags["region"] == {"eu-west": 2, "us-east": 1}
    assert tags["user"] == {"id:alice": 2, "id:bob": 1}
    latest = api.get(f"/api/v1/issues/{issue['id']}/events/latest").json()
    assert latest["release"] == "shop@2.4.1" and latest["environment"] == "staging"


def test_a_transaction_is_stored_with_its_spans(server: Server, project: ProjectFixture) -> None:
    with (
        sdk(project, traces_sample_rate=1.0, release="shop@2.4.1"),
        sentry_sdk.start_transaction(name="POST /checkout", op="http.server") as transaction,
    ):
        with sentry_sdk.start_span(op="db", name="SELECT * FROM carts"):
            pass
        trace_id = transaction.trace_id
    with server.runtime.engine.connect() as conn:
        (row,) = conn.execute(select(transactions).where(transactions.c.project_id == project.id))
    assert (row.name, row.op, row.trace_id, row.release) == ("POST /checkout", "http.server", trace_id, "shop@2.4.1")
    spans = unpack_document(row.data)["spans"]
    assert [(s["op"], s["description"]) for s in spans] == [("db", "SELECT * FROM carts")]


# --- rate limits ----------------------------------------------------------------------------------------


def _rate_limited_requests(server: Server) -> float:
    text = httpx.get(f"{server.url}/metrics").text
    found = re.search(r'^watchkeeper_ingest_rejected_requests_total\{reason="rate_limited"\} (\S+)$', text, re.M)
    return float(found.group(1)) if found else 0.0


def test_the_sdk_stops_sending_errors_after_a_429_but_keeps_sending_transactions(
    server: Server, project: ProjectFixture, api: httpx.Client
) -> None:
    assert api.patch(f"/api/v1/projects/{project.id}", json={"events_per_minute": 1}).status_code == 200
    with sdk(project, traces_sample_rate=1.0) as client:
        for n in range(4):
            capture(lambda n=n: _fail_in_checkout(n))  # type: ignore[misc]
            client.flush(timeout=10)
        with sentry_sdk.start_transaction(name="GET /after-the-limit", op="http.server"):
            pass
    # One error stored, one refused with 429; the SDK dropped the other two without sending them.
    assert [issue["count"] for issue in issues_of(api, project)] == [1]
    assert _rate_limited_requests(server) == 1
    with server.runtime.engine.connect() as conn:
        names = [
            r.name for r in conn.execute(select(transactions.c.name).where(transactions.c.project_id == project.id))
        ]
    assert names == ["GET /after-the-limit"]


def _item_outcomes(server: Server, category: str, outcome: str) -> float:
    text = httpx.get(f"{server.url}/metrics").text
    pattern = rf'^watchkeeper_ingest_items_total\{{category="{category}",outcome="{outcome}"\}} (\S+)$'
    found = re.search(pattern, text, re.M)
    return float(found.group(1)) if found else 0.0


def test_the_sdk_stops_sending_transactions_after_their_quota_but_keeps_sending_errors(
    server: Server, project: ProjectFixture, api: httpx.Client
) -> None:
    quotas = {"transaction": {"per_minute": 1}}
    assert api.patch(f"/api/v1/projects/{project.id}", json={"quotas": quotas}).status_code == 200
    with sdk(project, traces_sample_rate=1.0) as client:
        for n in range(4):
            with sentry_sdk.start_transaction(name=f"GET /page/{n}", op="http.server"):
                pass
            client.flush(timeout=10)
        capture(lambda: _fail_in_checkout(1))
    with server.runtime.engine.connect() as conn:
        names = [
            r.name for r in conn.execute(select(transactions.c.name).where(transactions.c.project_id == project.id))
        ]
    # One stored, one refused (429 naming "transaction"); the SDK dropped the other two itself.
    assert names == ["GET /page/0"]
    assert _item_outcomes(server, "transaction", "rate_limited") == 1
    assert [issue["count"] for issue in issues_of(api, project)] == [1]


def test_the_sdk_stops_sending_attachments_over_their_byte_quota_but_keeps_sending_events(
    server: Server, project: ProjectFixture, api: httpx.Client
) -> None:
    quotas = {"attachment": {"per_hour": 100_000}}
    assert api.patch(f"/api/v1/projects/{project.id}", json={"quotas": quotas}).status_code == 200
    with sdk(project) as client:
        for n in range(3):
            with sentry_sdk.new_scope() as scope:
                scope.add_attachment(bytes=b"%d" % n * 60_000, filename=f"dump{n}.txt")
                capture(lambda n=n: _fail_in_checkout(n))  # type: ignore[misc]
            client.flush(timeout=10)
    with server.runtime.engine.connect() as conn:
        stored = [r.filename for r in conn.execute(select(attachments).where(attachments.c.project_id == project.id))]
    # The first fits the 100 kB, the second is refused and named; the SDK leaves the third out itself.
    assert stored == ["dump0.txt"]
    assert _item_outcomes(server, "attachment", "rate_limited") == 1
    assert [issue["count"] for issue in issues_of(api, project)] == [3]
