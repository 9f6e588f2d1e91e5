"""Rules as code: the rules file is validated with the entry named, synced, and read-only over the API."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import httpx
import pytest
import yaml
from sqlalchemy import Engine

from tests.alerting.conftest import in_transaction
from tests.conftest import ProjectFixture, Server
from watchkeeper.alerting.rules import list_rules
from watchkeeper.alerting.rules_file import load_rules_file, parse_rules_file, sync_rules
from watchkeeper.alerting.service import Alerting
from watchkeeper.config import ConfigError
from watchkeeper.lib.clock import ManualClock
from watchkeeper.observability import Metrics

RULES = {"projects": {"shop": [
    {"name": "Checkout errors", "kind": "threshold", "severity": "critical",
     "threshold": {"metric": "errors", "aggregation": "rate", "window_minutes": 5, "threshold": 3}},
    {"name": "Payments regressed", "kind": "event", "event": {"signal": "issue.regression"}},
]}, "nope": []}


def test_mistakes_name_the_entry(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"projects\.shop\.0\.threshold\.window_minutes"):
        parse_rules_file({"projects": {"shop": [{**RULES["projects"]["shop"][0],  # type: ignore[index]
                                                 "threshold": {"metric": "errors", "threshold": 1,
                                                               "window_minutes": 0}}]}})
    with pytest.raises(ConfigError, match="names must be unique"):
        parse_rules_file({"projects": {"shop": [RULES["projects"]["shop"][1]] * 2}})  # type: ignore[index]
    for summary, why in (("{{ 'a' * 50000000 }}", "larger than the template limit"), ("{{ x", "template error")):
        with pytest.raises(ConfigError, match=rf"projects\.shop\.1\.annotations\.summary: .*{why}"):
            parse_rules_file({"projects": {"shop": [RULES["projects"]["shop"][0],  # type: ignore[index]
                                                    {**RULES["projects"]["shop"][1],  # type: ignore[index]
                                                     "annotations": {"summary": summary}}]}})
    path = tmp_path / "rules.yml"
    path.write_text("projects: {")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_rules_file(path)


def test_sync_creates_updates_and_deletes_file_rules(engine: Engine, project_id: int, clock: ManualClock) -> None:
    rules = {"projects": RULES["projects"]}
    first = in_transaction(engine, lambda conn: sync_rules(conn, parse_rules_file(rules), now=clock.now()))
    assert (first["created"], first["deleted"]) == (2, 0)
    fewer = {"projects": {"shop": [RULES["projects"]["shop"][0]]}}  # type: ignore[index]
    second = in_transaction(engine, lambda conn: sync_rules(conn, parse_rules_file(fewer), now=clock.now()))
    assert (second["created"], second["updated"], second["deleted"]) == (0, 1, 1)
    (rule,) = in_transaction(engine, lambda conn: list_rules(conn, project_id))
    assert rule.name == "Checkout errors" and rule.managed_by == "file"


def test_file_rules_are_read_only_over_the_api(server: Server, project: ProjectFixture, api: httpx.Client,
                                               tmp_path: Path) -> None:
    path = tmp_path / "rules.yml"
    path.write_text(yaml.safe_dump({"projects": {"backend": RULES["projects"]["shop"]}}))  # type: ignore[index]
    alerting_settings = server.settings.alerting.model_copy(update={"rules_file": path})
    runtime = dataclasses.replace(server.runtime, metrics=Metrics(),  # the server's own Alerting has its metrics
                                  settings=server.settings.model_copy(update={"alerting": alerting_settings}))

    async def sync() -> dict[str, int] | None:
        alerting = Alerting(runtime)  # as the server does at start
        try:
            return await alerting.sync_rules_file()
        finally:
            await alerting.outbound.aclose()

    assert asyncio.run(sync()) == {"created": 2, "updated": 0, "deleted": 0, "unknown_projects": 0}
    (rule, _) = [r for r in api.get(f"/api/v1/projects/{project.id}/alert-rules").json()["rules"]
                 if r["managed_by"] == "file"]
    answer = api.delete(f"/api/v1/alert-rules/{rule['id']}")
    assert answer.status_code == 409 and "rules file" in answer.json()["detail"]


def test_new_rule_kinds_in_yaml(engine: Engine, project_id: int, clock: ManualClock) -> None:
    text = """
projects:
  shop:
    - name: Failing requests
      kind: threshold
      threshold: {metric: errors, aggregation: ratio, denominator: requests, window_minutes: 5, threshold: 5}
    - name: Slow checkout
      kind: threshold
      threshold: {metric: transaction_duration, aggregation: percentile, percentile: 95, threshold: 800}
    - name: Traffic drop
      kind: anomaly
      anomaly: {metric: transactions, baseline: ewma, direction: down, window_minutes: 10, history: 24}
"""
    synced = in_transaction(engine, lambda conn: sync_rules(conn, parse_rules_file(yaml.safe_load(text)),
                                                            now=clock.now()))
    assert synced["created"] == 3
    rules = {r.name: r for r in in_transaction(engine, lambda conn: list_rules(conn, project_id))}
    assert rules["Traffic drop"].anomaly is not None and rules["Traffic drop"].anomaly.direction == "down"
    assert rules["Traffic drop"].to_api()["anomaly"]["baseline"] == "ewma"
    assert rules["Slow checkout"].threshold is not None and rules["Slow checkout"].threshold.percentile == 95
    with pytest.raises(ConfigError, match=r"projects\.shop\.0\.anomaly\.direction"):
        parse_rules_file({"projects": {"shop": [{"name": "x", "kind": "anomaly",
                                                 "anomaly": {"metric": "errors", "direction": "sideways"}}]}})
