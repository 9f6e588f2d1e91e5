"""Detection target: from the target going down to the down signal in at most
interval x confirmations + timeout + 2 s.

Starts a local target (aiohttp, own process) whose `/health` answers 200 until `/break` is called, and
`watchkeeper serve` with `--monitors` HTTP monitors at `--interval` s (2 confirmations, `--timeout` s).
After every monitor is up, breaks the target and reads the `monitor.down` signals: detection time is the
signal's time minus the moment the target broke. Prints the worst and median detection and the bound.

    .venv/bin/python bench/uptime_detection.py --monitors 50 --interval 10 --timeout 5
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from benchserver import BenchServer, free_port

TARGET = textwrap.dedent("""
    import sys
    from aiohttp import web
    state = {"up": True}
    async def health(request):
        return web.Response(status=200 if state["up"] else 503, text="ok" if state["up"] else "broken")
    async def broken(request):
        state["up"] = False
        return web.Response(text="broken")
    app = web.Application()
    app.router.add_get("/health", health)
    app.router.add_get("/break", broken)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)
""")


def fill(data: Path, project_id: int, count: int, url: str, interval: int, timeout: float) -> None:
    from watchkeeper.store.engine import for_writing, make_engine
    from watchkeeper.uptime.monitors import create_monitor
    from watchkeeper.uptime.specs import MonitorSpec

    engine = make_engine(f"sqlite:///{data / 'watchkeeper.db'}")
    spec = MonitorSpec(name="target", type="http", interval_seconds=interval, timeout_seconds=timeout,
                       failures_to_down=2, config={"url": url})
    with for_writing(engine).begin() as conn:
        for _ in range(count):
            create_monitor(conn, project_id, spec, now=time.time())
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--monitors", type=int, default=50)
    parser.add_argument("--interval", type=int, default=10)
    parser.add_argument("--timeout", type=float, default=5.0)
    args = parser.parse_args()
    port = free_port()
    target = subprocess.Popen([sys.executable, "-c", TARGET, str(port)])
    server = BenchServer()
    server.env.update({"WATCHKEEPER_OUTBOUND__ALLOW_PRIVATE_TARGETS": "true", "WATCHKEEPER_INGEST__PROCESSORS": "0"})
    try:
        project_id = int(server.cli("project", "create", "bench")["id"])
        fill(server.data, project_id, args.monitors, f"http://127.0.0.1:{port}/health", args.interval, args.timeout)
        server.start()
        deadline = time.time() + 3 * args.interval + 30
        while server.sql("select count(*) from monitors where status = 'up'") != str(args.monitors):
            if time.time() > deadline:
                raise RuntimeError("monitors did not come up")
            time.sleep(0.5)
        broke_at = time.time()
        urllib.request.urlopen(f"http://127.0.0.1:{port}/break", timeout=5).read()
        bound = args.interval * 2 + args.timeout + 2
        while server.sql("select count(*) from signals where kind = 'monitor.down'") != str(args.monitors):
            if time.time() > broke_at + 3 * bound:
                break
            time.sleep(0.5)
        times = [float(t) - broke_at for t in server.sql(
            "select created_at from signals where kind = 'monitor.down'").split()]
        print(f"RESULT monitors={args.monitors} signalled={len(times)} interval={args.interval} "
              f"timeout={args.timeout} bound_seconds={bound:.1f}")
        if times:
            print(f"RESULT detection_median_seconds={statistics.median(times):.2f} "
                  f"detection_max_seconds={max(times):.2f} within_bound={max(times) <= bound}")
    finally:
        server.stop()
        target.terminate()
        target.wait(10)
        if not os.environ.get("WK_BENCH_KEEP"):
            subprocess.run(["rm", "-rf", str(server.tmp)], check=False)


if __name__ == "__main__":
    main()
