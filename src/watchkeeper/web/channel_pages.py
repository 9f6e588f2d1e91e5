"""Adding, editing and deleting notification channels (receivers) in the browser, for administrators,
when the routing tree lives in the database (with `alerting.config_file` the file is the configuration
and these pages say so). The form is built from the receiver schema (web.channel_form)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response

from watchkeeper.alerting import routing_store as S
from watchkeeper.alerting.routing import Receiver
from watchkeeper.api import read, write
from watchkeeper.web.alert_pages import alerting_of, require_admin
from watchkeeper.web.channel_form import (
    KIND_TITLES,
    ChannelForm,
    general_fields,
    initial_values,
    read_channel_form,
    sections,
    single_integration,
)
from watchkeeper.web.project_pages import see_other
from watchkeeper.web.rule_form import FORM_ERROR
from watchkeeper.web.shell import PageError
from watchkeeper.web.viewer import CurrentPage, Page, checked_form

router = APIRouter(include_in_schema=False)


async def _editable(page: Page) -> Any:
    require_admin(page, "the notification channels")
    alerting = alerting_of(page.request)
    await alerting.refresh_config()
    if alerting.read_only:
        raise PageError(409, f"The channels come from {alerting.settings.config_file}: change them there (the "
                             "server reloads the file when it changes, or on SIGHUP).")
    return alerting


async def _receiver(page: Page, name: str) -> Receiver:
    alerting = await _editable(page)
    receiver: Receiver | None = alerting.config.receiver(name)
    if receiver is None:
        raise PageError(404, "No such channel.")
    return receiver


async def _form(page: Page, receiver: Receiver | None, values: dict[str, Any], errors: dict[str, str],
                status: int = 200) -> Response:
    return await page.render("channel_form.html", status=status, receiver=receiver, values=values, errors=errors,
                             general=general_fields(), sections=sections(), kind_titles=KIND_TITLES,
                             form_error=errors.get(FORM_ERROR),
                             single=receiver is None or single_integration(receiver) is not None)


@router.get("/alerting/channels/new")
async def new_channel(page: CurrentPage) -> Response:
    await _editable(page)
    return await _form(page, None, initial_values(), {})


@router.get("/alerting/channels/{name}/edit")
async def edit_channel(name: str, page: CurrentPage) -> Response:
    receiver = await _receiver(page, name)
    return await _form(page, receiver, initial_values(receiver), {})


async def _save(page: Page, posted: ChannelForm, replacing: Receiver | None) -> Response:
    if posted.receiver is None:
        return await _form(page, replacing, posted.values, posted.errors, status=422)
    receiver, now, actor = posted.receiver, page.now, page.viewer.principal.user_id
    name = replacing.name if replacing is not None else None
    try:  # checked on a reader first: a mistake never fails a transaction of the shared writer
        await read(page.request, lambda conn: S.check_receiver(conn, receiver, name))
        await write(page.request, lambda conn: S.save_receiver(conn, receiver, now=now, replacing=name, actor=actor))
    except S.RoutingInvalid as exc:
        field = exc.field if exc.field in ("name", "kind") else FORM_ERROR
        kind, _, rest = exc.field.partition("_configs.0.")
        if rest and f"{kind}.{rest}" in posted.values:  # webhook_configs.0.url → the form's webhook.url
            field = f"{kind}.{rest}"
        return await _form(page, replacing, posted.values, {field: exc.message}, status=422)
    await alerting_of(page.request).refresh_config()
    return see_other(f"/alerting/channels?done=channel-{'saved' if replacing else 'added'}")


@router.post("/alerting/channels")
async def create_channel(page: CurrentPage) -> Response:
    form = await checked_form(page.request, page.viewer)
    await _editable(page)
    return await _save(page, read_channel_form(form), None)


@router.post("/alerting/channels/{name}/edit")
async def save_channel(name: str, page: CurrentPage) -> Response:
    form = await checked_form(page.request, page.viewer)
    receiver = await _receiver(page, name)
    if single_integration(receiver) is None:
        raise PageError(409, "This channel has several integrations: change it through the REST API.")
    return await _save(page, read_channel_form(form), receiver)


@router.post("/alerting/channels/{name}/delete")
async def delete_channel(name: str, page: CurrentPage) -> Response:
    await checked_form(page.request, page.viewer)
    receiver = await _receiver(page, name)
    now, actor = page.now, page.viewer.principal.user_id
    try:
        await read(page.request, lambda conn: S.check_receiver_delete(conn, receiver.name))
        await write(page.request, lambda conn: S.delete_receiver(conn, receiver.name, now=now, actor=actor))
    except S.RoutingConflict as exc:
        raise PageError(409, f"Not deleted: {exc}.") from None
    await alerting_of(page.request).refresh_config()
    return see_other("/alerting/channels?done=channel-deleted")
