"""Issue 4 target: the monitors list page with 10,000 monitors, server time under 300 ms.

Fills a fresh data dir (SQLite) with one project and `--monitors` monitors (80 % HTTP, 10 % TCP, 5 % DNS,
5 % heartbeats; about 2 % down, 2 % paused) and the results such a project holds: per-hour rollups for
7 days, per-day rollups for 90 days, per-minute rollups for the last hour, the last 10 raw results of each
monitor and a few outages. Then `watchkeeper serve` (production profile, one process, no scheduler so the
figures are the page alone) is started, the admin logs in through the form, and `--requests` pages are
fetched one after the other with httpx over 127.0.0.1: the first page, status filters, a type filter,
searches, deep pages (offset up to 9,950) and some monitor pages. Server time is the client-side request
time (it includes the loopback round trip, so it is an upper bound).

    .venv/bin/python bench/monitors_page.py --monitors 10000 --requests 300
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from benchserver import BenchServer
from issues_api import pct
from web_pages import log_in

TYPES = ["http"] * 16 + ["tcp"] * 2 + ["dns", "heartbeat"]


def _config(kind: str, i: int) -> str:
    import orjson

    from watchkeeper.uptime.specs import validate_config

    raw = {"http": {"url": f"https://service-{i}.example.com/health", "conditions": ["status == 200"]},
           "tcp": {"host": f"db-{i}.example.com", "port": 5432}, "dns": {"name": f"svc-{i}.example.com"},
           "heartbeat": {"period_seconds": 3600, "grace_seconds": 600}}[kind]
    return orjson.dumps(validate_config(kind, raw)).decode()


def fill(data: Path, project_id: int, count: int, seed: int = 3) -> None:
    from watchkeeper.store.engine import for_writing, make_engine
    from watchkeeper.uptime.tables import check_results, monitor_rollups, monitors, outages

    rng = random.Random(seed)
    engine = make_engine(f"sqlite:///{data / 'watchkeeper.db'}")
    now = time.time()
    hour, day, minute = int(now // 3600) * 3600, int(now // 86400) * 86400, int(now // 60) * 60
    configs = {kind: [_config(kind, i) for i in range(50)] for kind in set(TYPES)}
    rows = []
    for i in range(count):
        kind = rng.choice(TYPES)
        roll = rng.random()
        status = "down" if roll < 0.02 else "paused" if roll < 0.04 else "new" if roll < 0.05 else "up"
        rows.append({"project_id": project_id, "uuid": str(uuid.uuid4()), "name": f"service {i} {kind}",
                     "slug": f"service-{i}", "type": kind, "config": configs[kind][i % 50],
                     "interval_seconds": 60, "timeout_seconds": 10.0, "failures_to_down": 2, "successes_to_up": 1,
                     "sla_target": 99.9 if i % 10 == 0 else None, "paused": status == "paused",
                     "created_at": now - 90 * 86400, "updated_at": now - 90 * 86400, "status": status,
                     "first_result_at": None if status == "new" else now - 90 * 86400,
                     "status_changed_at": now - rng.uniform(0, 30 * 86400), "last_check_at": now - rng.uniform(0, 60),
                     "last_error": "status 503" if status == "down" else None})
    with for_writing(engine).begin() as conn:
        conn.execute(monitors.insert(), rows)
        ids = [int(i) for i in conn.execute(monitors.select().with_only_columns(monitors.c.id)).scalars()]
    batch: list[dict[str, object]] = []

    def flush(table: object, force: bool = False) -> None:
        if batch and (force or len(batch) >= 50_000):
            with for_writing(engine).begin() as conn:
                conn.execute(table.insert(), batch)  # type: ignore[attr-defined]
            batch.clear()

    def rollup(monitor_id: int, resolution: int, bucket: int, checks: int) -> None:
        failures = checks if rng.random() < 0.003 else 0
        good = checks - failures
        batch.append({"monitor_id": monitor_id, "resolution": resolution, "bucket": bucket, "checks": checks,
                      "failures": failures, "maintenance_checks": 0,
                      "response_ms_sum": good * rng.uniform(20, 400), "response_count": good, "sketch": None})
        flush(monitor_rollups)

    for monitor_id in ids:
        for h in range(7 * 24):
            rollup(monitor_id, 3600, hour - h * 3600, 60)
        for d in range(90):
            rollup(monitor_id, 86400, day - d * 86400, 1440)
        for m in range(60):
            rollup(monitor_id, 60, minute - m * 60, 1)
    flush(monitor_rollups, force=True)
    for monitor_id in ids:
        for k in range(10):
            batch.append({"monitor_id": monitor_id, "at": now - 60 * k, "ok": True, "response_ms": 50.0,
                          "status_code": 200, "error": None, "in_maintenance": False})
        flush(check_results)
    flush(check_results, force=True)
    with for_writing(engine).begin() as conn:
        conn.execute(outages.insert(), [{"monitor_id": rng.choice(ids), "ended_at": None, "first_error": "status 503",
                                         "started_at": now - rng.uniform(3600, 80 * 86400)} for _ in range(500)])
        conn.execute(outages.update().where(outages.c.started_at < now - 7200)
                     .values(ended_at=outages.c.started_at + 600))
    engine.dispose()


def requests_mix(rng: random.Random, project: int, ids: list[int]) -> tuple[str, str]:
    base = f"/projects/{project}/monitors"
    r = rng.random()
    if r < 0.25:
        return "first page", base
    if r < 0.40:
        return "status filter", f"{base}?status={rng.choice(('up', 'down', 'paused', 'new'))}"
    if r < 0.50:
        return "type filter", f"{base}?type={rng.choice(('http', 'tcp', 'dns', 'heartbeat'))}"
    if r < 0.65:
        return "search", f"{base}?q={rng.choice(('service 12', 'heartbeat', 'service 9999', 'nomatch', 'dns'))}"
    if r < 0.85:
        return "deep page", f"{base}?offset={rng.randrange(0, len(ids) - 50, 50)}"
    return "monitor page", f"/monitors/{rng.choice(ids)}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--monitors", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args()
    server = BenchServer()
    server.env.update({"WATCHKEEPER_UPTIME__SCHEDULER": "false", "WATCHKEEPER_INGEST__PROCESSORS": "0"})
    try:
        project = int(server.cli("project", "create", "bench")["id"])
        started = time.time()
        fill(server.data, project, args.monitors)
        counts = server.sql("select (select count(*) from monitors), (select count(*) from monitor_rollups), "
                            "(select count(*) from check_results)")
        print(f"filled in {time.time() - started:.0f} s: monitors|rollups|raw results = {counts}, "
              f"file {server.db.stat().st_size / 2**20:.0f} MiB", flush=True)
        ids = [int(x) for x in server.sql("select id from monitors").split()]
        server.start()
        rng = random.Random(11)
        kinds: dict[str, list[float]] = {}
        with httpx.Client(base_url=server.base, timeout=60) as client:
            log_in(client)
            for _ in range(10):  # warm-up
                assert client.get(f"/projects/{project}/monitors").status_code == 200
            for _ in range(args.requests):
                kind, url = requests_mix(rng, project, ids)
                t = time.perf_counter()
                answer = client.get(url)
                elapsed = time.perf_counter() - t
                assert answer.status_code == 200, (url, answer.status_code)
                kinds.setdefault(kind, []).append(elapsed)
                if kind != "monitor page":
                    kinds.setdefault("monitors list (all)", []).append(elapsed)
        for label, xs in sorted(kinds.items()):
            print(f"  {label:22s} n={len(xs):4d} p50 {pct(xs, .5):6.1f} ms  p95 {pct(xs, .95):6.1f} ms  "
                  f"max {max(xs) * 1000:6.1f} ms")
        p95 = pct(kinds["monitors list (all)"], .95)
        print(f"RESULT monitors list, {args.monitors} monitors: p50 {pct(kinds['monitors list (all)'], .5):.1f} ms "
              f"p95 {p95:.1f} ms -> {'target met' if p95 < 300 else 'target MISSED'} (< 300 ms)")
    finally:
        server.stop()
        if not os.environ.get("WK_BENCH_KEEP"):
            subprocess.run(["rm", "-rf", str(server.tmp)], check=False)


if __name__ == "__main__":
    main()
