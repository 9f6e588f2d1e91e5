"""The Alertmanager API v2 (`/api/v2`), so Prometheus, Grafana and vmalert can send alerts to
Watchkeeper and amtool can list alerts and manage silences.

Alerts sent here have no project: they are routed by their labels like every other alert. Callers
authenticate with an admin API token (`Authorization: Bearer wk_…`; for Prometheus
`alerting.alertmanagers[].authorization.credentials`, for amtool `--http.config.file`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import orjson
import yaml
from fastapi import APIRouter, HTTPException, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import Connection

from watchkeeper import __version__
from watchkeeper.alerting import alerts as A
from watchkeeper.alerting.dispatch import alert_json, rfc3339
from watchkeeper.alerting.matchers import Matcher, matches_all, parse_matchers
from watchkeeper.alerting.silences import Silence, active_silences, expire_silence, get_silence, list_silences
from watchkeeper.alerting.silences import save_silence as store_silence
from watchkeeper.api import NOT_FOUND, AdminEditor, AdminReader, Text, read, runtime_of, write

router = APIRouter(tags=["alertmanager"])
LabelName = Annotated[str, Field(pattern=r"^[a-zA-Z_][a-zA-Z0-9_]*$", max_length=200)]
LabelValue = Annotated[Text, Field(max_length=2000)]
MAX_ALERTS_PER_POST = 10_000


def _epoch(value: datetime | None) -> float | None:
    if value is None or value.year <= 1:
        return None
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()


class PostableAlert(BaseModel):
    model_config = ConfigDict(extra="ignore")
    labels: dict[LabelName, LabelValue] = Field(min_length=1, max_length=100)
    annotations: dict[LabelName, LabelValue] = Field(default_factory=dict, max_length=100)
    startsAt: datetime | None = None  # Alertmanager's field names
    endsAt: datetime | None = None
    generatorURL: Annotated[Text, Field(max_length=2000)] | None = None


class ApiMatcher(BaseModel):
    name: LabelName
    value: Annotated[Text, Field(max_length=1000)]
    isRegex: bool
    isEqual: bool = True


class PostableSilence(BaseModel):
    model_config = ConfigDict(extra="ignore")
    id: Annotated[str, Field(max_length=36)] | None = None
    matchers: list[ApiMatcher] = Field(min_length=1, max_length=50)
    startsAt: datetime
    endsAt: datetime
    createdBy: Annotated[Text, Field(min_length=1, max_length=200)]
    comment: Annotated[Text, Field(min_length=1, max_length=2000)]

    @field_validator("matchers")
    @classmethod
    def _valid(cls, items: list[ApiMatcher]) -> list[ApiMatcher]:
        for item in items:
            Matcher.from_api(item.model_dump())
        return items


def receive_alerts(conn: Connection, posted: list[PostableAlert], now: float, resolve_timeout: float) -> int:
    """Store alerts sent by Prometheus and friends with Alertmanager's merge rules; returns how many."""
    fingerprints = {A.fingerprint(p.labels): p for p in posted}
    existing = {a.fingerprint: a for a in A.load_alerts(conn, external_only=True) if a.fingerprint in fingerprints}
    new: list[A.Alert] = []
    changed: list[A.Alert] = []
    for fp, item in fingerprints.items():
        starts = _epoch(item.startsAt) or now
        # No endsAt: the sender re-sends while the alert fires; it resolves resolve_timeout after.
        ends = _epoch(item.endsAt) or now + resolve_timeout
        old = existing.get(fp)
        if old is not None and not (old.resolved(now) and starts > (old.ends_at or 0)):
            old.starts_at = min(old.starts_at or starts, starts)
            old.ends_at, old.annotations, old.updated_at = ends, dict(item.annotations), now
            old.generator_url = item.generatorURL
            changed.append(old)
        else:
            alert = A.Alert(fp, dict(item.labels), dict(item.annotations), "firing", starts, starts, ends,
                            generator_url=item.generatorURL, updated_at=now)
            (changed if old is not None else new).append(alert)
    A.save_alerts(conn, new, changed)
    return len(fingerprints)


@router.post("/alerts")
async def post_alerts(request: Request, body: list[PostableAlert], owner: AdminEditor) -> dict[str, Any]:
    """Receive alerts (Prometheus' format); answers 200 like Alertmanager."""
    if len(body) > MAX_ALERTS_PER_POST:
        raise HTTPException(413, f"body: at most {MAX_ALERTS_PER_POST} alerts per request")
    for index, item in enumerate(body):
        starts, ends = _epoch(item.startsAt), _epoch(item.endsAt)
        if starts is not None and ends is not None and ends < starts:
            raise HTTPException(422, f"{index}.endsAt: must not be before startsAt")
    runtime = runtime_of(request)
    now, timeout = runtime.clock.now(), runtime.settings.alerting.resolve_timeout_seconds
    await write(request, lambda conn: receive_alerts(conn, body, now, timeout))
    return {}


def _alert_state(request: Request, conn: Connection, now: float) -> list[dict[str, Any]]:
    alerting = request.app.state.alerting
    found = [a for a in A.load_alerts(conn) if a.state == "firing" and not a.resolved(now)]
    silences = active_silences(conn, now)
    pairs = [(a.fingerprint, a.labels) for a in found]
    inhibited = alerting.dispatcher.inhibitor.inhibitors(pairs, pairs)
    out = []
    for alert in found:
        silenced_by = [s.id for s in silences if s.mutes(alert.labels, now)]
        inhibited_by = sorted(inhibited.get(alert.fingerprint, ()))
        view = alert_json(alert, now, alerting.runtime.settings.base_url)
        del view["status"]
        view |= {
            "receivers": [{"name": r.receiver} for r in alerting.dispatcher.root.match(alert.labels)],
            "updatedAt": rfc3339(alert.updated_at),
            "status": {"state": "suppressed" if silenced_by or inhibited_by else "active",
                       "silencedBy": silenced_by, "inhibitedBy": inhibited_by},
        }
        out.append(view)
    return out


def _filter(values: list[str]) -> list[Matcher]:
    try:
        return [m for value in values for m in parse_matchers(value if value.startswith("{") else [value])]
    except ValueError as exc:
        raise HTTPException(400, f"filter: {exc}") from None


@router.get("/alerts")
async def get_alerts(request: Request, owner: AdminReader, active: bool = True, silenced: bool = True,
                     inhibited: bool = True, unprocessed: bool = True,
                     filter: Annotated[list[str], Query()] = [],  # noqa: B006
                     receiver: str | None = None) -> list[dict[str, Any]]:
    matchers = _filter(filter)
    now = runtime_of(request).clock.now()
    views = await read(request, lambda conn: _alert_state(request, conn, now))
    result = []
    for view in views:
        status = view["status"]
        if status["state"] == "active" and not active:
            continue
        if (status["silencedBy"] and not silenced) or (status["inhibitedBy"] and not inhibited):
            continue
        if not matches_all(matchers, view["labels"]):
            continue
        if receiver is not None and not any(_full_match(receiver, r["name"]) for r in view["receivers"]):
            continue
        result.append(view)
    return result


def _full_match(pattern: str, value: str) -> bool:
    import re

    try:
        return re.fullmatch(pattern, value) is not None
    except re.error:
        raise HTTPException(400, f"receiver: bad regular expression {pattern!r}") from None


def _gettable_silence(silence: Silence, now: float) -> dict[str, Any]:
    return {"id": silence.id, "status": {"state": silence.state(now)}, "updatedAt": rfc3339(silence.updated_at),
            "matchers": [m.to_api() for m in silence.matchers], "startsAt": rfc3339(silence.starts_at),
            "endsAt": rfc3339(silence.ends_at), "createdBy": silence.created_by, "comment": silence.comment}


@router.get("/silences")
async def get_silences(request: Request, owner: AdminReader,
                       filter: Annotated[list[str], Query()] = []) -> list[dict[str, Any]]:  # noqa: B006
    matchers = _filter(filter)
    now = runtime_of(request).clock.now()
    found = await read(request, list_silences)
    wanted = [s for s in found if all(any(str(m) == str(own) for own in s.matchers) for m in matchers)]
    return [_gettable_silence(s, now) for s in wanted]


@router.post("/silences", responses=NOT_FOUND)
async def post_silence(request: Request, body: PostableSilence, owner: AdminEditor) -> dict[str, str]:
    """Create a silence, or replace it when `id` names an existing one (as amtool does to update)."""
    now = runtime_of(request).clock.now()
    starts, ends = _epoch(body.startsAt), _epoch(body.endsAt)
    if starts is None or ends is None or ends <= starts:
        raise HTTPException(422, "endsAt: must be after startsAt")
    if ends <= now:
        raise HTTPException(422, "endsAt: must be in the future")
    if body.id:
        existing = await read(request, lambda conn: get_silence(conn, body.id or ""))
        if existing is None:
            raise HTTPException(404, f"silence {body.id} not found")
    matchers = [Matcher.from_api(m.model_dump()) for m in body.matchers]
    silence = await write(request, lambda conn: store_silence(
        conn, matchers, starts_at=max(starts, now) if starts < now and not body.id else starts, ends_at=ends,
        created_by=body.createdBy, comment=body.comment, now=now, silence_id=body.id or None))
    return {"silenceID": silence.id}


SilenceId = Annotated[str, Path(max_length=36)]


@router.get("/silence/{silence_id}")
async def get_one_silence(request: Request, silence_id: SilenceId, owner: AdminReader) -> dict[str, Any]:
    found = await read(request, lambda conn: get_silence(conn, silence_id))
    if found is None:
        raise HTTPException(404, f"silence {silence_id} not found")
    return _gettable_silence(found, runtime_of(request).clock.now())


@router.delete("/silence/{silence_id}")
async def delete_silence(request: Request, silence_id: SilenceId, owner: AdminEditor) -> dict[str, Any]:
    now = runtime_of(request).clock.now()
    if await read(request, lambda conn: get_silence(conn, silence_id)) is None:
        raise HTTPException(404, f"silence {silence_id} not found")
    await write(request, lambda conn: expire_silence(conn, silence_id, now=now))
    return {}


@router.get("/receivers")
async def get_receivers(request: Request, owner: AdminReader) -> list[dict[str, str]]:
    return [{"name": r.name} for r in request.app.state.alerting.config.receivers]


@router.get("/status")
async def get_status(request: Request, owner: AdminReader) -> dict[str, Any]:
    alerting = request.app.state.alerting
    original = yaml.safe_dump(orjson.loads(alerting.config.model_dump_json(by_alias=True, exclude_none=True)),
                              sort_keys=False)
    return {
        "cluster": {"name": "watchkeeper", "status": "disabled", "peers": []},
        "versionInfo": {"version": __version__, "revision": "", "branch": "", "buildUser": "", "buildDate": "",
                        "goVersion": "none (Watchkeeper)"},
        "config": {"original": original},
        "uptime": rfc3339(alerting.started_at),
    }
