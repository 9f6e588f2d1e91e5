"""Rules as code: a YAML file of rules per project, synced at start-up.

    projects:
      shop:                       # project slug
        - name: Checkout errors
          kind: threshold
          severity: critical
          threshold: {metric: errors, aggregation: rate, window_minutes: 5, op: ">", threshold: 3}

Rules from the file are marked `managed_by: file` and are read-only over the API; a rule removed from
the file is deleted at the next start. Mistakes stop start-up with a message naming the entry.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import Connection

from watchkeeper.alerting.rules import RuleIn, create_rule, delete_rule, list_rules, replace_rule
from watchkeeper.alerting.templates import annotation_errors
from watchkeeper.auth.projects import list_projects
from watchkeeper.config import ConfigError

MANAGED_BY = "file"


class RulesFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    projects: dict[str, list[RuleIn]] = Field(default_factory=dict)


def parse_rules_file(data: Any, source: str = "rules file") -> RulesFile:
    try:
        parsed = RulesFile.model_validate(data or {})
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"{source}: {problems}") from None
    for slug, rules in parsed.projects.items():
        names = [r.name for r in rules]
        if len(set(names)) != len(names):
            raise ConfigError(f"{source}: projects.{slug}: rule names must be unique in a project")
        for index, rule in enumerate(rules):
            for name, message in annotation_errors(rule.annotations).items():
                raise ConfigError(f"{source}: projects.{slug}.{index}.annotations.{name}: {message}")
    return parsed


def load_rules_file(path: Path) -> RulesFile:
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ConfigError(f"alerting.rules_file {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"alerting.rules_file {path}: not valid YAML: {exc}") from None
    return parse_rules_file(data, f"alerting.rules_file {path}")


def sync_rules(conn: Connection, rules_file: RulesFile, *, now: float) -> dict[str, int]:
    """Make the file's rules the project's file-managed rules; returns counts created/updated/deleted.

    >>> # await writer.run(call_each, lambda conn: sync_rules(conn, load_rules_file(path), now=now))
    """
    projects = {p.slug: p.id for p in list_projects(conn)}
    # A project named in the file but not created yet gets its rules at the next start.
    counts = {"created": 0, "updated": 0, "deleted": 0,
              "unknown_projects": len(set(rules_file.projects) - set(projects))}
    for slug, project_id in projects.items():
        wanted = {r.name: r for r in rules_file.projects.get(slug, [])}
        have = {r.name: r for r in list_rules(conn, project_id) if r.managed_by == MANAGED_BY}
        for name, rule in wanted.items():
            if name in have:
                replace_rule(conn, have[name].id, rule, now=now)
                counts["updated"] += 1
            else:
                create_rule(conn, project_id, rule, now=now, managed_by=MANAGED_BY)
                counts["created"] += 1
        for name, old in have.items():
            if name not in wanted:
                delete_rule(conn, old.id)
                counts["deleted"] += 1
    return counts
