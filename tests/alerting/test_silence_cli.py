"""`watchkeeper silence list|add|expire` on the test database; the silence it adds mutes what it matches."""

from __future__ import annotations

import json

import pytest

from tests.test_cli import cli_env, run  # noqa: F401 (fixture)
from watchkeeper.alerting.silences import list_silences
from watchkeeper.app import open_database
from watchkeeper.config import Settings


def test_silences_from_the_command_line(cli_env: Settings, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: F811
    code, out, _ = run(capsys, cli_env, "silence", "add", 'alertname="Disk full"', 'severity=~"high|critical"',
                       "--duration", "2h", "--comment", "replacing the disk", "--author", "ops@example.com", "--json")
    assert code == 0
    added = json.loads(out)
    assert added["matchers"] == ['alertname="Disk full"', 'severity=~"high|critical"']
    assert added["ends_at"] - added["starts_at"] == pytest.approx(7200)
    engine = open_database(cli_env)
    with engine.connect() as conn:
        (silence,) = list_silences(conn)
    now = silence.starts_at + 1
    assert silence.mutes({"alertname": "Disk full", "severity": "high", "host": "db1"}, now)
    assert not silence.mutes({"alertname": "Disk full", "severity": "low"}, now)
    assert silence.created_by == "ops@example.com" and silence.comment == "replacing the disk"

    code, out, _ = run(capsys, cli_env, "silence", "list")
    assert code == 0 and added["id"] in out and "active" in out and "replacing the disk" in out
    code, out, _ = run(capsys, cli_env, "silence", "expire", added["id"])
    assert code == 0 and "expired" in out
    code, out, _ = run(capsys, cli_env, "silence", "list")
    assert out.strip() == "no silences"
    code, out, _ = run(capsys, cli_env, "silence", "list", "--all", "--json")
    assert [s["id"] for s in json.loads(out)] == [added["id"]]
    engine.dispose()


@pytest.mark.parametrize(("args", "message"), [
    (["silence", "add", "alertname", "--comment", "x"], "matcher"),
    (["silence", "add", 'a="b"', "--duration", "soon", "--comment", "x"], "duration"),
    (["silence", "add", 'a="b"', "--duration", "0s", "--comment", "x"], "--duration"),
    (["silence", "expire", "no-such-silence"], "no active or pending silence"),
])
def test_bad_silence_commands_say_why(cli_env: Settings, capsys: pytest.CaptureFixture[str],  # noqa: F811
                                      args: list[str], message: str) -> None:
    code, _, err = run(capsys, cli_env, *args)
    assert code == 2 and message in err
