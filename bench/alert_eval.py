"""Alerting target: 1,000 rules evaluated every 15 s with 10,000 active alerts, under 1 s of CPU per round.

Fills a fresh SQLite database (or `--database-url`) with `--projects` projects of `--rules-per-project`
rules each: one threshold rule on issue events per project whose `--issues-per-project` busy issues each
hold an alert (projects x issues active alerts), one error-rate rule that fires, and event rules
(new issue, regression, monitor down, heartbeat late, certificate expiring) fed `--signals` signals per
round; with `--new-kinds`, four of them are instead a ratio, a p95 and two anomaly rules. Then runs
`--rounds` evaluation rounds 15 s apart on a manual clock, each followed by a dispatch round (routing,
grouping by alertname+project, the notification log) and a quick round (the one run
between full rounds when signals arrive or counts move; here every project moved), and reports the CPU
time of each (process time, so the writer-free direct calls are measured without I/O waits). Each round
runs as the server runs it: reads and decisions on a reader connection, then only the changes in a
writer transaction; the CPU time inside that writer transaction (what ingest waits for, less the
commit's fsync) is reported apart.

    .venv/bin/python bench/alert_eval.py --projects 100 --rules-per-project 10 --issues-per-project 100
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, insert

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
from watchkeeper.alerting.dispatch import Dispatcher, decide_flushes, write_decisions
from watchkeeper.alerting.evaluator import read_round
from watchkeeper.alerting.flapping import FlapTracker
from watchkeeper.alerting.rounds import RoundPlan, RoundReport, apply_round
from watchkeeper.alerting.routing import parse_config
from watchkeeper.alerting.rules import RuleIn, create_rule
from watchkeeper.auth.projects import create_project
from watchkeeper.errors.tables import issue_minute_counts, issues, project_minute_counts
from watchkeeper.lib.clock import ManualClock
from watchkeeper.lib.signals import emit_signals
from watchkeeper.store import migrate
from watchkeeper.store.engine import for_writing, make_engine

EVENT_RULES = ["issue.new", "issue.regression", "monitor.down", "heartbeat.late", "certificate.expiring",
               "issue.unignored", "monitor.degraded", "heartbeat.failed"]
ROUTING = {"route": {"receiver": "log", "group_by": ["alertname", "project"], "group_wait": "30s"},
           "receivers": [{"name": "log", "log_configs": [{}]}]}


NEW_KINDS = [
    {"name": "Error rate", "kind": "threshold",
     "threshold": {"metric": "errors", "aggregation": "ratio", "denominator": "requests", "window_minutes": 5,
                   "threshold": 5, "min_volume": 20}},
    {"name": "p95", "kind": "threshold",
     "threshold": {"metric": "transaction_duration", "aggregation": "percentile", "percentile": 95,
                   "window_minutes": 5, "threshold": 800}},
    {"name": "Weekly spike", "kind": "anomaly",
     "anomaly": {"metric": "errors", "baseline": "hour_of_week", "days": 28, "window_minutes": 60}},
    {"name": "Traffic drop", "kind": "anomaly",
     "anomaly": {"metric": "transactions", "baseline": "ewma", "window_minutes": 10, "history": 24,
                 "direction": "down"}},
]


def fill(engine: Engine, clock: ManualClock, projects: int, rules_per_project: int, issues_per_project: int,
         new_kinds: bool = False) -> None:
    now = clock.now()
    minute = int(now // 60)
    with engine.begin() as conn:
        for p in range(projects):
            project = create_project(conn, f"Project {p}", now=now)
            specs = [
                {"name": "Busy issue", "kind": "threshold",
                 "threshold": {"metric": "issue_events", "window_minutes": 5, "op": ">", "threshold": 5}},
                {"name": "Error spike", "kind": "threshold",
                 "threshold": {"metric": "errors", "aggregation": "rate", "window_minutes": 1, "threshold": 10}},
            ]
            if new_kinds:
                specs += NEW_KINDS
            for index in range(rules_per_project - len(specs)):
                kind = EVENT_RULES[index % len(EVENT_RULES)]
                specs.append({"name": f"{kind} {index}", "kind": "event", "event": {"signal": kind},
                              "annotations": {"summary": "{{ signal.title }} in {{ labels.project }}"}})
            for spec in specs:
                create_rule(conn, project.id, RuleIn.model_validate(spec), now=now)
            issue_rows = [{"project_id": project.id, "hash": f"{p:04d}{i:028d}", "grouping_config": "bench",
                           "title": f"Error {i}", "type": "error", "level": "error", "first_seen": now,
                           "last_seen": now} for i in range(issues_per_project)]
            ids = [conn.execute(insert(issues).values(row)).inserted_primary_key[0]  # type: ignore[index]
                   for row in issue_rows]
            conn.execute(insert(issue_minute_counts), [
                {"issue_id": issue_id, "minute": m, "count": 3}
                for issue_id in ids for m in range(minute - 4, minute + 1)])
            conn.execute(insert(project_minute_counts), [
                {"project_id": project.id, "minute": m, "category": "error", "outcome": "accepted", "count": 50}
                for m in range(minute - 4, minute + 60)])


def emit(engine: Engine, clock: ManualClock, projects: int, count: int, round_index: int) -> None:
    rows = [{"kind": EVENT_RULES[i % 3], "project_id": 1 + i % projects, "subject": f"issue:{round_index}{i}",
             "created_at": clock.now(), "payload": {"title": f"Error {i}", "issue_id": i}} for i in range(count)]
    with engine.begin() as conn:
        emit_signals(conn, rows)


def evaluate_round(engine: Engine, writable: Engine, now: float, flaps: FlapTracker, writer: list[float],
                   **options: Any) -> RoundReport:
    with engine.connect() as conn:
        plan: RoundPlan = read_round(conn, now, flaps=flaps, **options)
    started = time.thread_time()  # CPU, not wall: the machine may be busy; the commit's fsync is not in it
    with writable.begin() as conn:
        report = apply_round(conn, plan)
    writer.append(time.thread_time() - started)
    assert report is not None
    return report


def dispatch_once(engine: Engine, writable: Engine, dispatcher: Dispatcher, now: float,
                  writer: list[float]) -> int:
    with engine.connect() as conn:
        dispatcher.refresh(conn, now)
        plans = dispatcher.plan(conn, now)
        decisions = decide_flushes(conn, plans, dispatcher.config, now, "http://bench")
    started = time.thread_time()
    with writable.begin() as conn:
        queued = write_decisions(conn, decisions)
    writer.append(time.thread_time() - started)
    assert queued is not None
    dispatcher.flushed(plans, now)
    return queued


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--projects", type=int, default=100)
    parser.add_argument("--rules-per-project", type=int, default=10)
    parser.add_argument("--issues-per-project", type=int, default=100)
    parser.add_argument("--signals", type=int, default=100, help="signals emitted before each round")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--new-kinds", action="store_true",
                        help="4 of each project's rules are ratio, p95, hour-of-week and EWMA anomaly rules")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{tmp}/bench.db"
        engine = make_engine(url)
        migrate.upgrade(engine)
        writable = for_writing(engine)
        clock = ManualClock()
        started = time.perf_counter()
        fill(writable, clock, args.projects, args.rules_per_project, args.issues_per_project, args.new_kinds)
        print(f"filled {args.projects * args.rules_per_project} rules in {time.perf_counter() - started:.1f} s")
        dispatcher = Dispatcher(parse_config(ROUTING))
        flaps = FlapTracker()  # as the server evaluates: with flap detection
        evaluation, dispatch, quick = [], [], []
        writer_eval: list[float] = []
        writer_dispatch: list[float] = []
        writer_quick: list[float] = []
        all_projects = list(range(1, args.projects + 1))
        for index in range(args.rounds):
            emit(writable, clock, args.projects, args.signals, index)
            cpu = time.process_time()
            report = evaluate_round(engine, writable, clock.now(), flaps, writer_eval)
            evaluation.append(time.process_time() - cpu)
            cpu = time.process_time()
            queued = dispatch_once(engine, writable, dispatcher, clock.now(), writer_dispatch)
            dispatch.append(time.process_time() - cpu)
            print(f"round {index}: rules {report.rules}, alerts {report.states}, signals {report.signals}, "
                  f"evaluate {evaluation[-1] * 1000:.0f} ms CPU (writer {writer_eval[-1] * 1000:.1f} ms, "
                  f"{report.new} new, {report.changed} changed), dispatch {dispatch[-1] * 1000:.0f} ms CPU "
                  f"(writer {writer_dispatch[-1] * 1000:.1f} ms; {len(dispatcher.groups)} groups, "
                  f"{queued} notifications queued)")
            # A quick round as the server runs between full ones, with every project's counts moved.
            emit(writable, clock, args.projects, args.signals, 1000 + index)
            cpu = time.process_time()
            evaluate_round(engine, writable, clock.now(), flaps, writer_quick, thresholds=False,
                           threshold_projects=all_projects)
            quick.append(time.process_time() - cpu)
            clock.advance(15)
        steady = evaluation[1:] or evaluation

        def ms(values: list[float]) -> str:
            return f"median {statistics.median(values) * 1000:.1f} ms, max {max(values) * 1000:.1f} ms"

        print(f"evaluation CPU per round: first {evaluation[0] * 1000:.0f} ms (creates the alerts), then median "
              f"{statistics.median(steady) * 1000:.0f} ms, max {max(steady) * 1000:.0f} ms; dispatch median "
              f"{statistics.median(dispatch[1:] or dispatch) * 1000:.0f} ms; quick round (every project moved, "
              f"{args.signals} signals) median {statistics.median(quick) * 1000:.0f} ms")
        print(f"CPU inside the writer transaction: full round {ms(writer_eval[1:] or writer_eval)}; dispatch "
              f"{ms(writer_dispatch[1:] or writer_dispatch)}; quick round {ms(writer_quick)}")

if __name__ == "__main__":
    main()
