"""Alerting target: from a signal crossing a threshold to the request arriving at a local receiver, at
most the rule's `for` + `group_wait` + 1 s.

Starts `watchkeeper serve` (production profile, SQLite, private targets allowed) with a routing file
that sends everything to a local webhook receiver in this process with `group_wait: 0s`; for each of
`--projects` fresh projects (default rule pack: `for` 0) it sends, through the store API,
1. one error: a new issue, so the "New error type" event rule fires (signal path), then
2. 11 more errors within the minute, so "Error spike" (> 10 errors/min, a threshold rule) fires,
and measures from the answer to the request that crossed the line to the notification's arrival.

With `--storm N` it then sends N errors that each make a new issue (a "New error type" alert each)
from 16 threads, waits two evaluation intervals, and reports from the server's /metrics how long
alerting's writes held the shared writer per round (`watchkeeper_alerting_writer_seconds`, by round
kind) and how long full evaluation rounds took (`watchkeeper_alert_evaluation_seconds`; before rounds
were split, a full round ran entirely inside the writer).

    .venv/bin/python bench/alert_latency.py --projects 5 --storm 3000
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from benchserver import BenchServer


class Receiver:
    """Records when each (alertname, project) notification first arrives."""

    def __init__(self) -> None:
        self.arrived: dict[tuple[str, str], float] = {}
        self.changed = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                at = time.monotonic()
                with receiver.changed:
                    key = (body["groupLabels"].get("alertname", ""), body["groupLabels"].get("project", ""))
                    receiver.arrived.setdefault(key, at)
                    receiver.changed.notify_all()
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def wait(self, key: tuple[str, str], timeout: float = 60) -> float:
        with self.changed:
            if not self.changed.wait_for(lambda: key in self.arrived, timeout):
                raise RuntimeError(f"no notification for {key} within {timeout} s")
            return self.arrived[key]


def send_error(client: httpx.Client, project_id: int, key: str, message: str, kind: str = "RuntimeError") -> float:
    event = {"event_id": uuid.uuid4().hex, "level": "error", "platform": "python",
             "exception": {"values": [{"type": kind, "value": message}]}}
    answer = client.post(f"/api/{project_id}/store/", json=event,
                         headers={"X-Sentry-Auth": f"Sentry sentry_version=7, sentry_key={key}"})
    answer.raise_for_status()
    return time.monotonic()


def measure_project(server: BenchServer, client: httpx.Client, receiver: Receiver, index: int,
                    admin: dict[str, str]) -> tuple[float, float]:
    project = server.cli("project", "create", f"latency-{index}")
    project_id, slug = project["id"], project["slug"]
    key = project["dsn"].split("//", 1)[1].split("@", 1)[0]
    # The default pack is added by the first full evaluation round after the project exists.
    while len(client.get(f"/api/v1/projects/{project_id}/alert-rules", headers=admin).json()["rules"]) < 5:
        time.sleep(0.2)
    # Start early in a minute, so the 11 errors fall in one.
    while time.time() % 60 > 40:
        time.sleep(0.5)
    sent = send_error(client, project_id, key, "first")
    new_issue = receiver.wait(("New error type", slug)) - sent
    for _ in range(9):
        send_error(client, project_id, key, "first")
    crossing = send_error(client, project_id, key, "first")  # the 11th error of the minute
    spike = receiver.wait(("Error spike", slug)) - crossing
    return new_issue, spike


def letters(number: int) -> str:
    """>>> letters(0), letters(27)
    ('A', 'BB')
    """
    text = ""
    while True:
        number, digit = divmod(number, 26)
        text = chr(65 + digit) + text
        if number == 0:
            return text


def storm(server: BenchServer, count: int) -> float:
    """`count` errors, each a new issue, into a fresh project; returns the events per second achieved."""
    project = server.cli("project", "create", "storm")
    key = project["dsn"].split("//", 1)[1].split("@", 1)[0]
    started = time.monotonic()

    def send(first: int) -> None:
        with httpx.Client(base_url=server.base, timeout=60) as client:
            for index in range(first, count, 16):
                # A type of its own per error: grouping replaces numbers and hex in messages.
                send_error(client, project["id"], key, "storm", kind=f"Storm{letters(index)}Error")

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(send, range(16)))
    return count / (time.monotonic() - started)


def histograms(text: str, name: str) -> dict[str, tuple[float, float, dict[float, float]]]:
    """Per label set of a histogram: count, sum and the cumulative buckets."""
    found: dict[str, tuple[float, float, dict[float, float]]] = {}
    for line in text.splitlines():
        match = re.match(rf"^{name}_(count|sum|bucket)(?:\{{(.*)\}})? (\S+)$", line)
        if not match:
            continue
        kind, labels, value = match[1], match[2] or "", float(match[3])
        bound = re.search(r'le="([^"]+)"', labels)
        key = ",".join(part for part in labels.split(",") if part and not part.startswith("le="))
        count, total, buckets = found.get(key, (0.0, 0.0, {}))
        if kind == "count":
            count = value
        elif kind == "sum":
            total = value
        elif bound:
            buckets[float(bound[1])] = value
        found[key] = (count, total, buckets)
    return found


def quantile(buckets: dict[float, float], count: float, q: float) -> float:
    """The upper bound of the bucket holding the q-quantile."""
    for bound in sorted(buckets):
        if buckets[bound] >= q * count:
            return bound
    return float("inf")


def report_writer_time(server: BenchServer) -> None:
    text = httpx.get(f"{server.base}/metrics", timeout=30).text
    for name in ("watchkeeper_alerting_writer_seconds", "watchkeeper_alerting_writer_cpu_seconds",
                 "watchkeeper_alert_evaluation_seconds"):
        for labels, (count, total, buckets) in sorted(histograms(text, name).items()):
            if count:
                print(f"RESULT {name}{{{labels}}}: {count:.0f} writes/rounds, mean {total / count * 1000:.1f} ms, "
                      f"p50 <= {quantile(buckets, count, 0.5) * 1000:g} ms, "
                      f"p99 <= {quantile(buckets, count, 0.99) * 1000:g} ms, total {total:.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--projects", type=int, default=5)
    parser.add_argument("--storm", type=int, default=0, help="then this many new issues, and the writer time")
    args = parser.parse_args()
    receiver = Receiver()
    server = BenchServer()
    routing = server.tmp / "alerting.yml"
    routing.write_text(json.dumps({
        "route": {"receiver": "hook", "group_by": ["alertname", "project"], "group_wait": "0s"},
        "receivers": [{"name": "hook", "webhook_configs": [{"url": receiver.url}]}]}))
    settings = server.tmp / "watchkeeper.yml"  # (a *_FILE variable would be read as a secret file)
    settings.write_text(json.dumps({"alerting": {"config_file": str(routing)},
                                    "outbound": {"allow_private_targets": True}, "ingest": {"processors": 0}}))
    server.env |= {"WATCHKEEPER_CONFIG": str(settings)}
    server.start()
    try:
        token = server.cli("token", "create", "latency")["token"]
        admin = {"Authorization": f"Bearer {token}"}
        new_issue, spike = [], []
        with httpx.Client(base_url=server.base, timeout=30) as client:
            for index in range(args.projects):
                a, b = measure_project(server, client, receiver, index, admin)
                new_issue.append(a)
                spike.append(b)
                print(f"project {index}: new issue -> notification {a:.2f} s; 11th error -> spike notification "
                      f"{b:.2f} s", flush=True)
        print(f"RESULT signal rule (for 0, group_wait 0): median {statistics.median(new_issue):.2f} s, "
              f"max {max(new_issue):.2f} s; threshold rule: median {statistics.median(spike):.2f} s, "
              f"max {max(spike):.2f} s (evaluation interval 15 s)")
        if args.storm:
            rate = storm(server, args.storm)
            print(f"storm: {args.storm} new issues at {rate:.0f} events/s", flush=True)
            time.sleep(32)  # two full evaluation rounds, and their dispatch rounds
        report_writer_time(server)
    finally:
        server.stop()


if __name__ == "__main__":
    main()
