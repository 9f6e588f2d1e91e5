"""Pages for incidents: the list (filter by state and severity), the incident page (timeline, state
buttons, notes, post-mortem editor and export), and the signed links from notifications.

The rules are the REST API's (`watchkeeper.alerting.incident_api`): who sees a project sees its
incidents, who may change it may move them; the links need no login but work once and expire.
"""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import Connection

from watchkeeper.alerting import escalation as E
from watchkeeper.alerting import incidents as I
from watchkeeper.alerting import links
from watchkeeper.alerting.incident_api import may_change, may_see, visible_projects
from watchkeeper.alerting.incident_metrics import incident_metrics
from watchkeeper.alerting.links import cause_title
from watchkeeper.alerting.responder import responder_of
from watchkeeper.api import MAX_INT, read, runtime_of, write
from watchkeeper.web.project_pages import _text, see_other
from watchkeeper.web.shell import PAGE_HEADERS, PageError, html_page
from watchkeeper.web.viewer import CurrentPage, Page, checked_form

router = APIRouter(include_in_schema=False)
NEXT_STATES = {"triggered": ["acknowledged", "investigating", "mitigated", "resolved"],
               "acknowledged": ["investigating", "mitigated", "resolved"], "investigating": ["mitigated", "resolved"],
               "mitigated": ["resolved"], "resolved": []}
METRIC_MONTHS = 3
BUTTONS = {"acknowledged": "Acknowledge", "investigating": "Investigating", "mitigated": "Mitigated",
           "resolved": "Resolve"}


def _choice(page: Page, name: str, allowed: tuple[str, ...]) -> str:
    value = page.request.query_params.get(name, "")
    return value if value in allowed else ""


@router.get("/incidents")
async def incidents_page(page: CurrentPage) -> Response:
    state = _choice(page, "state", (*I.STATES, "open"))
    severity = _choice(page, "severity", I.SEVERITIES)
    states = [s for s in I.STATES if s != "resolved"] if state == "open" else [state] if state else None
    visible = visible_projects(page.viewer.principal)

    def load(conn: Connection) -> dict[str, Any]:
        return {"incidents": I.list_incidents(conn, states=states, severity=severity or None, project_ids=visible,
                                              limit=200),
                "metrics": incident_metrics(conn, page.now, METRIC_MONTHS, visible)}

    data = await read(page.request, load)
    return await page.render("incidents.html", state=state, severity=severity, states=I.STATES,
                             severities=I.SEVERITIES, can_declare=page.viewer.principal.may_write,
                             months=METRIC_MONTHS, duration=duration, **data)


def duration(seconds: float | None) -> str:
    """`42 s`, `7 min`, `3.5 h` for the metrics table.

    >>> duration(90), duration(None)
    ('2 min', '—')
    """
    if seconds is None:
        return "—"
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


@router.post("/incidents")
async def declare_incident(page: CurrentPage) -> Response:
    form = await checked_form(page.request, page.viewer)
    principal = page.viewer.principal
    if not principal.may_write:
        raise PageError(403, "Your role may not declare incidents.")
    title, severity = _text(form, "title", 500), _text(form, "severity")
    if not title or severity not in I.SEVERITIES:
        raise PageError(422, "An incident needs a title and a severity.")
    now = runtime_of(page.request).clock.now()

    def declare(conn: Connection) -> I.Incident:
        return I.declare(conn, title=title, severity=severity, now=now, created_by=principal.user_id,
                         escalation_policy_id=E.policy_for(conn, None), source=principal.email)

    incident = await write(page.request, declare)
    return see_other(f"/incidents/{incident.id}")


async def _incident(page: Page, incident_id: int, *, change: bool = False) -> I.Incident:
    incident = await read(page.request, lambda conn: I.get_incident(conn, incident_id)) \
        if incident_id <= MAX_INT else None
    if incident is None or not may_see(page.viewer.principal, incident):
        raise PageError(404, "No such incident.")
    if change and not may_change(page.viewer.principal, incident):
        raise PageError(403, "Your role may look at this incident but not change it.")
    return incident


@router.get("/incidents/{incident_id:int}")
async def incident_page(incident_id: int, page: CurrentPage) -> Response:
    incident = await _incident(page, incident_id)

    def load(conn: Connection) -> dict[str, Any]:
        return {"timeline": I.timeline(conn, incident_id), "alerts": I.incident_alerts(conn, incident_id),
                "postmortem": I.postmortem(conn, incident_id), "source": I.incident_source(conn, incident_id)}

    data = await read(page.request, load)
    data["source_title"] = cause_title(data["source"]) if data["source"] else None
    return await page.render("incident.html", incident=incident, next_states=NEXT_STATES[incident.state],
                             buttons=BUTTONS, can_change=may_change(page.viewer.principal, incident),
                             saved=page.request.query_params.get("saved") == "1", **data)


@router.post("/incidents/{incident_id:int}/state")
async def change_state(incident_id: int, page: CurrentPage) -> Response:
    form = await checked_form(page.request, page.viewer)
    await _incident(page, incident_id, change=True)
    state = _text(form, "state")
    now = runtime_of(page.request).clock.now()
    actor = page.viewer.principal.user_id
    try:
        await write(page.request, lambda conn: I.change_state(conn, incident_id, state, now=now, actor_user_id=actor,
                                                              via="the incident page"))
    except I.IncidentError as exc:
        raise PageError(409, str(exc)) from None
    return see_other(f"/incidents/{incident_id}")


@router.post("/incidents/{incident_id:int}/notes")
async def add_note(incident_id: int, page: CurrentPage) -> Response:
    form = await checked_form(page.request, page.viewer)
    await _incident(page, incident_id, change=True)
    text = _text(form, "text", 10_000)
    if not text:
        raise PageError(422, "A note needs some text.")
    now = runtime_of(page.request).clock.now()
    actor = page.viewer.principal.user_id
    await write(page.request, lambda conn: I.add_note(conn, incident_id, text, now=now, actor_user_id=actor))
    return see_other(f"/incidents/{incident_id}#timeline")


@router.post("/incidents/{incident_id:int}/postmortem")
async def save_postmortem(incident_id: int, page: CurrentPage) -> Response:
    form = await checked_form(page.request, page.viewer)
    await _incident(page, incident_id, change=True)
    value = form.get("markdown")
    markdown = value.replace("\r\n", "\n") if isinstance(value, str) else ""
    if "\x00" in markdown or len(markdown) > 200_000:
        raise PageError(422, "The post-mortem may hold at most 200,000 characters and no NUL characters.")
    now = runtime_of(page.request).clock.now()
    actor = page.viewer.principal.user_id
    await write(page.request, lambda conn: I.save_postmortem(conn, incident_id, markdown, now=now,
                                                             actor_user_id=actor))
    return see_other(f"/incidents/{incident_id}?saved=1#postmortem")


@router.get("/incidents/{incident_id:int}/postmortem.md")
async def export_postmortem(incident_id: int, page: CurrentPage) -> Response:
    await _incident(page, incident_id)
    text = await read(page.request, lambda conn: I.postmortem(conn, incident_id))
    headers = PAGE_HEADERS | {"Content-Disposition": f'attachment; filename="incident-{incident_id}-postmortem.md"'}
    return Response(text, media_type="text/markdown; charset=utf-8", headers=headers)


# --- signed links from notifications (no login) ---

LINK_STATUS = {"forged": 404, "expired": 410, "used": 410}


def _link_page(request: Request, status: int = 200, **context: Any) -> Response:
    values = {"request": request, "zone": ZoneInfo("UTC"), "incident": None, "done": None, "refused": None,
              "action": None, "token": ""} | context
    return html_page("incident_link.html", values, status=status)


async def _checked_link(request: Request, token: str) -> tuple[links.ActionLink, I.Incident]:
    pager = await responder_of(request.app).pager()
    link = links.verify(pager.secret, token, now=runtime_of(request).clock.now())
    incident = await read(request, lambda conn: I.get_incident(conn, link.incident_id))
    if incident is None:
        raise links.LinkRefused("forged", "This incident does not exist any more.")
    return link, incident


@router.get("/incident-links/{token}")
async def link_page(request: Request, token: str) -> Response:
    """What the link will do, with a button: mail scanners open links, and must not acknowledge."""
    try:
        link, incident = await _checked_link(request, token)
    except links.LinkRefused as exc:
        return _link_page(request, LINK_STATUS[exc.reason], refused=str(exc))
    return _link_page(request, incident=incident, action=link.action, token=token)


@router.post("/incident-links/{token}")
async def use_link(request: Request, token: str) -> Response:
    now = runtime_of(request).clock.now()
    try:
        link, incident = await _checked_link(request, token)
        state = "acknowledged" if link.action == "acknowledge" else "resolved"

        def act(conn: Connection) -> I.Incident:
            links.use(conn, link, now=now)
            current = I.get_incident(conn, link.incident_id)
            if current is None or I.STATES.index(current.state) >= I.STATES.index(state):
                return current or incident  # already there: the link is used up, nothing else changes
            return I.change_state(conn, link.incident_id, state, now=now, actor_user_id=None,
                                  via="a link in a notification")

        incident = await write(request, act)
    except links.LinkRefused as exc:
        return _link_page(request, LINK_STATUS[exc.reason], refused=str(exc))
    return _link_page(request, incident=incident, done=state)
