"""Alert rules: what they say (event and threshold specs, labels, annotations), how they are stored,
and the default rule pack every new project gets.

An event rule fires on a signal (`issue.new`, `monitor.down`…) and resolves on another
(`monitor.up`) or after `resolve_after`. A threshold rule compares a value over a window with a
threshold, with Prometheus' `for` and `keep_firing_for`: `count` over the window or `rate` per minute
of a per-minute count, `ratio` of two counts (in percent), or `average`/`percentile` of transaction
durations. An anomaly rule (alerting.anomaly) compares a count with its own baseline.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from sqlalchemy import Connection, delete, insert, select, update

from watchkeeper.alerting.anomaly import AnomalySpec
from watchkeeper.alerting.tables import alert_rule_packs, alert_rules
from watchkeeper.auth.projects import list_projects

# The domains whose signals rules can name register them when imported.
from watchkeeper.errors import storage as _error_signals  # noqa: F401
from watchkeeper.lib.signals import CATALOGUE
from watchkeeper.uptime import heartbeats as _heartbeat_signals  # noqa: F401
from watchkeeper.uptime import results as _monitor_signals  # noqa: F401

SEVERITIES = ("critical", "high", "medium", "low")
# Shown beside the severity: what on-call people call it.
PRIORITY = {"critical": "P0", "high": "P1", "medium": "P2", "low": "P3"}
COMPARISONS: dict[str, Callable[[Any, Any], bool]] = {
    ">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le, "==": operator.eq, "!=": operator.ne,
}
# The per-minute counts a threshold rule can watch (each domain's count tables; see alerting.metrics),
# and the value per transaction that `average` and `percentile` read (stored transaction rows).
METRICS = ("errors", "transactions", "rejected", "issue_events")
DURATION_METRICS = ("transaction_duration",)
# A ratio's denominator: a count metric, or "requests" (errors + transactions).
DENOMINATORS = ("errors", "transactions", "rejected", "requests")
# Which signal ends an event alert, when the rule does not say.
DEFAULT_RESOLVE_ON = {
    "monitor.down": ["monitor.up"], "heartbeat.late": ["monitor.up"], "heartbeat.failed": ["monitor.up"],
    "monitor.degraded": ["monitor.up"],
}
LabelName = Annotated[str, Field(pattern=r"^[a-zA-Z_][a-zA-Z0-9_]*$", max_length=100)]
MAX_SECONDS = 366 * 86400


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PayloadCondition(_Spec):
    field: str = Field(min_length=1, max_length=100)
    op: Literal[">", ">=", "<", "<=", "==", "!="] = "=="
    value: float | str | bool

    def holds(self, payload: dict[str, Any]) -> bool:
        actual = payload.get(self.field)
        if actual is None:
            return False
        try:
            return COMPARISONS[self.op](actual, self.value)
        except TypeError:
            return False


class EventSpec(_Spec):
    signal: str = Field(description="the signal kind, e.g. issue.new, monitor.down, certificate.expiring")
    where: list[PayloadCondition] = Field(default_factory=list, max_length=20)
    resolve_on: list[str] | None = Field(None, description="signal kinds that resolve the alert (same subject)")
    resolve_after_seconds: float | None = Field(None, ge=0, le=MAX_SECONDS)

    @field_validator("signal")
    @classmethod
    def _known(cls, kind: str) -> str:
        if kind not in CATALOGUE:
            raise ValueError(f"unknown signal {kind!r}; known: {', '.join(sorted(CATALOGUE))}")
        return kind

    @property
    def resolving_signals(self) -> list[str]:
        return self.resolve_on if self.resolve_on is not None else DEFAULT_RESOLVE_ON.get(self.signal, [])

    @property
    def resolve_after(self) -> float | None:
        if self.resolve_after_seconds is not None:
            return self.resolve_after_seconds
        return None if self.resolving_signals else 300.0  # one-off facts (a new issue) end after 5 min


class ThresholdSpec(_Spec):
    metric: Literal["errors", "transactions", "rejected", "issue_events", "transaction_duration"]
    aggregation: Literal["count", "rate", "ratio", "average", "percentile"] = Field(
        "count", description="count over the window; rate per minute; ratio of metric to denominator in "
                             "percent; average or percentile of transaction_duration (milliseconds)")
    window_minutes: int = Field(5, ge=1, le=1440)
    op: Literal[">", ">=", "<", "<=", "==", "!="] = ">"
    threshold: float = Field(allow_inf_nan=False)
    for_seconds: float = Field(0, ge=0, le=MAX_SECONDS)
    keep_firing_for_seconds: float = Field(0, ge=0, le=MAX_SECONDS)
    denominator: Literal["errors", "transactions", "rejected", "requests"] | None = Field(
        None, description="ratio only: what the metric is divided by (requests = errors + transactions)")
    percentile: float | None = Field(None, gt=0, le=100, description="percentile only, e.g. 95")
    min_volume: int = Field(0, ge=0, le=1_000_000_000, description=(
        "ratio, average, percentile: no value (the condition does not hold) until the window holds this "
        "many items (denominator items, or transactions)"))

    @model_validator(mode="after")
    def _aggregation_fits(self) -> ThresholdSpec:
        durations = self.metric in DURATION_METRICS
        if self.aggregation in ("average", "percentile") and not durations:
            raise ValueError(f"aggregation {self.aggregation!r} needs metric 'transaction_duration'")
        if durations and self.aggregation not in ("average", "percentile"):
            raise ValueError("metric 'transaction_duration' takes aggregation 'average' or 'percentile'")
        if (self.aggregation == "ratio") != (self.denominator is not None):
            raise ValueError("aggregation 'ratio' needs 'denominator' (and only a ratio takes one)")
        if self.aggregation == "ratio" and self.metric == "issue_events":
            raise ValueError("a ratio divides project counts: metric 'issue_events' cannot be one")
        if (self.aggregation == "percentile") != (self.percentile is not None):
            raise ValueError("aggregation 'percentile' needs 'percentile' (and only a percentile takes one)")
        return self

    @property
    def counts(self) -> list[str]:
        """The count metrics this rule reads (none for durations)."""
        if self.metric in DURATION_METRICS:
            return []
        below = {"requests": ["errors", "transactions"], None: []}.get(self.denominator, [self.denominator])
        return list(dict.fromkeys([self.metric, *(m for m in below if m)]))

    def breached(self, value: float | None) -> bool:
        """None (no value: a zero denominator, too little volume) never breaches."""
        return value is not None and COMPARISONS[self.op](value, self.threshold)


class RuleIn(_Spec):
    """A rule as the API and the rules file take it. Its annotation templates are checked apart, off the
    event loop (`templates.annotation_errors`): compiling 30 templates of 4,000 characters takes seconds."""

    name: str = Field(min_length=1, max_length=200)
    kind: Literal["event", "threshold", "anomaly"]
    event: EventSpec | None = None
    threshold: ThresholdSpec | None = None
    anomaly: AnomalySpec | None = None
    severity: Literal["critical", "high", "medium", "low"] = "medium"
    labels: dict[LabelName, Annotated[str, Field(max_length=500)]] = Field(default_factory=dict, max_length=30)
    annotations: dict[LabelName, Annotated[str, Field(max_length=4000)]] = Field(default_factory=dict,
                                                                                  max_length=30)
    enabled: bool = True

    @model_validator(mode="after")
    def _spec_matches_kind(self) -> RuleIn:
        given = [k for k in ("event", "threshold", "anomaly") if getattr(self, k) is not None]
        if given != [self.kind]:
            others = " or ".join(repr(k) for k in ("event", "threshold", "anomaly") if k != self.kind)
            raise ValueError(f"a{'n' if self.kind[0] in 'ae' else ''} {self.kind} rule needs '{self.kind}' "
                             f"(and no {others})")
        return self

    @field_validator("labels")
    @classmethod
    def _reserved(cls, labels: dict[str, str]) -> dict[str, str]:
        taken = sorted(set(labels) & {"alertname", "severity", "priority", "project", "project_id"})
        if taken:
            raise ValueError(f"labels set by Watchkeeper: {', '.join(taken)} (use name/severity)")
        return labels


@dataclass(frozen=True)
class AlertRule:
    id: int
    project_id: int
    name: str
    kind: str
    event: EventSpec | None
    threshold: ThresholdSpec | None
    severity: str
    labels: dict[str, str]
    annotations: dict[str, str]
    enabled: bool
    managed_by: str
    created_at: float
    updated_at: float
    anomaly: AnomalySpec | None = None

    @property
    def windowed(self) -> ThresholdSpec | AnomalySpec | None:
        """The spec of a rule judged on a window each round (threshold or anomaly), with its `for`."""
        return self.threshold or self.anomaly

    def to_api(self) -> dict[str, Any]:
        return {
            "id": self.id, "project_id": self.project_id, "name": self.name, "kind": self.kind,
            "event": self.event.model_dump() if self.event else None,
            "threshold": self.threshold.model_dump() if self.threshold else None,
            "anomaly": self.anomaly.model_dump() if self.anomaly else None,
            "severity": self.severity, "priority": PRIORITY[self.severity], "labels": self.labels,
            "annotations": self.annotations, "enabled": self.enabled, "managed_by": self.managed_by,
            "created_at": self.created_at, "updated_at": self.updated_at,
        }


def _spec_json(rule: RuleIn) -> str:
    spec = {"event": rule.event, "threshold": rule.threshold, "anomaly": rule.anomaly}[rule.kind]
    assert spec is not None
    return orjson.dumps({"severity": rule.severity, **spec.model_dump()}).decode()


def _from_row(row: Any) -> AlertRule:
    spec = orjson.loads(row.spec)
    severity = spec.pop("severity", "medium")
    return AlertRule(
        row.id, row.project_id, row.name, row.kind,
        EventSpec.model_validate(spec) if row.kind == "event" else None,
        ThresholdSpec.model_validate(spec) if row.kind == "threshold" else None,
        severity, orjson.loads(row.labels), orjson.loads(row.annotations), bool(row.enabled), row.managed_by,
        row.created_at, row.updated_at, AnomalySpec.model_validate(spec) if row.kind == "anomaly" else None,
    )


def _values(rule: RuleIn, now: float) -> dict[str, Any]:
    return {"name": rule.name, "kind": rule.kind, "spec": _spec_json(rule),
            "labels": orjson.dumps(rule.labels).decode(), "annotations": orjson.dumps(rule.annotations).decode(),
            "enabled": rule.enabled, "updated_at": now}


def create_rule(conn: Connection, project_id: int, rule: RuleIn, *, now: float, managed_by: str = "api") -> AlertRule:
    """Store a rule.

    >>> # create_rule(conn, 1, RuleIn(name="Spike", kind="threshold", threshold={...}), now=clock.now())
    """
    values = {**_values(rule, now), "project_id": project_id, "managed_by": managed_by, "created_at": now}
    rule_id = conn.execute(insert(alert_rules).values(values)).inserted_primary_key[0]  # type: ignore[index]
    found = get_rule(conn, int(rule_id))
    assert found is not None
    return found


def get_rule(conn: Connection, rule_id: int) -> AlertRule | None:
    row = conn.execute(select(alert_rules).where(alert_rules.c.id == rule_id)).first()
    return _from_row(row) if row else None


def list_rules(conn: Connection, project_id: int | None = None, *, enabled_only: bool = False) -> list[AlertRule]:
    query = select(alert_rules).order_by(alert_rules.c.id)
    if project_id is not None:
        query = query.where(alert_rules.c.project_id == project_id)
    if enabled_only:
        query = query.where(alert_rules.c.enabled.is_(True))
    return [_from_row(row) for row in conn.execute(query)]


def replace_rule(conn: Connection, rule_id: int, rule: RuleIn, *, now: float) -> AlertRule | None:
    conn.execute(update(alert_rules).where(alert_rules.c.id == rule_id).values(_values(rule, now)))
    return get_rule(conn, rule_id)


def delete_rule(conn: Connection, rule_id: int) -> bool:
    return conn.execute(delete(alert_rules).where(alert_rules.c.id == rule_id)).rowcount > 0


# The default pack alerts on every bad state the product knows: an error spike or rate, a new or regressed
# issue, a monitor down, a heartbeat late or failed, a certificate expiring (issue 22: a failed cron job
# alerted nobody). Migration 0011_h_alerting gave projects packed before then the rules added since.
DEFAULT_PACK: Sequence[dict[str, Any]] = (
    {"name": "Error spike", "kind": "threshold", "severity": "high",
     "threshold": {"metric": "errors", "aggregation": "rate", "window_minutes": 1, "op": ">", "threshold": 10},
     "annotations": {"summary": "{{ labels.project }}: {{ value | round(1) }} errors per minute (more than 10)"}},
    {"name": "Error rate", "kind": "threshold", "severity": "high",
     "threshold": {"metric": "errors", "aggregation": "ratio", "denominator": "transactions", "window_minutes": 5,
                   "op": ">", "threshold": 5, "min_volume": 20},
     "annotations": {"summary": "{{ labels.project }}: {{ value | round(1) }} errors per 100 requests over 5 minutes "
                                "(more than 5 %)"}},
    {"name": "New error type", "kind": "event", "severity": "medium", "event": {"signal": "issue.new"},
     "annotations": {"summary": "New issue in {{ labels.project }}: {{ signal.title }}"}},
    {"name": "Issue regressed", "kind": "event", "severity": "medium", "event": {"signal": "issue.regression"},
     "annotations": {"summary": "Regression in {{ labels.project }}: {{ signal.title }}"}},
    {"name": "Monitor down", "kind": "event", "severity": "critical", "event": {"signal": "monitor.down"},
     "annotations": {"summary": "{{ signal.name }} is down", "description": "{{ signal.error }}"}},
    {"name": "Heartbeat missed", "kind": "event", "severity": "high", "event": {"signal": "heartbeat.late"},
     "annotations": {"summary": "{{ signal.name }} did not check in on time"}},
    # A job that pings `/fail` or a non-zero exit status, or outlives its max_run_seconds.
    {"name": "Heartbeat failed", "kind": "event", "severity": "high", "event": {"signal": "heartbeat.failed"},
     "annotations": {"summary": "{{ signal.name }} reported a failure", "description": "{{ signal.error }}"}},
    {"name": "Certificate expiring", "kind": "event", "severity": "medium",
     "event": {"signal": "certificate.expiring", "resolve_after_seconds": 86400,
               "where": [{"field": "threshold_days", "op": "<=", "value": 14}]},
     "annotations": {"summary": "The certificate of {{ signal.name }} expires in "
                                "{{ signal.days_left | round(1) }} days"}},
)


def projects_without_pack(conn: Connection) -> list[int]:
    """Projects that never had the default rule pack (a cheap read, to skip the writer when none)."""
    done = set(conn.execute(select(alert_rule_packs.c.project_id)).scalars())
    return [p.id for p in list_projects(conn) if p.id not in done]


def apply_default_pack(conn: Connection, project_ids: Sequence[int], *, now: float) -> int:
    """Give projects that never had it the default rules; returns how many projects got them."""
    if not project_ids:
        return 0
    done = set(conn.execute(select(alert_rule_packs.c.project_id)).scalars())
    fresh = [p for p in project_ids if p not in done]
    for project_id in fresh:
        for entry in DEFAULT_PACK:
            create_rule(conn, project_id, RuleIn.model_validate(entry), now=now, managed_by="default")
        conn.execute(insert(alert_rule_packs).values(project_id=project_id, applied_at=now))
    return len(fresh)
