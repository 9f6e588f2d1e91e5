"""Parser for Sentry envelopes: a JSON header line followed by items of header line and payload.

Payloads are returned as bytes and never parsed here; the caller decides per item type.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson


class EnvelopeError(ValueError):
    """The envelope is malformed; the message says which part and why."""


@dataclass(slots=True)
class EnvelopeItem:
    type: str
    headers: dict[str, Any]
    payload: bytes


@dataclass(slots=True)
class Envelope:
    headers: dict[str, Any]
    items: list[EnvelopeItem]


_NEWLINE = 0x0A
_CARRIAGE_RETURN = 0x0D


def parse_envelope(body: bytes, *, max_items: int = 1000) -> Envelope:
    """Split an envelope into its header and items, raising EnvelopeError for anything malformed.

    >>> parse_envelope(b'{}\\n{"type":"event"}\\n{"message":"hi"}\\n').items[0].payload
    b'{"message":"hi"}'
    """
    if not body:
        raise EnvelopeError("envelope is empty")
    end = len(body)
    line_end = _find_newline(body, 0)
    headers = parse_json_object(body[:line_end], "envelope header")

    items: list[EnvelopeItem] = []
    pos = line_end + 1
    while pos < end:
        line_end = _find_newline(body, pos)
        line = body[pos:line_end]
        if line.isspace() or not line:
            pos = line_end + 1
            continue
        if len(items) == max_items:
            raise EnvelopeError(f"envelope has more than {max_items} items")
        number = len(items) + 1
        item_headers = parse_json_object(line, f"item {number} header")
        item_type = item_headers.get("type")
        if not isinstance(item_type, str) or not item_type:
            raise EnvelopeError(f'item {number}: header has no "type" string')
        # The header may be the last bytes of the body, leaving an empty payload.
        start = min(line_end + 1, end)
        length = item_headers.get("length")
        if length is None:
            payload, pos = _read_to_newline(body, start)
        else:
            payload, pos = _read_length(body, start, length, number)
        items.append(EnvelopeItem(item_type, item_headers, payload))
    return Envelope(headers, items)


def _find_newline(body: bytes, start: int) -> int:
    found = body.find(b"\n", start)
    return len(body) if found < 0 else found


def _read_to_newline(body: bytes, start: int) -> tuple[bytes, int]:
    stop = _find_newline(body, start)
    payload_end = stop
    # Tolerate CRLF line endings; a payload that needs a trailing "\r" must declare its length.
    if payload_end > start and body[payload_end - 1] == _CARRIAGE_RETURN:
        payload_end -= 1
    return body[start:payload_end], stop + 1


def _read_length(body: bytes, start: int, length: object, number: int) -> tuple[bytes, int]:
    # bool is a subclass of int, and JSON true is not a length.
    if type(length) is not int:
        raise EnvelopeError(f"item {number}: length must be an integer, got {_json_type(length)}")
    if length < 0:
        raise EnvelopeError(f"item {number}: length must not be negative, got {length}")
    remaining = len(body) - start
    if length > remaining:
        raise EnvelopeError(f"item {number}: length {length} exceeds the remaining {remaining} bytes")
    stop = start + length
    # A payload must end at a line break or at the end of the body; anything else means the
    # declared length is wrong, and guessing where the item really ends would misparse the rest.
    if stop == len(body):
        return body[start:stop], stop
    if body[stop] == _NEWLINE:
        return body[start:stop], stop + 1
    if body.startswith(b"\r\n", stop):
        return body[start:stop], stop + 2
    raise EnvelopeError(f"item {number}: payload of length {length} is not followed by a newline")


def parse_json_object(payload: bytes, what: str) -> dict[str, Any]:
    """Parse ``payload`` as a JSON object; ``what`` names it in the EnvelopeError message.

    >>> parse_json_object(b'{"type": "event"}', "item 1 header")
    {'type': 'event'}
    """
    try:
        value = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise EnvelopeError(f"{what}: {_describe_json_error(exc)}") from None
    if not isinstance(value, dict):
        raise EnvelopeError(f"{what}: expected a JSON object, got {_json_type(value)}")
    return value


def _describe_json_error(exc: orjson.JSONDecodeError) -> str:
    message = exc.msg
    # orjson's wording has changed between releases ("Recursion limit reached", "depth limit
    # exceeded"), so match loosely and fall back to its own text.
    if "depth" in message or "ecursion" in message:
        return "nested too deeply"
    if "UTF-8" in message:
        return "not valid UTF-8"
    if "zero-length" in message:
        return "empty, expected a JSON object"
    return f"not valid JSON ({message} at line {exc.lineno} column {exc.colno})"


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__
