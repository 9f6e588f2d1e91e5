"""Upgrading a database from before teams: existing projects and users land in a "Default" team, so nobody
loses access to what they saw before."""

from __future__ import annotations

from alembic import command
from sqlalchemy import Engine, text

from watchkeeper.app import Runtime
from watchkeeper.store import migrate


def _rebuild_at_0001(engine: Engine) -> None:
    config = migrate._config()
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0001")


def test_existing_projects_and_users_go_into_a_default_team(runtime: Runtime) -> None:
    engine = runtime.engine
    _rebuild_at_0001(engine)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM projects"))
        conn.execute(text("DELETE FROM users"))
        conn.execute(text("INSERT INTO users (email, role, is_active, created_at) VALUES ('m@example.com', 'member', "
                          "true, 0)"))
        for name in ("one", "two"):
            conn.execute(text(f"INSERT INTO projects (name, slug, settings, created_at) VALUES ('{name}', '{name}', "
                              "'{}', 0)"))
    migrate.upgrade(engine)
    with engine.connect() as conn:
        teams = conn.execute(text("SELECT id, name FROM teams")).all()
        assert [t.name for t in teams] == ["Default"]
        assert conn.execute(text("SELECT COUNT(*) FROM project_teams")).scalar_one() == 2
        assert conn.execute(text("SELECT COUNT(*) FROM team_members")).scalar_one() == 1


def test_an_empty_database_gets_no_team(runtime: Runtime) -> None:
    with runtime.engine.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM teams")).scalar_one() == 0
