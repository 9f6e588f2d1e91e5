"""Response-time percentile sketches (DDSketch, 1 % relative error) stored in rollup rows.

Sketches of different buckets merge exactly, so p95 over 30 days is the merge of 30 day sketches.
Stored as the library's protobuf form, compressed (a typical hour of checks is ~100 bytes).
"""

from __future__ import annotations

from collections.abc import Iterable

from ddsketch import DDSketch
from ddsketch.pb.ddsketch_pb2 import DDSketch as DDSketchMessage
from ddsketch.pb.proto import DDSketchProto

from watchkeeper.lib.blobs import _codecs

RELATIVE_ACCURACY = 0.01


def new_sketch(values: Iterable[float] = ()) -> DDSketch:
    sketch = DDSketch(RELATIVE_ACCURACY)
    for value in values:
        sketch.add(max(value, 0.0))
    return sketch


def sketch_to_bytes(sketch: DDSketch) -> bytes:
    """Serialise for a rollup row.

    >>> round(sketch_from_bytes(sketch_to_bytes(new_sketch([10, 20, 30]))).get_quantile_value(0.5))
    20
    """
    return _codecs()[0].compress(DDSketchProto.to_proto(sketch).SerializeToString())


def sketch_from_bytes(blob: bytes) -> DDSketch:
    message = DDSketchMessage()
    message.ParseFromString(_codecs()[1].decompress(blob))
    sketch: DDSketch = DDSketchProto.from_proto(message)
    return sketch


def merged(blobs: Iterable[bytes | None]) -> DDSketch:
    total = new_sketch()
    for blob in blobs:
        if blob:
            total.merge(sketch_from_bytes(blob))
    return total


def quantile(sketch: DDSketch, q: float) -> float | None:
    if sketch.count == 0:
        return None
    value = sketch.get_quantile_value(q)
    return round(float(value), 3) if value is not None else None
