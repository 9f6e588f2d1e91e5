"""The routing view and the channels page (administrators, like the REST API).

Routing: the tree from `alerting.config_file` (matchers, group_by, timers with what each route
inherits, `continue`), the receivers with their integrations, the inhibition rules, and a box that
says which routes a label set would take. Channels: each receiver's integrations (secrets masked),
its delivery history from the outbox (sent, retrying, failed, with the error and attempts) and a
"Send test notification" button (the REST API's test path).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter
from fastapi.responses import Response
from pydantic import BaseModel
from sqlalchemy import Connection, func, select

from watchkeeper.alerting.dispatch import queue_test_notification
from watchkeeper.alerting.matchers import format_duration, parse_matchers
from watchkeeper.alerting.routing import AlertingConfig, Receiver, Route, RouteConfig, label_set
from watchkeeper.alerting.routing_store import StoredRoute, masked, stored_tree
from watchkeeper.alerting.silences import active_silences
from watchkeeper.alerting.tables import notification_outbox
from watchkeeper.api import read, runtime_of, write
from watchkeeper.auth.audit import audited
from watchkeeper.web.alert_pages import alerting_of, require_admin
from watchkeeper.web.project_pages import see_other
from watchkeeper.web.shell import PageError
from watchkeeper.web.viewer import CurrentPage, checked_form

router = APIRouter(include_in_schema=False)
HISTORY_PER_RECEIVER = 20


@dataclass
class RouteNode:
    """A route as written (`config`) beside what it resolves to with inheritance (`route`)."""

    config: RouteConfig
    route: Route
    depth: int
    children: list[RouteNode] = field(default_factory=list)
    id: int | None = None  # the stored route's id (None: from the file, not editable here)

    @property
    def matchers(self) -> list[str]:
        return [str(m) for m in self.route.matchers]

    def inherited(self, name: str) -> bool:
        """Whether a setting comes from the parent (shown muted)."""
        own = {"receiver": self.config.receiver, "group_by": self.config.group_by,
               "group_wait": self.config.group_wait, "group_interval": self.config.group_interval,
               "repeat_interval": self.config.repeat_interval}
        return self.depth > 0 and own[name] is None

    def timer(self, name: str) -> str:
        return format_duration(getattr(self.route, name))

    @property
    def other_settings(self) -> list[tuple[str, str]]:
        """Settings of the route this page has no place of its own for (e.g. time intervals added later)."""
        return extra_settings(self.config, ROUTE_FIELDS_SHOWN)


ROUTE_FIELDS_SHOWN = {"receiver", "group_by", "matchers", "match", "match_re", "continue_", "group_wait",
                      "group_interval", "repeat_interval", "routes"}
CONFIG_FIELDS_SHOWN = {"route", "receivers", "inhibit_rules"}


def extra_settings(model: BaseModel, shown: set[str]) -> list[tuple[str, str]]:
    """The model's set fields outside `shown`, as `name: value` text (secrets masked)."""
    out = []
    for name, info in type(model).model_fields.items():
        value = getattr(model, name)
        if name in shown or value in (None, [], {}, ""):
            continue
        if isinstance(value, list) and value and isinstance(value[0], BaseModel):
            text = "; ".join(", ".join(f"{k}: {v}" for k, v in integration_settings(item)) for item in value)
        elif isinstance(value, BaseModel):
            text = ", ".join(f"{k}: {v}" for k, v in integration_settings(value))
        else:
            text = masked(value, name)
        out.append((info.alias or name, text))
    return out


def route_tree(config: RouteConfig, route: Route, depth: int = 0, stored: StoredRoute | None = None) -> RouteNode:
    """The tree to show; `stored` (the database's, read just after the configuration) gives the ids."""
    node = RouteNode(config, route, depth, id=stored.id if stored is not None else None)
    same = stored is not None and len(stored.routes) == len(config.routes)
    node.children = [route_tree(c, r, depth + 1, stored.routes[i] if same and stored is not None else None)
                     for i, (c, r) in enumerate(zip(config.routes, route.routes, strict=True))]
    return node


def integration_settings(config: BaseModel) -> list[tuple[str, str]]:
    out = []
    for name, info in type(config).model_fields.items():
        value = getattr(config, name)
        if value in (None, [], ""):
            continue
        out.append((info.alias or name, masked(value, name)))
    return out


def receivers_view(config: AlertingConfig) -> list[dict[str, Any]]:
    return [{"name": r.name, "integrations": [(key, integration_settings(i)) for key, i in r.integrations().items()],
             "single": len(r.integrations()) == 1} for r in config.receivers]


def parse_label_set(text: str) -> dict[str, str]:
    """`team=web` lines, or `{team="web", severity="critical"}` as Alertmanager prints a label set."""
    body = text.strip()
    items: str | list[str] = body if body.startswith("{") else [line for line in body.splitlines() if line.strip()]
    labels: dict[str, str] = {}
    for m in parse_matchers(items):
        if m.operator != "=":
            raise ValueError(f"{m}: a label set has only name=value pairs")
        labels[m.name] = m.value
    return labels


@router.get("/alerting/routing")
async def routing_page(page: CurrentPage) -> Response:
    require_admin(page, "the routing tree")
    alerting = alerting_of(page.request)
    await alerting.refresh_config()
    config, root = alerting.config, alerting.dispatcher.root
    stored = await read(page.request, stored_tree) if alerting.source == "database" else None
    text = page.request.query_params.get("labels", "")[:5000]
    labels: dict[str, str] | None = None
    error = None
    matched: list[dict[str, Any]] = []
    silenced_by: list[str] = []
    if text.strip():
        try:
            labels = parse_label_set(text)
        except ValueError as exc:
            error = str(exc)
    if labels is not None:
        for route in root.match(labels):
            matched.append({"key": route.key, "receiver": route.receiver, "group_key": route.group_key(labels),
                            "group_labels": label_set(route.group_labels(labels)),
                            "timers": [format_duration(route.group_wait), format_duration(route.group_interval),
                                       format_duration(route.repeat_interval)]})
        now = page.now
        silences = await read(page.request, lambda conn: active_silences(conn, now))
        silenced_by = [s.comment or s.id for s in silences if s.mutes(labels, now)]
    return await page.render(
        "routing.html", tree=route_tree(config.route, root, stored=stored), receivers=receivers_view(config),
        inhibit_rules=config.inhibit_rules, other_config=extra_settings(config, CONFIG_FIELDS_SHOWN),
        labels_text=text, labels=labels, error=error, matched=matched,
        matched_keys={m["key"] for m in matched}, silenced_by=silenced_by, from_file=alerting.settings.config_file,
        editable=alerting.source == "database", file_error=alerting.config_error, done=_done(page),
        status=422 if error else 200,
    )


# --- channels -----------------------------------------------------------------------------------------


def delivery_history(conn: Connection, receiver: str, limit: int = HISTORY_PER_RECEIVER) -> list[dict[str, Any]]:
    """A receiver's newest notifications in the outbox (a read the REST API does for all receivers)."""
    t = notification_outbox
    rows = conn.execute(select(t.c.id, t.c.integration, t.c.group_key, t.c.status, t.c.attempts, t.c.next_attempt_at,
                               t.c.last_error, t.c.created_at, t.c.sent_at)
                        .where(t.c.receiver == receiver).order_by(t.c.id.desc()).limit(limit))
    out = []
    for row in rows:
        item = dict(row._mapping)
        # The outbox says "pending" both before the first try ("queued") and between retries ("retrying").
        item["shown_status"] = ("retrying" if row.attempts > 0 else "queued") if row.status == "pending" else row.status
        out.append(item)
    return out


def delivery_counts(conn: Connection) -> dict[str, dict[str, int]]:
    t = notification_outbox
    rows = conn.execute(select(t.c.receiver, t.c.status, func.count()).group_by(t.c.receiver, t.c.status))
    counts: dict[str, dict[str, int]] = {}
    for receiver, status, count in rows:
        counts.setdefault(receiver, {})[status] = int(count)
    return counts


@router.get("/alerting/channels")
async def channels_page(page: CurrentPage) -> Response:
    require_admin(page, "the notification channels")
    alerting = alerting_of(page.request)
    await alerting.refresh_config()
    config = alerting.config
    names = [r.name for r in config.receivers]

    def load(conn: Connection) -> dict[str, Any]:
        return {"history": {name: delivery_history(conn, name) for name in names}, "counts": delivery_counts(conn)}

    data = await read(page.request, load)
    tested = page.request.query_params.get("tested", "")
    return await page.render("channels.html", receivers=receivers_view(config),
                             tested=tested if tested in names else "",
                             queued=page.request.query_params.get("queued", ""),
                             editable=alerting.source == "database", from_file=alerting.settings.config_file,
                             file_error=alerting.config_error, reaches_nobody=alerting.needs_channel,
                             done=_done(page), **data)


def _done(page: Any) -> str:
    """What the last change did, for the notice after its redirect (a short word from our own links)."""
    return DONE.get(page.request.query_params.get("done", ""), "")


DONE = {"channel-added": "Channel added.", "channel-saved": "Channel saved.", "channel-deleted": "Channel deleted.",
        "route-added": "Route added.", "route-saved": "Route saved.", "route-deleted": "Route deleted."}


@router.post("/alerting/channels/{name}/test")
async def test_channel(name: str, page: CurrentPage) -> Response:
    await checked_form(page.request, page.viewer)
    require_admin(page, "the notification channels")
    alerting = alerting_of(page.request)
    await alerting.refresh_config()
    receiver: Receiver | None = alerting.config.receiver(name)
    if receiver is None:
        raise PageError(404, "No such receiver.")
    runtime = runtime_of(page.request)
    now, url, email = runtime.clock.now(), runtime.settings.base_url, page.viewer.session.email
    ids = await write(page.request, audited(
        lambda conn: queue_test_notification(conn, alerting.config, name, now, url, email),
        page.viewer.principal.user_id, "channel.test", "receiver", now=now, target=receiver.name[:64]))
    alerting.wake()
    query = urlencode({"tested": receiver.name, "queued": len(ids)})
    return see_other(f"/alerting/channels?{query}")

