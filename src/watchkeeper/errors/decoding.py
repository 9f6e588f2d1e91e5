"""Request body decompression that is safe against decompression bombs.

Every decoder stops as soon as its output passes ``max_size``, so a tiny body that would expand to
gigabytes costs about ``max_size`` bytes of memory and a few milliseconds before it is refused.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator
from typing import cast

import brotli
import zstandard
from isal import isal_zlib


class BodyDecodingError(ValueError):
    """The body is corrupt, truncated, or uses an encoding we do not support."""


class BodyTooLarge(ValueError):
    """The decompressed body is larger than the allowed limit."""


# Each encoding layer is decoded in full (up to max_size), so a long stack of them multiplies the
# work; real clients send one, and two at most.
_MAX_LAYERS = 4

# Concatenated gzip members and zstd frames are walked one Python iteration each; real clients send
# one, so a cap keeps a body made of a million empty members from becoming a cheap CPU burner.
_MAX_MEMBERS = 1000

# Compressed input is fed in windows that start here and double: zlib and zstd copy any input left
# over after a stream ends or the output limit is hit, and feeding the whole body each time would
# make those copies cost up to the body size per member (quadratic) or per bomb.
_INPUT_WINDOW = 64 * 1024

# Output is taken in steps so that the decompressors' internal buffers (CPython's zlib holds a step
# twice while building the result; brotli's output_buffer_limit overshoots by up to one internal
# block, about twice the limit) stay small next to max_size.
_OUTPUT_STEP = 256 * 1024

# python-isal's stubs declare its error class as an instance of Exception.
_InflateError = cast(type[Exception], isal_zlib.error)

_GZIP_MAGIC = b"\x1f\x8b"
# zlib refuses a gzip header with any of the reserved FLG bits set (RFC 1952 says a decoder must);
# ISA-L ignores them, so the check is made here to refuse the same bodies.
_GZIP_FLAGS_RESERVED = 0xE0
_WBITS_GZIP = 16 + isal_zlib.MAX_WBITS
_WBITS_ZLIB = isal_zlib.MAX_WBITS
_WBITS_RAW = -isal_zlib.MAX_WBITS


def _brotli_has_output_limit() -> bool:
    try:
        brotli.Decompressor().process(b"", output_buffer_limit=1)
    except TypeError:
        return False
    return True


# brotli < 1.2 can only decompress a whole stream at once, which no size check can make safe.
_BROTLI_BOUNDED = _brotli_has_output_limit()


def decode_body(body: bytes, content_encoding: str | None, *, max_size: int) -> bytes:
    """Undo the Content-Encoding of a request body, refusing output larger than ``max_size`` bytes.

    Stacked encodings ("gzip, br") are undone last-applied first.

    >>> import gzip
    >>> decode_body(gzip.compress(b"hello"), "gzip", max_size=1024)
    b'hello'
    """
    chunks = list(iter_decoded(body, content_encoding, max_size=max_size))
    return _join(chunks) if chunks else b""


def iter_decoded(body: bytes, content_encoding: str | None, *, max_size: int) -> Iterator[bytes]:
    """`decode_body` in pieces of at most a few hundred KiB, decoded as they are asked for.

    A reader that stops early (an envelope header, a refused item) never makes the rest exist; a
    reader that keeps only some pieces holds only those. Errors are raised when reached. With stacked
    encodings, all but the last-applied layer are decoded whole first (bounded by ``max_size``).

    >>> b"".join(iter_decoded(b"hello", None, max_size=5))
    b'hello'
    """
    names = _encoding_names(content_encoding)
    if len(names) > _MAX_LAYERS:
        raise BodyDecodingError(f"too many stacked Content-Encodings ({len(names)}, at most {_MAX_LAYERS})")
    decoders = []
    for name in names:
        decoder = _DECODERS.get(name)
        if decoder is None:
            raise BodyDecodingError(
                f"unsupported Content-Encoding {name!r} (supported: gzip, x-gzip, deflate, br, zstd)"
            )
        decoders.append(decoder)
    if not decoders:
        if len(body) > max_size:
            raise BodyTooLarge(f"body of {len(body)} bytes exceeds the {max_size}-byte limit")
        if body:
            yield body
        return
    # An empty body carries no compressed stream at all; clients send it with a Content-Encoding
    # header anyway, and there is nothing to decode.
    for decoder in decoders[:-1]:
        if body:
            pieces = list(decoder(body, max_size))
            body = _join(pieces) if pieces else b""
    if body:
        yield from decoders[-1](body, max_size)


def _encoding_names(content_encoding: str | None) -> list[str]:
    if not content_encoding:
        return []
    names = [name.strip().lower() for name in content_encoding.split(",")]
    return [name for name in reversed(names) if name and name != "identity"]


def _too_large(name: str, max_size: int) -> BodyTooLarge:
    return BodyTooLarge(f"{name} body exceeds the {max_size}-byte limit once decompressed")


def _join(chunks: list[bytes]) -> bytes:
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _decode_gzip(body: bytes, max_size: int) -> Iterator[bytes]:
    view = memoryview(body)
    produced = 0
    pos = 0
    for member in range(1, _MAX_MEMBERS + 1):
        if member > 1 and view[pos : pos + 2] != _GZIP_MAGIC:
            raise BodyDecodingError(f"unexpected data after the end of the gzip body (at byte {pos})")
        if len(view) > pos + 3 and view[pos + 3] & _GZIP_FLAGS_RESERVED:
            raise BodyDecodingError("corrupt gzip body: unknown header flags set")
        pos, produced = yield from _inflate_stream(view, pos, _WBITS_GZIP, produced, max_size, "gzip")
        if pos == len(body):
            return
    raise BodyDecodingError(f"gzip body has more than {_MAX_MEMBERS} members")


def _inflate_stream(
    view: memoryview,
    pos: int,
    wbits: int,
    produced: int,
    max_size: int,
    name: str,
) -> Generator[bytes, None, tuple[int, int]]:
    """Inflate one zlib/gzip/raw stream starting at ``pos``, yielding its output.

    Returns the position just after the stream and the running output size. Inflating is done by
    ISA-L (python-isal), which takes less than half the CPU of zlib for the same stream and has the
    same bounded ``decompress(data, max_length)`` / ``unconsumed_tail`` / ``eof`` interface.
    """
    decompressor = isal_zlib.decompressobj(wbits)
    window = _INPUT_WINDOW
    pending: memoryview | bytes = view[pos : pos + window]
    pos += len(pending)
    while True:
        # One byte over the remaining budget is how an oversized stream is noticed.
        limit = min(_OUTPUT_STEP, max_size - produced + 1)
        try:
            data = decompressor.decompress(pending, limit)
        except _InflateError as exc:
            raise BodyDecodingError(f"corrupt {name} body: {exc}") from None
        produced += len(data)
        if produced > max_size:
            raise _too_large(name, max_size)
        if data:
            yield data
        if decompressor.eof:
            return pos - len(decompressor.unused_data), produced
        pending = decompressor.unconsumed_tail
        # A full output step may leave output buffered inside zlib even with no input left.
        if pending or len(data) == limit:
            continue
        if pos >= len(view):
            raise BodyDecodingError(f"truncated {name} body")
        window *= 2
        pending = view[pos : pos + window]
        pos += len(pending)


def _looks_like_zlib(body: bytes) -> bool:
    if len(body) < 2:
        return False
    cmf, flg = body[0], body[1]
    return cmf & 0x0F == 8 and cmf >> 4 <= 7 and (cmf << 8 | flg) % 31 == 0


def _decode_deflate(body: bytes, max_size: int) -> Iterator[bytes]:
    # HTTP "deflate" means zlib-wrapped, but some clients send raw deflate. A raw stream can start
    # with bytes that happen to form a valid zlib header, and the zlib attempt may only fail at its
    # checksum, after all its output: so a zlib-looking body is decoded whole (bounded) before any
    # of it is given out. Real SDKs send gzip or br; deflate is rare.
    if _looks_like_zlib(body):
        try:
            chunks = list(_inflate_single(body, _WBITS_ZLIB, max_size))
        except BodyDecodingError as zlib_error:
            try:
                chunks = list(_inflate_single(body, _WBITS_RAW, max_size))
            except BodyDecodingError:
                raise zlib_error from None
        yield from chunks
        return
    yield from _inflate_single(body, _WBITS_RAW, max_size)


def _inflate_single(body: bytes, wbits: int, max_size: int) -> Iterator[bytes]:
    pos, _ = yield from _inflate_stream(memoryview(body), 0, wbits, 0, max_size, "deflate")
    if pos != len(body):
        raise BodyDecodingError(f"unexpected data after the end of the deflate body (at byte {pos})")


def _decode_brotli(body: bytes, max_size: int) -> Iterator[bytes]:
    if not _BROTLI_BOUNDED:
        raise BodyDecodingError(
            "br bodies are not supported: the server needs brotli>=1.2 to decode them safely"
        )
    decompressor = brotli.Decompressor()
    produced = 0
    data = body
    while True:
        try:
            out = decompressor.process(data, output_buffer_limit=min(_OUTPUT_STEP, max_size - produced + 1))
            finished = decompressor.is_finished()
        except brotli.error:
            # brotli reports every failure, including data after the end of the stream, the same way.
            raise BodyDecodingError(
                "corrupt br body (invalid data, or data after the end of the stream)"
            ) from None
        data = b""
        produced += len(out)
        if produced > max_size:
            raise _too_large("br", max_size)
        if out:
            yield out
        if finished:
            return
        # The decoder holds all input it was given, so a call that yields nothing is stuck
        # waiting for input that will never come (can_accept_more_data() cannot tell us: it
        # says True even while output is still buffered).
        if not out:
            raise BodyDecodingError("truncated br body")


def _decode_zstd(body: bytes, max_size: int) -> Iterator[bytes]:
    decompressor = zstandard.ZstdDecompressor()
    produced = 0
    try:
        reader = decompressor.stream_reader(body, read_across_frames=True)
        while True:
            try:
                out = reader.read(min(_OUTPUT_STEP, max_size - produced + 1))
            except zstandard.ZstdError as exc:
                raise BodyDecodingError(f"corrupt zstd body: {exc}") from None
            if not out:
                break
            produced += len(out)
            if produced > max_size:
                raise _too_large("zstd", max_size)
            yield out
        _check_zstd_frames_complete(body, decompressor)
    except zstandard.ZstdError as exc:
        raise BodyDecodingError(f"corrupt zstd body: {exc}") from None


def _check_zstd_frames_complete(body: bytes, decompressor: zstandard.ZstdDecompressor) -> None:
    """Raise if the last zstd frame is cut short.

    stream_reader silently returns what it has for a truncated frame; only the single-frame
    decompressobj reports whether a frame ended. Its output is unbounded, so this runs only after the
    bounded pass has shown the whole body decodes to at most max_size bytes.
    """
    view = memoryview(body)
    pos = 0
    for _ in range(_MAX_MEMBERS):
        frame = decompressor.decompressobj()
        window = _INPUT_WINDOW
        while not frame.eof:
            if pos >= len(body):
                raise BodyDecodingError("truncated zstd body")
            chunk = view[pos : pos + window]
            frame.decompress(chunk)
            pos += len(chunk)
            window *= 2
        pos -= len(frame.unused_data)
        if pos == len(body):
            return
    raise BodyDecodingError(f"zstd body has more than {_MAX_MEMBERS} frames")


_DECODERS: dict[str, Callable[[bytes, int], Iterator[bytes]]] = {
    "gzip": _decode_gzip,
    "x-gzip": _decode_gzip,
    "deflate": _decode_deflate,
    "br": _decode_brotli,
    "zstd": _decode_zstd,
}
