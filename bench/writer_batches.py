"""Cost per event of the ingest writer: save_envelopes in batches of the size the writer really commits.

    PYTHONPATH=src .venv/bin/python bench/writer_batches.py --events 6000 --warm 3000 --batch 32

Builds realistic EventRecords (make_events -> process_event; cached in --records so that runs of two
code versions store exactly the same records), then on a fresh SQLite file with the writer process's
engine (make_engine(cache_mib=64) + for_writing: WAL, synchronous=FULL) stores the first --warm events
untimed and times the rest, one transaction per batch, commit included. Reports process CPU and wall
time per event and the bytes the process wrote to storage per event (/proc/self/io write_bytes: WAL
frames and checkpoints). Compare two versions in alternating pairs: the VM's speed varies by ±10 %.
"""

from __future__ import annotations

import argparse
import gc
import pickle
import random
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import make_events


def _write_bytes() -> int:
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("write_bytes:"):
            return int(line.split()[1])
    return 0


def _records(path: Path, count: int, now: float) -> list:  # type: ignore[type-arg]
    if path.exists():
        records = pickle.loads(path.read_bytes())
        if len(records) >= count:
            return records[:count]
    from watchkeeper.errors.processing import process_event
    from watchkeeper.errors.scrubbing import ScrubbingRules

    rng = random.Random(11)
    rules = ScrubbingRules()
    records = []
    for i in range(count):
        # event timestamps spread over ~10 minutes, as under steady load
        payload = make_events.make_event(rng, now=now - 600 + i * 600 / count)
        records.append(process_event(payload, project_id=1, received=now, client_ip="127.0.0.1", rules=rules))
    path.write_bytes(pickle.dumps(records, pickle.HIGHEST_PROTOCOL))
    return records


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=6000, help="events stored, warm-up included")
    ap.add_argument("--warm", type=int, default=3000, help="events stored first, untimed")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--records", type=Path, default=Path(tempfile.gettempdir()) / "wk-writer-records.pkl")
    args = ap.parse_args()

    from watchkeeper.auth.projects import create_project
    from watchkeeper.errors.records import EnvelopeRecords
    from watchkeeper.errors.storage import save_envelopes
    from watchkeeper.store.engine import for_writing, make_engine
    from watchkeeper.store.migrate import upgrade

    now = 1_790_000_000.0
    records = _records(args.records, args.events, now)
    tmp = Path(tempfile.mkdtemp(prefix="wk-writer-"))
    try:
        engine = make_engine(f"sqlite:///{tmp / 'db.sqlite'}", pool_size=1, cache_mib=64)
        upgrade(engine)
        with engine.begin() as conn:
            project_id = create_project(conn, "bench", now=now).id
        writer = for_writing(engine)
        batches = []
        for i in range(0, len(records), args.batch):
            group = []
            for r in records[i:i + args.batch]:
                envelope = EnvelopeRecords(project_id=project_id, received=r.received)
                r.project_id = project_id
                envelope.events.append(r)
                envelope.count("error", "accepted")
                group.append(envelope)
            batches.append(group)
        warm = args.warm // args.batch
        for group in batches[:warm]:
            with writer.begin() as conn:
                save_envelopes(conn, group)
        timed = batches[warm:]
        n = sum(len(g) for g in timed)
        gc.collect()
        gc.freeze()
        b, t, w = _write_bytes(), time.process_time(), time.perf_counter()
        sys0 = resource.getrusage(resource.RUSAGE_SELF).ru_stime
        for group in timed:
            with writer.begin() as conn:
                save_envelopes(conn, group)
        cpu, wall, written = time.process_time() - t, time.perf_counter() - w, _write_bytes() - b
        kernel = resource.getrusage(resource.RUSAGE_SELF).ru_stime - sys0
        engine.dispose()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"RESULT batch={args.batch} events={n}: CPU {cpu / n * 1e6:.0f} us/event (kernel "
          f"{kernel / n * 1e6:.0f}), wall {wall / n * 1e6:.0f} "
          f"us/event, written {written / n / 1024:.1f} KiB/event")


if __name__ == "__main__":
    main()
