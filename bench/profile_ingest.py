"""Profile the server under the ingest load of ingest_load.py with py-spy (pip install py-spy).

    .venv/bin/python bench/profile_ingest.py --duration 40 --out /tmp/wk-profile

Runs wrk (bench/ingest_load.lua) against a fresh server and `py-spy record --format raw` on the
server process meanwhile; writes profile_active.txt and profile_gil.txt (collapsed stacks), and prints the top
functions by self time and by inclusive time (share of all samples, all threads, idle included).
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from benchserver import VENV_BIN, BenchServer
from ingest_load import HERE, write_bodies


def _name(frame: str) -> str:
    """'func (pkg/mod.py:12)' -> 'func (pkg/mod.py)'."""
    if " (" not in frame:
        return frame
    func, _, where = frame.partition(" (")
    return f"{func} ({where.rsplit(':', 1)[0].rstrip(')')})"


def summarize(raw: Path, top: int) -> None:
    self_t: collections.Counter[str] = collections.Counter()
    incl: collections.Counter[str] = collections.Counter()
    threads: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not n.isdigit():
            continue
        n_i = int(n)
        frames = stack.split(";")
        total += n_i
        threads[frames[0].split(": ", 1)[-1]] += n_i
        for name in {_name(f) for f in frames[1:]}:
            incl[name] += n_i
        self_t[_name(frames[-1])] += n_i
    print(f"samples: {total}  ({raw.name})")
    print("threads:", ", ".join(f"{t} {n / total:.0%}" for t, n in threads.most_common(6)))
    print(f"TOP {top} BY SELF TIME")
    for name, n in self_t.most_common(top):
        print(f"  {n / total:6.1%}  {name}")
    print(f"TOP {top} WATCHKEEPER FUNCTIONS BY INCLUSIVE TIME (request/writer plumbing excluded)")
    skip = ("cli.py", "envelope_endpoint", "_accept", "Writer._loop", "Writer._commit ", "<module>")
    wk = [(k, v) for k, v in incl.most_common() if "(watchkeeper/" in k and not any(x in k for x in skip)]
    for name, n in wk[:top]:
        print(f"  {n / total:6.1%}  {name}")
    print()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=int, default=40)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--bodies", type=int, default=20000)
    ap.add_argument("--out", type=Path, default=Path("/tmp/wk-profile"))
    ap.add_argument("--top", type=int, default=20)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    pyspy = shutil.which("py-spy") or str(VENV_BIN / "py-spy")
    server = BenchServer()
    bodydir = server.tmp / "bodies"
    write_bodies(bodydir, args.bodies)
    try:
        server.start()
        project, key, _ = server.setup_project()
        env = {**os.environ, "WK_BODIES": str(bodydir), "WK_COUNT": str(args.bodies), "WK_PROJECT": str(project),
               "WK_KEY": key, "WK_THREADS": "1"}
        wrk = subprocess.Popen(["wrk", "-t1", "-c", str(args.connections), "-d", f"{args.duration}s", "--timeout",
                                "30s", "-s", str(HERE / "ingest_load.lua"), server.base], env=env,
                               stdout=subprocess.PIPE, text=True)
        rec = str((args.duration - 10) // 2)
        time.sleep(3)
        # 1) all active threads (wall time incl. fsync/commit waits), 2) only the thread holding the GIL
        #    (= the CPU the single-process server can use; it is GIL-bound at ~100% of one core)
        for extra, name in (([], "profile_active.txt"), (["--gil"], "profile_gil.txt")):
            subprocess.run([pyspy, "record", "--pid", str(server.pid), "--duration", rec, "--rate", "200",
                            "--threads", *extra, "--format", "raw", "--output", str(args.out / name)],
                           check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        out, _ = wrk.communicate()
        print("\n".join(line for line in out.splitlines() if "Requests/sec" in line or "WK_RESULT" in line))
        summarize(args.out / "profile_active.txt", args.top)
        summarize(args.out / "profile_gil.txt", args.top)
    finally:
        server.stop()
        shutil.rmtree(server.tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
