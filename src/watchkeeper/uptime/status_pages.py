"""Public status pages (no login): HTML, JSON, Atom and RSS feeds, SVG badges.

    /status/<slug>                      the page
    /status/<slug>/json                 the same as JSON
    /status/<slug>/feed.atom, /rss      incidents
    /status/<slug>/badge.svg            overall status badge
    /status/<slug>/components/<id>/uptime.svg   a component's 30-day uptime badge

It is the page everyone opens during an outage, so the computed page is cached for
`uptime.status_page_cache_seconds` and one request computes it while the others wait for that result.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import jinja2
import orjson
from markupsafe import Markup
from sqlalchemy import Connection, select
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from watchkeeper import __version__
from watchkeeper.uptime.availability import combined, monitors_availability
from watchkeeper.uptime.incidents import list_incidents
from watchkeeper.uptime.maintenance import list_windows
from watchkeeper.uptime.reports import bars_of
from watchkeeper.uptime.results import DAY
from watchkeeper.uptime.tables import monitors, status_components, status_pages

_templates = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"), autoescape=True,
)
BAR_DAYS = 90
# Only our own script (times in the reader's zone) and style sheet run on the public page; the logo may
# come from elsewhere. Every /status answer, 404s and feeds included, carries these headers.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: https: http:; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
# Worst first: a component is as bad as its worst monitor.
SEVERITY = ["down", "degraded", "maintenance", "up", "unknown"]
COMPONENT_WORDS = {"up": "Operational", "degraded": "Degraded performance", "maintenance": "Under maintenance",
                   "down": "Outage", "unknown": "No data"}
OVERALL = {"down": "Some systems are down", "degraded": "Some systems are slow",
           "maintenance": "Maintenance in progress", "up": "All systems operational", "unknown": "No data yet"}


def _monitor_state(row: Any, maintenance: bool) -> str:
    if maintenance and row.status != "down":
        return "maintenance"
    if row.status == "down":
        return "down"
    if row.status == "up":
        return "degraded" if row.degraded else "up"
    return "unknown"  # new or paused


def component_uptime_30d(conn: Connection, monitor_ids: list[int], now: float) -> float | None:
    """A component's uptime % over the last 30 days, as its public page shows it (None: no data)."""
    return combined(monitors_availability(conn, monitor_ids, now - 30 * DAY, now, now).values()).percent


def compute_page(conn: Connection, slug: str, now: float) -> dict[str, Any] | None:
    """Everything the page shows, as JSON-ready data (None: no such page)."""
    page = conn.execute(select(status_pages).where(status_pages.c.slug == slug)).first()
    if page is None:
        return None
    components = conn.execute(select(status_components).where(status_components.c.page_id == page.id)
                              .order_by(status_components.c.position, status_components.c.id)).all()
    ids_of = {c.id: [int(i) for i in orjson.loads(c.monitor_ids)] for c in components}
    all_ids = sorted({i for ids in ids_of.values() for i in ids})
    rows = {r.id: r for r in conn.execute(select(monitors).where(monitors.c.id.in_(all_ids)))} if all_ids else {}
    windows = list_windows(conn, [page.project_id])
    active = {mid for mid in all_ids for w in windows if w.covers(mid) and w.current_period(now)}
    shown = []
    for component in components:
        states = [_monitor_state(rows[i], i in active) for i in ids_of[component.id] if i in rows] or ["unknown"]
        status = min(states, key=SEVERITY.index)
        monitor_ids = [i for i in ids_of[component.id] if i in rows]
        # One definition of uptime (docs/uptime.md): the same numbers as the editor, the API and the SLA.
        seen = combined(monitors_availability(conn, monitor_ids, (int(now // DAY) - BAR_DAYS + 1) * DAY, now,
                                              now).values())
        shown.append({
            "id": component.id, "name": component.name, "group": component.group_name, "status": status,
            "uptime_30d_percent": seen.between(now - 30 * DAY, now).percent,
            "days": bars_of(seen, now, BAR_DAYS),
        })
    overall = min([c["status"] for c in shown] or ["unknown"], key=SEVERITY.index)
    if overall == "unknown" and any(c["status"] == "up" for c in shown):
        overall = "up"
    scheduled = []
    for window in windows:
        period = window.current_period(now) or window.next_period(now)
        if period is not None and period[0] < now + 7 * 86400:
            scheduled.append({"title": window.title, "starts_at": period[0], "ends_at": period[1],
                              "active": period[0] <= now})
    return {
        "slug": page.slug, "title": page.title, "logo_url": page.logo_url, "description": page.description,
        "status": overall, "status_text": OVERALL[overall], "generated_at": now, "components": shown,
        "maintenance": sorted(scheduled, key=lambda w: w["starts_at"]),
        "incidents": list_incidents(conn, page.id, since=now - 14 * 86400),
    }


@dataclass
class PageCache:
    """Computed pages for a few seconds; one computation per page at a time."""

    seconds: float
    pages: dict[str, tuple[float, dict[str, Any] | None]] = field(default_factory=dict)
    locks: dict[str, asyncio.Lock] = field(default_factory=dict)
    # The HTML of the cached page, rendered once for as long as the page is cached.
    rendered: dict[str, tuple[dict[str, Any], bytes]] = field(default_factory=dict)

    def html(self, slug: str, page: dict[str, Any]) -> bytes:
        done = self.rendered.get(slug)
        if done is not None and done[0] is page:
            return done[1]
        html = _templates.get_template("status_page.html").render(
            page=page, heading=page_title(page["title"]), when=readable_time, words=COMPONENT_WORDS,
            version=__version__).encode()
        if len(self.rendered) > 10_000:
            self.rendered.clear()
        self.rendered[slug] = (page, html)
        return html

    async def get(self, request: Request, slug: str) -> dict[str, Any] | None:
        runtime = request.app.state.runtime
        cached = self.pages.get(slug)
        if cached is not None and cached[0] > runtime.clock.monotonic():
            return cached[1]
        async with self.locks.setdefault(slug, asyncio.Lock()):
            cached = self.pages.get(slug)
            if cached is not None and cached[0] > runtime.clock.monotonic():
                return cached[1]
            now = runtime.clock.now()

            def compute() -> dict[str, Any] | None:
                with runtime.engine.connect() as conn:
                    return compute_page(conn, slug, now)

            page = await run_in_threadpool(compute)
            if len(self.pages) > 10_000:
                self.pages.clear()  # unknown slugs must not grow memory without bound
            self.pages[slug] = (runtime.clock.monotonic() + self.seconds, page)
            return page


def _cache(request: Request) -> PageCache:
    uptime = request.app.state.uptime
    if not hasattr(uptime, "page_cache"):
        uptime.page_cache = PageCache(request.app.state.runtime.settings.uptime.status_page_cache_seconds)
    cache: PageCache = uptime.page_cache
    return cache


def _not_found(slug: str) -> JSONResponse:
    return JSONResponse({"detail": f"status page {slug!r} not found"}, status_code=404, headers=SECURITY_HEADERS)


def _iso(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def readable_time(epoch: float) -> Markup:
    """A <time> in readable UTC, which static/status-page.js shows in the reader's zone and language.

    >>> str(readable_time(1796652300.0))
    '<time datetime="2026-12-07T14:05:00Z">7 Dec 2026, 14:05 UTC</time>'
    """
    moment = dt.datetime.fromtimestamp(epoch, dt.UTC)
    return Markup(f'<time datetime="{_iso(epoch)}">{moment.day} {moment:%b %Y, %H:%M} UTC</time>')


def page_title(title: str) -> str:
    """The page's title as the browser tab and feeds name it: "Acme status", but "Acme Status" stays.

    >>> page_title("Acme"), page_title("Acme Status"), page_title("Status of Acme")
    ('Acme status', 'Acme Status', 'Status of Acme')
    """
    return title if re.search(r"\bstatus\b", title, re.IGNORECASE) else f"{title} status"


def _public_headers(seconds: float) -> dict[str, str]:
    return {"Cache-Control": f"public, max-age={max(1, int(seconds))}", **SECURITY_HEADERS}


async def page_html(request: Request) -> Response:
    slug = request.path_params["slug"]
    page = await _cache(request).get(request, slug)
    if page is None:
        return HTMLResponse("<h1>Status page not found</h1>", status_code=404, headers=SECURITY_HEADERS)
    cache = _cache(request)
    return HTMLResponse(cache.html(slug, page), headers=_public_headers(cache.seconds))


async def page_json(request: Request) -> Response:
    slug = request.path_params["slug"]
    page = await _cache(request).get(request, slug)
    if page is None:
        return _not_found(slug)
    return Response(orjson.dumps(page), media_type="application/json", headers=_public_headers(_cache(request).seconds))


def _incident_text(incident: dict[str, Any]) -> str:
    return "\n".join(f"{_iso(u['at'])} {u['status']}: {u['message']}" for u in incident["updates"])


def atom_feed(page: dict[str, Any], base: str) -> bytes:
    ns = "http://www.w3.org/2005/Atom"
    feed = ET.Element("feed", xmlns=ns)
    ET.SubElement(feed, "title").text = page_title(page["title"])
    ET.SubElement(feed, "id").text = f"{base}/status/{page['slug']}"
    ET.SubElement(feed, "link", href=f"{base}/status/{page['slug']}")
    updated = max([page["generated_at"], *(i["started_at"] for i in page["incidents"])])
    ET.SubElement(feed, "updated").text = _iso(updated)
    for incident in page["incidents"]:
        entry = ET.SubElement(feed, "entry")
        ET.SubElement(entry, "title").text = f"[{incident['status']}] {incident['title']}"
        ET.SubElement(entry, "id").text = f"{base}/status/{page['slug']}#incident-{incident['id']}"
        last = incident["updates"][0]["at"] if incident["updates"] else incident["started_at"]
        ET.SubElement(entry, "updated").text = _iso(last)
        ET.SubElement(entry, "published").text = _iso(incident["started_at"])
        ET.SubElement(entry, "content", type="text").text = _incident_text(incident)
        ET.SubElement(ET.SubElement(entry, "author"), "name").text = page["title"]
    return b'<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(feed, encoding="utf-8")


def rss_feed(page: dict[str, Any], base: str) -> bytes:
    rss = ET.Element("rss", version="2.0")
    channel = ET.SubElement(rss, "channel")
    ET.SubElement(channel, "title").text = page_title(page["title"])
    ET.SubElement(channel, "link").text = f"{base}/status/{page['slug']}"
    ET.SubElement(channel, "description").text = page["description"] or f"Incidents of {page['title']}"
    for incident in page["incidents"]:
        item = ET.SubElement(channel, "item")
        ET.SubElement(item, "title").text = f"[{incident['status']}] {incident['title']}"
        ET.SubElement(item, "guid", isPermaLink="false").text = f"{page['slug']}-incident-{incident['id']}"
        ET.SubElement(item, "pubDate").text = dt.datetime.fromtimestamp(
            incident["started_at"], dt.UTC).strftime("%a, %d %b %Y %H:%M:%S +0000")
        ET.SubElement(item, "description").text = _incident_text(incident)
    return b'<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(rss, encoding="utf-8")


async def page_feed(request: Request) -> Response:
    slug = request.path_params["slug"]
    page = await _cache(request).get(request, slug)
    if page is None:
        return _not_found(slug)
    base = request.app.state.runtime.settings.base_url
    if request.url.path.endswith(".atom"):
        return Response(atom_feed(page, base), media_type="application/atom+xml", headers=SECURITY_HEADERS)
    return Response(rss_feed(page, base), media_type="application/rss+xml", headers=SECURITY_HEADERS)


COLOURS = {"up": "#2e9e44", "degraded": "#d9a300", "maintenance": "#3b7dd8", "down": "#d93025", "unknown": "#888"}


def badge_svg(label: str, value: str, colour: str) -> str:
    """A flat two-part badge; widths estimated from the text (about 7 px a character)."""
    left, right = 10 + 7 * len(label), 10 + 7 * len(value)
    label, value = escape(label), escape(value)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{left + right}" height="20" role="img" '
        f'aria-label="{label}: {value}"><title>{label}: {value}</title>'
        f'<rect width="{left}" height="20" fill="#555"/><rect x="{left}" width="{right}" height="20" fill="{colour}"/>'
        f'<g fill="#fff" font-family="Verdana,DejaVu Sans,sans-serif" font-size="11" text-anchor="middle">'
        f'<text x="{left / 2}" y="14">{label}</text><text x="{left + right / 2}" y="14">{value}</text></g></svg>'
    )


def _svg(body: str, seconds: float) -> Response:
    return Response(body, media_type="image/svg+xml", headers=_public_headers(seconds))


async def status_badge(request: Request) -> Response:
    slug = request.path_params["slug"]
    page = await _cache(request).get(request, slug)
    if page is None:
        return _not_found(slug)
    words = {"up": "operational", "degraded": "degraded", "maintenance": "maintenance", "down": "outage",
             "unknown": "unknown"}
    return _svg(badge_svg("status", words[page["status"]], COLOURS[page["status"]]), _cache(request).seconds)


async def uptime_badge(request: Request) -> Response:
    slug = request.path_params["slug"]
    page = await _cache(request).get(request, slug)
    component = next((c for c in page["components"] if c["id"] == request.path_params["component_id"]), None) \
        if page else None
    if component is None:
        return JSONResponse({"detail": "component not found on this status page"}, status_code=404,
                            headers=SECURITY_HEADERS)
    percent = component["uptime_30d_percent"]
    colour = COLOURS["unknown"] if percent is None else COLOURS["up" if percent >= 99.9 else
                                                                 "degraded" if percent >= 99 else "down"]
    value = "no data" if percent is None else f"{percent:.2f}%"
    return _svg(badge_svg(f"uptime {component['name']}"[:40], value, colour), _cache(request).seconds)


routes = [
    Route("/status/{slug}", page_html, methods=["GET", "HEAD"]),
    Route("/status/{slug}/json", page_json, methods=["GET"]),
    Route("/status/{slug}/feed.atom", page_feed, methods=["GET"]),
    Route("/status/{slug}/rss", page_feed, methods=["GET"]),
    Route("/status/{slug}/badge.svg", status_badge, methods=["GET"]),
    Route("/status/{slug}/components/{component_id:int}/uptime.svg", uptime_badge, methods=["GET"]),
]
