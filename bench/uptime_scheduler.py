"""Uptime target: 10,000 HTTP monitors at a 60 s interval against a local target, one Watchkeeper process on
SQLite: scheduling lag p99 under 2 s, under one core of CPU.

Fills a fresh data dir with `--monitors` HTTP monitors (through the project's own `create_monitor`), starts
a local target (aiohttp, in its own process so its CPU is not counted), starts `watchkeeper serve`
(production profile, private targets allowed, processors 0), lets the start jitter spread the checks
(`--warmup` s), then measures for `--duration` s: scheduling lag from the server's
`watchkeeper_uptime_schedule_lag_seconds` histogram (difference of two scrapes; p50/p99 interpolated in
the bucket), checks per second, CPU of the server process tree from /proc, and result rows written.

    .venv/bin/python bench/uptime_scheduler.py --monitors 10000 --warmup 70 --duration 110
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from prometheus_client.parser import text_string_to_metric_families

from benchserver import BenchServer, cpu_seconds, free_port, rss_kib

TARGET = textwrap.dedent("""
    import sys
    from aiohttp import web
    async def ok(request):
        return web.Response(text='{"status": "UP"}', content_type="application/json")
    app = web.Application()
    app.router.add_get("/health", ok)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)
""")


def fill_monitors(data: Path, project_id: int, count: int, target: str) -> None:
    from watchkeeper.store.engine import for_writing, make_engine
    from watchkeeper.uptime.monitors import create_monitor
    from watchkeeper.uptime.specs import MonitorSpec

    engine = make_engine(f"sqlite:///{data / 'watchkeeper.db'}")
    spec = MonitorSpec(name="target", type="http", interval_seconds=60, timeout_seconds=10,
                       config={"url": target, "conditions": ['body.status == "UP"']})
    now = time.time()
    with for_writing(engine).begin() as conn:
        for index in range(count):
            create_monitor(conn, project_id, spec.model_copy(update={"name": f"target {index}"}), now=now)
    engine.dispose()


def scrape(base: str) -> tuple[list[tuple[float, float]], float]:
    """Cumulative lag buckets [(upper bound, count)] and the checks counter total."""
    text = urllib.request.urlopen(base + "/metrics", timeout=10).read().decode()
    buckets: list[tuple[float, float]] = []
    checks = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "watchkeeper_uptime_schedule_lag_seconds_bucket":
                buckets.append((float(sample.labels["le"]), sample.value))
            elif sample.name == "watchkeeper_uptime_checks_total":
                checks += sample.value
    return sorted(buckets), checks


def quantile(before: list[tuple[float, float]], after: list[tuple[float, float]], q: float) -> float:
    counts = [(bound, a - b) for (bound, a), (_, b) in zip(after, before, strict=True)]
    total = counts[-1][1]
    rank = q * total
    lower, below = 0.0, 0.0
    for bound, cumulative in counts:
        if cumulative >= rank:
            if bound == float("inf"):
                return lower
            inside = cumulative - below
            return lower + (bound - lower) * ((rank - below) / inside if inside else 0.0)
        lower, below = bound, cumulative
    return lower


def max_bound(before: list[tuple[float, float]], after: list[tuple[float, float]]) -> float:
    """The smallest bucket bound that holds every lag measured in the window."""
    deltas = [(bound, a - b) for (bound, a), (_, b) in zip(after, before, strict=True)]
    return next(bound for bound, count in deltas if count == deltas[-1][1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--monitors", type=int, default=10_000)
    parser.add_argument("--warmup", type=float, default=70.0)
    parser.add_argument("--duration", type=float, default=110.0)
    args = parser.parse_args()

    target_port = free_port()
    target = subprocess.Popen([sys.executable, "-c", TARGET, str(target_port)])
    server = BenchServer()
    server.env.update({"WATCHKEEPER_OUTBOUND__ALLOW_PRIVATE_TARGETS": "true", "WATCHKEEPER_INGEST__PROCESSORS": "0"})
    try:
        project_id = int(server.cli("project", "create", "bench")["id"])
        started = time.time()
        fill_monitors(server.data, project_id, args.monitors, f"http://127.0.0.1:{target_port}/health")
        print(f"RESULT fill_seconds={time.time() - started:.1f} monitors={args.monitors}")
        server.start()
        time.sleep(args.warmup)
        before, checks_before = scrape(server.base)
        cpu_before, wall_before = cpu_seconds(server.pid), time.time()
        rows_before = int(server.sql("select count(*) from check_results"))
        samples = []
        while time.time() - wall_before < args.duration:
            time.sleep(5)
            samples.append(rss_kib(server.pid))
        after, checks_after = scrape(server.base)
        cpu = cpu_seconds(server.pid) - cpu_before
        wall = time.time() - wall_before
        rows = int(server.sql("select count(*) from check_results")) - rows_before
        down = server.sql("select count(*) from monitors where status != 'up'")
        print(f"RESULT window_seconds={wall:.1f} checks={checks_after - checks_before:.0f} "
              f"checks_per_second={(checks_after - checks_before) / wall:.1f} result_rows={rows}")
        print(f"RESULT lag_p50_seconds={quantile(before, after, 0.50):.3f} "
              f"lag_p99_seconds={quantile(before, after, 0.99):.3f} "
              f"lag_max_at_most={max_bound(before, after)}")
        print(f"RESULT cpu_cores={cpu / wall:.3f} rss_mib={max(samples) / 1024:.0f} monitors_not_up={down}")
    finally:
        server.stop()
        target.terminate()
        target.wait(10)
        if not os.environ.get("WK_BENCH_KEEP"):
            subprocess.run(["rm", "-rf", str(server.tmp)], check=False)


if __name__ == "__main__":
    main()
