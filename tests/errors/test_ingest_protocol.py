"""The Sentry ingest protocol against the real server over HTTP: endpoints, auth, CORS, encodings,
envelope items, size limits, rate limits, and a 200 only after the commit."""

from __future__ import annotations

import base64
import gzip
import time
import uuid
import zlib
from collections.abc import Iterator
from typing import Any

import brotli
import httpx
import orjson
import pytest
import zstandard
from sqlalchemy import select

from tests.conftest import ProjectFixture, Server, make_project
from watchkeeper.config import Settings
from watchkeeper.errors.tables import attachments, envelope_items, events, transactions
from watchkeeper.lib.blobs import unpack_document


def new_id() -> str:
    return uuid.uuid4().hex


def item(kind: str, payload: bytes | dict[str, Any], *, length: bool = True, **headers: Any) -> bytes:
    data = payload if isinstance(payload, bytes) else orjson.dumps(payload)
    head: dict[str, Any] = {"type": kind, **headers}
    if length:
        head["length"] = len(data)
    return orjson.dumps(head) + b"\n" + data + b"\n"


def envelope(*items: bytes, **header: Any) -> bytes:
    return orjson.dumps(header) + b"\n" + b"".join(items)


def event(event_id: str, message: str = "something broke") -> dict[str, Any]:
    return {"event_id": event_id, "message": message, "level": "error", "platform": "python", "timestamp": time.time()}


def auth(key: str) -> dict[str, str]:
    return {"X-Sentry-Auth": f"Sentry sentry_version=7, sentry_client=tests/1.0, sentry_key={key}"}


def post(
    server: Server,
    project_id: int | str,
    body: Any,
    *,
    endpoint: str = "envelope",
    headers: dict[str, str] | None = None,
    params: dict[str, str] | None = None,
) -> httpx.Response:
    return httpx.post(
        f"{server.url}/api/{project_id}/{endpoint}/", content=body, headers=headers or {}, params=params, timeout=30
    )


def send_event(server: Server, project: ProjectFixture, event_id: str | None = None) -> httpx.Response:
    event_id = event_id or new_id()
    return post(
        server,
        project.id,
        envelope(item("event", event(event_id)), event_id=event_id),
        headers=auth(project.public_key),
    )


def db_rows(server: Server, table: Any, project_id: int) -> list[Any]:
    with server.runtime.engine.connect() as conn:
        return list(conn.execute(select(table).where(table.c.project_id == project_id).order_by(table.c.id)))


def stored_event_ids(server: Server, project_id: int) -> list[str]:
    return [row.event_id for row in db_rows(server, events, project_id)]


def assert_json_error(response: httpx.Response, status: int) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    detail = response.json()["detail"]
    assert isinstance(detail, str) and detail
    assert response.headers["x-sentry-error"]


# --- endpoints and authentication ------------------------------------------------------------------


def test_an_event_is_readable_from_the_database_as_soon_as_the_200_arrives(
    server: Server, project: ProjectFixture
) -> None:
    event_id = new_id()
    response = send_event(server, project, event_id)
    assert response.status_code == 200
    assert response.json() == {"id": event_id}
    # No waiting, no polling: a 200 means the writer has committed.
    assert stored_event_ids(server, project.id) == [event_id]
    row = db_rows(server, events, project.id)[0]
    assert unpack_document(row.data)["logentry"]["formatted"] == "something broke"


def test_it_takes_the_key_from_the_query_string(server: Server, project: ProjectFixture) -> None:
    event_id = new_id()
    response = post(
        server,
        project.id,
        envelope(item("event", event(event_id))),
        params={"sentry_version": "7", "sentry_key": project.public_key},
    )
    assert response.status_code == 200
    assert response.json() == {"id": event_id}
    assert stored_event_ids(server, project.id) == [event_id]


def test_it_takes_the_key_from_the_envelope_dsn(server: Server, project: ProjectFixture) -> None:
    event_id = new_id()
    response = post(server, project.id, envelope(item("event", event(event_id)), event_id=event_id, dsn=project.dsn))
    assert response.status_code == 200
    assert stored_event_ids(server, project.id) == [event_id]


def test_the_store_endpoint_takes_json_and_base64_zlib_bodies(server: Server, project: ProjectFixture) -> None:
    first, second = new_id(), new_id()
    response = post(
        server,
        project.id,
        orjson.dumps(event(first)),
        endpoint="store",
        headers={**auth(project.public_key), "Content-Type": "application/json"},
    )
    assert response.status_code == 200
    assert response.json() == {"id": first}
    legacy = base64.b64encode(zlib.compress(orjson.dumps(event(second))))
    response = post(server, project.id, legacy, endpoint="store", params={"sentry_key": project.public_key})
    assert response.status_code == 200
    assert sorted(stored_event_ids(server, project.id)) == sorted([first, second])


def test_a_request_without_a_key_is_refused_with_401(server: Server, project: ProjectFixture) -> None:
    body = envelope(item("event", event(new_id())))
    assert_json_error(post(server, project.id, body), 401)
    assert_json_error(post(server, project.id, orjson.dumps(event(new_id())), endpoint="store"), 401)
    assert stored_event_ids(server, project.id) == []


def test_an_unknown_or_malformed_key_is_refused_with_403(server: Server, project: ProjectFixture) -> None:
    body = envelope(item("event", event(new_id())))
    assert_json_error(post(server, project.id, body, headers=auth("0" * 32)), 403)
    assert_json_error(post(server, project.id, body, headers=auth("not-a-key")), 403)
    assert_json_error(post(server, project.id, body, params={"sentry_key": "f" * 32}), 403)
    assert stored_event_ids(server, project.id) == []


def test_a_disabled_key_is_refused_with_403(server: Server, project: ProjectFixture, api: httpx.Client) -> None:
    (key,) = api.get(f"/api/v1/projects/{project.id}/keys").json()
    assert api.patch(f"/api/v1/keys/{key['id']}", json={"is_active": False}).status_code == 200
    assert_json_error(send_event(server, project), 403)
    assert api.patch(f"/api/v1/keys/{key['id']}", json={"is_active": True}).status_code == 200
    assert send_event(server, project).status_code == 200


def test_the_key_of_another_project_is_refused_with_403(server: Server, project: ProjectFixture) -> None:
    other = make_project(server, "Other")
    body = envelope(item("event", event(new_id())))
    assert_json_error(post(server, project.id, body, headers=auth(other.public_key)), 403)
    assert_json_error(post(server, project.id, envelope(item("event", event(new_id())), dsn=other.dsn)), 403)
    assert stored_event_ids(server, project.id) == stored_event_ids(server, other.id) == []


def test_keys_that_disagree_are_refused_with_400(server: Server, project: ProjectFixture) -> None:
    other = make_project(server, "Other")
    body = envelope(item("event", event(new_id())))
    assert_json_error(
        post(server, project.id, body, headers=auth(project.public_key), params={"sentry_key": other.public_key}), 400
    )
    with_dsn = envelope(item("event", event(new_id())), dsn=other.dsn)
    assert_json_error(post(server, project.id, with_dsn, headers=auth(project.public_key)), 400)
    assert stored_event_ids(server, project.id) == []


def test_the_same_key_named_twice_in_different_case_is_accepted(server: Server, project: ProjectFixture) -> None:
    body = envelope(item("event", event(new_id())), dsn=project.dsn)
    response = post(server, project.id, body, headers=auth(project.public_key.upper()))
    assert response.status_code == 200


def test_an_unknown_project_id_is_refused_with_a_json_4xx(server: Server, project: ProjectFixture) -> None:
    response = post(server, 987654, envelope(item("event", event(new_id()))), headers=auth(project.public_key))
    assert_json_error(response, 403)
    response = post(server, 987654, orjson.dumps(event(new_id())), endpoint="store", headers=auth(project.public_key))
    assert_json_error(response, 403)


def test_a_non_numeric_project_id_is_refused_with_400(server: Server, project: ProjectFixture) -> None:
    # "\u00b2" and "\u0661" are digits to str.isdigit() but not numbers to int() or to us.
    for project_id in ("abc", "12a", "-1", "1.5", "\u00b2", "\u0661", "%E4%B8%AD", "9" * 40):
        for endpoint in ("envelope", "store"):
            body = envelope(item("event", event(new_id())))
            response = post(server, project_id, body, endpoint=endpoint, headers=auth(project.public_key))
            assert response.status_code == 400, (project_id, endpoint, response.text)
            assert_json_error(response, 400)


def test_cors_preflight_and_responses_carry_the_allow_headers(server: Server, project: ProjectFixture) -> None:
    for endpoint in ("envelope", "store"):
        response = httpx.options(
            f"{server.url}/api/{project.id}/{endpoint}/",
            headers={
                "Origin": "https://app.example",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type, x-sentry-auth",
            },
        )
        assert response.status_code == 200
        assert response.headers["access-control-allow-origin"] == "*"
        assert "POST" in response.headers["access-control-allow-methods"]
        assert "x-sentry-auth" in response.headers["access-control-allow-headers"].lower()
        assert "content-type" in response.headers["access-control-allow-headers"].lower()
    ok = send_event(server, project)
    assert ok.headers["access-control-allow-origin"] == "*"
    refused = post(server, project.id, envelope(item("event", event(new_id()))))
    assert refused.status_code == 401
    assert refused.headers["access-control-allow-origin"] == "*"
    assert "x-sentry-error" in refused.headers["access-control-expose-headers"].lower()


# --- encodings ---------------------------------------------------------------------------------------


def _raw_deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush()


ENCODERS = {
    "identity": lambda data: data,
    "gzip": gzip.compress,
    "x-gzip": gzip.compress,
    "deflate": zlib.compress,
    "deflate-raw": _raw_deflate,
    "br": brotli.compress,
    "zstd": zstandard.ZstdCompressor().compress,
}


def test_it_decodes_every_content_encoding(server: Server, project: ProjectFixture) -> None:
    for encoding, encode in ENCODERS.items():
        event_id = new_id()
        body = encode(envelope(item("event", event(event_id, f"sent as {encoding}"))))
        headers = {**auth(project.public_key), "Content-Encoding": encoding.removesuffix("-raw")}
        response = post(server, project.id, body, headers=headers)
        assert response.status_code == 200, (encoding, response.text)
        assert response.json() == {"id": event_id}
    stored = {row.event_id: unpack_document(row.data) for row in db_rows(server, events, project.id)}
    assert sorted(event["logentry"]["formatted"] for event in stored.values()) == sorted(
        f"sent as {encoding}" for encoding in ENCODERS
    )


def test_it_reads_a_chunked_gzip_body(server: Server, project: ProjectFixture) -> None:
    event_id = new_id()
    compressed = gzip.compress(envelope(item("event", event(event_id)), event_id=event_id))

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(compressed), 7):
            yield compressed[start : start + 7]

    request = httpx.Request(
        "POST",
        f"{server.url}/api/{project.id}/envelope/",
        content=chunks(),
        headers={**auth(project.public_key), "Content-Encoding": "gzip"},
    )
    assert request.headers["transfer-encoding"] == "chunked"
    with httpx.Client(timeout=30) as client:
        response = client.send(request)
    assert response.status_code == 200
    assert stored_event_ids(server, project.id) == [event_id]


def test_an_unsupported_or_corrupt_encoding_is_a_400(server: Server, project: ProjectFixture) -> None:
    body = envelope(item("event", event(new_id())))
    assert_json_error(
        post(server, project.id, body, headers={**auth(project.public_key), "Content-Encoding": "compress"}), 400
    )
    assert_json_error(
        post(
            server,
            project.id,
            gzip.compress(body)[:-9],
            headers={**auth(project.public_key), "Content-Encoding": "gzip"},
        ),
        400,
    )


# --- envelope items ------------------------------------------------------------------------------------


def test_every_kept_item_type_is_stored_with_or_without_length(server: Server, project: ProjectFixture) -> None:
    event_id, transaction_id = new_id(), new_id()
    now = time.time()
    body = envelope(
        item("event", event(event_id), length=False),
        item("attachment", b"line one\nline two\n", filename="log.txt", content_type="text/plain"),
        item(
            "session",
            {"sid": new_id(), "status": "ok", "started": "2026-01-01T00:00:00Z", "attrs": {"release": "app@1"}},
            length=False,
        ),
        item(
            "sessions",
            {"aggregates": [{"started": "2026-01-01T00:00:00Z", "exited": 3}], "attrs": {"release": "app@1"}},
        ),
        item(
            "client_report",
            {"timestamp": now, "discarded_events": [{"reason": "queue_overflow", "category": "error", "quantity": 2}]},
        ),
        item("check_in", {"check_in_id": new_id(), "monitor_slug": "nightly", "status": "ok"}, length=False),
        item(
            "log",
            {"items": [{"timestamp": now, "level": "info", "body": "hello"}]},
            content_type="application/vnd.sentry.items.log+json",
        ),
        item(
            "transaction",
            {
                "event_id": transaction_id,
                "type": "transaction",
                "transaction": "GET /users",
                "start_timestamp": now - 0.25,
                "timestamp": now,
                "contexts": {"trace": {"trace_id": new_id(), "span_id": new_id()[:16], "op": "http.server"}},
            },
        ),
        item("replay_video", b"\x00\x01binary", length=True),
        item("brand_new_type", {"whatever": True}, length=False),
        event_id=event_id,
    )
    response = post(server, project.id, body, headers=auth(project.public_key))
    assert response.status_code == 200, response.text
    assert response.json() == {"id": event_id}
    assert stored_event_ids(server, project.id) == [event_id]
    (transaction,) = db_rows(server, transactions, project.id)
    assert (transaction.event_id, transaction.name, transaction.op) == (transaction_id, "GET /users", "http.server")
    assert 200 <= transaction.duration_ms <= 300
    (attachment,) = db_rows(server, attachments, project.id)
    assert (attachment.filename, attachment.data, attachment.event_id) == ("log.txt", b"line one\nline two\n", event_id)
    kept = sorted(row.type for row in db_rows(server, envelope_items, project.id))
    assert kept == ["check_in", "client_report", "log", "session", "sessions"]


def test_the_answer_names_the_error_event_of_a_mixed_envelope(server: Server, project: ProjectFixture) -> None:
    event_id = new_id()
    body = envelope(
        item("session", {"sid": new_id(), "status": "ok"}),
        item("transaction", orjson.loads(_transaction_envelope().split(b"\n")[2])),
        item("event", event(event_id)),
        event_id=new_id(),
    )
    response = post(server, project.id, body, headers=auth(project.public_key))
    assert response.status_code == 200
    assert response.json() == {"id": event_id}


def test_an_invalid_envelope_event_id_is_ignored_not_stored(server: Server, project: ProjectFixture) -> None:
    body = envelope(item("attachment", b"data", filename="a.txt"), event_id="not-an-id-" + "x" * 100)
    response = post(server, project.id, body, headers=auth(project.public_key))
    assert response.status_code == 200
    assert response.json() == {"id": None}
    (row,) = db_rows(server, attachments, project.id)
    assert row.event_id is None


def test_an_envelope_of_unknown_item_types_only_is_accepted(server: Server, project: ProjectFixture) -> None:
    envelope_id = new_id()
    body = envelope(item("profile_chunk", {"x": 1}), item("statsd", b"metric:1|c", length=False), event_id=envelope_id)
    response = post(server, project.id, body, headers=auth(project.public_key))
    assert response.status_code == 200
    assert response.json() == {"id": envelope_id}
    assert db_rows(server, envelope_items, project.id) == []


# --- size limits ---------------------------------------------------------------------------------------


@pytest.fixture
def tight_settings(settings: Settings) -> Settings:
    settings.ingest.max_body_bytes = 64 * 1024
    settings.ingest.max_decompressed_bytes = 256 * 1024
    settings.ingest.max_event_bytes = 16 * 1024
    return settings


@pytest.fixture
def tight_server(tight_settings: Settings, server: Server) -> Server:
    assert server.runtime.settings.ingest.max_body_bytes == 64 * 1024
    return server


def test_a_body_over_the_limit_is_a_413(tight_server: Server) -> None:
    project = make_project(tight_server)
    body = envelope(item("attachment", b"x" * (65 * 1024), filename="big.bin"))
    assert_json_error(post(tight_server, project.id, body, headers=auth(project.public_key)), 413)

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit is counted while reading
        yield body[:1000]
        yield body[1000:]

    assert_json_error(post(tight_server, project.id, chunks(), headers=auth(project.public_key)), 413)
    assert db_rows(tight_server, attachments, project.id) == []


def test_it_refuses_a_decompression_bomb(tight_server: Server) -> None:
    project = make_project(tight_server)
    zeros = envelope(item("attachment", b"\0" * (8 * 1024 * 1024), filename="zeros"))
    for encoding in ("gzip", "x-gzip", "deflate", "br", "zstd"):
        bomb = ENCODERS[encoding](zeros)
        assert len(bomb) < 64 * 1024
        started = time.monotonic()
        headers = {**auth(project.public_key), "Content-Encoding": encoding}
        response = post(tight_server, project.id, bomb, headers=headers)
        assert response.status_code == 413, (encoding, response.text)
        assert_json_error(response, 413)
        assert time.monotonic() - started < 2, encoding
    assert db_rows(tight_server, attachments, project.id) == []


def test_an_event_item_over_the_event_limit_is_a_413(tight_server: Server) -> None:
    project = make_project(tight_server)
    big = event(new_id(), "x" * (17 * 1024))
    response = post(tight_server, project.id, envelope(item("event", big)), headers=auth(project.public_key))
    assert_json_error(response, 413)
    response = post(tight_server, project.id, orjson.dumps(big), endpoint="store", headers=auth(project.public_key))
    assert_json_error(response, 413)
    assert stored_event_ids(tight_server, project.id) == []


def test_an_unauthenticated_bomb_is_refused_before_decompressing(tight_server: Server) -> None:
    project = make_project(tight_server)
    # Valid gzip that would exceed the limit: with a wrong key the answer must be 403, not 413.
    bomb = gzip.compress(b"\0" * (8 * 1024 * 1024))
    for headers in (auth("0" * 32), {}):
        response = post(
            tight_server,
            project.id,
            bomb,
            headers={**headers, "Content-Encoding": "gzip"},
            params={"sentry_key": "1" * 32} if not headers else None,
        )
        assert_json_error(response, 403)


# --- rate limits -----------------------------------------------------------------------------------------


def _transaction_envelope() -> bytes:
    now = time.time()
    payload = {
        "event_id": new_id(),
        "type": "transaction",
        "transaction": "GET /",
        "start_timestamp": now - 0.1,
        "timestamp": now,
        "contexts": {"trace": {"trace_id": new_id(), "span_id": new_id()[:16]}},
    }
    return envelope(item("transaction", payload))


def test_a_project_over_its_quota_gets_429_with_rate_limit_headers(
    server: Server, project: ProjectFixture, api: httpx.Client
) -> None:
    response = api.patch(f"/api/v1/projects/{project.id}", json={"events_per_minute": 2})
    assert response.status_code == 200
    assert send_event(server, project).status_code == 200
    assert send_event(server, project).status_code == 200
    refused = send_event(server, project)
    assert_json_error(refused, 429)
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    seconds, categories, scope, reason = refused.headers["x-sentry-rate-limits"].split(":")
    assert int(seconds) >= 1
    assert (categories, scope, reason) == ("error;default;security", "project", "project_quota")
    assert "access-control-allow-origin" in refused.headers
    assert len(stored_event_ids(server, project.id)) == 2

    # Transactions are not limited, and the answer names no category that would silence them.
    accepted = post(server, project.id, _transaction_envelope(), headers=auth(project.public_key))
    assert accepted.status_code == 200
    assert "transaction" not in accepted.headers.get("x-sentry-rate-limits", "")
    assert len(db_rows(server, transactions, project.id)) == 1


def test_a_key_over_its_quota_gets_429_naming_the_key(
    server: Server, project: ProjectFixture, api: httpx.Client
) -> None:
    (key,) = api.get(f"/api/v1/projects/{project.id}/keys").json()
    assert api.patch(f"/api/v1/keys/{key['id']}", json={"events_per_minute": 1}).status_code == 200
    assert send_event(server, project).status_code == 200
    refused = send_event(server, project)
    assert_json_error(refused, 429)
    assert refused.headers["x-sentry-rate-limits"].endswith(":error;default;security:key:key_quota")
    assert int(refused.headers["retry-after"]) >= 1
    assert len(stored_event_ids(server, project.id)) == 1


def test_the_endpoints_answer_without_the_trailing_slash_too(server: Server, project: ProjectFixture) -> None:
    event_id = new_id()
    response = httpx.post(
        f"{server.url}/api/{project.id}/envelope",
        content=envelope(item("event", event(event_id))),
        headers=auth(project.public_key),
    )
    assert response.status_code == 200
    assert response.json() == {"id": event_id}
    response = httpx.post(
        f"{server.url}/api/{project.id}/store", content=orjson.dumps(event(new_id())), headers=auth(project.public_key)
    )
    assert response.status_code == 200
    assert len(stored_event_ids(server, project.id)) == 2


def test_other_methods_are_a_json_405(server: Server, project: ProjectFixture) -> None:
    for endpoint in ("envelope/", "store/", "envelope"):
        for method in ("GET", "PUT", "PATCH", "DELETE"):
            response = httpx.request(method, f"{server.url}/api/{project.id}/{endpoint}")
            assert_json_error(response, 405)
            assert response.headers["allow"] == "POST, OPTIONS"
