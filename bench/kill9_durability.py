"""Target 3: kill -9 the server in the middle of a load test; every event that got a 200 must be stored.

    .venv/bin/python bench/kill9_durability.py --rounds 3 --duration 20 --concurrency 32

Per round: start the server (same data dir across rounds), send unique gzip envelopes from an aiohttp
generator with --concurrency requests in flight, record the event_id of every 200 answer, SIGKILL the
server at a random moment in the middle of the window, restart it, then check that every acknowledged
event_id is in `events` and that `PRAGMA integrity_check` says ok.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shutil
import sqlite3
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import make_events
from benchserver import BenchServer


async def load(server: BenchServer, project: int, key: str, bodies: list[tuple[str, bytes]], duration: float,
               kill_at: float, concurrency: int) -> tuple[set[str], dict[str, int], float]:
    import aiohttp

    url = f"{server.base}/api/{project}/envelope/"
    headers = {"X-Sentry-Auth": f"Sentry sentry_key={key}, sentry_version=7", "Content-Encoding": "gzip"}
    acked: set[str] = set()
    outcomes: dict[str, int] = {}
    it = iter(bodies)
    t0 = time.monotonic()
    killed_at = 0.0

    async def worker(session: aiohttp.ClientSession) -> None:
        while time.monotonic() - t0 < duration:
            try:
                event_id, body = next(it)
            except StopIteration:
                return
            try:
                async with session.post(url, data=body, headers=headers) as r:
                    text = await r.read()
                    outcomes[str(r.status)] = outcomes.get(str(r.status), 0) + 1
                    if r.status == 200:
                        assert json.loads(text)["id"] == event_id
                        acked.add(event_id)
            except (TimeoutError, aiohttp.ClientError, ConnectionError):
                outcomes["connection error"] = outcomes.get("connection error", 0) + 1
                await asyncio.sleep(0.05)

    async def killer() -> None:
        nonlocal killed_at
        await asyncio.sleep(kill_at)
        server.kill9()
        killed_at = time.monotonic() - t0

    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency), timeout=timeout) as s:
        await asyncio.gather(killer(), *(worker(s) for _ in range(concurrency)))
    return acked, outcomes, killed_at


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=float, default=20.0, help="seconds of load per round")
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--events", type=int, default=40000,
                    help="unique events per round (upper bound: the kill must come before they run out)")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    server = BenchServer()
    all_ok = True
    try:
        server.start()
        project, key, _ = server.setup_project()
        for rnd in range(1, args.rounds + 1):
            bodies = []
            for _ in range(args.events):
                ev = make_events.make_event(rng)
                bodies.append((ev["event_id"], make_events.gzip_envelope(ev)))
            if server.proc is None or server.proc.poll() is not None:
                server.start()
            kill_at = args.duration * rng.uniform(0.35, 0.65)
            acked, outcomes, killed_at = asyncio.run(
                load(server, project, key, bodies, args.duration, kill_at, args.concurrency))
            server.start()  # restart on the same data dir: recovery
            server.stop()  # clean stop so the checks see a quiet file
            con = sqlite3.connect(server.db)
            stored = {r[0].replace("-", "") for r in con.execute("select event_id from events")}
            integrity = con.execute("pragma integrity_check").fetchone()[0]
            con.close()
            missing = {e for e in acked if e.replace("-", "") not in stored}
            ok = not missing and integrity == "ok"
            all_ok &= ok
            print(f"RESULT round {rnd}: killed at {killed_at:.1f} s of {args.duration:.0f} s; answers {outcomes}; "
                  f"acknowledged {len(acked)}, missing after restart {len(missing)}, events rows {len(stored)}, "
                  f"integrity_check {integrity!r} -> {'OK' if ok else 'FAIL'}", flush=True)
            server.start()
        print(f"RESULT kill -9 durability over {args.rounds} rounds: {'OK' if all_ok else 'FAIL'}")
    finally:
        server.stop()
        shutil.rmtree(server.tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
