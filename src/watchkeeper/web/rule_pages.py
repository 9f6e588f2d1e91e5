"""Alert rule pages: a project's rules, the rule form (create, edit, enable/disable, delete) and the 24 h
back-test the form runs on its current values (htmx).

The same rules as the REST API: reading needs the project visible (404 otherwise), changing needs write
access to it (403), and rules from the rules file are read-only.
"""

from __future__ import annotations

import math
from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response
from sqlalchemy import Connection
from starlette.concurrency import run_in_threadpool

from watchkeeper.alerting import rules as R
from watchkeeper.alerting.alerts import load_alerts
from watchkeeper.alerting.backtest import backtest
from watchkeeper.alerting.templates import annotation_errors
from watchkeeper.api import MAX_INT, read, runtime_of, write
from watchkeeper.auth.audit import audited
from watchkeeper.auth.projects import Project
from watchkeeper.web import rule_form as F
from watchkeeper.web.project_pages import see_other
from watchkeeper.web.shell import PageError, html_page
from watchkeeper.web.viewer import CurrentPage, Page, checked_form, readable_project, require_write

router = APIRouter(include_in_schema=False)
BACKTEST_HOURS = 24
# What the list says about where a rule comes from.
MANAGED_BY = {"api": "UI / API", "default": "default pack", "file": "rules file"}


def rule_to_in(rule: R.AlertRule, **changes: Any) -> R.RuleIn:
    """A stored rule as the schema takes it (to store it again with `changes`)."""
    spec = getattr(rule, rule.kind, None)
    data: dict[str, Any] = {"name": rule.name, "kind": rule.kind, "severity": rule.severity, "labels": rule.labels,
                            "annotations": rule.annotations, "enabled": rule.enabled}
    if spec is not None:
        data[rule.kind] = spec.model_dump()
    return R.RuleIn.model_validate(data | changes)


async def _rule_of(page: Page, rule_id: int) -> tuple[R.AlertRule, Project]:
    """The rule if the viewer may see its project; 404 otherwise."""
    rule = await read(page.request, lambda conn: R.get_rule(conn, rule_id)) if rule_id <= MAX_INT else None
    if rule is None or not page.viewer.principal.can_read(rule.project_id):
        raise PageError(404, "No such alert rule.")
    return rule, await readable_project(page, rule.project_id)


def _editable(page: Page, rule: R.AlertRule) -> None:
    require_write(page.viewer, rule.project_id)
    if rule.managed_by == "file":
        raise PageError(409, "This rule comes from the rules file: change it there.")


def _shown(value: float | str | bool) -> str:
    """A condition's value as people write it.

    >>> _shown(14.0), _shown("api")
    ('14', 'api')
    """
    return f"{value:g}" if isinstance(value, float) else str(value)


def _summary(rule: R.AlertRule) -> str:
    """One line saying what the rule watches."""
    if rule.event is not None:
        where = " and ".join(f"{c.field} {c.op} {_shown(c.value)}" for c in rule.event.where)
        return f"signal {rule.event.signal}" + (f" where {where}" if where else "")
    spec = getattr(rule, rule.kind, None)
    if rule.threshold is not None:
        t = rule.threshold
        denominator, percentile = getattr(t, "denominator", None), getattr(t, "percentile", None)
        what = (f"{t.metric} per 100 {denominator}" if denominator else
                f"p{percentile:g} of {t.metric}" if percentile is not None else f"{t.aggregation} of {t.metric}")
        text = f"{what} over {t.window_minutes} min {t.op} {t.threshold:g}"
        return text + (f", for {t.for_seconds:g} s" if t.for_seconds else "")
    if spec is not None:
        return ", ".join(f"{k}={v}" for k, v in spec.model_dump().items() if v not in (None, [], {}))
    return ""


@router.get("/projects/{project_id:int}/rules")
async def rules_page(project_id: int, page: CurrentPage) -> Response:
    project = await readable_project(page, project_id)
    now = page.now

    def load(conn: Connection) -> tuple[list[R.AlertRule], dict[int, dict[str, int]]]:
        states: dict[int, dict[str, int]] = {}
        for alert in load_alerts(conn, rules_only=True, project_id=project_id):
            if alert.rule_id is not None:
                counts = states.setdefault(alert.rule_id, {})
                counts[alert.status(now)] = counts.get(alert.status(now), 0) + 1
        return R.list_rules(conn, project_id), states

    rules, states = await read(page.request, load)
    return await page.render("rule_list.html", project=project, rules=rules, states=states,
                             summaries={r.id: _summary(r) for r in rules}, priority=R.PRIORITY, managed_by=MANAGED_BY,
                             can_write=page.viewer.principal.can_write(project_id))


async def _form_page(page: Page, project: Project, *, rule: R.AlertRule | None, values: dict[str, Any],
                     errors: dict[str, str], status: int = 200) -> Response:
    editable = page.viewer.principal.can_write(project.id) and (rule is None or rule.managed_by != "file")
    return await page.render(
        "rule_form.html", status=status, project=project, rule=rule, values=values, errors=errors,
        general=F.general_fields(), sections=F.kind_sections(), named_annotations=F.NAMED_ANNOTATIONS,
        editable=editable, form_error=errors.get(F.FORM_ERROR), hours=BACKTEST_HOURS,
    )


async def _read_form(form: Any) -> F.RuleForm:
    """The posted rule, its annotation templates compiled and tried off the event loop (syntax and the
    template bounds), each error under its annotation's field."""
    posted = F.read_rule_form(form)
    if posted.rule is None:
        return posted
    errors = await run_in_threadpool(annotation_errors, posted.rule.annotations)
    by_field: dict[str, str] = {}
    for name, message in errors.items():
        if name in F.NAMED_ANNOTATIONS:
            by_field[f"annotations.{name}"] = message
        else:
            by_field.setdefault("annotations.other", f"{name}: {message}")
    return F.RuleForm(posted.values, None, by_field) if by_field else posted


@router.get("/projects/{project_id:int}/rules/new")
async def new_rule_page(project_id: int, page: CurrentPage) -> Response:
    project = await readable_project(page, project_id)
    require_write(page.viewer, project_id)
    return await _form_page(page, project, rule=None, values=F.initial_values(), errors={})


@router.post("/projects/{project_id:int}/rules")
async def create_rule(project_id: int, page: CurrentPage) -> Response:
    project = await readable_project(page, project_id)
    form = await checked_form(page.request, page.viewer)
    require_write(page.viewer, project_id)
    posted = await _read_form(form)
    if posted.rule is None:
        return await _form_page(page, project, rule=None, values=posted.values, errors=posted.errors, status=422)
    body, now = posted.rule, runtime_of(page.request).clock.now()
    created = await write(page.request, audited(lambda conn: R.create_rule(conn, project_id, body, now=now),
                                                page.viewer.principal.user_id, "rule.create", "rule", now=now,
                                                target=lambda r: r.id, name=body.name))
    return see_other(f"/projects/{project_id}/rules?saved={created.id}")


@router.get("/rules/{rule_id:int}")
async def rule_page(rule_id: int, page: CurrentPage) -> Response:
    rule, project = await _rule_of(page, rule_id)
    return await _form_page(page, project, rule=rule, values=F.initial_values(rule), errors={})


@router.post("/rules/{rule_id:int}")
async def save_rule(rule_id: int, page: CurrentPage) -> Response:
    rule, project = await _rule_of(page, rule_id)
    form = await checked_form(page.request, page.viewer)
    _editable(page, rule)
    posted = await _read_form(form)
    if posted.rule is None:
        return await _form_page(page, project, rule=rule, values=posted.values, errors=posted.errors, status=422)
    body, now = posted.rule, runtime_of(page.request).clock.now()
    await write(page.request, audited(lambda conn: R.replace_rule(conn, rule_id, body, now=now),
                                      page.viewer.principal.user_id, "rule.change", "rule", now=now, target=rule_id,
                                      name=body.name))
    return see_other(f"/projects/{project.id}/rules?saved={rule_id}")


@router.post("/rules/{rule_id:int}/enabled")
async def set_rule_enabled(rule_id: int, page: CurrentPage) -> Response:
    rule, project = await _rule_of(page, rule_id)
    form = await checked_form(page.request, page.viewer)
    _editable(page, rule)
    body, now = rule_to_in(rule, enabled=form.get("enabled") == "1"), runtime_of(page.request).clock.now()
    await write(page.request, audited(lambda conn: R.replace_rule(conn, rule_id, body, now=now),
                                      page.viewer.principal.user_id, "rule.enable" if body.enabled else "rule.disable",
                                      "rule", now=now, target=rule_id))
    return see_other(f"/projects/{project.id}/rules")


@router.post("/rules/{rule_id:int}/delete")
async def delete_rule(rule_id: int, page: CurrentPage) -> Response:
    rule, project = await _rule_of(page, rule_id)
    await checked_form(page.request, page.viewer)
    _editable(page, rule)
    await write(page.request, audited(lambda conn: R.delete_rule(conn, rule_id), page.viewer.principal.user_id,
                                      "rule.delete", "rule", now=runtime_of(page.request).clock.now(), target=rule_id,
                                      name=rule.name))
    return see_other(f"/projects/{project.id}/rules?deleted=1")


def firing_series(result: dict[str, Any], step: float = 60.0) -> dict[str, list[Any]]:
    """How many subjects would have been firing in each minute of the back-test (for the chart).

    >>> firing_series({"from": 0, "until": 180, "firings": [{"started_at": 60, "ended_at": 120}]})["y"]
    [0, 1, 0, 0]
    """
    start, until = float(result["from"]), float(result["until"])
    xs = [start + i * step for i in range(int((until - start) // step) + 1)]
    ys = [0] * len(xs)
    for firing in result["firings"]:
        begin = firing["started_at"]
        end = firing["ended_at"] if firing["ended_at"] is not None else until + step
        first = max(0, math.ceil((begin - start) / step))
        last = min(len(xs), math.ceil((end - start) / step))
        for i in range(first, last):
            ys[i] += 1
    return {"x": xs, "y": ys}


@router.post("/projects/{project_id:int}/rules/backtest")
async def backtest_fragment(project_id: int, page: CurrentPage) -> Response:
    """The back-test of the form's current values (a fragment for htmx; errors are shown in it, as 200,
    because htmx does not swap error answers)."""
    await readable_project(page, project_id)
    form = await checked_form(page.request, page.viewer)
    require_write(page.viewer, project_id)  # as the API: back-testing is part of editing rules
    posted = await _read_form(form)
    context = page.context(errors=posted.errors, result=None, chart=None, hours=BACKTEST_HOURS)
    if posted.rule is not None:
        body, now = posted.rule, page.now

        def run(conn: Connection) -> dict[str, Any]:
            return backtest(conn, project_id, body, now=now, hours=BACKTEST_HOURS)

        result = await read(page.request, run)
        context |= {"result": result, "chart": {**firing_series(result), "zone": page.viewer.zone.key}}
    return html_page("rule_backtest.html", context)
