import gzip
import itertools
import json
import pickle
import zlib
from collections.abc import Callable

import brotli
import orjson
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from watchkeeper.errors.decoding import BodyDecodingError, BodyTooLarge, decode_body
from watchkeeper.errors.envelope import Envelope, EnvelopeError, EnvelopeItem, EnvelopeReader, parse_envelope

FUZZ = settings(max_examples=300, deadline=None)
MAX_SIZE = 64 * 1024

ITEM_TYPES = st.sampled_from(["event", "transaction", "attachment", "session", "client_report", "x-unknown"])
# Payloads sent without a length cannot contain a newline, and a trailing "\r" would be taken as
# part of a CRLF line ending.
LINE_PAYLOADS = st.binary(max_size=40).map(lambda data: data.replace(b"\n", b"").rstrip(b"\r"))


@st.composite
def envelope_parts(draw: st.DrawFn) -> tuple[dict[str, object], list[tuple[str, bool, bytes]]]:
    headers: dict[str, object] = draw(
        st.dictionaries(st.sampled_from(["event_id", "dsn", "sent_at"]), st.text(max_size=20))
    )
    items = draw(
        st.lists(
            st.one_of(
                st.tuples(ITEM_TYPES, st.just(True), st.binary(max_size=60)),
                st.tuples(ITEM_TYPES, st.just(False), LINE_PAYLOADS),
            ),
            max_size=6,
        )
    )
    return headers, items


def serialize(headers: dict[str, object], items: list[tuple[str, bool, bytes]]) -> bytes:
    lines = [orjson.dumps(headers)]
    for item_type, with_length, payload in items:
        item_headers: dict[str, object] = {"type": item_type}
        if with_length:
            item_headers["length"] = len(payload)
        lines += [orjson.dumps(item_headers), payload]
    return b"\n".join(lines) + b"\n"


def parses_or_raises_envelope_error(body: bytes) -> None:
    try:
        envelope = parse_envelope(body, max_items=5)
    except EnvelopeError:
        return
    assert isinstance(envelope, Envelope)
    assert len(envelope.items) <= 5
    for item in envelope.items:
        assert isinstance(item.type, str)
        assert isinstance(item.payload, bytes)


@FUZZ
@given(st.binary(max_size=300))
def test_parse_envelope_only_raises_envelope_error_for_arbitrary_bytes(body: bytes) -> None:
    parses_or_raises_envelope_error(body)


@FUZZ
@given(envelope_parts())
def test_parse_envelope_round_trips_well_formed_envelopes(
    parts: tuple[dict[str, object], list[tuple[str, bool, bytes]]],
) -> None:
    headers, items = parts

    envelope = parse_envelope(serialize(headers, items))

    assert envelope.headers == headers
    assert [(item.type, item.payload) for item in envelope.items] == [(t, p) for t, _, p in items]


@st.composite
def mutated_envelopes(draw: st.DrawFn) -> bytes:
    body = bytearray(serialize(*draw(envelope_parts())))
    for _ in range(draw(st.integers(1, 4))):
        position = draw(st.integers(0, len(body)))
        action = draw(st.sampled_from(["flip", "delete", "insert", "truncate", "duplicate"]))
        if action == "flip" and position < len(body):
            body[position] ^= draw(st.integers(1, 255))
        elif action == "delete":
            del body[position : position + draw(st.integers(1, 10))]
        elif action == "insert":
            body[position:position] = draw(
                st.sampled_from([b"\n", b"\r", b"{", b"[" * 2000, b"\xff", b'"', b"0"])
            )
        elif action == "truncate":
            del body[position:]
        elif action == "duplicate":
            body[position:position] = body[position : position + draw(st.integers(1, 30))]
    return bytes(body)


@FUZZ
@given(mutated_envelopes())
def test_parse_envelope_only_raises_envelope_error_for_mutated_envelopes(body: bytes) -> None:
    parses_or_raises_envelope_error(body)


def zstd(data: bytes) -> bytes:
    return zstandard.ZstdCompressor().compress(data)


ENCODERS: dict[str, Callable[[bytes], bytes]] = {
    "gzip": gzip.compress,
    "deflate": zlib.compress,
    "br": brotli.compress,
    "zstd": zstd,
}
ENCODINGS = st.sampled_from([*ENCODERS, "gzip, br", None])


def decodes_or_raises_decoding_errors(body: bytes, content_encoding: str | None) -> None:
    try:
        decoded = decode_body(body, content_encoding, max_size=MAX_SIZE)
    except (BodyDecodingError, BodyTooLarge):
        return
    assert len(decoded) <= MAX_SIZE


@FUZZ
@given(st.binary(max_size=300), ENCODINGS)
def test_decode_body_only_raises_decoding_errors_for_arbitrary_bytes(
    body: bytes, content_encoding: str | None
) -> None:
    decodes_or_raises_decoding_errors(body, content_encoding)


@st.composite
def mutated_compressed(draw: st.DrawFn) -> tuple[bytes, str]:
    encoding = draw(st.sampled_from(sorted(ENCODERS)))
    # Repetitive data compresses into back-references, which exercises more decoder paths.
    data = draw(st.binary(max_size=200)) * draw(st.integers(1, 500))
    body = bytearray(ENCODERS[encoding](data))
    for _ in range(draw(st.integers(1, 3))):
        position = draw(st.integers(0, len(body) - 1))
        action = draw(st.sampled_from(["flip", "truncate", "append"]))
        if action == "flip":
            body[position] ^= draw(st.integers(1, 255))
        elif action == "truncate":
            del body[position:]
            if not body:
                break
        else:
            body += draw(st.binary(min_size=1, max_size=8))
    return bytes(body), encoding


@FUZZ
@given(mutated_compressed())
def test_decode_body_only_raises_decoding_errors_for_mutated_streams(case: tuple[bytes, str]) -> None:
    decodes_or_raises_decoding_errors(*case)


@FUZZ
@given(st.binary(max_size=2000), st.sampled_from(sorted(ENCODERS)))
def test_decode_body_round_trips(data: bytes, encoding: str) -> None:
    assert decode_body(ENCODERS[encoding](data), encoding, max_size=MAX_SIZE) == data


# --- processing: what a processor process runs on each event, for any JSON a client can send -----

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70) | st.floats()
    | st.text(max_size=30) | st.sampled_from(["bob@example.com", "4111 1111 1111 1111", "10.1.2.3", "é" * 3]),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=25,
)
# Top-level keys of an event, each given any JSON value, and the nested shapes processing walks.
EVENT_KEYS = ["event_id", "timestamp", "level", "platform", "release", "environment", "user", "tags", "contexts",
              "request", "breadcrumbs", "exception", "threads", "stacktrace", "logentry", "message", "extra",
              "fingerprint", "sdk", "modules", "transaction", "server_name", "type", "spans"]
FRAMES = st.lists(st.dictionaries(st.sampled_from(["function", "module", "filename", "abs_path", "lineno",
                                                   "context_line", "pre_context", "in_app", "vars"]), JSON_VALUES),
                  max_size=4)
SHAPED = {
    "exception": st.fixed_dictionaries({"values": st.lists(st.fixed_dictionaries(
        {"type": JSON_VALUES, "value": JSON_VALUES, "stacktrace": st.fixed_dictionaries({"frames": FRAMES}),
         "mechanism": JSON_VALUES}), max_size=3)}),
    "breadcrumbs": st.fixed_dictionaries({"values": st.lists(st.dictionaries(
        st.sampled_from(["timestamp", "category", "message", "data", "level", "type"]), JSON_VALUES), max_size=4)}),
    "request": st.dictionaries(st.sampled_from(["url", "method", "headers", "cookies", "data", "query_string", "env"]),
                               JSON_VALUES),
}
EVENT_PAYLOADS = st.fixed_dictionaries(
    {}, optional={key: st.one_of(SHAPED[key], JSON_VALUES) if key in SHAPED else JSON_VALUES for key in EVENT_KEYS})


@settings(max_examples=300, deadline=None)
@given(EVENT_PAYLOADS, st.sampled_from(["event", "transaction"]))
def test_processing_answers_any_json_event_with_a_record_or_a_4xx(payload: dict[str, object], kind: str) -> None:
    """No JSON value anywhere in an event may fail processing with anything but a 4xx for that item.
    It matters twice: `pip install .` runs this code compiled by mypyc, which checks the annotated
    types at run time, where a wrong annotation raises TypeError (a 500) instead of passing through."""
    from watchkeeper.errors.processing import ItemsJob, pack_records, process_items
    from watchkeeper.errors.records import EnvelopeRecords
    from watchkeeper.errors.scrubbing import ScrubbingRules

    item = EnvelopeItem(kind, {}, json.dumps(payload).encode())  # not orjson: it refuses huge ints
    job = ItemsJob(1, 1_700_000_000.0, [item], None, "10.0.0.1", ScrubbingRules(), {"event": 1 << 20})
    done = process_items(job)
    if done.rejected is not None:
        assert 400 <= done.rejected[0] < 500
        return
    stored = done.records.events + done.records.transactions
    assert len(stored) == 1 and stored[0].event_id == done.stored_id
    pack_records(done)
    assert isinstance(pickle.loads(done.packed or b""), EnvelopeRecords)


def _read_in_pieces(body: bytes, cuts: list[int], skip: set[int]) -> tuple[str, object]:
    """What EnvelopeReader makes of ``body`` split at ``cuts``: the header and items, or the error."""
    bounds = sorted({0, len(body), *(cut % (len(body) + 1) for cut in cuts)})
    pieces = iter([body[a:b] for a, b in itertools.pairwise(bounds)])
    reader = EnvelopeReader(pieces)
    try:
        if not body:
            raise EnvelopeError("envelope is empty")
        header = reader.header()
        items: list[tuple[str, object]] = []
        while (item_headers := reader.next_item()) is not None:
            number = len(items)
            items.append((item_headers["type"], reader.skip() if number in skip else reader.payload()))
        return "ok", (header, items)
    except EnvelopeError as exc:
        return "error", str(exc)


@FUZZ
@given(
    parts=envelope_parts(),
    noise=st.binary(max_size=8),
    cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=12),
    skip=st.sets(st.integers(min_value=0, max_value=6)),
)
def test_reading_an_envelope_in_pieces_gives_what_parsing_it_whole_gives(
    parts: tuple[dict[str, object], list[tuple[str, bool, bytes]]], noise: bytes, cuts: list[int], skip: set[int]
) -> None:
    headers, items = parts
    body = serialize(headers, items) + noise
    whole: tuple[str, object]
    try:
        envelope = parse_envelope(body)
        whole = "ok", (
            envelope.headers,
            [(item.type, len(item.payload) if n in skip else item.payload) for n, item in enumerate(envelope.items)],
        )
    except EnvelopeError as exc:
        whole = "error", str(exc)
    assert _read_in_pieces(body, cuts, skip) == whole
