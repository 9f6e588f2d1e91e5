"""Pages for on-call schedules: the list (who is on call now, next hand-off), a schedule's page (next
shifts, overrides), and the schedule editor. Everyone logged in reads them; admins change them, as in
the REST API (`watchkeeper.alerting.incident_api`). The list shows the escalation policies of the
viewer's teams (all of them to an admin)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response
from pydantic import ValidationError
from sqlalchemy import Connection
from starlette.datastructures import FormData

from watchkeeper.alerting import escalation as E
from watchkeeper.alerting import oncall as O
from watchkeeper.api import MAX_INT, read, runtime_of, write
from watchkeeper.auth.projects import list_projects
from watchkeeper.auth.teams import list_teams
from watchkeeper.auth.users import User, list_users
from watchkeeper.web.form_errors import human_message, plain_words
from watchkeeper.web.project_pages import _text, see_other
from watchkeeper.web.shell import PageError
from watchkeeper.web.timerange import parse_local
from watchkeeper.web.viewer import CurrentPage, Page, checked_form

router = APIRouter(include_in_schema=False)
LAYER_SLOTS = 3
SHIFT_DAYS = 14


def _require_admin(page: Page) -> None:
    if not page.viewer.principal.is_admin:
        raise PageError(403, "Only administrators may change on-call schedules.")


def _users(conn: Connection) -> dict[int, User]:
    return {u.id: u for u in list_users(conn) if u.is_active}


@router.get("/oncall")
async def schedules_page(page: CurrentPage) -> Response:
    principal = page.viewer.principal

    def load(conn: Connection) -> dict[str, Any]:
        # Escalation policies belong to teams: the viewer's teams' policies (every one for an admin).
        mine = None if principal.role == "admin" else [t.id for t in list_teams(conn, user_id=principal.user_id)]
        return {"schedules": O.list_schedules(conn), "users": _users(conn), "policies": E.list_policies(conn, mine),
                "teams": {t.id: t.name for t in list_teams(conn)},
                "projects": {p.id: p.name for p in list_projects(conn)}}

    data = await read(page.request, load)
    rows = []
    for schedule in data["schedules"]:
        shifts = schedule.shifts(page.now, page.now + SHIFT_DAYS * 86400)
        rows.append({"schedule": schedule, "now": schedule.on_call_at(page.now), "shifts": shifts[:4]})
    names = {s.id: s.name for s in data["schedules"]}
    policies = [{"policy": p, "team": data["teams"].get(p.team_id) if p.team_id else None,
                 "project": data["projects"].get(p.project_id) if p.project_id else None,
                 "steps": [(step["minutes"], [_target(t, names, data["users"]) for t in step["targets"]])
                           for step in p.steps]} for p in data["policies"]]
    return await page.render("oncall.html", rows=rows, users=data["users"], policies=policies,
                             is_admin=page.viewer.principal.is_admin)


def _target(target: dict[str, Any], schedules: dict[int, str], users: dict[int, User]) -> str:
    """An escalation target in words: `schedule Platform`, `a@example.com`, `receiver slack`."""
    if target["kind"] == "receiver":
        return f"receiver {target['name']}"
    if target["kind"] == "schedule":
        return f"on call in {schedules.get(target['id'], 'a deleted schedule')}"
    user = users.get(target["id"])
    return user.email if user else "a deactivated user"


async def _schedule(page: Page, schedule_id: int) -> O.Schedule:
    schedule = await read(page.request, lambda conn: O.get_schedule(conn, schedule_id)) \
        if schedule_id <= MAX_INT else None
    if schedule is None:
        raise PageError(404, "No such schedule.")
    return schedule


def _layer_rows(schedule: O.Schedule | None, users: dict[int, User]) -> list[dict[str, Any]]:
    layers = list(schedule.layers) if schedule else []
    rows = []
    for index in range(max(LAYER_SLOTS, len(layers))):
        layer = layers[index] if index < len(layers) else None
        rows.append({"rotation": layer["rotation"] if layer else "weekly",
                     "length_days": layer["length_days"] if layer else 7,
                     "handoff": layer["handoff"] if layer else "09:00",
                     "start_date": layer["start_date"] if layer else "",
                     "users": ", ".join(users[u].email if u in users else str(u) for u in layer["users"])
                     if layer else ""})
    return rows


@router.get("/oncall/{schedule_id:int}")
async def schedule_page(schedule_id: int, page: CurrentPage) -> Response:
    return await _render_schedule(page, await _schedule(page, schedule_id))


async def _render_schedule(page: Page, schedule: O.Schedule, override: dict[str, str] | None = None,
                           errors: dict[str, str] | None = None, status: int = 200) -> Response:
    users = await read(page.request, _users)
    return await page.render(
        "oncall_schedule.html", status=status, schedule=schedule, users=users, now_user=schedule.on_call_at(page.now),
        shifts=schedule.shifts(page.now, page.now + SHIFT_DAYS * 86400), days=SHIFT_DAYS,
        is_admin=page.viewer.principal.is_admin, override=override or {}, errors=errors or {})


@router.get("/oncall/new")
async def new_schedule_page(page: CurrentPage) -> Response:
    _require_admin(page)
    users = await read(page.request, _users)
    return await page.render("oncall_edit.html", schedule=None, layers=_layer_rows(None, users), error=None,
                             name="", time_zone=page.viewer.zone.key)


@router.get("/oncall/{schedule_id:int}/edit")
async def edit_schedule_page(schedule_id: int, page: CurrentPage) -> Response:
    _require_admin(page)
    schedule = await _schedule(page, schedule_id)
    users = await read(page.request, _users)
    return await page.render("oncall_edit.html", schedule=schedule, layers=_layer_rows(schedule, users), error=None,
                             name=schedule.name, time_zone=schedule.time_zone)


def _schedule_from(form: FormData, users: dict[int, User]) -> O.ScheduleIn:
    """The editor's fields as a ScheduleIn; ValueError naming the field when one is wrong."""
    by_email = {u.email: u.id for u in users.values()}
    layers = []
    for index in range(LAYER_SLOTS * 2):
        emails = [e.strip().lower() for e in _text(form, f"users_{index}", 5000).split(",") if e.strip()]
        if not emails:
            continue
        unknown = [e for e in emails if e not in by_email]
        if unknown:
            raise ValueError(f"layer {index + 1}: no active user {', '.join(unknown)}")
        layers.append({"rotation": _text(form, f"rotation_{index}"), "handoff": _text(form, f"handoff_{index}"),
                       "length_days": _text(form, f"length_days_{index}") or None,
                       "start_date": _text(form, f"start_date_{index}"), "users": [by_email[e] for e in emails]})
    if not layers:
        raise ValueError("a schedule needs at least one layer with users")
    try:
        return O.ScheduleIn.model_validate({"name": _text(form, "name"), "time_zone": _text(form, "time_zone"),
                                            "layers": layers})
    except ValidationError as exc:
        problem = exc.errors()[0]
        raise ValueError(f"{_where(problem['loc'])}: {human_message(problem)}") from None


def _where(loc: tuple[Any, ...]) -> str:
    """("layers", 0, "handoff") → "layer 1, hand-off time"."""
    names = {"name": "name", "time_zone": "time zone", "handoff": "hand-off time", "rotation": "rotation",
             "length_days": "length in days", "start_date": "start date", "users": "users"}
    if len(loc) >= 3 and loc[0] == "layers" and isinstance(loc[1], int):
        return f"layer {loc[1] + 1}, {names.get(str(loc[2]), str(loc[2]))}"
    return names.get(str(loc[0]), str(loc[0])) if loc else "schedule"


async def _save(page: Page, schedule_id: int | None) -> Response:
    form = await checked_form(page.request, page.viewer)
    _require_admin(page)
    users = await read(page.request, _users)
    now = runtime_of(page.request).clock.now()
    try:
        body = _schedule_from(form, users)
        if schedule_id is None:
            saved = await write(page.request, lambda conn: O.create_schedule(conn, body, now=now))
        else:
            saved = await write(page.request, lambda conn: O.replace_schedule(conn, schedule_id, body, now=now))
    except ValueError as exc:  # ScheduleError too
        layers = [{"rotation": _text(form, f"rotation_{i}"), "length_days": _text(form, f"length_days_{i}"),
                   "handoff": _text(form, f"handoff_{i}"), "start_date": _text(form, f"start_date_{i}"),
                   "users": _text(form, f"users_{i}", 5000)} for i in range(LAYER_SLOTS)]
        schedule = await _schedule(page, schedule_id) if schedule_id is not None else None
        return await page.render("oncall_edit.html", status=422, schedule=schedule, layers=layers, error=str(exc),
                                 name=_text(form, "name"), time_zone=_text(form, "time_zone"))
    if saved is None:
        raise PageError(404, "No such schedule.")
    return see_other(f"/oncall/{saved.id}")


@router.post("/oncall")
async def create_schedule(page: CurrentPage) -> Response:
    return await _save(page, None)


@router.post("/oncall/{schedule_id:int}")
async def update_schedule(schedule_id: int, page: CurrentPage) -> Response:
    return await _save(page, schedule_id)


@router.post("/oncall/{schedule_id:int}/delete")
async def delete_schedule(schedule_id: int, page: CurrentPage) -> Response:
    await checked_form(page.request, page.viewer)
    _require_admin(page)
    await write(page.request, lambda conn: O.delete_schedule(conn, schedule_id))
    return see_other("/oncall")


@router.post("/oncall/{schedule_id:int}/overrides")
async def add_override(schedule_id: int, page: CurrentPage) -> Response:
    form = await checked_form(page.request, page.viewer)
    _require_admin(page)
    schedule = await _schedule(page, schedule_id)
    posted = {name: _text(form, name) for name in ("user_id", "starts_at", "ends_at")}
    errors: dict[str, str] = {}
    if not posted["user_id"].isdigit() or int(posted["user_id"]) > MAX_INT:
        errors["user_id"] = "choose who is on call"
    times: dict[str, float] = {}
    for name in ("starts_at", "ends_at"):
        try:
            times[name] = parse_local(posted[name], schedule.zone)
        except ValueError as exc:
            errors[name] = str(exc)
    if not errors:
        now = runtime_of(page.request).clock.now()
        try:
            await write(page.request, lambda conn: O.add_override(
                conn, schedule_id, int(posted["user_id"]), times["starts_at"], times["ends_at"], now=now))
        except O.ScheduleError as exc:
            field, _, message = str(exc).partition(": ")
            errors[field if field in posted else "form"] = plain_words(message or str(exc))
    if errors:
        return await _render_schedule(page, schedule, posted, errors, status=422)
    return see_other(f"/oncall/{schedule_id}#overrides")


@router.post("/oncall/{schedule_id:int}/overrides/{override_id:int}/delete")
async def delete_override(schedule_id: int, override_id: int, page: CurrentPage) -> Response:
    await checked_form(page.request, page.viewer)
    _require_admin(page)
    if override_id <= MAX_INT and schedule_id <= MAX_INT:
        await write(page.request, lambda conn: O.delete_override(conn, schedule_id, override_id))
    return see_other(f"/oncall/{schedule_id}#overrides")

