"""`watchkeeper user create`, `team create`, `team add`: a member made on the command line sees their team's
projects."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from tests.test_cli import cli_env, run  # noqa: F401  (fixture)
from watchkeeper.app import open_database
from watchkeeper.auth.access import principal_for
from watchkeeper.auth.projects import create_project
from watchkeeper.auth.tables import audit_log
from watchkeeper.auth.teams import add_project, find_team
from watchkeeper.auth.users import find_user
from watchkeeper.config import Settings
from watchkeeper.store.engine import for_writing


def test_users_and_teams_from_the_command_line(cli_env: Settings, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: F811
    code, out, _ = run(capsys, cli_env, "user", "create", "ops@example.com", "--role", "viewer", "--generate")
    assert code == 0 and "viewer ops@example.com" in out
    assert run(capsys, cli_env, "team", "create", "Operations")[0] == 0
    code, _, err = run(capsys, cli_env, "team", "create", "Operations")
    assert code == 2 and "already exists" in err
    code, out, _ = run(capsys, cli_env, "team", "add", "Operations", "OPS@example.com")
    assert code == 0 and "ops@example.com is in team Operations" in out
    code, _, err = run(capsys, cli_env, "team", "add", "Nope", "ops@example.com")
    assert code == 2 and "no team 'Nope'" in err
    assert run(capsys, cli_env, "team", "add", "Operations", "nobody@example.com")[0] == 2

    engine = for_writing(open_database(cli_env))
    with engine.begin() as conn:
        team = find_team(conn, "Operations")
        user = find_user(conn, "ops@example.com")
        assert team is not None and user is not None
        project = create_project(conn, "Infra", now=1.0)
        add_project(conn, team.id, project.id)
        principal = principal_for(conn, user.id)
        assert principal.can_read(project.id) and not principal.can_write(project.id)
        actions = [r.action for r in conn.execute(select(audit_log.c.action).order_by(audit_log.c.id))]
    assert actions == ["user.create", "team.create", "team.member_add"]
    engine.dispose()
