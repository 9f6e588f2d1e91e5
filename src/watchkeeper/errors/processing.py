"""Turning decoded envelope items into records ready to store: normalise, scrub, group.

Runs on the request path (CPU only, no I/O); the writer stores the result.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from watchkeeper.errors.admission import AdmittedEnvelope, admit_items, budget_admission
from watchkeeper.errors.decoding import BodyDecodingError, BodyTooLarge, decode_body, iter_decoded
from watchkeeper.errors.envelope import (
    EnvelopeError,
    EnvelopeItem,
    EnvelopeReader,
    parse_json_object,
)
from watchkeeper.errors.grouping import (
    GROUPING_CONFIG,
    compute_grouping,
    event_culprit,
    event_metadata,
    event_title,
)
from watchkeeper.errors.interfaces import trace_id
from watchkeeper.errors.normalize import InvalidEvent, normalize_event
from watchkeeper.errors.pii_patterns import PLACEHOLDERS
from watchkeeper.errors.records import (
    AttachmentRecord,
    EnvelopeRecords,
    EventRecord,
    ItemRecord,
    TransactionRecord,
    pickled_by_fields,
)
from watchkeeper.errors.scrubbing import EventScrubber, ScrubbingRules, scrub_event
from watchkeeper.errors.sentry_auth import AuthError, find_public_key
from watchkeeper.lib.blobs import pack_document

# Item types kept as sent (after validation) for the domains that read them later.
KEPT_ITEM_TYPES = {"session", "sessions", "client_report", "check_in", "log", "otel_log", "user_report", "feedback"}
# Item types whose payload process_item reads; any other item is only counted.
READ_ITEM_TYPES = frozenset({"event", "transaction", "attachment", *KEPT_ITEM_TYPES})
MAX_TAGS_PER_EVENT = 50
# Item types Sentry SDKs send that we skip, counted by name; any other name is counted as "unknown".
KNOWN_SKIPPED_TYPES = frozenset(
    {
        "span",
        "profile",
        "profile_chunk",
        "statsd",
        "metric_buckets",
        "security",
        "nel",
        "unreal_report",
        "form_data",
        "raw_security",
        "otel_span",
        "trace_metric",
        "client_report_v2",
    }
)


def processing_build() -> str:
    """``"compiled"`` when the processing modules run compiled by mypyc (see setup.py), else ``"pure Python"``."""
    from watchkeeper.errors import grouping, interfaces, normalize, pii_patterns, scrubbing

    modules = (grouping, interfaces, normalize, pii_patterns, scrubbing)
    return "compiled" if all(not str(m.__file__).endswith(".py") for m in modules) else "pure Python"


class IngestError(Exception):
    """A request the ingest refuses: HTTP ``status``, a message for the client, a ``reason`` for metrics."""

    def __init__(self, status: int, message: str, reason: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.headers = headers or {}

    def __reduce__(self) -> tuple[Any, ...]:  # it crosses from processor processes
        return (IngestError, (self.status, str(self), self.reason, self.headers))


def decode_request_body(body: bytes, content_encoding: str | None, max_decompressed_bytes: int) -> bytes:
    """Undo a request body's Content-Encoding; IngestError 413 (too large) or 400 (corrupt)."""
    try:
        return decode_body(body, content_encoding, max_size=max_decompressed_bytes)
    except BodyTooLarge as exc:
        raise IngestError(413, str(exc), "too_large") from None
    except BodyDecodingError as exc:
        raise IngestError(400, str(exc), "invalid") from None


def read_envelope_header(body: bytes, content_encoding: str | None, max_decompressed_bytes: int) -> dict[str, Any]:
    """Only the envelope header (its first line) of a request body: what an unauthenticated request
    costs before its key, which may sit in the header's `dsn`, is checked. Decodes at most the first
    64 KiB and a piece, however far the body would expand."""
    if len(_encoding_layers(content_encoding)) > 1:
        # All but the last layer of a stack are decoded whole: too much to do for a stranger.
        raise IngestError(
            401,
            "missing authorization information: a body with stacked Content-Encodings must name its "
            "key in X-Sentry-Auth or the sentry_key query parameter",
            "unauthorized",
        )
    try:
        pieces = iter_decoded(body, content_encoding, max_size=max_decompressed_bytes)
        return EnvelopeReader(pieces).header()
    except BodyTooLarge as exc:
        raise IngestError(413, str(exc), "too_large") from None
    except BodyDecodingError as exc:
        raise IngestError(400, str(exc), "invalid") from None
    except EnvelopeError as exc:
        raise IngestError(400, f"invalid envelope: {exc}", "invalid") from None


def read_admitted(
    body: bytes,
    content_encoding: str | None,
    max_decompressed_bytes: int,
    admit: Callable[[str, int], bool],
    check_header: Callable[[dict[str, Any]], None] | None = None,
) -> AdmittedEnvelope:
    """Decode and read a request body item by item, admitting each against its quota (see
    errors/admission.py); IngestError (400/413) says what is wrong with the body."""
    try:
        reader = EnvelopeReader(iter_decoded(body, content_encoding, max_size=max_decompressed_bytes))
        return admit_items(reader, admit, READ_ITEM_TYPES, check_header)
    except BodyTooLarge as exc:
        raise IngestError(413, str(exc), "too_large") from None
    except BodyDecodingError as exc:
        raise IngestError(400, str(exc), "invalid") from None
    except EnvelopeError as exc:
        raise IngestError(400, f"invalid envelope: {exc}", "invalid") from None


def dsn_agrees(auth_header: str | None, query_key: str | None) -> Callable[[dict[str, Any]], None]:
    """A check of an envelope header: its ``dsn``, if any, names the key the request was authorised
    with (IngestError 400 when it names another)."""

    def check(headers: dict[str, Any]) -> None:
        dsn = headers.get("dsn")
        try:
            find_public_key(auth_header, query_key, dsn if isinstance(dsn, str) else None)
        except AuthError as exc:
            raise IngestError(exc.status, str(exc), "unauthorized") from None

    return check


def count_refused(records: EnvelopeRecords, refused: dict[str, int]) -> None:
    """Count items refused by a quota under the names their accepted outcomes use."""
    for kind, n in refused.items():
        records.count("error" if kind == "event" else kind, "rate_limited", n)


def _encoding_layers(content_encoding: str | None) -> list[str]:
    names = (name.strip().lower() for name in (content_encoding or "").split(","))
    return [name for name in names if name and name != "identity"]


class ItemRejected(Exception):
    """One item is unusable; `status` and message describe it (other items of the envelope still count)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def user_key(event: dict[str, Any]) -> str | None:
    """Sentry's `user` tag: the most stable identifier the event carries.

    >>> user_key({"user": {"email": "a@b.c", "id": 7}})
    'id:7'
    >>> user_key({"user": {"email": "[email]", "username": "jane"}})
    'username:jane'
    """
    user = event.get("user")
    if not isinstance(user, dict):
        return None
    for field, prefix in (("id", "id"), ("email", "email"), ("username", "username"), ("ip_address", "ip")):
        value = user.get(field)
        # A scrubbed value ("[email]") would make every user one.
        if value not in (None, "") and value not in PLACEHOLDERS:
            return f"{prefix}:{value}"[:200]
    return None


def _event_tags(event: dict[str, Any], user: str | None) -> list[tuple[str, str]]:
    tags: dict[str, str] = {}
    for pair in event.get("tags") or ():
        if len(tags) >= MAX_TAGS_PER_EVENT:
            break
        tags[str(pair[0])] = str(pair[1])
    tags["level"] = event["level"]
    if event.get("environment"):
        tags["environment"] = event["environment"]
    if event.get("release"):
        tags["release"] = event["release"]
    if user:
        tags["user"] = user
    for name in ("server_name", "transaction"):
        value = event.get(name)
        if isinstance(value, str) and value:
            tags.setdefault(name, value[:200])
    event["tags"] = [[k, v] for k, v in tags.items()]
    return list(tags.items())


def process_event(
    payload: dict[str, Any], *, project_id: int, received: float, client_ip: str | None, rules: ScrubbingRules
) -> EventRecord:
    # Frame variables and breadcrumb data are scrubbed while normalisation trims them: one walk.
    scrubber = EventScrubber(rules)
    event = normalize_event(payload, received_at=received, client_ip=client_ip, trim_vars=scrubber.trim_and_scrub)
    scrubber.scrub(event, vars_scrubbed=True)
    grouping = compute_grouping(event)
    event["grouping"] = {"config": GROUPING_CONFIG, "variant": grouping.variant, "hash": grouping.hash}
    user = _optional_text(user_key(event))
    tags = [(_column_text(k), _column_text(v)) for k, v in _event_tags(event, user)]
    title = _column_text(event_title(event))
    culprit = _column_text(event_culprit(event))
    event["title"], event["culprit"] = title, culprit
    return EventRecord(
        project_id=project_id,
        event_id=event["event_id"],
        hash=grouping.hash,
        grouping_config=GROUPING_CONFIG,
        title=title,
        culprit=culprit,
        type=event.get("type", "default"),
        level=event["level"],
        platform=event.get("platform") or "other",
        timestamp=event["timestamp"],
        received=received,
        environment=_optional_text(event.get("environment")),
        release=_optional_text(event.get("release")),
        user_key=user,
        tags=tags,
        metadata=event_metadata(event),
        data=pack_document(event),
    )


def process_transaction(
    payload: dict[str, Any], *, project_id: int, received: float, client_ip: str | None, rules: ScrubbingRules
) -> TransactionRecord:
    event = normalize_event(payload, received_at=received, client_ip=client_ip, event_type="transaction")
    scrub_event(event, rules)
    trace = (event.get("contexts") or {}).get("trace") or {}
    return TransactionRecord(
        project_id=project_id,
        event_id=event["event_id"],
        trace_id=trace.get("trace_id"),
        name=_column_text(str(event.get("transaction") or "<unlabeled transaction>")[:500]),
        op=_clip(trace.get("op"), 200),
        status=_clip(trace.get("status"), 64),
        start_timestamp=event["start_timestamp"],
        timestamp=event["timestamp"],
        environment=_optional_text(event.get("environment")),
        release=_optional_text(event.get("release")),
        received=received,
        data=pack_document(event),
    )


def process_item(
    item: EnvelopeItem,
    records: EnvelopeRecords,
    *,
    envelope_event_id: str | None,
    client_ip: str | None,
    rules: ScrubbingRules,
    limits: dict[str, int],
) -> str | None:
    """Add what one item contributes to `records`; returns the event id it stored, if any.

    Raises ItemRejected for an event/transaction that is too large or not valid JSON.
    """
    kind = item.type
    size = len(item.payload)
    try:
        if kind in ("event", "transaction"):
            if size > limits["event"]:
                raise ItemRejected(413, f"{kind} item is {size} bytes, over the {limits['event']} byte limit")
            payload = parse_json_object(item.payload, f"{kind} item")
            if envelope_event_id and "event_id" not in payload:
                payload["event_id"] = envelope_event_id
            if kind == "event":
                record = process_event(
                    payload, project_id=records.project_id, received=records.received, client_ip=client_ip, rules=rules
                )
                records.events.append(record)
                records.count("error", "accepted")
                return record.event_id
            transaction = process_transaction(
                payload, project_id=records.project_id, received=records.received, client_ip=client_ip, rules=rules
            )
            records.transactions.append(transaction)
            records.count("transaction", "accepted")
            return transaction.event_id
        if kind == "attachment":
            if size > limits["attachment"]:
                records.count("attachment", "too_large")
                return None
            records.attachments.append(
                AttachmentRecord(
                    project_id=records.project_id,
                    event_id=envelope_event_id,
                    filename=_column_text(str(item.headers.get("filename") or "attachment")[:255]),
                    content_type=_header(item, "content_type"),
                    attachment_type=_header(item, "attachment_type", 64),
                    received=records.received,
                    data=item.payload,
                )
            )
            records.count("attachment", "accepted")
            return None
        if kind in KEPT_ITEM_TYPES:
            limit = limits["check_in"] if kind == "check_in" else limits["event"]
            if size > limit:
                records.count(kind, "too_large")
                return None
            document: Any = parse_json_object(item.payload, f"{kind} item")
            if kind in ("log", "otel_log", "user_report", "feedback", "check_in"):
                document = scrub_event(document, rules) if kind != "check_in" else document
            records.items.append(
                ItemRecord(
                    project_id=records.project_id,
                    type=kind,
                    event_id=envelope_event_id,
                    received=records.received,
                    data=pack_document(document),
                )
            )
            records.count(kind, "accepted")
            return None
    except (EnvelopeError, InvalidEvent) as exc:
        if kind in ("event", "transaction"):
            raise ItemRejected(400, str(exc)) from None
        records.count(kind, "invalid")
        return None
    # Unknown item types are skipped, never an error: newer SDKs send types we do not know yet.
    # Item type names come from the client: only names Sentry defines become a counter category (a
    # metric label and a database row per minute), so random names cannot grow either without bound.
    records.count(kind if kind in KNOWN_SKIPPED_TYPES or kind.startswith("replay_") else "unknown", "skipped")
    return None


@pickled_by_fields
@dataclass(slots=True)
class ItemsJob:
    """Items of one envelope to process, with everything processing needs: picklable, so a processor
    process can run it (see errors/processors.py)."""

    project_id: int
    received: float
    items: list[EnvelopeItem]
    envelope_event_id: str | None
    client_ip: str | None
    rules: ScrubbingRules
    limits: dict[str, int]


@pickled_by_fields
@dataclass(slots=True)
class ProcessedItems:
    records: EnvelopeRecords
    # The event id the answer names: the error event when there is one, else the first stored item.
    stored_id: str | None = None
    stored_kind: str | None = None
    # (status, message) of the first rejected event/transaction item; a tuple, as it crosses processes.
    rejected: tuple[int, str] | None = None
    # The records already pickled for the writer process (see `pack_records`); `records` then keeps only
    # the outcomes, which the server counts in its metrics.
    packed: bytes | None = None

    @property
    def nothing_to_store(self) -> bool:
        return self.packed is None and self.records.empty


def pack_records(done: ProcessedItems) -> ProcessedItems:
    """Pickle ``done``'s records where they were made, for the writer process (storage.save_packed_envelopes).

    Records made in a processor process travel to the server and on to the writer process. Unpickled and
    pickled again in between, they cost the server — one event loop for every core's requests — about
    15 µs per event; as one opaque blob they cost it a copy. The outcomes stay readable for the metrics.
    """
    records = done.records
    if records.empty or done.packed is not None:
        return done
    done.packed = pickle.dumps(records, pickle.HIGHEST_PROTOCOL)
    done.records = EnvelopeRecords(records.project_id, records.received, outcomes=records.outcomes)
    return done


def process_items(job: ItemsJob) -> ProcessedItems:
    """Process every item of ``job``; a rejected item is counted and remembered, the others still count."""
    records = EnvelopeRecords(project_id=job.project_id, received=job.received)
    done = ProcessedItems(records)
    for item in job.items:
        try:
            event_id = process_item(
                item,
                records,
                envelope_event_id=job.envelope_event_id,
                client_ip=job.client_ip,
                rules=job.rules,
                limits=job.limits,
            )
        except ItemRejected as exc:
            done.rejected = done.rejected or (exc.status, str(exc))
            records.count("error" if item.type == "event" else item.type, "invalid")
            continue
        if event_id is not None and (
            done.stored_id is None or (item.type == "event" and done.stored_kind != "event")
        ):
            done.stored_id, done.stored_kind = event_id, item.type
    return done


@pickled_by_fields
@dataclass(slots=True)
class EnvelopeJob:
    """A whole envelope request body for a processor process: it decompresses, parses, checks the
    envelope's ``dsn`` against the key the request authenticated with, admits each item against what
    its quota had left (``budget``) and processes every admitted item."""

    body: bytes
    content_encoding: str | None
    max_decompressed_bytes: int
    auth_header: str | None
    query_key: str | None
    # Everything but the items (and the envelope's event id), which come from the body.
    context: ItemsJob
    # What each limited category could still take when the request came in (see Quotas.budget).
    budget: dict[str, int]


@pickled_by_fields
@dataclass(slots=True)
class ProcessedEnvelope:
    done: ProcessedItems
    envelope_id: str | None
    # Quantity admitted per quota category, for the server to take from the quotas.
    usage: dict[str, int]
    refused_categories: list[str]
    nothing_admitted: bool


def process_envelope(job: EnvelopeJob) -> ProcessedEnvelope:
    """Raises IngestError for a body that cannot be read or whose ``dsn`` names another key."""
    admitted = read_admitted(
        job.body,
        job.content_encoding,
        job.max_decompressed_bytes,
        budget_admission(dict(job.budget)),
        dsn_agrees(job.auth_header, job.query_key),
    )
    context = job.context
    context.items = admitted.items
    context.envelope_event_id = trace_id(admitted.headers.get("event_id"))
    done = process_items(context)
    count_refused(done.records, admitted.refused)
    return ProcessedEnvelope(
        done, context.envelope_event_id, admitted.usage, admitted.refused_categories, admitted.nothing_admitted
    )


def process_envelope_for_writer(job: EnvelopeJob) -> ProcessedEnvelope:
    """`process_envelope` with the records packed for the writer process (see `pack_records`): what a
    processor process runs for the envelope endpoint."""
    processed = process_envelope(job)
    pack_records(processed.done)
    return processed


def merge_processed(into: ProcessedItems, other: ProcessedItems) -> None:
    """Add ``other`` (items of the same envelope processed elsewhere, not packed) to ``into``."""
    if into.packed is not None or other.packed is not None:
        raise ValueError("packed records cannot be merged")
    a, b = into.records, other.records
    a.events += b.events
    a.transactions += b.transactions
    a.items += b.items
    a.attachments += b.attachments
    for (category, outcome), n in b.outcomes.items():
        a.count(category, outcome, n)
    if other.stored_id is not None and (
        into.stored_id is None or (other.stored_kind == "event" and into.stored_kind != "event")
    ):
        into.stored_id, into.stored_kind = other.stored_id, other.stored_kind
    into.rejected = into.rejected or other.rejected


def _clip(value: Any, chars: int) -> str | None:
    """Text for a column of ``chars`` characters (PostgreSQL refuses longer strings, SQLite does not)."""
    return _column_text(value[:chars]) if isinstance(value, str) and value else None


def _column_text(value: str) -> str:
    r"""PostgreSQL text cannot hold NUL; the stored JSON document keeps the original (escaped).

    >>> _column_text("a\x00b")
    'a\ufffdb'
    """
    return value.replace("\x00", "\ufffd") if "\x00" in value else value


def _optional_text(value: Any) -> str | None:
    return _column_text(value) if isinstance(value, str) else None


def _header(item: EnvelopeItem, name: str, chars: int = 255) -> str | None:
    """An item header as text clipped to its column's size (PostgreSQL refuses longer strings)."""
    value = item.headers.get(name)
    return _column_text(str(value)[:chars]) if value is not None else None
