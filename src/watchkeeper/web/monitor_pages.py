"""Pages for uptime monitors: the list (status, 24-hour uptime, response-time sparkline, filters, search,
bulk pause/resume), a monitor's page (chart, uptime per range, outages, recent and failed checks, SLA,
heartbeat ping URLs with cURL and crontab snippets), and pause/resume/delete. The form is in
`monitor_form_pages`.

The list reads one page of monitors (50) and one rollup query for all of them, so it costs the same
with 10,000 monitors as with 100 (bench/monitors_page.py).
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response
from sqlalchemy import Connection, select
from starlette.datastructures import FormData

from watchkeeper.api import MAX_INT, read, runtime_of, write
from watchkeeper.auth.audit import audited, record
from watchkeeper.auth.projects import Project
from watchkeeper.store.dialect import upsert
from watchkeeper.uptime import heartbeats, overview, reports
from watchkeeper.uptime import monitors as MO
from watchkeeper.uptime.monitors import Monitor
from watchkeeper.uptime.secrets import masked_config
from watchkeeper.uptime.tables import ping_keys
from watchkeeper.web.monitor_form import TYPE_LABELS
from watchkeeper.web.project_pages import see_other
from watchkeeper.web.shell import PageError
from watchkeeper.web.viewer import CurrentPage, Page, checked_form, readable_project, require_write

router = APIRouter(include_in_schema=False)
PAGE_SIZE = 50
STATUSES = ("up", "down", "new", "paused")
SPARK_WIDTH, SPARK_HEIGHT = 120, 24


@dataclass(frozen=True, slots=True)
class MonitorQuery:
    status: str
    type: str
    search: str
    offset: int

    def params(self, **changes: Any) -> dict[str, str]:
        values = {"status": self.status, "type": self.type, "q": self.search} | changes
        return {k: str(v) for k, v in values.items() if v}


def _param(page: Page, name: str, limit: int = 200) -> str:
    value = page.request.query_params.get(name, "").strip()[:limit]
    return "" if "\x00" in value else value


def _monitor_query(page: Page) -> MonitorQuery:
    offset = _param(page, "offset", 9)
    return MonitorQuery(
        status=status if (status := _param(page, "status")) in STATUSES else "",
        type=kind if (kind := _param(page, "type")) in TYPE_LABELS else "",
        search=_param(page, "q"),
        offset=int(offset) if offset.isdigit() else 0,
    )


def response_points(values: list[float | None]) -> str:
    """SVG polyline points of response times (per hour, or per minute for a new monitor), skipping gaps;
    2 px inside the box so the dot on the latest point is not cut off.

    >>> response_points([10.0, None, 20.0])
    '2.0,12.0 118.0,2.0'
    """
    return " ".join(f"{x:.1f},{y:.1f}" for x, y in _spark_xy(values))


def latest_point(values: list[float | None]) -> tuple[float, float] | None:
    """Where the sparkline's latest value is, marked with a dot: a line of one point draws nothing, so the
    dot shows a new monitor's first check at once.

    >>> latest_point([None, 12.0])
    (118.0, 2.0)
    """
    points = _spark_xy(values)
    return (round(points[-1][0], 1), round(points[-1][1], 1)) if points else None


def _spark_xy(values: list[float | None]) -> list[tuple[float, float]]:
    top = max((v for v in values if v is not None), default=0.0) or 1.0
    pad = 2
    step = (SPARK_WIDTH - 2 * pad) / max(1, len(values) - 1)
    usable = SPARK_HEIGHT - 2 * pad
    return [(pad + i * step, SPARK_HEIGHT - pad - usable * v / top) for i, v in enumerate(values) if v is not None]


def target_of(monitor: Monitor) -> str:
    """What a monitor watches, in a few words (secrets masked: viewers see this)."""
    config = masked_config(monitor.config)
    if monitor.type == "http":
        return f"{config['method']} {config['url']}"
    if monitor.type in ("tls", "tcp"):
        return f"{config['host']}:{config['port']}"
    if monitor.type == "dns":
        return f"{config['record_type']} {config['name']}"
    if monitor.type == "ping":
        return str(config["host"])
    if monitor.type == "heartbeat":
        return f"cron {config['cron']} ({config['timezone']})" if config.get("cron") \
            else f"every {_duration(config['period_seconds'])}"
    return str(config.get("url", ""))


def _duration(seconds: float | None) -> str:
    """`2 h 5 min`, `45 s`: the two largest units."""
    if seconds is None:
        return "—"
    if seconds < 60:
        return f"{seconds:.3g} s"
    rest, parts = int(seconds), []
    for size, unit in ((86400, "d"), (3600, "h"), (60, "min")):
        if rest >= size:
            parts.append(f"{rest // size} {unit}")
            rest %= size
    return " ".join(parts[:2])


@router.get("/projects/{project_id:int}/monitors")
async def monitors_page(project_id: int, page: CurrentPage) -> Response:
    project = await readable_project(page, project_id)
    q = _monitor_query(page)
    wanted = MO.MonitorFilter(q.status or None, q.type or None, q.search or None)

    def load(conn: Connection) -> dict[str, Any]:
        found, total = MO.find_monitors(conn, project_id, wanted, PAGE_SIZE, q.offset)
        day = overview.last_day(conn, [m.id for m in found], page.now)
        return {"monitors": found, "total": total, "day": day, "counts": overview.status_counts(conn, project_id)}

    data = await read(page.request, load)
    rows = [{"monitor": m, "target": target_of(m), "uptime": data["day"][m.id]["uptime_percent"],
             "spark": response_points(data["day"][m.id]["spark_ms"]),
             "latest": latest_point(data["day"][m.id]["spark_ms"]),
             "spark_span": "hour" if data["day"][m.id]["spark_step"] == 60 else "24 hours",
             "last_ms": next((v for v in reversed(data["day"][m.id]["spark_ms"]) if v is not None), None)}
            for m in data["monitors"]]
    return await page.render(
        "monitor_list.html", project=project, q=q, rows=rows, total=data["total"], counts=data["counts"],
        statuses=STATUSES, types=TYPE_LABELS, page_size=PAGE_SIZE,
        can_write=page.viewer.principal.can_write(project_id),
    )


def _ids(form: FormData) -> list[int]:
    return [int(v) for v in form.getlist("ids") if isinstance(v, str) and v.isdigit() and 1 <= int(v) <= MAX_INT][:1000]


def _back_to(form: FormData, default: str) -> str:
    target = form.get("next")
    if isinstance(target, str) and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return default


def _wake(page: Page) -> None:
    page.request.app.state.uptime.scheduler.wake()


@router.post("/projects/{project_id:int}/monitors/bulk")
async def bulk_change(project_id: int, page: CurrentPage) -> Response:
    """Pause or resume the ticked monitors (monitors from the monitors file are left alone)."""
    await readable_project(page, project_id)
    form = await checked_form(page.request, page.viewer)
    require_write(page.viewer, project_id)
    action = form.get("action")
    if action not in ("pause", "resume"):
        raise PageError(422, "action: pause or resume")
    ids = _ids(form)
    now = runtime_of(page.request).clock.now()

    def apply(conn: Connection) -> None:
        for monitor in MO.list_monitors(conn, project_id, ids=ids):
            if monitor.managed_by != "config":
                MO.set_paused(conn, monitor.id, action == "pause", now=now)
                record(conn, actor_user_id=page.viewer.principal.user_id, action=f"monitor.{action}",
                       target_type="monitor", target_id=monitor.id, details={}, now=now)

    if ids:
        await write(page.request, apply)
        _wake(page)
    return see_other(_back_to(form, f"/projects/{project_id}/monitors"))


async def readable_monitor(page: Page, monitor_id: int) -> tuple[Monitor, Project]:
    """The monitor and its project if the viewer may see them; 404 otherwise."""
    monitor = await read(page.request, lambda conn: MO.get_monitor(conn, monitor_id)) \
        if monitor_id <= MAX_INT else None
    if monitor is None or not page.viewer.principal.can_read(monitor.project_id):
        raise PageError(404, "No such monitor.")
    return monitor, await readable_project(page, monitor.project_id)


def _ping_key(conn: Connection, project_id: int) -> str | None:
    return conn.execute(select(ping_keys.c.ping_key).where(ping_keys.c.project_id == project_id)).scalar()


def ping_snippets(base_url: str, monitor: Monitor, ping_key: str | None) -> dict[str, Any]:
    """Ping URLs and copy-paste snippets of a heartbeat (uuid form, and slug form when both exist)."""
    by_uuid = f"{base_url}/ping/{monitor.uuid}"
    by_slug = f"{base_url}/ping/{ping_key}/{monitor.slug}" if ping_key and monitor.slug else None
    url = by_uuid
    cron = monitor.config.get("cron") or "0 3 * * *"
    return {
        "uuid_url": by_uuid, "slug_url": by_slug,
        "curl": "\n".join([
            f"curl -fsS -m 10 --retry 5 {url}              # success",
            f"curl -fsS -m 10 --retry 5 {url}/start        # a run starts",
            f"curl -fsS -m 10 --retry 5 {url}/fail         # it failed",
            f"curl -fsS -m 10 --retry 5 --data-binary @job.log {url}/$?   # exit status (0 = success)",
        ] + ([f"curl -fsS -m 10 --retry 5 {by_slug}    # by slug"] if by_slug else [])),
        "crontab": (f"{cron} curl -fsS -m 10 --retry 5 -o /dev/null {url}/start; /usr/local/bin/job.sh; "
                    f"curl -fsS -m 10 --retry 5 -o /dev/null {url}/$?"),
        "crontab_slug": (f"{cron} /usr/local/bin/job.sh && curl -fsS -m 10 --retry 5 -o /dev/null {by_slug}"
                         if by_slug else None),
    }


def _month_before(year: int, month: int) -> tuple[int, int]:
    return (year - 1, 12) if month == 1 else (year, month - 1)


@router.get("/monitors/{monitor_id:int}")
async def monitor_page(monitor_id: int, page: CurrentPage) -> Response:
    monitor, project = await readable_monitor(page, monitor_id)
    tr = page.filter.time_range
    only_failed = _param(page, "checks") == "failed"
    today = dt.datetime.fromtimestamp(page.now, dt.UTC)

    def load(conn: Connection) -> dict[str, Any]:
        data: dict[str, Any] = {
            "ranges": reports.uptime_summary(conn, monitor_id, page.now),
            "series": overview.response_series(conn, monitor_id, tr.since, tr.until),
            "outages": reports.list_outages(conn, monitor_id, page.now, limit=20),
            "checks": overview.failed_checks(conn, monitor_id) if only_failed
            else reports.recent_results(conn, monitor_id, limit=20),
            "sla": [], "pings": [], "ping_key": None,
        }
        if monitor.sla_target is not None:
            months = [(today.year, today.month), _month_before(today.year, today.month)]
            data["sla"] = [reports.sla_month(conn, monitor_id, monitor.sla_target, y, m, page.now) for y, m in months]
        if monitor.type == "heartbeat":
            data["pings"] = heartbeats.recent_pings(conn, monitor_id, limit=20)
            data["ping_key"] = _ping_key(conn, monitor.project_id)
        return data

    data = await read(page.request, load)
    series = data.pop("series")
    # The axis spans the chosen range ending now, however few points there are (one, for a new monitor).
    chart = {"x": series["x"], "y": series["ms"], "failures": series["failures"], "zone": page.viewer.zone.key,
             "start": tr.since, "end": tr.until, "step": series["step"]}
    base_url = runtime_of(page.request).settings.base_url
    return await page.render(
        "monitor_detail.html", project=project, monitor=monitor, target=target_of(monitor), chart=chart,
        type_label=TYPE_LABELS[monitor.type], only_failed=only_failed, duration=_duration,
        can_write=page.viewer.principal.can_write(project.id), read_only=monitor.managed_by == "config",
        snippets=ping_snippets(base_url, monitor, data["ping_key"]) if monitor.type == "heartbeat" else None,
        show_filter=monitor.type != "heartbeat", keep={"checks": "failed"} if only_failed else {},
        environment_filter=False,
        **data,
    )


@router.post("/monitors/{monitor_id:int}/state")
async def change_state(monitor_id: int, page: CurrentPage) -> Response:
    """Pause, resume or delete one monitor."""
    monitor, project = await readable_monitor(page, monitor_id)
    form = await checked_form(page.request, page.viewer)
    require_write(page.viewer, project.id)
    if monitor.managed_by == "config":
        raise PageError(409, "This monitor comes from the monitors file: change it there.")
    action = form.get("action")
    now = runtime_of(page.request).clock.now()
    if action in ("pause", "resume"):
        await write(page.request, audited(lambda conn: MO.set_paused(conn, monitor_id, action == "pause", now=now),
                                          page.viewer.principal.user_id, f"monitor.{action}", "monitor", now=now,
                                          target=monitor_id))
        _wake(page)
        return see_other(f"/monitors/{monitor_id}")
    if action == "delete":
        await write(page.request, audited(lambda conn: MO.delete_monitor(conn, monitor_id),
                                          page.viewer.principal.user_id, "monitor.delete", "monitor", now=now,
                                          target=monitor_id, name=monitor.name))
        _wake(page)
        return see_other(f"/projects/{project.id}/monitors")
    raise PageError(422, "action: pause, resume or delete")


@router.post("/projects/{project_id:int}/ping-key")
async def make_ping_key(project_id: int, page: CurrentPage) -> Response:
    """Make (or replace) the key of the slug ping URLs; back to the heartbeat it was asked from."""
    await readable_project(page, project_id)
    form = await checked_form(page.request, page.viewer)
    require_write(page.viewer, project_id)
    key = secrets.token_urlsafe(16)

    def save(conn: Connection) -> None:
        statement = upsert(conn, ping_keys).values(project_id=project_id, ping_key=key)
        conn.execute(statement.on_conflict_do_update(index_elements=["project_id"], set_={"ping_key": key}))

    await write(page.request, save)
    return see_other(_back_to(form, f"/projects/{project_id}/monitors"))
