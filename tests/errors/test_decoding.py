import functools
import gzip
import random
import struct
import time
import tracemalloc
import zlib
from collections.abc import Callable

import brotli
import pytest
import zstandard

from watchkeeper.errors import decoding
from watchkeeper.errors.decoding import BodyDecodingError, BodyTooLarge, decode_body

MAX_SIZE = 1024 * 1024
DATA = b'{"event_id":"9ec79c33ec9942ab8353589fcb2e04dc","message":"hello world"}\n' * 200
MIB = 1024 * 1024
BOMB_SIZE = 1024 * MIB


def raw_deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
    return compressor.compress(data) + compressor.flush()


def zstd(data: bytes) -> bytes:
    return zstandard.ZstdCompressor().compress(data)


ENCODERS: dict[str, Callable[[bytes], bytes]] = {
    "gzip": gzip.compress,
    "deflate": zlib.compress,
    "br": brotli.compress,
    "zstd": zstd,
}


# --- bombs: zero-filled streams built in pieces so the tests stay cheap ----------------------


def zlib_bomb(wbits: int, size: int) -> bytes:
    """A valid gzip (31), zlib (15) or raw (-15) stream of ``size`` zero bytes.

    After a full flush the compressor forgets its history, so every further MiB of zeros compresses
    to the same bytes and can be repeated instead of compressed again.
    """
    chunk = bytes(MIB)
    compressor = zlib.compressobj(9, zlib.DEFLATED, wbits)
    first = compressor.compress(chunk) + compressor.flush(zlib.Z_FULL_FLUSH)
    piece = compressor.compress(chunk) + compressor.flush(zlib.Z_FULL_FLUSH)
    trailer_size = {31: 8, 15: 4, -15: 0}[wbits]
    ending = compressor.flush()
    final_block = ending[: len(ending) - trailer_size]
    if wbits == 31:
        crc = 0
        for _ in range(size // MIB):
            crc = zlib.crc32(chunk, crc)
        trailer = struct.pack("<II", crc, size & 0xFFFFFFFF)
    elif wbits == 15:
        # Adler-32 of n zeros: the running sum stays 1 and the sum of sums grows by 1 per byte.
        trailer = struct.pack(">I", (size % 65521) << 16 | 1)
    else:
        trailer = b""
    return first + piece * (size // MIB - 1) + final_block + trailer


@functools.cache
def bomb(encoding: str) -> bytes:
    if encoding == "gzip":
        return zlib_bomb(31, BOMB_SIZE)
    if encoding == "deflate":
        return zlib_bomb(15, BOMB_SIZE)
    if encoding == "raw deflate":
        return zlib_bomb(-15, BOMB_SIZE)
    chunk = bytes(MIB)
    if encoding == "br":
        brotli_compressor = brotli.Compressor(quality=1)
        pieces = [brotli_compressor.process(chunk) for _ in range(BOMB_SIZE // MIB)]
        return b"".join(pieces) + brotli_compressor.finish()
    zstd_compressor = zstandard.ZstdCompressor(level=1).compressobj()
    pieces = [zstd_compressor.compress(chunk) for _ in range(BOMB_SIZE // MIB)]
    return b"".join(pieces) + zstd_compressor.flush()


@pytest.mark.parametrize(("wbits", "decompress_wbits"), [(31, 31), (15, 15), (-15, -15)])
def test_the_bomb_builder_makes_valid_streams(wbits: int, decompress_wbits: int) -> None:
    assert zlib.decompress(zlib_bomb(wbits, 4 * MIB), decompress_wbits) == bytes(4 * MIB)


# --- round trips -----------------------------------------------------------------------------


@pytest.mark.parametrize("content_encoding", [None, "", "identity", " Identity "])
def test_it_returns_unencoded_bodies_unchanged(content_encoding: str | None) -> None:
    assert decode_body(DATA, content_encoding, max_size=MAX_SIZE) is DATA


@pytest.mark.parametrize("content_encoding", ["gzip", "x-gzip", "GZIP", " gzip "])
def test_it_decodes_gzip(content_encoding: str) -> None:
    assert decode_body(gzip.compress(DATA), content_encoding, max_size=MAX_SIZE) == DATA


def test_it_decodes_zlib_wrapped_deflate() -> None:
    assert decode_body(zlib.compress(DATA), "deflate", max_size=MAX_SIZE) == DATA


def test_it_decodes_raw_deflate() -> None:
    assert decode_body(raw_deflate(DATA), "Deflate", max_size=MAX_SIZE) == DATA


def test_it_decodes_raw_deflate_that_starts_like_a_zlib_header() -> None:
    # 0x78 0x01 is a valid zlib header, but here it opens a raw stored block holding b"X",
    # followed by an empty final stored block.
    body = b"\x78\x01\x00\xfe\xff" + b"X" + b"\x01\x00\x00\xff\xff"

    assert decode_body(body, "deflate", max_size=MAX_SIZE) == b"X"


def test_it_decodes_brotli() -> None:
    assert decode_body(brotli.compress(DATA), "br", max_size=MAX_SIZE) == DATA


def test_it_decodes_zstd() -> None:
    assert decode_body(zstd(DATA), "zstd", max_size=MAX_SIZE) == DATA


def test_it_decodes_zstd_without_a_declared_content_size() -> None:
    body = zstandard.ZstdCompressor(write_content_size=False).compress(DATA)

    assert decode_body(body, "zstd", max_size=MAX_SIZE) == DATA


def test_it_decodes_concatenated_gzip_members() -> None:
    body = gzip.compress(b"one ") + gzip.compress(b"") + gzip.compress(b"two ") + gzip.compress(DATA)

    assert decode_body(body, "gzip", max_size=MAX_SIZE) == b"one two " + DATA


def test_it_decodes_concatenated_zstd_frames() -> None:
    skippable_frame = struct.pack("<II", 0x184D2A50, 3) + b"abc"
    body = zstd(b"one ") + skippable_frame + zstd(b"two ") + zstd(DATA)

    assert decode_body(body, "zstd", max_size=MAX_SIZE) == b"one two " + DATA


def test_it_undoes_stacked_encodings_in_reverse_order() -> None:
    body = brotli.compress(gzip.compress(DATA))

    assert decode_body(body, "gzip, br", max_size=MAX_SIZE) == DATA
    assert decode_body(body, "gzip,identity ,  br", max_size=MAX_SIZE) == DATA


@pytest.mark.parametrize("content_encoding", ["gzip", "deflate", "br", "zstd", "gzip, br"])
def test_it_decodes_an_empty_body_to_nothing(content_encoding: str) -> None:
    assert decode_body(b"", content_encoding, max_size=MAX_SIZE) == b""


@pytest.mark.parametrize("encoding", sorted(ENCODERS))
def test_it_accepts_output_of_exactly_max_size(encoding: str) -> None:
    data = bytes(range(256)) * 4096

    assert decode_body(ENCODERS[encoding](data), encoding, max_size=len(data)) == data


# --- size limits -----------------------------------------------------------------------------


@pytest.mark.parametrize("encoding", sorted(ENCODERS))
def test_it_refuses_output_one_byte_over_max_size(encoding: str) -> None:
    data = bytes(range(256)) * 4096

    with pytest.raises(BodyTooLarge, match=f"exceeds the {len(data) - 1}-byte limit"):
        decode_body(ENCODERS[encoding](data), encoding, max_size=len(data) - 1)


def test_it_refuses_an_unencoded_body_over_max_size() -> None:
    with pytest.raises(BodyTooLarge, match="body of 11 bytes exceeds the 10-byte limit"):
        decode_body(b"hello world", None, max_size=10)


@pytest.mark.parametrize(
    ("encoding", "content_encoding"),
    [("gzip", "gzip"), ("deflate", "deflate"), ("raw deflate", "deflate"), ("br", "br"), ("zstd", "zstd")],
)
def test_it_refuses_a_gigabyte_bomb_cheaply(encoding: str, content_encoding: str) -> None:
    body = bomb(encoding)
    assert len(body) < 2 * MIB

    tracemalloc.start()
    try:
        started = time.perf_counter()
        with pytest.raises(BodyTooLarge, match=f"{content_encoding} body exceeds the {MAX_SIZE}-byte limit"):
            decode_body(body, content_encoding, max_size=MAX_SIZE)
        elapsed = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert peak < 3 * MAX_SIZE
    assert elapsed < 0.5


def test_it_refuses_a_bomb_hidden_under_a_second_encoding() -> None:
    body = gzip.compress(zlib_bomb(31, 256 * MIB))

    with pytest.raises(BodyTooLarge):
        decode_body(body, "gzip, gzip", max_size=MAX_SIZE)


# --- corrupt input ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content_encoding", "body", "message"),
    [
        ("gzip", gzip.compress(DATA)[:-5], "truncated gzip body"),
        ("gzip", gzip.compress(DATA)[:20], "truncated gzip body"),
        ("deflate", zlib.compress(DATA)[:-2], "truncated deflate body"),
        ("deflate", raw_deflate(DATA)[:-10], "truncated deflate body"),
        ("br", brotli.compress(DATA)[:-3], "truncated br body"),
        ("zstd", zstd(DATA)[:-3], "truncated zstd body"),
        ("zstd", zstd(b"one") + zstd(DATA)[:-3], "truncated zstd body"),
    ],
)
def test_it_reports_truncated_streams(content_encoding: str, body: bytes, message: str) -> None:
    with pytest.raises(BodyDecodingError, match=message):
        decode_body(body, content_encoding, max_size=MAX_SIZE)


@pytest.mark.parametrize(
    ("content_encoding", "message"),
    [
        ("gzip", "corrupt gzip body"),
        ("deflate", "corrupt deflate body"),
        ("br", "corrupt br body"),
        ("zstd", "corrupt zstd body"),
    ],
)
def test_it_reports_garbage(content_encoding: str, message: str) -> None:
    with pytest.raises(BodyDecodingError, match=message):
        decode_body(b"this is not compressed at all", content_encoding, max_size=MAX_SIZE)


@pytest.mark.parametrize(
    ("content_encoding", "body", "message"),
    [
        ("gzip", gzip.compress(DATA) + b"junk", "unexpected data after the end of the gzip body"),
        ("gzip", gzip.compress(DATA) + b"\0\0\0\0", "unexpected data after the end of the gzip body"),
        ("deflate", zlib.compress(DATA) + b"junk", "corrupt deflate body|unexpected data after"),
        ("deflate", raw_deflate(DATA) + b"junk", "unexpected data after the end of the deflate body"),
        ("br", brotli.compress(DATA) + b"junk", "corrupt br body"),
        ("zstd", zstd(DATA) + b"junk", "corrupt zstd body"),
    ],
)
def test_it_reports_data_after_the_end_of_the_stream(
    content_encoding: str, body: bytes, message: str
) -> None:
    with pytest.raises(BodyDecodingError, match=message):
        decode_body(body, content_encoding, max_size=MAX_SIZE)


def test_it_reports_corruption_inside_a_later_gzip_member() -> None:
    second = bytearray(gzip.compress(DATA))
    second[-6] ^= 0xFF  # breaks the CRC

    with pytest.raises(BodyDecodingError, match="corrupt gzip body"):
        decode_body(gzip.compress(b"one") + bytes(second), "gzip", max_size=MAX_SIZE)


@pytest.mark.parametrize("flag", [0x20, 0x40, 0x80])
def test_it_refuses_a_gzip_header_with_a_reserved_flag_set(flag: int) -> None:
    member = bytearray(gzip.compress(DATA))
    member[3] |= flag

    with pytest.raises(BodyDecodingError, match="corrupt gzip body: unknown header flags set"):
        decode_body(bytes(member), "gzip", max_size=MAX_SIZE)
    with pytest.raises(BodyDecodingError, match="corrupt gzip body: unknown header flags set"):
        decode_body(gzip.compress(b"one") + bytes(member), "gzip", max_size=MAX_SIZE)


def _zlib_reference(body: bytes, wbits_tried: tuple[int, ...]) -> bytes | None:
    """What CPython's zlib makes of a single stream: its output, or None if it refuses it."""
    for wbits in wbits_tried:
        decompressor = zlib.decompressobj(wbits)
        try:
            data = decompressor.decompress(body)
        except zlib.error:
            continue
        if decompressor.eof and not decompressor.unused_data:
            return data
    return None


def test_it_accepts_and_refuses_the_same_damaged_streams_as_zlib() -> None:
    # Inflating is done by ISA-L; zlib is the reference for which bodies are valid.
    rng = random.Random(5)
    for _ in range(150):
        data = bytes(rng.choice(b'abcdef{}":,0123') for _ in range(rng.randrange(0, 20000)))
        for content_encoding, body, wbits_tried in (
            ("gzip", gzip.compress(data, mtime=0), (31,)),
            ("deflate", zlib.compress(data), (15, -15)),
            ("deflate", raw_deflate(data), (15, -15)),
        ):
            damaged = [body[: rng.randrange(1, len(body))]]
            for _ in range(6):
                flipped = bytearray(body)
                flipped[rng.randrange(len(flipped))] ^= 1 << rng.randrange(8)
                damaged.append(bytes(flipped))
            for candidate in damaged:
                expected = _zlib_reference(candidate, wbits_tried)
                try:
                    decoded: bytes | None = decode_body(candidate, content_encoding, max_size=MAX_SIZE)
                except BodyDecodingError:
                    decoded = None
                assert decoded == expected, (content_encoding, candidate)


def test_it_limits_the_number_of_gzip_members() -> None:
    empty_member = gzip.compress(b"")

    assert decode_body(empty_member * 1000, "gzip", max_size=MAX_SIZE) == b""
    with pytest.raises(BodyDecodingError, match="more than 1000 members"):
        decode_body(empty_member * 1001, "gzip", max_size=MAX_SIZE)


def test_it_limits_the_number_of_zstd_frames() -> None:
    with pytest.raises(BodyDecodingError, match="more than 1000 frames"):
        decode_body(zstd(b"") * 1001, "zstd", max_size=MAX_SIZE)


def test_it_names_an_unsupported_encoding() -> None:
    with pytest.raises(BodyDecodingError, match="unsupported Content-Encoding 'compress'"):
        decode_body(b"abc", "gzip, compress", max_size=MAX_SIZE)


def test_it_limits_the_number_of_stacked_encodings() -> None:
    body = b"hello"
    for _ in range(5):
        body = gzip.compress(body)

    with pytest.raises(BodyDecodingError, match="too many stacked Content-Encodings"):
        decode_body(body, "gzip, gzip, gzip, gzip, gzip", max_size=MAX_SIZE)


def test_it_refuses_brotli_when_the_installed_brotli_cannot_limit_output(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(decoding, "_BROTLI_BOUNDED", False)

    with pytest.raises(BodyDecodingError, match=r"needs brotli>=1\.2"):
        decode_body(brotli.compress(DATA), "br", max_size=MAX_SIZE)
