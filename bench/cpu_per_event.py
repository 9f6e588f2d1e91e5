"""CPU cost per event of each ingest stage, in-process and single-threaded (no HTTP, no server).

    .venv/bin/python bench/cpu_per_event.py --events 2000

Times (process CPU) decode_body(gzip), parse_envelope, parse_json_object, process_event split into
normalize / scrub / grouping / pack_document, and save_envelopes (batches of 200 events in one
transaction on a fresh SQLite file, synchronous=FULL, commit included). The sum is the CPU ceiling of
one Python process: 1 / sum = max events/s for one core.
"""

from __future__ import annotations

import argparse
import gc
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import make_events


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=2000)
    ap.add_argument("--batch", type=int, default=200)
    args = ap.parse_args()

    from watchkeeper.auth.projects import create_project
    from watchkeeper.errors.decoding import decode_body
    from watchkeeper.errors.envelope import parse_envelope, parse_json_object
    from watchkeeper.errors.grouping import compute_grouping
    from watchkeeper.errors.normalize import normalize_event
    from watchkeeper.errors.processing import process_event
    from watchkeeper.errors.records import EnvelopeRecords
    from watchkeeper.errors.scrubbing import ScrubbingRules, scrub_event
    from watchkeeper.errors.storage import save_envelopes
    from watchkeeper.lib.blobs import pack_document
    from watchkeeper.store.engine import make_engine
    from watchkeeper.store.migrate import upgrade

    rng = random.Random(11)
    bodies = [make_events.gzip_envelope(make_events.make_event(rng)) for _ in range(args.events)]
    rules = ScrubbingRules()
    now = time.time()
    cost: dict[str, float] = {}

    def timed(name: str, fn, items):  # type: ignore[no-untyped-def]
        # earlier stages' outputs are kept alive; freeze them so the cyclic GC does not rescan them
        gc.collect()
        gc.freeze()
        t = time.process_time()
        out = [fn(x) for x in items]
        cost[name] = (time.process_time() - t) / len(items)
        return out

    raw = timed("decode_body (gzip)", lambda b: decode_body(b, "gzip", max_size=50 << 20), bodies)
    envs = timed("parse_envelope", parse_envelope, raw)
    payloads = timed("parse_json_object", lambda e: parse_json_object(e.items[0].payload, "event"), envs)
    import copy
    copies = [copy.deepcopy(p) for p in payloads]
    normed = timed("  normalize_event", lambda p: normalize_event(p, received_at=now, client_ip="127.0.0.1"),
                   copies)
    timed("  scrub_event", lambda e: scrub_event(e, rules), normed)
    timed("  compute_grouping", compute_grouping, normed)
    timed("  pack_document (orjson+zstd)", pack_document, normed)
    copies = [copy.deepcopy(p) for p in payloads]
    records = timed("process_event (total)", lambda p: process_event(
        p, project_id=1, received=now, client_ip="127.0.0.1", rules=rules), copies)

    tmp = Path(tempfile.mkdtemp(prefix="wk-cpu-"))
    try:
        engine = make_engine(f"sqlite:///{tmp / 'db.sqlite'}")
        upgrade(engine)
        with engine.begin() as conn:
            project_id = create_project(conn, "bench", now=now).id
        batches = []
        for i in range(0, len(records), args.batch):
            group = []
            for r in records[i:i + args.batch]:
                er = EnvelopeRecords(project_id=project_id, received=now)
                r.project_id = project_id
                er.events.append(r)
                er.count("error", "accepted")
                group.append(er)
            batches.append(group)
        t = time.process_time()
        w = time.perf_counter()
        for group in batches:
            with engine.begin() as conn:
                save_envelopes(conn, group)
        cost[f"save_envelopes (batches of {args.batch}, CPU)"] = (time.process_time() - t) / len(records)
        wall = (time.perf_counter() - w) / len(records)
        engine.dispose()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    for name, c in cost.items():
        print(f"  {name:44s} {c * 1e6:8.0f} us/event")
    total = sum(c for n, c in cost.items() if not n.startswith("  "))
    print(f"  save_envelopes wall time incl. fsync           {wall * 1e6:8.0f} us/event")
    print(f"RESULT CPU per event (pipeline without HTTP/ASGI): {total * 1e6:.0f} us -> ceiling "
          f"{1 / total:.0f} events/s per core (target 2000/s needs <= 500 us/event on one core)")


if __name__ == "__main__":
    main()
