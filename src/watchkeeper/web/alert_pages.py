"""The alerts pages: a project's alerts (its "Alerts" tab) and every alert for administrators (alerts
from Prometheus and other Alertmanager API senders have no project, so they appear only there).

Alerts are shown as the dispatcher sees them: firing, pending, silenced (a silence, an uptime
maintenance window or an inhibition rule keeps them out of notifications) and resolved recently, each
grouped like the routing tree groups them (receiver + group labels).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import Connection

from watchkeeper.alerting.alerts import Alert, load_alerts
from watchkeeper.alerting.links import cause_of, cause_title
from watchkeeper.alerting.routing import label_set
from watchkeeper.alerting.rules import PRIORITY
from watchkeeper.alerting.service import Alerting
from watchkeeper.alerting.silences import Silence, active_silences
from watchkeeper.api import read
from watchkeeper.uptime.maintenance import in_maintenance, list_windows
from watchkeeper.web.shell import PageError
from watchkeeper.web.viewer import CurrentPage, Page, readable_project

router = APIRouter(include_in_schema=False)
STATES = ("firing", "pending", "silenced", "resolved")
STATE_TITLES = {"firing": "Firing", "pending": "Pending", "silenced": "Silenced",
                "resolved": "Resolved recently"}
# Labels every rule alert has; the table shows them in columns of their own or not at all.
QUIET_LABELS = ("alertname", "severity", "priority", "project_id")
# A group of a thousand alerts is one notification; the page shows its newest alerts and the count.
MAX_ROWS_PER_GROUP = 50


def alerting_of(request: Request) -> Alerting:
    alerting: Alerting = request.app.state.alerting
    return alerting


def require_admin(page: Page, what: str) -> None:
    """Silences, routing and channels span projects: administrators only, as in the REST API."""
    if not page.viewer.principal.is_admin:
        raise PageError(403, f"Only administrators may see {what}: they span every project.")


@dataclass
class AlertRow:
    alert: Alert
    state: str  # one of STATES
    silenced_by: list[Silence] = field(default_factory=list)
    inhibited: bool = False
    in_maintenance: bool = False

    @property
    def labels(self) -> dict[str, str]:
        return self.alert.labels

    @property
    def extra_labels(self) -> list[tuple[str, str]]:
        return sorted((k, v) for k, v in self.alert.labels.items() if k not in QUIET_LABELS)

    @property
    def priority(self) -> str:
        return PRIORITY.get(self.alert.labels.get("severity", ""), "")

    @property
    def since(self) -> float:
        if self.state == "pending":
            return self.alert.active_at
        if self.state == "resolved":
            return self.alert.ends_at or self.alert.active_at
        return self.alert.starts_at or self.alert.active_at

    @property
    def cause(self) -> str:
        """The page of what the alert is about: its issue, monitor or project (or an outside alert's
        generatorURL)."""
        return cause_of(self.alert.labels, self.alert.generator_url)

    @property
    def cause_title(self) -> str:
        return cause_title(self.cause)

    @property
    def silence_query(self) -> str:
        """The silence form prefilled with this alert's labels (as Alertmanager's UI does)."""
        pairs = [("matcher", f'{k}="{v}"') for k, v in sorted(self.alert.labels.items())]
        return urlencode([*pairs, ("comment", f"Silenced from alert {self.alert.labels.get('alertname', '')}")])


@dataclass
class AlertGroup:
    receiver: str
    labels: dict[str, str]
    rows: list[AlertRow] = field(default_factory=list)  # the newest MAX_ROWS_PER_GROUP
    total: int = 0

    @property
    def title(self) -> str:
        return label_set(self.labels)

    @property
    def silence_query(self) -> str:
        """The silence form prefilled with the group's labels (every alert of the group, now and later)."""
        pairs = [("matcher", f'{k}="{v}"') for k, v in sorted(self.labels.items())]
        return urlencode([*pairs, ("comment", f"Silenced group {self.title}")])


def _monitor_of(alert: Alert) -> tuple[int, int] | None:
    """(project id, monitor id) of an alert about a monitor, as the dispatcher reads its labels."""
    project, monitor = alert.labels.get("project_id", ""), alert.labels.get("monitor", "")
    return (int(project), int(monitor)) if project.isdigit() and monitor.isdigit() else None


def in_maintenance_now(conn: Connection, found: list[Alert], now: float) -> set[str]:
    """Fingerprints of the alerts about monitors an uptime maintenance window covers now."""
    monitors = {a.fingerprint: m for a in found if (m := _monitor_of(a)) is not None}
    if not monitors:
        return set()
    windows = list_windows(conn, {project for project, _ in monitors.values()})
    return {fp for fp, (project, monitor) in monitors.items() if in_maintenance(windows, project, monitor, now)}


def classify(conn: Connection, alerting: Alerting, found: list[Alert], now: float, *,
             all_firing: list[Alert] | None = None) -> list[AlertRow]:
    """Each alert with its state as people read it: silenced wins over firing and pending.
    `all_firing`: the alerts that may inhibit these (every firing one; default `found`)."""
    silences = active_silences(conn, now)
    maintained = in_maintenance_now(conn, found, now)
    sources = found if all_firing is None else all_firing
    firing = [(a.fingerprint, a.labels) for a in sources if a.state == "firing" and not a.resolved(now)]
    everyone = [(a.fingerprint, a.labels) for a in found]
    inhibited = alerting.dispatcher.inhibitor.inhibited(firing, everyone) if firing else set()
    rows = []
    for alert in found:
        status = alert.status(now)
        row = AlertRow(alert, status, [s for s in silences if s.mutes(alert.labels, now)],
                       alert.fingerprint in inhibited, alert.fingerprint in maintained)
        if status != "resolved" and (row.silenced_by or row.inhibited or row.in_maintenance):
            row.state = "silenced"
        rows.append(row)
    return rows


def group_rows(alerting: Alerting, rows: list[AlertRow]) -> dict[str, list[AlertGroup]]:
    """By state, then by routing group (an alert a `continue` route also takes appears in both groups)."""
    root = alerting.dispatcher.root
    by_state: dict[str, dict[str, AlertGroup]] = {state: {} for state in STATES}
    for row in sorted(rows, key=lambda r: (-r.since, label_set(r.labels))):
        for route in root.match(row.labels):
            key = route.group_key(row.labels)
            group = by_state[row.state].setdefault(key, AlertGroup(route.receiver, route.group_labels(row.labels)))
            group.total += 1
            if len(group.rows) < MAX_ROWS_PER_GROUP:
                group.rows.append(row)
    return {state: sorted(groups.values(), key=lambda g: (g.receiver, g.title)) for state, groups in by_state.items()}


async def _alerts_view(page: Page, project_id: int | None) -> dict[str, Any]:
    alerting = alerting_of(page.request)

    def load(conn: Connection) -> list[AlertRow]:
        if project_id is None:
            return classify(conn, alerting, load_alerts(conn), page.now)
        # Another project's or an external alert may inhibit this project's: every firing one is a source.
        sources = load_alerts(conn, firing_only=True) if alerting.config.inhibit_rules else []
        return classify(conn, alerting, load_alerts(conn, project_id=project_id), page.now, all_firing=sources)

    rows = await read(page.request, load)
    wanted = page.request.query_params.get("state", "")
    return {"groups": group_rows(alerting, rows), "counts": {s: sum(r.state == s for r in rows) for s in STATES},
            "states": STATES, "state_titles": STATE_TITLES, "wanted": wanted if wanted in STATES else "",
            "can_silence": page.viewer.principal.is_admin}


@router.get("/projects/{project_id:int}/alerts")
async def project_alerts_page(project_id: int, page: CurrentPage) -> Response:
    project = await readable_project(page, project_id)
    return await page.render("alerting_alerts.html", project=project, **await _alerts_view(page, project_id))


@router.get("/alerting/alerts")
async def all_alerts_page(page: CurrentPage) -> Response:
    require_admin(page, "every project's alerts")
    return await page.render("alerting_alerts.html", **await _alerts_view(page, None))
