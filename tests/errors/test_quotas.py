"""Quotas per Sentry data category, against the real server: every item kind is counted in its category,
attachments by their bytes, the answer names each refused category, and refused items are never held
in memory or stored."""

from __future__ import annotations

import time
import tracemalloc
import uuid
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import select

from tests.conftest import ProjectFixture, Server, make_project, make_token, run_server
from watchkeeper.config import Settings
from watchkeeper.errors.tables import attachments, envelope_items, events, transactions

MiB = 1024 * 1024


def new_id() -> str:
    return uuid.uuid4().hex


def item(kind: str, payload: bytes | dict[str, Any], **headers: Any) -> bytes:
    data = payload if isinstance(payload, bytes) else orjson.dumps(payload)
    return orjson.dumps({"type": kind, "length": len(data), **headers}) + b"\n" + data + b"\n"


def envelope(*items: bytes, **header: Any) -> bytes:
    return orjson.dumps(header) + b"\n" + b"".join(items)


def an_event() -> dict[str, Any]:
    return {"event_id": new_id(), "message": "quota", "level": "error", "timestamp": time.time()}


def a_transaction() -> dict[str, Any]:
    now = time.time()
    return {
        "event_id": new_id(),
        "type": "transaction",
        "transaction": "GET /",
        "start_timestamp": now - 0.1,
        "timestamp": now,
        "contexts": {"trace": {"trace_id": new_id(), "span_id": new_id()[:16]}},
    }


# (item type, a payload, the Sentry data category it counts in)
ITEM_KINDS = [
    ("transaction", a_transaction, "transaction"),
    ("span", lambda: {"span_id": new_id()[:16], "trace_id": new_id(), "start_timestamp": time.time()}, "span"),
    ("session", lambda: {"sid": new_id(), "status": "ok", "attrs": {"release": "a@1"}}, "session"),
    ("sessions", lambda: {"aggregates": [{"started": "2026-01-01T00:00:00Z", "exited": 1}]}, "session"),
    ("check_in", lambda: {"check_in_id": new_id(), "monitor_slug": "nightly", "status": "ok"}, "monitor"),
    ("log", lambda: {"items": [{"timestamp": time.time(), "level": "info", "body": "hi"}]}, "log_item"),
    ("profile", lambda: {"version": "1", "profile": {}}, "profile"),
    ("profile_chunk", lambda: {"version": "2", "chunk_id": new_id()}, "profile_chunk"),
    ("replay_event", lambda: {"replay_id": new_id()}, "replay"),
    ("replay_recording", lambda: b"\x00binary", "replay"),
    ("feedback", lambda: {"contexts": {"feedback": {"message": "nice"}}}, "feedback"),
    ("statsd", lambda: b"app.hits:1|c", "metric_bucket"),
]


class Ingest:
    """Sends raw envelopes for one project and reads what was stored."""

    def __init__(self, server: Server, project: ProjectFixture) -> None:
        self.server = server
        self.project = project
        self.http = httpx.Client(timeout=60, headers={"Connection": "close"})

    def send(self, body: bytes, **headers: str) -> httpx.Response:
        return self.http.post(
            f"{self.server.url}/api/{self.project.id}/envelope/",
            content=body,
            headers={"X-Sentry-Auth": f"Sentry sentry_version=7, sentry_key={self.project.public_key}", **headers},
        )

    def rows(self, table: Any) -> list[Any]:
        with self.server.runtime.engine.connect() as conn:
            return list(conn.execute(select(table).where(table.c.project_id == self.project.id)))


def set_limits(server: Server, project: ProjectFixture, **changes: Any) -> None:
    token = make_token(server)
    response = httpx.patch(
        f"{server.url}/api/v1/projects/{project.id}", json=changes, headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 200, response.text
    if "quotas" in changes:
        assert response.json()["quotas"] == changes["quotas"]


def limited(response: httpx.Response) -> dict[str, tuple[str, str]]:
    """The categories X-Sentry-Rate-Limits names: {category;list: (scope, reason)}."""
    found: dict[str, tuple[str, str]] = {}
    for entry in filter(None, (part.strip() for part in response.headers.get("x-sentry-rate-limits", "").split(","))):
        seconds, categories, scope, reason = entry.split(":")
        assert 1 <= int(seconds) <= 3600
        found[categories] = (scope, reason)
    return found


@pytest.fixture(params=[0, 1], ids=["in-process", "processor-pool"])
def pool_server(request: pytest.FixtureRequest, settings: Settings) -> Iterator[Server]:
    """The server with no processor process (items read where quotas are counted) and with one (items
    read in the processor against a budget)."""
    settings.ingest.processors = request.param
    with run_server(settings) as server:
        yield server


@pytest.mark.parametrize(("kind", "payload", "category"), ITEM_KINDS, ids=[kind for kind, _, _ in ITEM_KINDS])
def test_every_item_kind_is_counted_in_its_category(
    pool_server: Server, kind: str, payload: Any, category: str
) -> None:
    project = make_project(pool_server)
    set_limits(pool_server, project, quotas={category: {"per_minute": 1}})
    ingest = Ingest(pool_server, project)
    first = ingest.send(envelope(item(kind, payload())))
    assert first.status_code == 200, first.text
    assert "x-sentry-rate-limits" not in first.headers
    refused = ingest.send(envelope(item(kind, payload())))
    assert refused.status_code == 429, refused.text
    assert limited(refused) == {category: ("project", "project_quota")}
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert category in refused.json()["detail"]
    # Events of the same project are still accepted, and their answer names no other category.
    accepted = ingest.send(envelope(item("event", an_event())))
    assert accepted.status_code == 200 and "x-sentry-rate-limits" not in accepted.headers


def test_a_refused_category_is_named_while_the_rest_of_the_envelope_is_stored(pool_server: Server) -> None:
    project = make_project(pool_server)
    set_limits(pool_server, project, quotas={"transaction": {"per_hour": 1}})
    ingest = Ingest(pool_server, project)
    assert ingest.send(envelope(item("transaction", a_transaction()))).status_code == 200
    event = an_event()
    mixed = envelope(item("event", event), item("transaction", a_transaction()), event_id=event["event_id"])
    answer = ingest.send(mixed)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"id": event["event_id"]}
    assert limited(answer) == {"transaction": ("project", "project_quota")}
    assert [row.event_id for row in ingest.rows(events)] == [event["event_id"]]
    assert len(ingest.rows(transactions)) == 1


def test_transactions_are_limited_apart_from_error_events(pool_server: Server) -> None:
    """The attack: events_per_minute=1 refused error events while transactions went on being stored."""
    project = make_project(pool_server)
    set_limits(pool_server, project, events_per_minute=1, quotas={"transaction": {"per_minute": 2}})
    ingest = Ingest(pool_server, project)
    assert ingest.send(envelope(item("event", an_event()))).status_code == 200
    refused = ingest.send(envelope(item("event", an_event())))
    assert refused.status_code == 429
    assert limited(refused) == {"error;default;security": ("project", "project_quota")}
    answers = [ingest.send(envelope(item("transaction", a_transaction()))) for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 429, 429]
    assert limited(answers[-1]) == {"transaction": ("project", "project_quota")}
    assert (len(ingest.rows(events)), len(ingest.rows(transactions))) == (1, 2)


def test_attachment_bytes_have_their_own_limit(pool_server: Server) -> None:
    project = make_project(pool_server)
    set_limits(pool_server, project, quotas={"attachment": {"per_minute": 1 * MiB}})
    ingest = Ingest(pool_server, project)
    event = an_event()
    body = envelope(
        item("event", event),
        item("attachment", b"a" * 600_000, filename="one.bin"),
        item("attachment", b"b" * 600_000, filename="two.bin"),
        event_id=event["event_id"],
    )
    answer = ingest.send(body)
    assert answer.status_code == 200, answer.text
    assert limited(answer) == {"attachment": ("project", "project_quota")}
    assert [row.filename for row in ingest.rows(attachments)] == ["one.bin"]
    # 600,000 of the 1 MiB are taken: a 500 kB attachment is still refused, a 400 kB one fits.
    small = envelope(item("attachment", b"c" * 400_000, filename="small.bin"))
    large = envelope(item("attachment", b"d" * 500_000, filename="large.bin"))
    assert ingest.send(large).status_code == 429
    assert ingest.send(small).status_code == 200
    assert sorted(row.filename for row in ingest.rows(attachments)) == ["one.bin", "small.bin"]


def test_attachments_go_with_their_refused_event(pool_server: Server) -> None:
    project = make_project(pool_server)
    set_limits(pool_server, project, events_per_minute=1)
    ingest = Ingest(pool_server, project)
    assert ingest.send(envelope(item("event", an_event()))).status_code == 200
    event = an_event()
    body = envelope(item("event", event), item("attachment", b"x" * 1000), event_id=event["event_id"])
    refused = ingest.send(body)
    assert refused.status_code == 429
    assert ingest.rows(attachments) == []


def _peak_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


def nine_big_attachments(event: dict[str, Any] | None) -> bytes:
    """The attack's body: a gzip envelope of nine 19 MiB attachments (171 MiB inflated, ~175 kB sent),
    after an error event when one is given. Compressed piece by piece: zeros after a full flush
    compress to the same bytes each MiB."""
    compressor = zlib.compressobj(6, zlib.DEFLATED, 31)
    parts = []
    head = envelope(item("event", event), event_id=event["event_id"]) if event else b"{}\n"
    parts.append(compressor.compress(head))
    for n in range(9):
        header = orjson.dumps({"type": "attachment", "length": 19 * MiB, "filename": f"dump{n}.bin"}) + b"\n"
        parts.append(compressor.compress(header))
        for _ in range(19):
            parts.append(compressor.compress(bytes(MiB)))
        parts.append(compressor.compress(b"\n"))
    parts.append(compressor.flush())
    return b"".join(parts)


@pytest.mark.parametrize("with_event", [True, False], ids=["after-a-refused-event", "attachments-only"])
def test_nine_19_mib_attachments_over_quota_are_neither_stored_nor_held(pool_server: Server, with_event: bool) -> None:
    project = make_project(pool_server)
    ingest = Ingest(pool_server, project)
    if with_event:
        set_limits(pool_server, project, events_per_minute=1)
        assert ingest.send(envelope(item("event", an_event()))).status_code == 200
    else:
        set_limits(pool_server, project, quotas={"attachment": {"per_minute": 10 * MiB}})
    body = nine_big_attachments(an_event() if with_event else None)
    assert len(body) < MiB
    pool = pool_server.runtime.processors
    child_peak = _peak_rss(pool.pids[0]) if pool else 0
    tracemalloc.start()
    try:
        started = time.monotonic()
        answer = ingest.send(body, **{"Content-Encoding": "gzip"})
        elapsed = time.monotonic() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert answer.status_code == 429, answer.text
    expected = "error;default;security" if with_event else "attachment"
    assert limited(answer) == {expected: ("project", "project_quota")}
    assert ingest.rows(attachments) == [] and ingest.rows(envelope_items) == []
    # Inflated piece by piece and passed over: a few MiB at a time, never the 171 MiB.
    assert peak < 16 * MiB, peak
    if pool:
        assert _peak_rss(pool.pids[0]) - child_peak < 32 * MiB
    assert elapsed < 10


def test_quotas_are_validated_with_a_clear_error(server: Server, project: ProjectFixture) -> None:
    token = make_token(server)
    for quotas, field in [
        ({"transactions": {"per_minute": 1}}, "unknown category 'transactions'"),
        ({"attachment": {"per_day": 1}}, "unknown window 'per_day'"),
        ({"span": {"per_minute": 0}}, "quotas.span.per_minute"),
        ({"span": 5}, "quotas.span"),
    ]:
        response = httpx.patch(
            f"{server.url}/api/v1/projects/{project.id}",
            json={"quotas": quotas},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert response.status_code == 422, response.text
        assert field in response.json()["detail"]
