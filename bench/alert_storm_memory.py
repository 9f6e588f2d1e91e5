"""Memory under an alert storm: N new issues through the real ingest endpoint, alerting on.

    PYTHONPATH=src .venv/bin/python bench/alert_storm_memory.py --issues 20000

Each new issue fires the default pack's "New error type" alert, so N issues make N live alerts, which
the evaluator, the dispatcher and the incident responder then read round after round. The storm is
bounded (exactly N envelopes, each a new issue) so the figures do not depend on how fast the machine
ingests: the script sends them at --concurrency, waits until the N alerts are stored, then keeps
sampling for --settle seconds while alerting rounds run over them.

Samples the RSS of every process of the server (the server, its processors, the writer process)
every 0.5 s. RESULT lines: summed RSS (median and max over the storm, and at the end), and each
process's max. `--evaluator off` runs the same storm without alerting, for comparison.

`--diagnose` puts a sitecustomize.py on the server's PYTHONPATH that, in the server process, traces
allocations (tracemalloc, 10 frames) and writes every 10 s to <tmp>/diag-<pid>.txt the top allocations
by traceback, SQLite's own memory (sqlite3_memory_used) and glibc's heap figures (mallinfo2). Tracing
slows the server down; use it to find where memory goes, not for the figures. `--heap-stats` does the
same without tracemalloc, and prints pymalloc's statistics (sys._debugmallocstats) to <tmp>/server.log.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import statistics
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import make_events
from benchserver import BenchServer, _rss_kib, process_tree, rss_kib

SITECUSTOMIZE = r'''
import os, sys, threading, time
if "serve" in sys.argv and os.environ.get("WK_DIAG_OUT"):
    import ctypes, tracemalloc

    class _Mallinfo2(ctypes.Structure):
        _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                   "fsmblks", "uordblks", "fordblks", "keepcost")]

    def _dump():
        libc = ctypes.CDLL("libc.so.6")
        libc.mallinfo2.restype = _Mallinfo2
        try:
            sqlite = ctypes.CDLL("libsqlite3.so.0")
            sqlite.sqlite3_memory_used.restype = ctypes.c_int64
            sqlite.sqlite3_memory_highwater.restype = ctypes.c_int64
        except OSError:
            sqlite = None
        out = os.path.join(os.environ["WK_DIAG_OUT"], f"diag-{os.getpid()}.txt")
        time.sleep(8)  # traced from when the server is up: tracing the imports makes start-up too slow
        trace = os.environ.get("WK_DIAG_TRACE") != "0"
        if trace:
            tracemalloc.start(10)
        n = 0
        while True:
            time.sleep(10)
            n += 1
            stats = []
            if trace:
                snap = tracemalloc.take_snapshot().filter_traces((tracemalloc.Filter(False, tracemalloc.__file__),))
                stats = snap.statistics("traceback")
            total = sum(s.size for s in stats)
            m = libc.mallinfo2()
            lines = [f"=== dump {n} at {time.time():.0f}: traced {total / 2**20:.1f} MiB in {len(stats)} tracebacks; "
                     f"threads {threading.active_count()}; glibc main+arenas: arena {m.arena / 2**20:.1f} MiB "
                     f"in use {m.uordblks / 2**20:.1f} MiB free {m.fordblks / 2**20:.1f} MiB mmapped "
                     f"{m.hblkhd / 2**20:.1f} MiB"]
            if sqlite is not None:
                lines.append(f"sqlite3_memory_used {sqlite.sqlite3_memory_used() / 2**20:.1f} MiB, highwater "
                             f"{sqlite.sqlite3_memory_highwater(0) / 2**20:.1f} MiB")
            for stat in stats[:25]:
                lines.append(f"{stat.size / 2**20:8.2f} MiB {stat.count:8d} blocks")
                lines += ["      " + line for line in stat.traceback.format()[-12:]]
            with open(out, "a") as f:
                f.write("\n".join(lines) + "\n")
            if not trace:  # pymalloc has no statistics to give while tracemalloc hooks the allocator
                print(f"=== pymalloc at dump {n}", file=sys.stderr, flush=True)
                sys._debugmallocstats()  # to the server's stderr (server.log)

    threading.Thread(target=_dump, daemon=True, name="wk-diag").start()
'''


def _write_bodies(args: tuple[int, int, int]) -> list[bytes]:
    start, stop, seed = args
    rng = random.Random(seed * 1_000_003 + start)
    return [make_events.gzip_envelope(make_events.make_event(rng, new_issue=True)) for _ in range(start, stop)]


def make_bodies(count: int, seed: int = 7) -> list[bytes]:
    chunk = 1000
    with ProcessPoolExecutor(os.cpu_count() or 2) as pool:
        parts = pool.map(_write_bodies, [(s, min(s + chunk, count), seed) for s in range(0, count, chunk)])
        return [b for part in parts for b in part]


class Sampler(threading.Thread):
    """Summed RSS and each process's RSS every `period` seconds."""

    def __init__(self, pid: int, period: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.pid, self.period, self.stop_flag = pid, period, threading.Event()
        self.total: list[int] = []
        self.server: list[int] = []  # the server process alone
        self.per_process: dict[int, int] = {}
        self.names: dict[int, str] = {}

    def run(self) -> None:
        while not self.stop_flag.wait(self.period):
            self.server.append(_rss_kib(self.pid))
            total = 0
            for p in process_tree(self.pid):
                try:
                    kib = _rss_kib(p)
                    if p not in self.names:
                        argv = Path(f"/proc/{p}/cmdline").read_bytes().split(b"\0")
                        self.names[p] = b" ".join(argv[1:4]).decode(errors="replace")[-70:]
                except (FileNotFoundError, ProcessLookupError):
                    continue
                total += kib
                self.per_process[p] = max(self.per_process.get(p, 0), kib)
            self.total.append(total)

    def stop(self) -> None:
        self.stop_flag.set()
        self.join()


async def storm(base: str, project: int, key: str, bodies: list[bytes], concurrency: int) -> dict[int, int]:
    import aiohttp

    url = f"{base}/api/{project}/envelope/"
    headers = {"X-Sentry-Auth": f"Sentry sentry_key={key}, sentry_version=7", "Content-Encoding": "gzip"}
    statuses: dict[int, int] = {}
    queue = list(reversed(bodies))
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:
        async def worker() -> None:
            while queue:
                body = queue.pop()
                for _ in range(20):
                    async with session.post(url, data=body, headers=headers) as r:
                        await r.read()
                    if r.status != 429 and r.status < 500:
                        break
                    await asyncio.sleep(0.5)  # back-pressure: send it again
                statuses[r.status] = statuses.get(r.status, 0) + 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return statuses


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--issues", type=int, default=20000, help="new issues to send (= live alerts)")
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--settle", type=float, default=60.0, help="seconds to keep sampling after the storm")
    ap.add_argument("--evaluator", choices=("on", "off"), default="on")
    ap.add_argument("--diagnose", action="store_true", help="tracemalloc dumps in the server (slow)")
    ap.add_argument("--heap-stats", action="store_true", help="as --diagnose without tracemalloc: SQLite, "
                    "glibc and pymalloc figures only")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir")
    args = ap.parse_args()

    t = time.time()
    bodies = make_bodies(args.issues)
    print(f"bodies: {len(bodies)} new-issue envelopes in {time.time() - t:.0f} s", flush=True)
    server = BenchServer()
    server.env["WATCHKEEPER_ALERTING__EVALUATOR"] = "true" if args.evaluator == "on" else "false"
    if args.heap_stats:
        args.diagnose = True
        server.env["WK_DIAG_TRACE"] = "0"
    if args.diagnose:
        site = server.tmp / "diag-site"
        site.mkdir(parents=True)
        (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
        server.env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), server.env.get("PYTHONPATH")]))
        server.env["WK_DIAG_OUT"] = str(server.tmp)
    try:
        server.start()
        project, key, _token = server.setup_project()
        time.sleep(3)
        import watchkeeper
        print(f"server pid {server.pid}, watchkeeper from {Path(watchkeeper.__file__).parent} (this process; the "
              f"server inherits PYTHONPATH={server.env.get('PYTHONPATH', '')}), idle RSS "
              f"{rss_kib(server.pid) / 1024:.1f} MiB", flush=True)
        sampler = Sampler(server.pid)
        sampler.start()
        t0 = time.monotonic()
        statuses = asyncio.run(storm(server.base, project, key, bodies, args.concurrency))
        sent_s = time.monotonic() - t0
        print(f"storm sent in {sent_s:.0f} s: statuses {statuses}", flush=True)
        alerts = 0
        if args.evaluator == "on":
            deadline = time.monotonic() + 600
            while time.monotonic() < deadline:
                alerts = int(server.sql("select count(*) from alerts where state = 'firing'") or 0)
                if alerts >= args.issues:
                    break
                time.sleep(2)
            print(f"{alerts} firing alerts after {time.monotonic() - t0:.0f} s", flush=True)
        storm_samples = len(sampler.total)
        time.sleep(args.settle)
        sampler.stop()
        issues = int(server.sql("select count(*) from issues"))
        occurrences = (int(server.sql("select count(*) from alert_occurrences"))
                       if args.evaluator == "on" else 0)
        for pid, kib in sorted(sampler.per_process.items()):
            print(f"RESULT process {pid} ({sampler.names.get(pid, '?')}): max RSS {kib / 1024:.1f} MiB")
        total = sampler.total
        print("server process RSS every 5 s (MiB): " + " ".join(f"{k / 1024:.0f}" for k in sampler.server[::10]))
        print(f"RESULT alert storm ({args.issues} new issues, evaluator {args.evaluator}): {issues} issues, "
              f"{alerts} firing alerts, {occurrences} occurrences; summed RSS median "
              f"{statistics.median(total) / 1024:.1f} MiB, "
              f"max {max(total) / 1024:.1f} MiB, at the end {total[-1] / 1024:.1f} MiB (max while the "
              f"storm was ingested {max(total[:storm_samples] or [0]) / 1024:.1f} MiB); {len(total)} samples")
        if args.diagnose:
            print(f"diagnostics: {sorted(str(p) for p in server.tmp.glob('diag-*.txt'))}")
    finally:
        server.stop()
        if args.keep or args.diagnose:
            print(f"kept {server.tmp}")
        else:
            shutil.rmtree(server.tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
