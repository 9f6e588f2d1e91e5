"""Parser for Sentry envelopes: a JSON header line followed by items of header line and payload.

Payloads are returned as bytes and never parsed here; the caller decides per item type.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
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
# Envelope and item headers are a few hundred bytes (event id, dsn, sdk, trace context; type,
# length, filename): a longer line is an attack, and reading one from pieces joins them.
MAX_HEADER_LINE_BYTES = 64 * 1024


def parse_envelope(body: bytes, *, max_items: int = 1000) -> Envelope:
    """Split an envelope into its header and items, raising EnvelopeError for anything malformed.

    >>> parse_envelope(b'{}\\n{"type":"event"}\\n{"message":"hi"}\\n').items[0].payload
    b'{"message":"hi"}'
    """
    if not body:
        raise EnvelopeError("envelope is empty")
    reader = EnvelopeReader(iter((body,)), max_items=max_items)
    headers = reader.header()
    items: list[EnvelopeItem] = []
    while (item_headers := reader.next_item()) is not None:
        items.append(EnvelopeItem(item_headers["type"], item_headers, reader.payload()))
    return Envelope(headers, items)


class EnvelopeReader:
    """Reads an envelope item by item from pieces of its decoded body (see decoding.iter_decoded).

    The caller sees each item's header before its payload and either takes the payload (`payload`)
    or passes over it (`skip`): a refused item is never held in memory whole, nor is the rest of
    the body decoded before it is needed.

    >>> reader = EnvelopeReader(iter([b'{}\\n{"type":"attachment","length":3}\\nab', b'c\\n']))
    >>> reader.header(), reader.next_item()["type"], reader.payload(), reader.next_item()
    ({}, 'attachment', b'abc', None)
    """

    __slots__ = ("_data", "_ended", "_item", "_items", "_max_items", "_pieces", "_pos")

    def __init__(self, pieces: Iterator[bytes], *, max_items: int = 1000) -> None:
        self._pieces = pieces
        self._data = b""
        self._pos = 0
        self._ended = False
        self._items = 0
        self._max_items = max_items
        self._item: dict[str, Any] | None = None  # the header of the item whose payload is next

    def header(self) -> dict[str, Any]:
        """The envelope header (the first line)."""
        if not self._more(1):
            raise EnvelopeError("envelope is empty")
        line_end = self._line_end("envelope header")
        line = self._data[self._pos : line_end]
        self._pos = line_end + 1
        return parse_json_object(line, "envelope header")

    def next_item(self) -> dict[str, Any] | None:
        """The next item's header (with a "type" string), or None at the end of the envelope."""
        if self._item is not None:
            self.skip()
        while self._more(1):
            line_end = self._line_end(f"item {self._items + 1} header")
            line = self._data[self._pos : line_end]
            self._pos = line_end + 1
            if line.isspace() or not line:
                continue
            if self._items == self._max_items:
                raise EnvelopeError(f"envelope has more than {self._max_items} items")
            self._items += 1
            number = self._items
            item_headers = parse_json_object(line, f"item {number} header")
            item_type = item_headers.get("type")
            if not isinstance(item_type, str) or not item_type:
                raise EnvelopeError(f'item {number}: header has no "type" string')
            length = item_headers.get("length")
            if length is not None:
                # bool is a subclass of int, and JSON true is not a length.
                if type(length) is not int:
                    raise EnvelopeError(f"item {number}: length must be an integer, got {_json_type(length)}")
                if length < 0:
                    raise EnvelopeError(f"item {number}: length must not be negative, got {length}")
            self._item = item_headers
            return item_headers
        return None

    def payload(self) -> bytes:
        """The payload of the item `next_item` returned."""
        pieces: list[bytes] = []
        self._consume(lambda piece: pieces.append(bytes(piece)))
        return pieces[0] if len(pieces) == 1 else b"".join(pieces)

    def skip(self) -> int:
        """Pass over the payload of the item `next_item` returned, keeping none of it; its size."""
        size = 0

        def count(piece: bytes | memoryview) -> None:
            nonlocal size
            size += len(piece)

        self._consume(count)
        return size

    def _consume(self, sink: Callable[[bytes | memoryview], object]) -> None:
        item = self._item
        if item is None:
            raise EnvelopeError("no item to read")
        self._item = None
        length = item.get("length")
        if length is None:
            self._consume_line(sink)
        else:
            self._consume_length(length, sink)

    def _consume_line(self, sink: Callable[[bytes | memoryview], object]) -> None:
        # Without a length the payload ends at the next newline (or the end of the body). Tolerate
        # CRLF line endings; a payload that needs a trailing "\\r" must declare its length. A "\\r"
        # at the end of a piece is held back until the next piece shows whether a newline follows.
        held_cr = False
        while self._more(1):
            found = self._data.find(b"\n", self._pos)
            stop = len(self._data) if found < 0 else found
            piece = memoryview(self._data)[self._pos : stop]
            self._pos = stop if found < 0 else stop + 1
            if not len(piece):
                return  # a newline at once (a held "\\r" was the CRLF's)
            if held_cr:
                sink(b"\r")
            held_cr = piece[-1] == _CARRIAGE_RETURN
            if held_cr:
                piece = piece[:-1]
            if len(piece):
                sink(piece)
            if found >= 0:
                return

    def _consume_length(self, length: int, sink: Callable[[bytes | memoryview], object]) -> None:
        number = self._items
        left = length
        seen = 0
        while left:
            if not self._more(1):
                raise EnvelopeError(f"item {number}: length {length} exceeds the remaining {seen} bytes")
            take = min(left, len(self._data) - self._pos)
            sink(memoryview(self._data)[self._pos : self._pos + take])
            self._pos += take
            left -= take
            seen += take
        # A payload must end at a line break or at the end of the body; anything else means the
        # declared length is wrong, and guessing where the item really ends would misparse the rest.
        if not self._more(1):
            return
        if self._data[self._pos] == _NEWLINE:
            self._pos += 1
            return
        if self._more(2) and self._data[self._pos : self._pos + 2] == b"\r\n":
            self._pos += 2
            return
        raise EnvelopeError(f"item {number}: payload of length {length} is not followed by a newline")

    def _more(self, count: int) -> bool:
        """Whether at least `count` unread bytes are (or can be made) available."""
        while len(self._data) - self._pos < count:
            if self._ended:
                return False
            piece = next(self._pieces, None)
            if piece is None:
                self._ended = True
                return False
            if piece:
                rest = self._data[self._pos :]
                self._data = rest + piece if rest else piece
                self._pos = 0
        return True

    def _line_end(self, what: str) -> int:
        """The index of the next newline, reading more as needed (the end of the body if none).

        Header lines are bounded: a line spread over many pieces is joined piece by piece."""
        scanned = 0  # unread bytes already searched
        while True:
            found = self._data.find(b"\n", self._pos + scanned)
            if found >= 0:
                stop = found
                break
            scanned = len(self._data) - self._pos
            if scanned > MAX_HEADER_LINE_BYTES or not self._more(scanned + 1):
                stop = len(self._data)
                break
        if stop - self._pos > MAX_HEADER_LINE_BYTES:
            raise EnvelopeError(f"{what}: longer than {MAX_HEADER_LINE_BYTES} bytes")
        return stop


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
