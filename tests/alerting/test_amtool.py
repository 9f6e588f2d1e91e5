"""The real amtool (Debian's prometheus-alertmanager package) against the server's Alertmanager API v2,
authenticated with an admin API token through amtool's --http.config.file."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import Server, make_token


def amtool(server: Server, config: Path, *args: str) -> str:
    done = subprocess.run(
        ["amtool", f"--alertmanager.url={server.url}", f"--http.config.file={config}", *args],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_amtool_manages_silences_and_lists_alerts(server: Server, tmp_path: Path) -> None:
    token = make_token(server)
    config = tmp_path / "amtool-http.yml"
    config.write_text(f"authorization:\n  credentials: {token}\n")
    silence_id = amtool(server, config, "silence", "add", "alertname=DiskFull", 'instance=~"db.*"',
                        "--author=ops", "--comment=disk swap", "--duration=1h").strip()
    (listed,) = json.loads(amtool(server, config, "silence", "query", "-o", "json"))
    assert listed["id"] == silence_id and listed["createdBy"] == "ops" and listed["status"]["state"] == "active"
    assert {(m["name"], m["value"], m["isRegex"]) for m in listed["matchers"]} == {
        ("alertname", "DiskFull", False), ("instance", "db.*", True)}

    alert: dict[str, Any] = {"labels": {"alertname": "DiskFull", "instance": "db1"},
                             "annotations": {"summary": "disk 95 %"}}
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"}) as api:
        assert api.post("/api/v2/alerts", json=[alert]).status_code == 200
    (shown,) = json.loads(amtool(server, config, "alert", "query", "--silenced", "-o", "json"))
    assert shown["labels"] == alert["labels"] and shown["status"]["silencedBy"] == [silence_id]

    amtool(server, config, "silence", "expire", silence_id)
    assert json.loads(amtool(server, config, "silence", "query", "-o", "json")) == []  # only active ones
    (active,) = json.loads(amtool(server, config, "alert", "query", "-o", "json"))
    assert active["status"]["state"] == "active"
    assert "receiver: log" in amtool(server, config, "config", "show")


def test_amtool_without_a_token_is_refused(server: Server, tmp_path: Path) -> None:
    done = subprocess.run(["amtool", f"--alertmanager.url={server.url}", "silence", "query"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode != 0 and "401" in done.stderr + done.stdout
