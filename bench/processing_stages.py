"""CPU per event of each stage a processor process runs for a Sentry error envelope, in-process.

    PYTHONPATH=src .venv/bin/python bench/processing_stages.py --events 200 --runs 7

Times (process CPU, the minimum over ``--runs`` runs, per event) gunzip, envelope parse, orjson
loads of the event item, normalize_event, scrub_event, both in one walk as process_event runs them,
compute_grouping, pack_document, the whole
process_event and the whole process_envelope (everything above plus the dsn check). Each stage
gets fresh inputs built outside the timed loop, since normalize takes its input over and scrub
works in place. The minimum, because other work on a shared machine only ever adds time.
"""

from __future__ import annotations

import argparse
import gc
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
import make_events
from watchkeeper.errors.decoding import decode_body
from watchkeeper.errors.envelope import parse_envelope, parse_json_object
from watchkeeper.errors.grouping import compute_grouping
from watchkeeper.errors.normalize import normalize_event
from watchkeeper.errors.processing import EnvelopeJob, ItemsJob, process_envelope, process_event
from watchkeeper.errors.scrubbing import ScrubbingRules, scrub_event
from watchkeeper.lib.blobs import pack_document

MAX_BODY = 50 << 20
KEY = "0123456789abcdef0123456789abcdef"
LIMITS = {"event": 1 << 20, "attachment": 20 << 20, "check_in": 1 << 16}


def _cpu_per_item(fn: Callable[[Any], Any], make_inputs: Callable[[], list[Any]], runs: int) -> float:
    """Minimum over ``runs`` of the process CPU per input of ``fn``, in microseconds."""
    best = float("inf")
    for _ in range(runs):
        inputs = make_inputs()
        # The inputs (parsed events, for some stages) are far more objects than a processor process
        # holds: frozen, the cyclic GC does not rescan them, as it would not in production.
        gc.collect()
        gc.freeze()
        start = time.process_time()
        for item in inputs:
            fn(item)
        best = min(best, (time.process_time() - start) / len(inputs))
        del inputs
        gc.unfreeze()
    return best * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=200)
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--seed", type=int, default=11)
    args = ap.parse_args()

    rng = random.Random(args.seed)
    events = [make_events.make_event(rng) for _ in range(args.events)]
    bodies = [make_events.gzip_envelope(event) for event in events]
    raws = [decode_body(body, "gzip", max_size=MAX_BODY) for body in bodies]
    payloads = [parse_envelope(raw).items[0].payload for raw in raws]
    rules = ScrubbingRules()
    received = time.time()

    def loads() -> list[Any]:
        return [parse_json_object(p, "event") for p in payloads]

    def normalized() -> list[Any]:
        return [normalize_event(d, received_at=received, client_ip="10.0.0.1") for d in loads()]

    def scrubbed() -> list[Any]:
        return [scrub_event(e, rules) for e in normalized()]

    def normalize_and_scrub(data: dict[str, Any]) -> dict[str, Any]:
        # As process_event does it: frame variables and crumb data scrubbed while trimmed.
        from watchkeeper.errors.scrubbing import EventScrubber  # not in code before that change

        scrubber = EventScrubber(rules)
        event = normalize_event(data, received_at=received, client_ip="10.0.0.1", trim_vars=scrubber.trim_and_scrub)
        scrubber.scrub(event, vars_scrubbed=True)
        return event

    def jobs() -> list[EnvelopeJob]:
        context = ItemsJob(1, received, [], None, "10.0.0.1", rules, LIMITS)
        return [
            EnvelopeJob(body, "gzip", MAX_BODY, f"Sentry sentry_key={KEY}, sentry_version=7", None,
                        ItemsJob(**{name: getattr(context, name) for name in ItemsJob.__slots__}), {})
            for body in bodies
        ]

    stages: list[tuple[str, Callable[[Any], Any], Callable[[], list[Any]]]] = [
        ("gunzip", lambda b: decode_body(b, "gzip", max_size=MAX_BODY), lambda: bodies),
        ("parse_envelope", parse_envelope, lambda: raws),
        ("orjson loads", lambda p: parse_json_object(p, "event"), lambda: payloads),
        ("normalize_event", lambda d: normalize_event(d, received_at=received, client_ip="10.0.0.1"), loads),
        ("scrub_event", lambda e: scrub_event(e, rules), normalized),
        ("normalize+scrub", normalize_and_scrub, loads),
        ("compute_grouping", compute_grouping, scrubbed),
        ("pack_document", pack_document, scrubbed),
        (
            "process_event",
            lambda d: process_event(d, project_id=1, received=received, client_ip="10.0.0.1", rules=rules),
            loads,
        ),
        ("process_envelope", process_envelope, jobs),
    ]
    print(f"{args.events} events, min of {args.runs} runs, process CPU per event")
    for name, fn, make_inputs in stages:
        try:
            fn(make_inputs()[0])
        except ImportError:
            print(f"{name:18s}      n/a")
            continue
        print(f"{name:18s} {_cpu_per_item(fn, make_inputs, args.runs):8.1f} us")


if __name__ == "__main__":
    main()
