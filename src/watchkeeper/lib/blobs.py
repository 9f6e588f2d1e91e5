"""Compression of stored JSON documents (events, transactions): zstd is fast and shrinks them 3-5x.

Level 1: on error events it is 30 % faster than the default level 3 for 2 % larger output, and it
runs once per ingested event.
"""

from __future__ import annotations

import threading
from typing import Any

import orjson
import zstandard

# zstandard's (de)compressor objects must not be shared between threads.
_local = threading.local()


def _codecs() -> tuple[zstandard.ZstdCompressor, zstandard.ZstdDecompressor]:
    codecs = getattr(_local, "codecs", None)
    if codecs is None:
        codecs = (zstandard.ZstdCompressor(level=1), zstandard.ZstdDecompressor())
        _local.codecs = codecs
    return codecs  # type: ignore[no-any-return,unused-ignore]


def pack_document(document: Any) -> bytes:
    """Serialise and compress a JSON document for storage.

    >>> unpack_document(pack_document({"a": 1}))
    {'a': 1}
    """
    return _codecs()[0].compress(orjson.dumps(document))


def unpack_document(blob: bytes) -> Any:
    return orjson.loads(_codecs()[1].decompress(blob))
