"""The silences page (administrators, like the REST API: silences span projects): active, pending and
expired silences with how many current alerts each matches, a form to create one (matchers with
`=`, `!=`, `=~`, `!~`; start; end or duration; comment; the creator is the logged-in user), expire.

The alerts pages link here with the form prefilled from an alert's labels (`?matcher=alertname="Down"`).
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import APIRouter
from fastapi.responses import Response
from sqlalchemy import Connection
from starlette.datastructures import FormData

from watchkeeper.alerting.alerts import Alert, load_alerts
from watchkeeper.alerting.matchers import OPERATORS, Matcher, matches_all, parse_duration, parse_matcher
from watchkeeper.alerting.silences import Silence, expire_silence, get_silence, list_silences, save_silence
from watchkeeper.api import read, runtime_of, write
from watchkeeper.web.alert_pages import require_admin
from watchkeeper.web.project_pages import see_other
from watchkeeper.web.shell import PageError
from watchkeeper.web.timerange import local_input_value, parse_local
from watchkeeper.web.viewer import CurrentPage, Page, checked_form

router = APIRouter(include_in_schema=False)
SILENCE_STATES = ("active", "pending", "expired")
MAX_SILENCE_SECONDS = 5 * 366 * 86400  # as the REST API
MAX_MATCHERS = 50
BLANK_ROWS = 2
MAX_EXPIRED_SHOWN = 50
LOCAL_FORMAT = "%Y-%m-%dT%H:%M"


@dataclass
class SilenceRow:
    silence: Silence
    state: str
    matching: int  # current (unresolved) alerts it matches


@dataclass
class SilenceForm:
    matchers: list[tuple[str, str, str]]
    starts_at: str
    ends_at: str
    duration: str
    comment: str

    def rows(self) -> list[tuple[str, str, str]]:
        return self.matchers + [("", "=", "")] * BLANK_ROWS


def _matching(alerts: list[Alert], silence: Silence, now: float) -> int:
    return sum(1 for a in alerts if not a.resolved(now) and matches_all(silence.matchers, a.labels))


def _prefill(page: Page) -> SilenceForm:
    rows = []
    for text in page.request.query_params.getlist("matcher")[:MAX_MATCHERS]:
        try:
            m = parse_matcher(text[:2000])
        except ValueError:
            continue
        rows.append((m.name, m.operator, m.value))
    comment = page.request.query_params.get("comment", "")[:2000]
    return SilenceForm(rows, "", "", "2h", comment)


async def _page(page: Page, form: SilenceForm, errors: dict[str, str], status: int = 200) -> Response:
    now = page.now

    def load(conn: Connection) -> list[SilenceRow]:
        current = [a for a in load_alerts(conn) if not a.resolved(now)]
        # Expired silences match nothing any more: their count would only cost time on a busy server.
        return [SilenceRow(s, state, _matching(current, s, now) if state != "expired" else 0)
                for s in list_silences(conn) if (state := s.state(now))]

    rows = await read(page.request, load)
    by_state = {state: [r for r in rows if r.state == state] for state in SILENCE_STATES}
    by_state["expired"] = by_state["expired"][:MAX_EXPIRED_SHOWN]  # the most recent (ordered by end)
    return await page.render("silences.html", status=status, by_state=by_state, states=SILENCE_STATES, form=form,
                             errors=errors, operators=OPERATORS[::-1],
                             now_local=local_input_value(now, page.viewer.zone))


@router.get("/alerting/silences")
async def silences_page(page: CurrentPage) -> Response:
    require_admin(page, "silences")
    return await _page(page, _prefill(page), {})


def _field(form: FormData, name: str, limit: int = 2000) -> str:
    value = form.get(name)
    text = value.strip() if isinstance(value, str) else ""
    return text.replace("\x00", "")[:limit]


def _read_form(form: FormData) -> SilenceForm:
    names, ops, values = (form.getlist(f"matcher_{part}") for part in ("name", "op", "value"))
    rows = []
    for name, op, value in zip(names, ops, values, strict=False):
        name, value = str(name).strip()[:200], str(value)[:2000]
        if name or value:
            rows.append((name, str(op) if str(op) in OPERATORS else "=", value.replace("\x00", "")))
    return SilenceForm(rows[:MAX_MATCHERS], _field(form, "starts_at", 40), _field(form, "ends_at", 40),
                       _field(form, "duration", 40), _field(form, "comment"))


def _local_time(text: str, page: Page, name: str, errors: dict[str, str]) -> float | None:
    try:
        return parse_local(text, page.viewer.zone)
    except ValueError as exc:
        errors[name] = str(exc)
        return None


def _check(form: SilenceForm, page: Page) -> tuple[list[Matcher], float, float, dict[str, str]]:
    """The silence the form describes, or errors by field."""
    errors: dict[str, str] = {}
    matchers = []
    for number, (name, op, value) in enumerate(form.matchers, 1):
        try:
            if not name:
                raise ValueError("needs a label name")
            matchers.append(parse_matcher(f"{name}{op}{_quoted(value)}"))
        except ValueError as exc:
            errors.setdefault("matchers", f"matcher {number}: {exc}")
    if not form.matchers:
        errors["matchers"] = "a silence needs at least one matcher"
    now = page.now
    starts = _local_time(form.starts_at, page, "starts_at", errors) if form.starts_at else now
    ends: float | None = None
    if form.ends_at:
        ends = _local_time(form.ends_at, page, "ends_at", errors)
    elif form.duration:
        try:
            ends = (starts or now) + parse_duration(form.duration)
        except ValueError as exc:
            errors["duration"] = str(exc)
    else:
        errors["ends_at"] = "give an end or a duration"
    if starts is not None and ends is not None and "ends_at" not in errors and "duration" not in errors:
        where = "ends_at" if form.ends_at else "duration"
        if ends <= starts:
            errors[where] = "the silence must end after it starts"
        elif ends <= now:
            errors[where] = "the silence must end in the future"
        elif ends - starts > MAX_SILENCE_SECONDS:
            errors[where] = "a silence may last at most 5 years"
    if not form.comment:
        errors["comment"] = "say why (e.g. the deploy or the ticket)"
    return matchers, starts or now, ends or now, errors


def _quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


@router.post("/alerting/silences")
async def create_silence(page: CurrentPage) -> Response:
    posted = await checked_form(page.request, page.viewer)
    require_admin(page, "silences")
    form = _read_form(posted)
    matchers, starts, ends, errors = _check(form, page)
    if errors:
        return await _page(page, form, errors, status=422)
    creator, comment, now = page.viewer.session.email, form.comment, runtime_of(page.request).clock.now()

    def save(conn: Connection) -> Silence:
        return save_silence(conn, matchers, starts_at=starts, ends_at=ends, created_by=creator, comment=comment,
                            now=now)

    silence = await write(page.request, save)
    return see_other(f"/alerting/silences?created={silence.id}#silence-{silence.id}")


@router.post("/alerting/silences/{silence_id}/expire")
async def expire(silence_id: str, page: CurrentPage) -> Response:
    await checked_form(page.request, page.viewer)
    require_admin(page, "silences")
    silence_id = silence_id[:36]
    if await read(page.request, lambda conn: get_silence(conn, silence_id)) is None:
        raise PageError(404, "No such silence.")
    now = runtime_of(page.request).clock.now()
    await write(page.request, lambda conn: expire_silence(conn, silence_id, now=now))
    return see_other("/alerting/silences?expired=1")

