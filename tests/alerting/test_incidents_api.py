"""The incidents API and CLI on the real server: declare, move through the states, notes, the post-mortem
as text/markdown, metrics per severity and month, escalation policies, and who may see and change what."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import Server, make_project, make_token, make_user, run_server
from tests.web.conftest import log_in
from watchkeeper.alerting.incident_metrics import month_start
from watchkeeper.cli import main
from watchkeeper.config import AlertingSettings, Settings
from watchkeeper.lib.clock import ManualClock

START = 1_767_225_600.0  # 2026-01-01 00:00 UTC


@pytest.fixture
def site(settings: Settings) -> Iterator[tuple[Server, ManualClock]]:
    clock = ManualClock(START)
    quiet = settings.model_copy(update={"alerting": AlertingSettings(evaluator=False)})
    with run_server(quiet, clock) as server:
        yield server, clock


def client(server: Server, token: str) -> httpx.Client:
    return httpx.Client(base_url=server.url + "/api/v1", headers={"Authorization": f"Bearer {token}"}, timeout=30)


def test_an_incident_is_declared_moved_noted_and_its_postmortem_edited(site: tuple[Server, ManualClock]) -> None:
    server, clock = site
    member = client(server, make_token(server, role="member"))
    created = member.post("/incidents", json={"title": "Checkout errors", "severity": "critical",
                                              "impact_started_at": START - 300})
    assert created.status_code == 201, created.text
    incident = created.json()
    assert incident["state"] == "triggered" and incident["impact_started_at"] == START - 300
    iid = incident["id"]
    clock.advance(120)
    assert member.post(f"/incidents/{iid}/state", json={"state": "acknowledged"}).json()["acknowledged_at"] == \
        START + 120
    assert member.post(f"/incidents/{iid}/notes", json={"text": "Payment provider answers 502"}).status_code == 201
    clock.advance(60)
    assert member.post(f"/incidents/{iid}/state", json={"state": "investigating"}).status_code == 200
    clock.advance(600)
    assert member.post(f"/incidents/{iid}/state", json={"state": "resolved"}).json()["resolved_at"] == START + 780
    assert member.post(f"/incidents/{iid}/state", json={"state": "mitigated"}).status_code == 409
    detail = member.get(f"/incidents/{iid}").json()
    assert [e["kind"] for e in detail["timeline"]] == ["status", "status", "note", "status", "status"]
    assert detail["timeline"][2]["actor"].startswith("member-")
    draft = member.get(f"/incidents/{iid}/postmortem")
    assert draft.headers["content-type"] == "text/markdown; charset=utf-8"
    assert "Payment provider answers 502" in draft.text and "## Action items" in draft.text
    assert member.put(f"/incidents/{iid}/postmortem", json={"markdown": "# Checkout\n\nFixed."}).status_code == 200
    assert member.get(f"/incidents/{iid}/postmortem", params={"download": True}).text == "# Checkout\n\nFixed."
    listed = member.get("/incidents", params={"state": ["resolved"], "severity": "critical"}).json()["incidents"]
    assert [i["id"] for i in listed] == [iid]
    assert member.get("/incidents", params={"state": ["triggered"]}).json()["incidents"] == []


def test_metrics_per_severity_and_month(site: tuple[Server, ManualClock]) -> None:
    server, clock = site
    admin = client(server, make_token(server))
    for severity, detect, ack, resolve in (("critical", 60, 30, 600), ("critical", 120, 90, 1200), ("high", 0, 0, 0)):
        iid = admin.post("/incidents", json={"title": "x", "severity": severity,
                                             "impact_started_at": clock.now() - detect}).json()["id"]
        if severity == "critical":
            clock.advance(ack)
            admin.post(f"/incidents/{iid}/state", json={"state": "acknowledged"})
            clock.advance(resolve - ack)
            admin.post(f"/incidents/{iid}/state", json={"state": "resolved"})
    rows = admin.get("/incidents/metrics", params={"months": 2}).json()["metrics"]
    by_severity = {r["severity"]: r for r in rows}
    assert by_severity["critical"] == {"month": "2026-01", "severity": "critical", "incidents": 2,
                                       "mttd_seconds": 90.0, "mtta_seconds": 60.0, "mttr_seconds": 900.0,
                                       "alerts": 0, "acknowledged_share": None}
    assert by_severity["high"]["mtta_seconds"] is None and by_severity["high"]["incidents"] == 1
    assert month_start(START + 40 * 86400) == START + 31 * 86400


def test_project_incidents_are_private_to_the_project_and_viewers_only_read(site: tuple[Server, ManualClock]) -> None:
    server, _ = site
    project = make_project(server, "Shop")
    member = client(server, make_token(server, role="member"))
    viewer = client(server, make_token(server, role="viewer"))
    outsider = client(server, make_token(server, role="member", team="Elsewhere"))
    iid = member.post("/incidents", json={"title": "Shop down", "project_id": project.id}).json()["id"]
    assert viewer.get(f"/incidents/{iid}").status_code == 200
    assert viewer.post(f"/incidents/{iid}/state", json={"state": "acknowledged"}).status_code == 403
    assert outsider.get(f"/incidents/{iid}").status_code == 404
    assert outsider.get("/incidents").json()["incidents"] == []
    assert outsider.post("/incidents", json={"title": "x", "project_id": project.id}).status_code == 404
    assert member.put(f"/projects/{project.id}/incident-settings", json={"severities": ["critical"]}).status_code == 200
    assert outsider.put(f"/projects/{project.id}/incident-settings", json={"severities": []}).status_code == 404


def test_escalation_policies_are_checked(site: tuple[Server, ManualClock]) -> None:
    server, _ = site
    admin = client(server, make_token(server))
    viewer = client(server, make_token(server, role="viewer"))
    alice, _ = make_user(server)
    body = {"name": "Ops", "repeat": 1, "steps": [{"targets": [{"kind": "user", "id": alice}], "minutes": 5},
                                                  {"targets": [{"kind": "receiver", "name": "log"}], "minutes": 10}]}
    assert viewer.post("/escalation-policies", json=body).status_code == 403
    created = admin.post("/escalation-policies", json=body)
    assert created.status_code == 201, created.text
    assert created.json()["team_id"] is None  # an administrators' policy, for incidents no team's covers
    assert admin.get("/escalation-policies").json()["policies"][0]["steps"][1]["targets"] == [
        {"kind": "receiver", "name": "log"}]
    bad = admin.post("/escalation-policies", json=body | {"name": "Other", "steps": [
        {"targets": [{"kind": "receiver", "name": "nope"}], "minutes": 5}]})
    assert bad.status_code == 422 and "nope" in bad.text
    assert admin.post("/escalation-policies", json=body).status_code == 422  # the name is taken
    wrong = admin.post("/escalation-policies", json=body | {"name": "W", "steps": [{"targets": [{"kind": "user"}]}]})
    assert wrong.status_code == 422
    assert admin.post("/escalation-policies", json=body | {"name": "T", "team_id": 999}).json()["detail"] == \
        "team_id: no team 999"
    # A policy for all incidents: a declared incident gets it and is due for its first step at once.
    iid = admin.post("/incidents", json={"title": "x"}).json()["id"]
    assert admin.get(f"/incidents/{iid}").json()["escalation_policy_id"] == created.json()["id"]


def test_escalation_policies_belong_to_teams(site: tuple[Server, ManualClock]) -> None:
    """Two teams: each reads and changes only its own policies, through the API and on the on-call page;
    each team's incidents escalate by its own policy."""
    server, _ = site
    admin = client(server, make_token(server))
    red, blue = (client(server, make_token(server, role="member", team=t)) for t in ("Red", "Blue"))
    blue_viewer = client(server, make_token(server, role="viewer", team="Blue"))
    red_shop, blue_shop = make_project(server, "Red shop", team="Red"), make_project(server, "Blue shop", team="Blue")
    alice, _ = make_user(server, team="Red")
    bob, bob_email = make_user(server, team="Blue", password="password-bob-1")

    def policy(user: int, project: int, **extra: object) -> dict[str, object]:
        return {"name": "Ops", "project_id": project, "steps": [{"targets": [{"kind": "user", "id": user}]}], **extra}

    red_policy = red.post("/escalation-policies", json=policy(alice, red_shop.id))
    assert red_policy.status_code == 201, red_policy.text
    blue_policy = blue.post("/escalation-policies", json=policy(bob, blue_shop.id))  # the same name: another team
    assert blue_policy.status_code == 201, blue_policy.text
    red_id, blue_id = red_policy.json()["id"], blue_policy.json()["id"]
    assert red_policy.json()["team_id"] != blue_policy.json()["team_id"]

    assert [p["id"] for p in red.get("/escalation-policies").json()["policies"]] == [red_id]
    assert [p["id"] for p in blue.get("/escalation-policies").json()["policies"]] == [blue_id]
    assert [p["id"] for p in blue_viewer.get("/escalation-policies").json()["policies"]] == [blue_id]
    assert sorted(p["id"] for p in admin.get("/escalation-policies").json()["policies"]) == sorted([red_id, blue_id])
    assert blue_viewer.put(f"/escalation-policies/{blue_id}", json=policy(bob, blue_shop.id)).status_code == 403
    # Another team's policy looks like one that does not exist, whatever is asked of it.
    assert red.get(f"/escalation-policies/{blue_id}").status_code == 404
    assert red.put(f"/escalation-policies/{blue_id}", json=policy(alice, red_shop.id, name="Mine")).status_code == 404
    assert red.delete(f"/escalation-policies/{blue_id}").status_code == 404
    assert blue.get(f"/escalation-policies/{blue_id}").json()["name"] == "Ops"
    # Nor can a team's policy reach into another team: its team, its project, the people it pages.
    blue_team = blue_policy.json()["team_id"]
    refused = [
        (policy(alice, red_shop.id, name="A", team_id=blue_team), f"team_id: you are not in team {blue_team}"),
        (policy(alice, blue_shop.id, name="B"), f"project_id: project {blue_shop.id} is not one of the team's"),
        (policy(bob, red_shop.id, name="C"), f"steps.1: user {bob} is not in the policy's team"),
    ]
    for body, message in refused:
        answer = red.post("/escalation-policies", json=body)
        assert answer.status_code == 422 and answer.json()["detail"].startswith(message), answer.text
    limited = client(server, make_token(server, role="member", team="Red", projects=[red_shop.id]))
    assert limited.put(f"/escalation-policies/{red_id}", json=policy(alice, red_shop.id)).status_code == 403
    changed = red.put(f"/escalation-policies/{red_id}", json=policy(alice, red_shop.id, repeat=2))
    assert changed.status_code == 200 and changed.json()["repeat"] == 2

    # Each team's incidents escalate by its own policy.
    for api, project, expected in ((red, red_shop, red_id), (blue, blue_shop, blue_id)):
        incident = api.post("/incidents", json={"title": "down", "project_id": project.id}).json()
        assert incident["escalation_policy_id"] == expected

    # The on-call page shows a member their teams' policies only.
    page = log_in(server, bob_email, "password-bob-1").get("/oncall")
    assert page.status_code == 200
    assert "team Blue" in page.text and "team Red" not in page.text and page.text.count("<h3>Ops") == 1
    assert blue.delete(f"/escalation-policies/{blue_id}").status_code == 204
    assert "team Blue" not in log_in(server, bob_email, "password-bob-1").get("/oncall").text


def test_the_cli_lists_acknowledges_notes_and_resolves(site: tuple[Server, ManualClock], settings: Settings,
                                                       monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    server, _ = site
    admin = client(server, make_token(server))
    iid = admin.post("/incidents", json={"title": "Queue backlog", "severity": "high"}).json()["id"]
    monkeypatch.setenv("WATCHKEEPER_DATA_DIR", str(settings.data_dir))
    if settings.database_url:
        monkeypatch.setenv("WATCHKEEPER_DATABASE_URL", settings.database_url)
    assert main(["incident", "list", "--state", "open"]) == 0
    assert "Queue backlog" in capsys.readouterr().out
    assert main(["incident", "ack", str(iid), "--user", server.settings.admin_email]) == 2  # no such user yet
    assert main(["incident", "ack", str(iid)]) == 0
    assert main(["incident", "note", str(iid), "drained by hand"]) == 0
    assert main(["incident", "resolve", str(iid)]) == 0
    assert main(["incident", "resolve", str(iid)]) == 1
    assert main(["incident", "ack", "999"]) == 2
    timeline = admin.get(f"/incidents/{iid}").json()["timeline"]
    assert [e["text"] for e in timeline] == ["Triggered by " + timeline[0]["text"].split(" by ")[1],
                                             "Acknowledged via the CLI", "drained by hand", "Resolved via the CLI"]
