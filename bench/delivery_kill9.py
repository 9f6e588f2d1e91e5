"""Alerting target: `kill -9` during delivery loses nothing.

Starts `watchkeeper serve` (production profile, SQLite, private targets allowed) with a routing file
that sends every alert group to a webhook receiver in this process, one group per alertname,
`group_wait: 0s`. Each round posts `--alerts` alerts with new alertnames (so as many group
notifications) to the Alertmanager API, waits until the receiver has taken about `--kill-at` of them
(it answers each after `--delay` s, so deliveries are in flight), SIGKILLs the server, restarts it on the
same data directory and waits until every group has arrived. It reports, per round, the notifications
missing (must be 0), the groups received more than once, and how long the rest took after the restart.

A repeat is allowed only for a notification that was in flight at the kill: it reached the receiver but
the server died before recording it as sent, so it goes out again once its lease ends. The notification
log keeps the dispatcher from queueing any group again after the restart.

    .venv/bin/python bench/delivery_kill9.py --rounds 3 --alerts 300 --delay 0.05
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from benchserver import BenchServer

LEASE_NOTE = "lease = 3 x delivery timeout + 30 s"


class Receiver:
    """Counts every notification by group key; answers after `delay` seconds."""

    def __init__(self, delay: float) -> None:
        self.count: collections.Counter[str] = collections.Counter()
        self.total = 0
        self.changed = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with receiver.changed:
                    receiver.count[body["groupKey"]] += 1
                    receiver.total += 1
                    receiver.changed.notify_all()
                time.sleep(delay)  # the delivery in flight: the server waits for this answer
                try:
                    self.send_response(200)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the server was killed while waiting: this one counts as in flight

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def wait(self, condition: Any, timeout: float) -> bool:
        with self.changed:
            return bool(self.changed.wait_for(condition, timeout))


def post_alerts(client: httpx.Client, names: list[str]) -> None:
    for start in range(0, len(names), 100):
        batch = [{"labels": {"alertname": name, "severity": "low", "service": "bench"},
                  "annotations": {"summary": f"{name} is failing"}} for name in names[start:start + 100]]
        client.post("/api/v2/alerts", json=batch).raise_for_status()


def run_round(server: BenchServer, receiver: Receiver, token: str, index: int, args: argparse.Namespace
              ) -> dict[str, Any]:
    names = [f"KillRound{index}Alert{n:04d}" for n in range(args.alerts)]
    keys = {f'{{}}:{{alertname="{name}"}}' for name in names}
    with httpx.Client(base_url=server.base, headers={"Authorization": f"Bearer {token}"}, timeout=30) as client:
        started = time.monotonic()
        post_alerts(client, names)

    def arrived() -> int:
        return sum(1 for key in keys if receiver.count[key])

    receiver.wait(lambda: arrived() >= args.alerts * args.kill_at, 120)
    server.kill9()
    at_kill = arrived()
    killed = time.monotonic()
    # Deliveries the receiver was still answering when the server died finish now, unrecorded.
    time.sleep(args.delay * 2)
    server.start()
    restarted = time.monotonic()
    complete = receiver.wait(lambda: arrived() == args.alerts, args.timeout)
    done = time.monotonic()
    time.sleep(args.settle)  # late repeats would show up here
    repeats = {key: receiver.count[key] for key in keys if receiver.count[key] > 1}
    pending = server.sql("SELECT status, COUNT(*) FROM notification_outbox GROUP BY status")
    return {"round": index, "alerts": args.alerts, "arrived_before_kill": at_kill, "missing": args.alerts - arrived(),
            "complete": complete, "groups_repeated": len(repeats), "max_copies": max(repeats.values(), default=1),
            "seconds_to_kill": round(killed - started, 2), "seconds_after_restart": round(done - restarted, 2),
            "outbox": pending.replace("\n", ", ")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--alerts", type=int, default=300, help="alert groups (notifications) per round")
    parser.add_argument("--delay", type=float, default=0.05, help="seconds the receiver takes to answer")
    parser.add_argument("--kill-at", type=float, default=0.3, help="kill after this share has arrived")
    parser.add_argument("--delivery-timeout", type=float, default=2.0, help=f"alerting setting ({LEASE_NOTE})")
    parser.add_argument("--timeout", type=float, default=180.0, help="seconds to wait for the rest")
    parser.add_argument("--settle", type=float, default=5.0, help="seconds to watch for late repeats")
    args = parser.parse_args()
    receiver = Receiver(args.delay)
    server = BenchServer()
    routing = server.tmp / "alerting.yml"
    routing.write_text(json.dumps({
        "route": {"receiver": "hook", "group_by": ["alertname"], "group_wait": "0s", "group_interval": "5m",
                  "repeat_interval": "4h"},
        "receivers": [{"name": "hook", "webhook_configs": [{"url": receiver.url, "send_resolved": False}]}]}))
    settings = server.tmp / "watchkeeper.yml"
    settings.write_text(json.dumps({
        "alerting": {"config_file": str(routing), "delivery_timeout_seconds": args.delivery_timeout,
                     "resolve_timeout_seconds": 3600},
        "outbound": {"allow_private_targets": True}, "ingest": {"processors": 0}}))
    server.env |= {"WATCHKEEPER_CONFIG": str(settings)}
    server.start()
    results = []
    try:
        token = server.cli("token", "create", "kill9")["token"]
        for index in range(args.rounds):
            result = run_round(server, receiver, token, index, args)
            results.append(result)
            print(json.dumps(result), flush=True)
    finally:
        server.stop()
    lost = sum(r["missing"] for r in results)
    repeated = sum(r["groups_repeated"] for r in results)
    print(f"RESULT {args.rounds} kill -9 rounds x {args.alerts} group notifications: {lost} lost, {repeated} "
          f"delivered twice (in flight at the kill), max copies {max(r['max_copies'] for r in results)}; "
          f"rest delivered {min(r['seconds_after_restart'] for r in results):.1f}-"
          f"{max(r['seconds_after_restart'] for r in results):.1f} s after the restart "
          f"(delivery timeout {args.delivery_timeout:g} s, {LEASE_NOTE})")


if __name__ == "__main__":
    main()
