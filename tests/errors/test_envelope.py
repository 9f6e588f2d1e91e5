import pytest

from watchkeeper.errors.envelope import (
    Envelope,
    EnvelopeError,
    EnvelopeItem,
    parse_envelope,
    parse_json_object,
)

EVENT_ID = "9ec79c33ec9942ab8353589fcb2e04dc"
HEADER = b'{"event_id":"9ec79c33ec9942ab8353589fcb2e04dc","dsn":"https://key@sentry.example/42"}'


def error_message(body: bytes, **kwargs: int) -> str:
    with pytest.raises(EnvelopeError) as info:
        parse_envelope(body, **kwargs)
    return str(info.value)


# --- well-formed envelopes -------------------------------------------------------------------


def test_it_reads_an_event_and_an_attachment_with_lengths() -> None:
    body = (
        HEADER + b"\n"
        b'{"type":"attachment","length":10,"content_type":"text/plain","filename":"hello.txt"}\n'
        b"\xef\xbb\xbfHello\r\n\n"
        b'{"type":"event","length":41,"content_type":"application/json","filename":"application.log"}\n'
        b'{"message":"hello world","level":"error"}\n'
    )

    envelope = parse_envelope(body)

    assert envelope.headers == {"event_id": EVENT_ID, "dsn": "https://key@sentry.example/42"}
    attachment, event = envelope.items
    assert attachment.type == "attachment"
    assert attachment.payload == b"\xef\xbb\xbfHello\r\n"
    assert attachment.headers["filename"] == "hello.txt"
    assert attachment.headers["content_type"] == "text/plain"
    assert event.type == "event"
    assert event.payload == b'{"message":"hello world","level":"error"}'


def test_it_reads_items_without_length() -> None:
    body = HEADER + b'\n{"type":"event"}\n{"message":"a"}\n{"type":"session"}\n{"sid":"b"}\n'

    envelope = parse_envelope(body)

    assert [(item.type, item.payload) for item in envelope.items] == [
        ("event", b'{"message":"a"}'),
        ("session", b'{"sid":"b"}'),
    ]


def test_it_reads_a_last_item_without_length_or_final_newline() -> None:
    envelope = parse_envelope(HEADER + b'\n{"type":"attachment"}\nhelloworld')

    assert envelope.items == [EnvelopeItem("attachment", {"type": "attachment"}, b"helloworld")]


def test_it_accepts_an_empty_header_without_items() -> None:
    assert parse_envelope(b"{}") == Envelope({}, [])
    assert parse_envelope(b"{}\n") == Envelope({}, [])


def test_it_accepts_a_header_without_items_with_or_without_trailing_newline() -> None:
    assert parse_envelope(HEADER).headers["event_id"] == EVENT_ID
    assert parse_envelope(HEADER + b"\n").items == []


def test_it_reads_zero_length_payloads() -> None:
    body = b'{}\n{"type":"attachment","length":0}\n\n{"type":"attachment","length":0}\n'

    envelope = parse_envelope(body)

    assert [item.payload for item in envelope.items] == [b"", b""]


def test_it_reads_a_zero_length_item_at_the_end_of_the_body() -> None:
    body = b'{}\n{"type":"attachment","length":0}\n\n{"type":"attachment","length":0}'

    envelope = parse_envelope(body)

    assert [item.payload for item in envelope.items] == [b"", b""]


def test_it_reads_an_item_header_at_the_end_of_the_body_as_an_empty_payload() -> None:
    envelope = parse_envelope(b'{}\n{"type":"attachment"}')

    assert envelope.items == [EnvelopeItem("attachment", {"type": "attachment"}, b"")]


def test_it_returns_unknown_item_types_untouched() -> None:
    body = b'{}\n{"type":"hologram","length":3,"x":[1]}\nabc\n{"type":"event"}\n{}\n'

    envelope = parse_envelope(body)

    assert envelope.items[0] == EnvelopeItem("hologram", {"type": "hologram", "length": 3, "x": [1]}, b"abc")
    assert envelope.items[1].type == "event"


def test_it_does_not_parse_payloads() -> None:
    envelope = parse_envelope(b'{}\n{"type":"event"}\nthis is { not json\n')

    assert envelope.items[0].payload == b"this is { not json"


def test_it_accepts_crlf_line_endings() -> None:
    body = b'{}\r\n{"type":"event"}\r\n{"message":"a"}\r\n{"type":"attachment","length":2}\r\nhi\r\n'

    envelope = parse_envelope(body)

    assert [(item.type, item.payload) for item in envelope.items] == [
        ("event", b'{"message":"a"}'),
        ("attachment", b"hi"),
    ]


def test_it_keeps_newlines_inside_payloads_with_a_length() -> None:
    envelope = parse_envelope(b'{}\n{"type":"attachment","length":6}\na\nb\r\nc\n')

    assert envelope.items[0].payload == b"a\nb\r\nc"


def test_it_skips_blank_lines_between_items() -> None:
    body = b'{}\n\n{"type":"event"}\n{}\n\n  \r\n\n{"type":"session"}\n{}\n\n'

    envelope = parse_envelope(body)

    assert [item.type for item in envelope.items] == ["event", "session"]


def test_it_treats_a_null_length_as_absent() -> None:
    envelope = parse_envelope(b'{}\n{"type":"event","length":null}\n{"a":1}\n')

    assert envelope.items[0].payload == b'{"a":1}'


def test_it_accepts_exactly_max_items() -> None:
    body = b"{}\n" + b'{"type":"event"}\n{}\n' * 3

    assert len(parse_envelope(body, max_items=3).items) == 3


# --- malformed envelopes ---------------------------------------------------------------------


def test_it_rejects_an_empty_body() -> None:
    assert error_message(b"") == "envelope is empty"


def test_it_rejects_a_length_past_the_end_of_the_body() -> None:
    body = b'{}\n{"type":"event"}\n{}\n{"type":"attachment","length":50}\n0123456789'

    assert error_message(body) == "item 2: length 50 exceeds the remaining 10 bytes"


def test_it_rejects_a_truncated_body() -> None:
    body = b'{}\n{"type":"attachment","length":10}\nhello'

    assert error_message(body) == "item 1: length 10 exceeds the remaining 5 bytes"


def test_it_rejects_a_length_shorter_than_the_payload() -> None:
    body = b'{}\n{"type":"attachment","length":3}\nhello\n'

    assert error_message(body) == "item 1: payload of length 3 is not followed by a newline"


def test_it_rejects_an_envelope_header_that_is_not_json() -> None:
    assert error_message(b"hello\n").startswith("envelope header: not valid JSON (")


def test_it_rejects_an_empty_envelope_header_line() -> None:
    assert error_message(b'\n{"type":"event"}\n{}') == "envelope header: empty, expected a JSON object"


def test_it_rejects_an_item_header_that_is_not_json() -> None:
    body = b'{}\n{"type":"event"}\n{}\n{"type": event}\n{}\n'

    message = error_message(body)

    assert message.startswith("item 2 header: not valid JSON (")
    assert "line 1 column" in message


def test_it_rejects_headers_with_invalid_utf8() -> None:
    assert error_message(b'{"a":"\xff"}\n') == "envelope header: not valid UTF-8"
    assert error_message(b'{}\n{"type":"ev\xc3"}\n') == "item 1 header: not valid UTF-8"


def test_it_rejects_headers_that_are_not_objects() -> None:
    assert error_message(b"[1, 2]\n") == "envelope header: expected a JSON object, got array"
    assert error_message(b'{}\n"event"\n{}\n') == "item 1 header: expected a JSON object, got string"
    assert error_message(b"{}\nnull\n") == "item 1 header: expected a JSON object, got null"


def test_it_rejects_an_item_header_without_a_type() -> None:
    assert error_message(b'{}\n{"length":2}\nhi\n') == 'item 1: header has no "type" string'


def test_it_rejects_an_item_type_that_is_not_a_non_empty_string() -> None:
    assert error_message(b'{}\n{"type":7}\n{}\n') == 'item 1: header has no "type" string'
    assert error_message(b'{}\n{"type":""}\n{}\n') == 'item 1: header has no "type" string'


@pytest.mark.parametrize(
    ("length", "message"),
    [
        (b"-1", "item 1: length must not be negative, got -1"),
        (b"2.0", "item 1: length must be an integer, got number"),
        (b"true", "item 1: length must be an integer, got boolean"),
        (b'"2"', "item 1: length must be an integer, got string"),
        (b"[2]", "item 1: length must be an integer, got array"),
    ],
)
def test_it_rejects_lengths_that_are_not_non_negative_integers(length: bytes, message: str) -> None:
    assert error_message(b'{}\n{"type":"attachment","length":' + length + b"}\nhi\n") == message


def test_it_rejects_deeply_nested_headers() -> None:
    assert error_message(b"[" * 10_000) == "envelope header: nested too deeply"
    assert error_message(b'{}\n{"type":' + b"[" * 10_000 + b"\n") == "item 1 header: nested too deeply"


def test_it_rejects_more_than_max_items() -> None:
    body = b"{}\n" + b'{"type":"event"}\n{}\n' * 4

    assert error_message(body, max_items=3) == "envelope has more than 3 items"


def test_it_counts_items_from_one_in_messages() -> None:
    body = b'{}\n{"type":"event"}\n{}\n{"type":"event"}\n{}\n{"nope":1}\n{}\n'

    assert error_message(body) == 'item 3: header has no "type" string'


# --- parse_json_object -----------------------------------------------------------------------


def test_parse_json_object_returns_the_object() -> None:
    assert parse_json_object(b'{"type": "event", "n": [1]}', "payload") == {"type": "event", "n": [1]}


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"", "event: empty, expected a JSON object"),
        (b"42", "event: expected a JSON object, got number"),
        (b'{"a":"\xed\xa0\x80"}', "event: not valid UTF-8"),
        (b"[" * 2000 + b"]" * 2000, "event: nested too deeply"),
    ],
)
def test_parse_json_object_names_the_problem(payload: bytes, message: str) -> None:
    with pytest.raises(EnvelopeError) as info:
        parse_json_object(payload, "event")

    assert str(info.value) == message


def test_parse_json_object_reports_where_invalid_json_breaks() -> None:
    with pytest.raises(EnvelopeError) as info:
        parse_json_object(b'{"a": }', "event")

    assert (
        str(info.value)
        == "event: not valid JSON (unexpected character, expected a JSON value at line 1 column 7)"
    )
