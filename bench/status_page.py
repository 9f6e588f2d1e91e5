"""Status page target: 500 requests/s on the public page.

Fills a fresh data dir with a project, `--monitors` monitors with 90 days of daily results and one status
page mapping them to `--components` components (through the project's own code), starts `watchkeeper
serve` (production profile, one process, no scheduler) and runs wrk on `/status/<slug>` (HTML) and
`/status/<slug>/json` for `--duration` s each. Prints requests/s, latency and server CPU.

    .venv/bin/python bench/status_page.py --duration 20 --connections 32
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from benchserver import BenchServer, cpu_seconds


def fill(data: Path, project_id: int, monitors: int, components: int) -> None:
    import orjson

    from watchkeeper.store.engine import for_writing, make_engine
    from watchkeeper.uptime.monitors import create_monitor
    from watchkeeper.uptime.results import add_to_rollups
    from watchkeeper.uptime.specs import MonitorSpec
    from watchkeeper.uptime.tables import monitors, status_components, status_pages

    engine = make_engine(f"sqlite:///{data / 'watchkeeper.db'}")
    now = time.time()
    with for_writing(engine).begin() as conn:
        ids = [create_monitor(conn, project_id, MonitorSpec(name=f"service {i}", type="tcp",
                                                            config={"host": "127.0.0.1", "port": 9}), now=now).id
               for i in range(monitors)]
        results = [{"monitor_id": m, "at": now - day * 86400 - minute * 60, "ok": (day + minute + m) % 97 != 0,
                    "response_ms": 20.0 + minute % 50, "in_maintenance": False}
                   for m in ids for day in range(90) for minute in range(0, 1440, 60)]
        add_to_rollups(conn, results)
        # Watched for the 90 days of results (uptime counts from the first result, docs/uptime.md).
        conn.execute(monitors.update().where(monitors.c.id.in_(ids)).values(first_result_at=now - 90 * 86400))
        page_id = conn.execute(status_pages.insert().values(
            project_id=project_id, slug="bench", title="Bench", created_at=now)).inserted_primary_key[0]
        per = max(1, monitors // components)
        conn.execute(status_components.insert(), [
            {"page_id": page_id, "name": f"component {c}", "group_name": f"group {c % 3}", "position": c,
             "monitor_ids": orjson.dumps(ids[c * per:(c + 1) * per]).decode()} for c in range(components)])
    engine.dispose()


def wrk(url: str, duration: int, connections: int) -> dict[str, str]:
    out = subprocess.run(["wrk", "-t2", f"-c{connections}", f"-d{duration}s", "--latency", url],
                         check=True, capture_output=True, text=True).stdout
    found = {"rps": re.search(r"Requests/sec:\s+([\d.]+)", out), "p50": re.search(r"50%\s+(\S+)", out),
             "p99": re.search(r"99%\s+(\S+)", out), "non2xx": re.search(r"Non-2xx or 3xx responses: (\d+)", out)}
    return {k: (m.group(1) if m else "0") for k, m in found.items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--monitors", type=int, default=30)
    parser.add_argument("--components", type=int, default=10)
    parser.add_argument("--duration", type=int, default=20)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    server = BenchServer()
    server.env.update({"WATCHKEEPER_UPTIME__SCHEDULER": "false", "WATCHKEEPER_INGEST__PROCESSORS": "0"})
    try:
        project_id = int(server.cli("project", "create", "bench")["id"])
        fill(server.data, project_id, args.monitors, args.components)
        server.start()
        for path in ("/status/bench", "/status/bench/json"):
            cpu, wall = cpu_seconds(server.pid), time.time()
            result = wrk(server.base + path, args.duration, args.connections)
            cores = (cpu_seconds(server.pid) - cpu) / (time.time() - wall)
            print(f"RESULT path={path} requests_per_second={result['rps']} p50={result['p50']} "
                  f"p99={result['p99']} non_2xx={result['non2xx']} server_cpu_cores={cores:.2f}")
    finally:
        server.stop()
        if not os.environ.get("WK_BENCH_KEEP"):
            subprocess.run(["rm", "-rf", str(server.tmp)], check=False)


if __name__ == "__main__":
    main()
