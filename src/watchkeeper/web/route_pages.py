"""Adding, editing and deleting routes of the routing tree in the browser, for administrators, when the
tree lives in the database. A route's settings are those of the REST API (alerting.routing_store.RouteIn):
blank ones are inherited from the parent, as the routing page shows."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response
from pydantic import ValidationError
from starlette.datastructures import FormData

from watchkeeper.alerting import routing_store as S
from watchkeeper.api import MAX_INT, read, write
from watchkeeper.web.alert_pages import alerting_of, require_admin
from watchkeeper.web.project_pages import see_other
from watchkeeper.web.rule_form import FORM_ERROR
from watchkeeper.web.shell import PageError
from watchkeeper.web.viewer import CurrentPage, Page, checked_form

router = APIRouter(include_in_schema=False)
TIMERS = ("group_wait", "group_interval", "repeat_interval")


async def _editable(page: Page) -> Any:
    require_admin(page, "the routing tree")
    alerting = alerting_of(page.request)
    await alerting.refresh_config()
    if alerting.read_only:
        raise PageError(409, f"The routing tree comes from {alerting.settings.config_file}: change it there (the "
                             "server reloads the file when it changes, or on SIGHUP).")
    return alerting


async def _route(page: Page, route_id: int) -> S.StoredRoute:
    found = await read(page.request, lambda conn: S.get_route(conn, route_id)) if route_id <= MAX_INT else None
    if found is None:
        raise PageError(404, "No such route.")
    return found


def _values(settings: S.RouteIn | None) -> dict[str, str | bool]:
    stored = settings.stored() if settings is not None else {}
    return {"receiver": stored.get("receiver", ""), "matchers": "\n".join(stored.get("matchers", [])),
            "group_by": ", ".join(stored["group_by"]) if "group_by" in stored else "",
            "continue": bool(stored.get("continue")), **{t: stored.get(t, "") for t in TIMERS}}


def _posted(form: FormData) -> dict[str, str | bool]:
    def text(name: str, limit: int = 20_000) -> str:
        value = form.get(name)
        return value.strip()[:limit] if isinstance(value, str) else ""

    return {"receiver": text("receiver", 200), "matchers": text("matchers"), "group_by": text("group_by", 5000),
            "continue": form.get("continue") == "on", **{t: text(t, 50) for t in TIMERS}}


def _read(values: dict[str, Any]) -> tuple[S.RouteIn | None, dict[str, str]]:
    """The posted values as a RouteIn, or the errors by field."""
    data: dict[str, Any] = {
        "receiver": values["receiver"] or None,
        "matchers": [line.strip() for line in str(values["matchers"]).splitlines() if line.strip()],
        "group_by": [p.strip() for p in str(values["group_by"]).split(",") if p.strip()] or None,
        "continue": values["continue"], **{t: values[t] or None for t in TIMERS}}
    try:
        return S.RouteIn.model_validate(data), {}
    except ValidationError as exc:
        errors: dict[str, str] = {}
        for error in exc.errors():
            loc = [str(p) for p in error["loc"]]
            name = loc[0] if loc and loc[0] in values else FORM_ERROR
            message = str(error["msg"]).removeprefix("Value error, ")
            if name == "matchers" and len(loc) > 1 and loc[1].isdigit():
                message = f"line {int(loc[1]) + 1}: {message}"
            errors[name] = f"{errors[name]}; {message}" if name in errors else message
        return None, errors


async def _form(page: Page, *, route: S.StoredRoute | None, parent: S.StoredRoute | None, values: dict[str, Any],
                errors: dict[str, str], status: int = 200) -> Response:
    alerting = alerting_of(page.request)
    return await page.render("route_form.html", status=status, route=route, parent=parent, values=values,
                             errors=errors, form_error=errors.get(FORM_ERROR),
                             receivers=[r.name for r in alerting.config.receivers],
                             root=route is not None and route.parent_id is None)


@router.get("/alerting/routes/new")
async def new_route(page: CurrentPage) -> Response:
    await _editable(page)
    parent_text = page.request.query_params.get("parent", "")
    if not parent_text.isdigit():
        raise PageError(404, "Add a route from the Routing page: it needs the route it goes under.")
    parent = await _route(page, int(parent_text))
    return await _form(page, route=None, parent=parent, values=_values(None), errors={})


@router.get("/alerting/routes/{route_id}")
async def edit_route(route_id: int, page: CurrentPage) -> Response:
    await _editable(page)
    route = await _route(page, route_id)
    return await _form(page, route=route, parent=None, values=_values(route.settings), errors={})


async def _save(page: Page, values: dict[str, Any], route: S.StoredRoute | None,
                parent: S.StoredRoute | None) -> Response:
    settings, errors = _read(values)
    if settings is not None:
        now, actor = page.now, page.viewer.principal.user_id
        try:
            # Checked on a reader first: a mistake never fails a transaction of the shared writer.
            if route is None:
                assert parent is not None
                await read(page.request, lambda conn: S.check_new_route(conn, parent.id, settings))
                await write(page.request, lambda conn: S.add_route(conn, parent.id, settings, now=now,
                                                                      actor=actor))
            else:
                await read(page.request, lambda conn: S.check_route(conn, route.id, settings))
                await write(page.request, lambda conn: S.replace_route(conn, route.id, settings, now=now,
                                                                          actor=actor))
        except S.RoutingInvalid as exc:
            errors = {exc.field if exc.field in values else FORM_ERROR: exc.message}
    if errors:
        return await _form(page, route=route, parent=parent, values=values, errors=errors, status=422)
    await alerting_of(page.request).refresh_config()
    return see_other(f"/alerting/routing?done=route-{'saved' if route else 'added'}")


@router.post("/alerting/routes")
async def create_route(page: CurrentPage) -> Response:
    form = await checked_form(page.request, page.viewer)
    await _editable(page)
    parent_text = form.get("parent_id")
    if not isinstance(parent_text, str) or not parent_text.isdigit():
        raise PageError(422, "The form lost the route it goes under: add it again from the Routing page.")
    parent = await _route(page, int(parent_text))
    return await _save(page, _posted(form), None, parent)


@router.post("/alerting/routes/{route_id}")
async def save_route(route_id: int, page: CurrentPage) -> Response:
    form = await checked_form(page.request, page.viewer)
    await _editable(page)
    return await _save(page, _posted(form), await _route(page, route_id), None)


@router.post("/alerting/routes/{route_id}/delete")
async def delete_route(route_id: int, page: CurrentPage) -> Response:
    await checked_form(page.request, page.viewer)
    await _editable(page)
    route = await _route(page, route_id)
    now, actor = page.now, page.viewer.principal.user_id
    try:
        await read(page.request, lambda conn: S.check_route_delete(conn, route.id))
        await write(page.request, lambda conn: S.delete_route(conn, route.id, now=now, actor=actor))
    except S.RoutingConflict as exc:
        raise PageError(409, f"Not deleted: {exc}.") from None
    await alerting_of(page.request).refresh_config()
    return see_other("/alerting/routing?done=route-deleted")
