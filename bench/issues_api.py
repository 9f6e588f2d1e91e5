"""Target 4: issues list API p95 with 1M events in 10k issues.

    .venv/bin/python bench/issues_api.py --events 1000000 --issues 10000 --requests 400

Fill: one realistic event per issue goes through the project's own pipeline
(`watchkeeper.errors.processing.process_event`: normalise, scrub, group); the remaining events are
copies of those EventRecords with a fresh event_id, timestamp (spread over 14 days), level,
environment, release and user (so tags, counters, users_seen and minute counts are real), written
with `watchkeeper.errors.storage.save_envelopes` in big transactions through
`watchkeeper.store.writer.Writer`. Issue sizes are skewed (Zipf-like), some issues resolved/ignored.
Then a server is started on that database and the issues API is timed with a mix of sorts, filters
and pages (cursor-following), sequentially (one request at a time), from the same machine.
"""

from __future__ import annotations

import argparse
import bisect
import dataclasses
import itertools
import random
import shutil
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import make_events
from benchserver import BenchServer

ENVS = ("production", "staging", "development")
RELEASES = tuple(f"shop@2026.11.{i}" for i in range(1, 10))
LEVELS = ("error", "error", "error", "warning", "fatal", "info")


def fill(db: Path, project_id: int, n_events: int, n_issues: int, batch: int, seed: int = 3) -> None:
    from sqlalchemy import text

    from watchkeeper.errors.processing import process_event
    from watchkeeper.errors.records import EnvelopeRecords
    from watchkeeper.errors.scrubbing import ScrubbingRules
    from watchkeeper.errors.storage import save_envelopes
    from watchkeeper.store.engine import make_engine
    from watchkeeper.store.writer import Writer

    rng = random.Random(seed)
    rules = ScrubbingRules()
    now = time.time()
    t = time.time()
    templates = []
    for k in range(n_issues):
        ev = make_events.make_event(rng, issue=f"fill{k}", now=now - 14 * 86400)
        templates.append(process_event(ev, project_id=project_id, received=now, client_ip="127.0.0.1",
                                       rules=rules))
    print(f"fill: {n_issues} issue templates through process_event in {time.time() - t:.0f} s", flush=True)
    # Zipf-like issue popularity; every issue gets at least its first event.
    weights = [1.0 / (k + 1) ** 0.9 for k in range(n_issues)]
    cum = list(itertools.accumulate(weights))

    engine = make_engine(f"sqlite:///{db}")
    writer = Writer(engine, max_batch=1)
    writer.start()
    t = time.time()
    done = 0
    users = [f"id:{i}" for i in range(20000)]
    while done < n_events:
        envs = []
        for _ in range(min(batch, n_events - done)):
            k = done if done < n_issues else bisect.bisect_left(cum, rng.random() * cum[-1])
            tpl = templates[min(k, n_issues - 1)]
            ts = now - 14 * 86400 * rng.random() ** 2
            env, rel, lvl, user = rng.choice(ENVS), rng.choice(RELEASES), rng.choice(LEVELS), rng.choice(users)
            tags = [(a, b) for a, b in tpl.tags if a not in ("environment", "release", "level", "user")]
            tags += [("level", lvl), ("environment", env), ("release", rel), ("user", user)]
            rec = dataclasses.replace(tpl, event_id=uuid.UUID(int=rng.getrandbits(128)).hex, timestamp=ts,
                                      received=ts, level=lvl, environment=env, release=rel, user_key=user,
                                      tags=tags)
            er = EnvelopeRecords(project_id=project_id, received=ts)
            er.events.append(rec)
            er.count("error", "accepted")
            envs.append(er)
            done += 1
        # one transaction per `batch` events, committed by the project's writer thread
        writer.run_sync(lambda conn, items: [save_envelopes(conn, items[0])] , envs, timeout=600)
        if done % (batch * 20) == 0 or done == n_events:
            print(f"fill: {done} events, {done / (time.time() - t):.0f} events/s", flush=True)
    writer.stop()
    with engine.begin() as conn:
        # some triage state so status filters select different sets
        conn.execute(text("update issues set status='resolved', substatus='' where id % 7 = 0"))
        conn.execute(text("update issues set status='ignored', substatus='' where id % 11 = 0"))
    with engine.connect() as conn:
        conn.execute(text("ANALYZE"))
        conn.commit()
    engine.dispose()


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p * len(xs)))] * 1000


def measure(server: BenchServer, project: int, token: str, n_requests: int, seed: int = 5) -> None:
    import httpx

    rng = random.Random(seed)
    now = time.time()
    headers = {"Authorization": f"Bearer {token}"}
    kinds: dict[str, list[float]] = {}
    all_lat: list[float] = []
    with httpx.Client(base_url=server.base, headers=headers, timeout=30) as client:
        for _ in range(10):  # warm-up
            client.get(f"/api/v1/projects/{project}/issues").raise_for_status()
        i = 0
        while i < n_requests:
            params: dict[str, str | int] = {"limit": rng.choice((25, 25, 50, 100)),
                                            "sort": rng.choice(("last_seen", "first_seen", "events", "users"))}
            kind = params["sort"]
            r = rng.random()
            if r < 0.15:
                params["status"] = rng.choice(("resolved", "ignored", "all"))
                kind += "+status"
            elif r < 0.30:
                params["environment"] = rng.choice(ENVS)
                kind += "+environment"
            elif r < 0.40:
                params["release"] = rng.choice(RELEASES)
                kind += "+release"
            elif r < 0.50:
                params["level"] = rng.choice(("fatal", "warning", "error"))
                kind += "+level"
            elif r < 0.60:
                params["query"] = rng.choice(("ledger", "payment failed", "Timeout", "handlers", "nomatch"))
                kind += "+query"
            elif r < 0.70:
                params["since"] = now - rng.choice((3600, 86400, 7 * 86400))
                kind += "+since"
            pages = rng.choice((1, 1, 1, 2, 5))
            url: str | None = f"/api/v1/projects/{project}/issues"
            for page in range(pages):
                t = time.perf_counter()
                resp = client.get(url, params=params if page == 0 else None)
                dt = time.perf_counter() - t
                resp.raise_for_status()
                body = resp.json()
                label = kind + ("+page>1" if page else "")
                kinds.setdefault(label.split("+")[0] if page == 0 else "cursor pages", []).append(dt)
                if "+" in kind and page == 0:
                    kinds.setdefault("filter " + kind.split("+", 1)[1], []).append(dt)
                all_lat.append(dt)
                i += 1
                if not body.get("next_cursor"):
                    break
                url = f"/api/v1/projects/{project}/issues?cursor={body['next_cursor']}"
                if page == 0:
                    url += "&" + "&".join(f"{k}={v}" for k, v in params.items())
    for label, xs in sorted(kinds.items()):
        print(f"  {label:24s} n={len(xs):4d} p50 {pct(xs, .5):6.1f} ms  p95 {pct(xs, .95):6.1f} ms  "
              f"max {max(xs) * 1000:6.1f} ms")
    p95 = pct(all_lat, .95)
    print(f"RESULT issues API: {len(all_lat)} requests, p50 {pct(all_lat, .5):.1f} ms, p95 {p95:.1f} ms, "
          f"p99 {pct(all_lat, .99):.1f} ms, max {max(all_lat) * 1000:.1f} ms -> "
          f"{'target met' if p95 < 100 else 'target MISSED'} (p95 < 100 ms)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--issues", type=int, default=10_000)
    ap.add_argument("--batch", type=int, default=5000, help="events per fill transaction")
    ap.add_argument("--requests", type=int, default=400)
    ap.add_argument("--workdir", type=Path, help="reuse/keep this dir (skip fill if its DB is filled)")
    args = ap.parse_args()
    server = BenchServer(args.workdir)
    try:
        server.start()
        marker = server.tmp / "filled.txt"
        if marker.exists():
            project, token = marker.read_text().split()
            project = int(project)
        else:
            project, _key, token = server.setup_project()
            server.stop()
            fill(server.db, project, args.events, args.issues, args.batch)
            marker.write_text(f"{project} {token}")
            server.start()
        counts = server.sql("select (select count(*) from events), (select count(*) from issues), "
                            "(select count(*) from issue_tags)")
        size = server.db.stat().st_size / 2**20
        print(f"database: events|issues|issue_tags = {counts}, file {size:.0f} MiB", flush=True)
        measure(server, project, token, args.requests)
    finally:
        server.stop()
        if not args.workdir:
            shutil.rmtree(server.tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
