"""Hostile and broken input against the real server: every answer is a JSON 4xx (or a 200 where the
input is acceptable), never a 500, and oversized bodies are refused without being materialised."""

from __future__ import annotations

import base64
import functools
import gzip
import random
import time
import tracemalloc
import uuid
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import brotli
import httpx
import orjson
import pytest
import zstandard
from sqlalchemy import select

from tests.conftest import ProjectFixture, Server, make_project, run_server
from watchkeeper.config import Settings
from watchkeeper.errors.tables import envelope_items, events, transactions
from watchkeeper.lib.blobs import unpack_document

MiB = 1024 * 1024


def new_id() -> str:
    return uuid.uuid4().hex


def item(kind: str, payload: bytes | dict[str, Any], *, length: bool = True) -> bytes:
    data = payload if isinstance(payload, bytes) else orjson.dumps(payload)
    head: dict[str, Any] = {"type": kind}
    if length:
        head["length"] = len(data)
    return orjson.dumps(head) + b"\n" + data + b"\n"


def envelope(*items: bytes, **header: Any) -> bytes:
    return orjson.dumps(header) + b"\n" + b"".join(items)


def an_event(**fields: Any) -> dict[str, Any]:
    return {"event_id": new_id(), "message": "hostile", "level": "error", "timestamp": time.time(), **fields}


# One client for the module (creating one per request costs more than the request); no keep-alive, so
# a connection never outlives the server of its test.
HTTP = httpx.Client(timeout=60, headers={"Connection": "close"})


def post(
    server: Server,
    project: ProjectFixture | int,
    body: Any,
    headers: dict[str, str] | None = None,
    endpoint: str = "envelope",
) -> httpx.Response:
    project_id, key = (project, "0" * 32) if isinstance(project, int) else (project.id, project.public_key)
    return HTTP.post(
        f"{server.url}/api/{project_id}/{endpoint}/",
        content=body,
        timeout=60,
        headers={"X-Sentry-Auth": f"Sentry sentry_version=7, sentry_key={key}", **(headers or {})},
    )


def assert_refused(response: httpx.Response, status: int | None = None) -> str:
    """A JSON 4xx with detail and X-Sentry-Error; returns the detail."""
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:500])
    if status is not None:
        assert response.status_code == status, response.text[:500]
    assert response.headers["content-type"].startswith("application/json")
    assert response.headers["x-sentry-error"]
    detail = response.json()["detail"]
    assert isinstance(detail, str)
    return detail


def stored(server: Server, table: Any, project_id: int) -> list[Any]:
    with server.runtime.engine.connect() as conn:
        return list(conn.execute(select(table).where(table.c.project_id == project_id)))


# --- malformed envelopes -------------------------------------------------------------------------------

EVENT = orjson.dumps(an_event())
MALFORMED = {
    "empty body": b"",
    "truncated envelope header": b'{"event_id":"9ec79c33ec',
    "truncated item header": b'{}\n{"type":"ev',
    "truncated payload with length": b'{}\n{"type":"event","length":500}\n' + EVENT[:100],
    "length too short": b'{}\n{"type":"event","length":10}\n' + EVENT + b"\n",
    "negative length": b'{}\n{"type":"event","length":-5}\n' + EVENT + b"\n",
    "length as a string": b'{}\n{"type":"event","length":"12"}\n' + EVENT + b"\n",
    "huge length": b'{}\n{"type":"event","length":99999999999999999999}\n' + EVENT + b"\n",
    "item without type": b'{}\n{"length":2}\n{}\n',
    "envelope header not an object": b'[1,2,3]\n{"type":"event"}\n' + EVENT + b"\n",
    "invalid json event": b'{}\n{"type":"event"}\n{"message": "unterminated\n',
    "event is an array": b'{}\n{"type":"event"}\n[1,2,3]\n',
    "event is a string": b'{}\n{"type":"event"}\n"hello"\n',
    "invalid utf-8 in event": b'{}\n{"type":"event"}\n{"message":"\xff\xfe\xc3\x28"}\n',
    "invalid utf-8 in header": b'{"event_id":"\xc3\x28"}\n{"type":"event"}\n' + EVENT + b"\n",
    "event nested 10000 deep": b'{}\n{"type":"event"}\n' + b'{"extra":' * 10_000 + b"1" + b"}" * 10_000 + b"\n",
    "header nested 10000 deep": b"[" * 10_000 + b"]" * 10_000 + b'\n{"type":"event"}\n' + EVENT + b"\n",
    "binary garbage": bytes(range(256)) * 4,
    "nul bytes": b"\0" * 1000,
    "too many items": b"{}\n" + b'{"type":"statsd","length":0}\n\n' * 1001,
}


def test_a_malformed_envelope_is_a_json_400(server: Server, project: ProjectFixture) -> None:
    for case, body in MALFORMED.items():
        response = post(server, project, body)
        assert response.status_code == 400, case
        assert_refused(response)
    assert stored(server, events, project.id) == []


def test_a_malformed_store_body_is_a_json_400(server: Server, project: ProjectFixture) -> None:
    for body in (b"{not json", b"!!!not base64!!!", b"aGVsbG8=", b'{"extra":' * 10_000, b"\xff\xfe"):
        assert_refused(post(server, project, body, endpoint="store"), 400)


def test_a_broken_session_next_to_a_good_event_does_not_lose_the_event(server: Server, project: ProjectFixture) -> None:
    event = an_event()
    body = envelope(item("session", b"{not json"), item("check_in", b"\xff\xfe"), item("event", event))
    response = post(server, project, body)
    assert response.status_code == 200
    assert response.json() == {"id": event["event_id"]}
    assert [row.event_id for row in stored(server, events, project.id)] == [event["event_id"]]
    assert stored(server, envelope_items, project.id) == []


WRONG_TYPES: dict[str, Any] = {
    "event_id": 12,
    "timestamp": "yesterday",
    "level": {"x": 1},
    "platform": ["python"],
    "logger": 5,
    "message": {"formatted": ["a"]},
    "logentry": "text",
    "exception": "boom",
    "threads": 7,
    "stacktrace": [1, 2],
    "breadcrumbs": {"values": "x"},
    "tags": [[1], "a", {"k": None}, [None, None, None]],
    "extra": [1, 2],
    "contexts": {"trace": "x", "os": 5},
    "user": "bob",
    "request": [1],
    "sdk": 1,
    "release": {"v": 1},
    "environment": ["prod"],
    "fingerprint": "x",
    "modules": "x",
    "server_name": 7,
    "transaction": 8,
    "spans": "x",
    "start_timestamp": "never",
    "measurements": [1],
    "debug_meta": "x",
}


@pytest.mark.parametrize("kind", ["event", "transaction"])
def test_fields_of_the_wrong_type_never_cause_a_500(server: Server, project: ProjectFixture, kind: str) -> None:
    payload = {**WRONG_TYPES, "type": kind}
    response = post(server, project, envelope(item(kind, payload)))
    assert response.status_code == 200 or assert_refused(response)
    for field, value in WRONG_TYPES.items():
        response = post(server, project, envelope(item(kind, {**an_event(), "type": kind, field: value})))
        assert response.status_code == 200 or assert_refused(response), field


def test_random_mutations_of_a_valid_envelope_never_cause_a_500(server: Server, project: ProjectFixture) -> None:
    good = envelope(
        item(
            "event",
            an_event(
                exception={
                    "values": [
                        {
                            "type": "E",
                            "value": "v",
                            "stacktrace": {
                                "frames": [
                                    {"function": "f", "filename": "a.py", "lineno": 3, "vars": {"a": [1, {"b": None}]}}
                                ]
                            },
                        }
                    ]
                }
            ),
        ),
        item("session", {"sid": new_id(), "status": "ok"}, length=False),
        item("attachment", b"data"),
        event_id=new_id(),
    )
    rng = random.Random(20261123)
    with httpx.Client(timeout=30) as client:
        for _ in range(150):
            body = bytearray(good)
            for _ in range(rng.randint(1, 8)):
                pos = rng.randrange(len(body))
                action = rng.random()
                if action < 0.4:
                    body[pos] = rng.randrange(256)
                elif action < 0.7:
                    del body[pos : pos + rng.randint(1, 20)]
                else:
                    body[pos:pos] = rng.choice([b"{", b"}", b"[", b'"', b"\n", b"\\u0000", b"-1", b"\xff", b"null"])
            response = client.post(
                f"{server.url}/api/{project.id}/envelope/",
                content=bytes(body),
                headers={"X-Sentry-Auth": f"Sentry sentry_key={project.public_key}"},
            )
            assert response.status_code == 200 or assert_refused(response), bytes(body)


def test_ten_thousand_frames_are_accepted_and_trimmed(server: Server, project: ProjectFixture) -> None:
    frames = [{"function": f"f{i}", "module": "app.deep", "lineno": i, "in_app": True} for i in range(10_000)]
    event = an_event(
        exception={"values": [{"type": "RecursionError", "value": "too deep", "stacktrace": {"frames": frames}}]}
    )
    response = post(server, project, envelope(item("event", event)))
    assert response.status_code == 200, response.text
    (row,) = stored(server, events, project.id)
    stacktrace = unpack_document(row.data)["exception"]["values"][0]["stacktrace"]
    assert len(stacktrace["frames"]) == 250
    assert stacktrace["frames"][0]["function"] == "f0" and stacktrace["frames"][-1]["function"] == "f9999"


CONTENT_TYPES = [
    "application/x-sentry-envelope",
    "text/plain;charset=UTF-8",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=x",
    "application/octet-stream",
    "application/json",
    "image/png",
    "",
]


def test_any_content_type_is_read_as_an_envelope(server: Server, project: ProjectFixture) -> None:
    sent = []
    for content_type in CONTENT_TYPES:
        event = an_event()
        response = post(server, project, envelope(item("event", event)), headers={"Content-Type": content_type})
        assert response.status_code == 200, (content_type, response.text)
        assert response.json() == {"id": event["event_id"]}
        sent.append(event["event_id"])
    assert sorted(row.event_id for row in stored(server, events, project.id)) == sorted(sent)


PROJECT_IDS = {
    "0": 403,
    "999999999999": 403,
    "1" * 13: 400,
    "1e3": 400,
    "0x10": 400,
    "%201": 400,
    "%00": 400,
    "NaN": 400,
    "%C2%B2": 400,
    "%F0%9F%92%A3": 400,
}


def test_unknown_or_invalid_project_ids_are_a_json_4xx(server: Server, project: ProjectFixture) -> None:
    body = envelope(item("event", an_event()))
    for path, status in PROJECT_IDS.items():
        for endpoint in ("envelope", "store"):
            response = HTTP.post(
                f"{server.url}/api/{path}/{endpoint}/",
                content=body,
                headers={"X-Sentry-Auth": f"Sentry sentry_key={project.public_key}"},
            )
            assert response.status_code == status, (path, endpoint, response.text)
            assert_refused(response)
            without_key = HTTP.post(f"{server.url}/api/{path}/{endpoint}/", content=body)
            assert without_key.status_code == (401 if status == 403 else 400), (path, endpoint)
            assert_refused(without_key)


# --- sizes ---------------------------------------------------------------------------------------------


def test_a_real_25_mb_body_is_refused_by_the_default_20_mib_limit(server: Server, project: ProjectFixture) -> None:
    assert server.settings.ingest.max_body_bytes == 20 * MiB
    body = envelope(item("attachment", b"a" * (25 * 1000 * 1000)))
    detail = assert_refused(post(server, project, body), 413)
    assert "limit" in detail


@pytest.fixture
def small_settings(settings: Settings) -> Settings:
    settings.ingest.max_body_bytes = 1 * MiB
    settings.ingest.max_decompressed_bytes = 1 * MiB
    return settings


@pytest.fixture
def small_server(small_settings: Settings, server: Server) -> Server:
    assert server.runtime.settings.ingest.max_decompressed_bytes == 1 * MiB
    return server


def test_a_100_mb_string_event_is_refused_by_size_without_being_parsed(small_server: Server) -> None:
    project = make_project(small_server)
    chunk = b"a" * MiB

    def hundred_megabytes() -> Iterator[bytes]:
        yield b'{}\n{"type":"event"}\n{"message":"'
        for _ in range(100):
            yield chunk
        yield b'"}\n'

    started = time.monotonic()
    assert_refused(post(small_server, project, hundred_megabytes()), 413)
    assert time.monotonic() - started < 10
    assert stored(small_server, events, project.id) == []


@functools.cache
def bomb(encoding: str) -> bytes:
    zeros = envelope(item("event", b'{"message":"' + b"0" * (64 * MiB) + b'"}'))
    return {
        "gzip": lambda: gzip.compress(zeros, 1),
        "x-gzip": lambda: gzip.compress(zeros, 1),
        "deflate": lambda: zlib.compress(zeros, 1),
        "br": lambda: brotli.compress(zeros, quality=1),
        "zstd": lambda: zstandard.ZstdCompressor().compress(zeros),
        "gzip, gzip": lambda: gzip.compress(gzip.compress(zeros, 1), 9),
    }[encoding]()


def _peak_rss(pid: int) -> int:
    """VmHWM: the most resident memory the process ever had, in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


@pytest.mark.parametrize("processors", [0, 1])
def test_a_decompression_bomb_is_refused_quickly_without_materialising(
    small_settings: Settings, processors: int
) -> None:
    small_settings.ingest.processors = processors
    with run_server(small_settings) as small_server:
        project = make_project(small_server)
        pool = small_server.runtime.processors
        # A first event, so the child has finished starting and its peak RSS is a baseline.
        warm_up = envelope(item("event", {"message": "warm-up"}))
        answer = post(small_server, project, gzip.compress(warm_up), headers={"Content-Encoding": "gzip"})
        assert answer.status_code == 200
        for encoding in ("gzip", "x-gzip", "deflate", "br", "zstd", "gzip, gzip"):
            body = bomb(encoding)
            assert len(body) < MiB
            # In-process decoding is traced by tracemalloc; a processor child by its peak RSS.
            child_peak = _peak_rss(pool.pids[0]) if pool else 0
            tracemalloc.start()
            try:
                started = time.monotonic()
                response = post(small_server, project, body, headers={"Content-Encoding": encoding})
                elapsed = time.monotonic() - started
                _, peak = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
            assert response.status_code == 413, (encoding, response.text)
            assert_refused(response)
            assert elapsed < 2, encoding
            # The 64 MiB it expands to never exists: a few times the 1 MiB limit at most.
            assert peak < 12 * MiB, (encoding, peak)
            if pool:
                assert _peak_rss(pool.pids[0]) - child_peak < 12 * MiB, encoding


def test_a_bomb_inside_a_legacy_store_body_is_refused(small_server: Server) -> None:
    project = make_project(small_server)
    body = base64.b64encode(zlib.compress(b'{"message":"' + b"0" * (64 * MiB) + b'"}', 9))
    assert_refused(post(small_server, project, body, endpoint="store"), 413)


def test_a_transaction_with_eight_thousand_spans_is_stored_trimmed(server: Server, project: ProjectFixture) -> None:
    now = time.time()
    spans = [{"span_id": f"{i:016x}", "op": "db", "start_timestamp": now - 1, "timestamp": now} for i in range(8000)]
    payload = {
        "type": "transaction",
        "event_id": new_id(),
        "transaction": "t",
        "start_timestamp": now - 1,
        "timestamp": now,
        "spans": spans,
    }
    response = post(server, project, envelope(item("transaction", payload)))
    assert response.status_code == 200, response.text
    (row,) = stored(server, transactions, project.id)
    assert len(unpack_document(row.data)["spans"]) == 1000


def test_overlong_values_in_headers_and_items_are_clipped_or_refused_never_a_500(
    server: Server, project: ProjectFixture
) -> None:
    now = time.time()
    long_item_headers = orjson.dumps(
        {
            "type": "attachment",
            "length": 4,
            "filename": "f" * 1000,
            "content_type": "c" * 1000,
            "attachment_type": "event.attachment" + "x" * 300,
        }
    )
    transaction = {
        "type": "transaction",
        "event_id": new_id(),
        "transaction": "t" * 5000,
        "start_timestamp": now - 1,
        "timestamp": now,
        "environment": "e" * 500,
        "release": "r" * 500,
        "contexts": {"trace": {"trace_id": new_id(), "span_id": new_id()[:16], "op": "o" * 1000, "status": "s" * 1000}},
    }
    event = an_event(
        tags={"k" * 500: "v" * 5000, "ok": "fine"},
        environment="e" * 500,
        release="r" * 500,
        user={"id": "u" * 5000},
        server_name="s" * 5000,
        transaction="t" * 5000,
    )
    body = (
        orjson.dumps({"event_id": "9" * 5000})
        + b"\n"
        + long_item_headers
        + b"\ndata\n"
        + item("session", {"sid": new_id(), "status": "ok"})
        + item("transaction", transaction)
        + item("event", event)
    )
    response = post(server, project, body)
    assert response.status_code == 200, response.text
    assert response.json() == {"id": event["event_id"]}
    (row,) = stored(server, transactions, project.id)
    assert len(row.op or "") <= 200 and len(row.status or "") <= 64
    assert len(stored(server, envelope_items, project.id)) == 1


def item_series(server: Server) -> set[str]:
    text = HTTP.get(f"{server.url}/metrics").text
    return {line.split(" ")[0] for line in text.splitlines() if line.startswith("watchkeeper_ingest_items_total{")}


def test_made_up_item_types_do_not_create_metric_series(server: Server, project: ProjectFixture) -> None:
    before = item_series(server)
    for n in range(3):
        body = envelope(*(item(f"made-up-{n}-{i}", {"i": i}) for i in range(100)), item("profile", {"p": 1}))
        assert post(server, project, body).status_code == 200
    added = item_series(server) - before
    assert added == {
        'watchkeeper_ingest_items_total{category="unknown",outcome="skipped"}',
        'watchkeeper_ingest_items_total{category="profile",outcome="skipped"}',
    }


# --- unauthenticated bodies ------------------------------------------------------------------------


def gzip_bomb_envelope(header: dict[str, Any], inflated: int) -> bytes:
    """A gzip body whose envelope header is ``header`` followed by an attachment of ``inflated`` zeros.

    After a full flush the compressor forgets its history, so each further MiB of zeros compresses to
    the same bytes and is repeated instead of compressed again; the stream is cut before its end (no
    reader may get that far)."""
    head = envelope(**header) + orjson.dumps({"type": "attachment", "length": inflated}) + b"\n"
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    first = compressor.compress(head) + compressor.flush(zlib.Z_FULL_FLUSH)
    first += compressor.compress(bytes(MiB)) + compressor.flush(zlib.Z_FULL_FLUSH)
    piece = compressor.compress(bytes(MiB)) + compressor.flush(zlib.Z_FULL_FLUSH)
    return first + piece * (inflated // MiB - 1)


def test_a_gzip_bomb_with_a_bad_key_is_refused_before_it_is_inflated(server: Server, project: ProjectFixture) -> None:
    # The default limits: before the key was checked, such a body was inflated up to 200 MiB.
    assert server.settings.ingest.max_decompressed_bytes == 200 * MiB
    other = make_project(server, "Other")
    stranger = "1234567890abcdef" * 2
    url = f"{server.url}/api/{project.id}/envelope/"
    cases = [
        # (envelope header, request headers, expected status)
        ({"dsn": f"http://{stranger}@localhost/{project.id}"}, {}, 403),  # unknown key in the dsn
        ({"dsn": other.dsn}, {}, 403),  # another project's key in the dsn
        ({"dsn": "http://not-a-key@localhost/1"}, {}, 403),
        ({}, {}, 401),  # no key anywhere
        ({}, {"X-Sentry-Auth": f"Sentry sentry_version=7, sentry_key={stranger}"}, 403),
    ]
    for header, headers, status in cases:
        body = gzip_bomb_envelope(header, 1024 * MiB)
        assert len(body) < 2 * MiB
        tracemalloc.start()
        try:
            started = time.monotonic()
            response = HTTP.post(url, content=body, headers={"Content-Encoding": "gzip", **headers})
            elapsed = time.monotonic() - started
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert_refused(response, status)
        # The gibibyte never exists, nor the 200 MiB that the limit would allow: the header's first
        # line and a piece at most, beside the 1 MiB body and the client's copy of it.
        assert peak < 8 * MiB, (header, headers, peak)
        assert elapsed < 1, (header, headers, elapsed)
    assert stored(server, envelope_items, project.id) == []


def test_a_body_with_its_key_only_in_the_dsn_is_still_accepted_whole(server: Server, project: ProjectFixture) -> None:
    event = an_event(message="keyed by dsn")
    body = gzip.compress(envelope(item("event", event), item("attachment", b"x" * 300_000), dsn=project.dsn))
    response = HTTP.post(
        f"{server.url}/api/{project.id}/envelope/", content=body, headers={"Content-Encoding": "gzip"}
    )
    assert response.status_code == 200, response.text
    assert response.json()["id"] == event["event_id"]
    assert len(stored(server, events, project.id)) == 1


def test_stacked_encodings_need_a_key_outside_the_body(server: Server, project: ProjectFixture) -> None:
    body = gzip.compress(gzip.compress(envelope(item("event", an_event()), dsn=project.dsn)))
    response = HTTP.post(
        f"{server.url}/api/{project.id}/envelope/", content=body, headers={"Content-Encoding": "gzip, gzip"}
    )
    assert "X-Sentry-Auth" in assert_refused(response, 401)
    assert post(server, project, body, headers={"Content-Encoding": "gzip, gzip"}).status_code == 200
