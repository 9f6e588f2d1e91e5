"""REST API of the receivers and the routing tree (`/api/v1/alerting/receivers`, `/alerting/routes`), for
admins: the tree spans every project.

A receiver is Alertmanager's: a name and lists of integrations (`webhook_configs`, `email_configs`,
`slack_configs`, …), shown with secrets masked; sending a masked value back keeps the stored one. Routes
have ids; a child is added under its `parent_id`. With `alerting.config_file` set, the file is the
configuration: everything is readable and every change is a 409 that says to edit the file.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Request
from fastapi.exceptions import RequestValidationError
from pydantic import Field

from watchkeeper.alerting import routing_store as S
from watchkeeper.alerting.routing import Receiver
from watchkeeper.api import CONFLICT, MAX_INT, AdminEditor, AdminReader, read, runtime_of, write

router = APIRouter(tags=["alerting"])
RouteId = Annotated[int, Path(ge=1, le=MAX_INT)]
ReceiverName = Annotated[str, Path(min_length=1, max_length=200)]


class RouteCreate(S.RouteIn):
    parent_id: int = Field(ge=1, le=MAX_INT, description="the route this one is a child of")
    position: int | None = Field(None, ge=0, le=S.MAX_ROUTES, description="place among the siblings (default last)")


class RouteUpdate(S.RouteIn):
    position: int | None = Field(None, ge=0, le=S.MAX_ROUTES, description="place among the siblings (default kept)")


def _alerting(request: Request) -> Any:
    return request.app.state.alerting


def _source(alerting: Any) -> dict[str, Any]:
    """Where the configuration comes from, for every answer: the UI and scripts say why it is read-only."""
    out: dict[str, Any] = {"source": "file" if alerting.source == "file" else "database",
                           "read_only": alerting.read_only}
    if alerting.source == "file":
        out["file"] = str(alerting.settings.config_file)
        out["file_error"] = alerting.config_error
    return out


async def _editable(request: Request) -> Any:
    alerting = _alerting(request)
    if alerting.read_only:
        where = alerting.settings.config_file
        raise HTTPException(409, f"the receivers and routes come from alerting.config_file {where}: change them "
                                 "there (the server reloads the file when it changes, or on SIGHUP)")
    return alerting


async def _changed(request: Request, check: Any, function: Any) -> Any:
    """A change through the writer, its `check` run on a reader first (a mistake never fails a writer
    transaction); the tree's own errors as 422 naming the field, conflicts as 409. This process takes the
    change at once; the others at their next round."""
    try:
        await read(request, check)
        result = await write(request, function)
    except S.RoutingInvalid as exc:  # answered like any body that fails validation: 422 naming the field
        raise RequestValidationError([{"loc": ("body", exc.field), "msg": exc.message, "type": "value_error"}]) \
            from None
    except S.RoutingConflict as exc:
        raise HTTPException(409, str(exc)) from None
    await _alerting(request).refresh_config()
    return result


@router.get("/alerting/receivers")
async def receivers(request: Request, owner: AdminReader) -> dict[str, Any]:
    """The receivers and their integrations, secrets masked (`••••••`; URLs cut to their host)."""
    alerting = _alerting(request)
    await alerting.refresh_config()
    return {**_source(alerting), "receivers": [_receiver_view(r) for r in alerting.config.receivers]}


def _receiver_view(receiver: Receiver) -> dict[str, Any]:
    return {**S.masked_receiver(receiver), "integrations": sorted(receiver.integrations())}


@router.get("/alerting/receivers/{name}")
async def get_receiver(request: Request, name: ReceiverName, owner: AdminReader) -> dict[str, Any]:
    alerting = _alerting(request)
    await alerting.refresh_config()
    found = alerting.config.receiver(name)
    if found is None:
        raise HTTPException(404, f"receiver {name} not found")
    return _receiver_view(found)


@router.post("/alerting/receivers", status_code=201, responses=CONFLICT)
async def create_receiver(request: Request, body: Receiver, owner: AdminEditor) -> dict[str, Any]:
    """Add a receiver, e.g. `{"name": "ops", "webhook_configs": [{"url": "https://hooks.example.com/T0/x"}]}`
    or `{"name": "mail", "email_configs": [{"to": "ops@example.com", "smarthost": "smtp.example.com:587",
    "auth_username": "ops", "auth_password": "…"}]}`."""
    await _editable(request)
    now = runtime_of(request).clock.now()
    saved = await _changed(request, lambda conn: S.check_receiver(conn, body, None),
                           lambda conn: S.save_receiver(conn, body, now=now, actor=owner.user_id))
    return _receiver_view(saved)


@router.put("/alerting/receivers/{name}", responses=CONFLICT)
async def replace_receiver(request: Request, name: ReceiverName, body: Receiver, owner: AdminEditor) -> dict[str, Any]:
    """Replace a receiver (a new `name` renames it; routes follow). Masked values sent back are kept."""
    await _editable(request)
    now = runtime_of(request).clock.now()
    try:
        saved = await _changed(request, lambda conn: S.check_receiver(conn, body, name),
                               lambda conn: S.save_receiver(conn, body, now=now, replacing=name,
                                                                                  actor=owner.user_id))
    except LookupError:
        raise HTTPException(404, f"receiver {name} not found") from None
    return _receiver_view(saved)


@router.delete("/alerting/receivers/{name}", status_code=204, responses=CONFLICT)
async def delete_receiver(request: Request, name: ReceiverName, owner: AdminEditor) -> None:
    """409 while a route sends to it."""
    await _editable(request)
    now = runtime_of(request).clock.now()
    try:
        await _changed(request, lambda conn: S.check_receiver_delete(conn, name),
                       lambda conn: S.delete_receiver(conn, name, now=now, actor=owner.user_id))
    except LookupError:
        raise HTTPException(404, f"receiver {name} not found") from None


@router.get("/alerting/routes")
async def routes(request: Request, owner: AdminReader) -> dict[str, Any]:
    """The routing tree from the root, each route with its own settings (null: inherited from the parent)."""
    alerting = _alerting(request)
    await alerting.refresh_config()
    if alerting.source == "database":
        tree = (await read(request, S.stored_tree)).to_api()
    else:
        tree = S.file_tree(alerting.config)
    return {**_source(alerting), "route": tree}


@router.get("/alerting/routes/{route_id}")
async def get_route(request: Request, route_id: RouteId, owner: AdminReader) -> dict[str, Any]:
    found = await read(request, lambda conn: S.get_route(conn, route_id))
    if found is None or _alerting(request).source != "database":
        raise HTTPException(404, f"route {route_id} not found")
    return dict(found.to_api())


@router.post("/alerting/routes", status_code=201, responses=CONFLICT)
async def create_route(request: Request, body: RouteCreate, owner: AdminEditor) -> dict[str, Any]:
    """Add a child route, e.g. `{"parent_id": 1, "matchers": ["severity=\\"critical\\""], "receiver": "ops",
    "group_wait": "10s"}`."""
    await _editable(request)
    now = runtime_of(request).clock.now()
    created = await _changed(request, lambda conn: S.check_new_route(conn, body.parent_id, body),
                             lambda conn: S.add_route(conn, body.parent_id, body, now=now,
                                                               position=body.position, actor=owner.user_id))
    return dict(created.to_api())


@router.put("/alerting/routes/{route_id}", responses=CONFLICT)
async def replace_route(request: Request, route_id: RouteId, body: RouteUpdate, owner: AdminEditor) -> dict[str, Any]:
    await _editable(request)
    now = runtime_of(request).clock.now()
    try:
        replaced = await _changed(request, lambda conn: S.check_route(conn, route_id, body),
                                  lambda conn: S.replace_route(conn, route_id, body, now=now,
                                                                        position=body.position, actor=owner.user_id))
    except LookupError:
        raise HTTPException(404, f"route {route_id} not found") from None
    return dict(replaced.to_api())


@router.delete("/alerting/routes/{route_id}", status_code=204, responses=CONFLICT)
async def delete_route(request: Request, route_id: RouteId, owner: AdminEditor) -> None:
    """The route and its children; the root cannot go (409)."""
    await _editable(request)
    now = runtime_of(request).clock.now()
    try:
        await _changed(request, lambda conn: S.check_route_delete(conn, route_id),
                       lambda conn: S.delete_route(conn, route_id, now=now, actor=owner.user_id))
    except LookupError:
        raise HTTPException(404, f"route {route_id} not found") from None
