import gzip
import zlib
from collections.abc import Callable

import brotli
import orjson
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from watchkeeper.errors.decoding import BodyDecodingError, BodyTooLarge, decode_body
from watchkeeper.errors.envelope import Envelope, EnvelopeError, parse_envelope

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
