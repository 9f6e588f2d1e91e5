"""Teams: groups of users that own projects. A user sees the projects of their teams (admins see all)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, delete, func, insert, select, update

from watchkeeper.auth.projects import ProjectError
from watchkeeper.auth.tables import project_teams, projects, team_members, teams, users


class TeamError(ValueError):
    """A team cannot be created or changed as asked; the message names the field."""


@dataclass(frozen=True, slots=True)
class Team:
    id: int
    name: str
    created_at: float


def _clean_name(name: str) -> str:
    name = name.strip()
    if not name or len(name) > 100:
        raise TeamError("name: must be 1-100 characters")
    return name


def _name_taken(conn: Connection, name: str, except_id: int | None = None) -> bool:
    query = select(teams.c.id).where(teams.c.name == name)
    if except_id is not None:
        query = query.where(teams.c.id != except_id)
    return conn.execute(query).first() is not None


def create_team(conn: Connection, name: str, *, now: float) -> Team:
    """A new, empty team.

    >>> # create_team(conn, "Payments", now=clock.now()).name -> "Payments"
    """
    name = _clean_name(name)
    if _name_taken(conn, name):
        raise TeamError(f"name: a team named {name!r} already exists")
    team_id = conn.execute(insert(teams).values(name=name, created_at=now)).inserted_primary_key[0]  # type: ignore[index]
    return Team(team_id, name, now)


def rename_team(conn: Connection, team_id: int, name: str) -> Team | None:
    name = _clean_name(name)
    if _name_taken(conn, name, except_id=team_id):
        raise TeamError(f"name: a team named {name!r} already exists")
    conn.execute(update(teams).where(teams.c.id == team_id).values(name=name))
    return get_team(conn, team_id)


def delete_team(conn: Connection, team_id: int) -> bool:
    """Delete a team; its projects stay (visible to admins and to their other teams)."""
    return conn.execute(delete(teams).where(teams.c.id == team_id)).rowcount > 0


def get_team(conn: Connection, team_id: int) -> Team | None:
    row = conn.execute(select(teams).where(teams.c.id == team_id)).first()
    return Team(row.id, row.name, row.created_at) if row else None


def find_team(conn: Connection, name: str) -> Team | None:
    row = conn.execute(select(teams).where(teams.c.name == name.strip())).first()
    return Team(row.id, row.name, row.created_at) if row else None


def list_teams(conn: Connection, *, user_id: int | None = None) -> list[Team]:
    """All teams, or those `user_id` belongs to."""
    query = select(teams).order_by(teams.c.name)
    if user_id is not None:
        query = query.join(team_members, team_members.c.team_id == teams.c.id).where(team_members.c.user_id == user_id)
    return [Team(r.id, r.name, r.created_at) for r in conn.execute(query)]


def member_ids(conn: Connection, team_id: int) -> list[int]:
    rows = conn.execute(
        select(team_members.c.user_id).where(team_members.c.team_id == team_id).order_by(team_members.c.user_id)
    )
    return [r.user_id for r in rows]


def project_ids(conn: Connection, team_id: int) -> list[int]:
    rows = conn.execute(
        select(project_teams.c.project_id)
        .where(project_teams.c.team_id == team_id)
        .order_by(project_teams.c.project_id)
    )
    return [r.project_id for r in rows]


def teams_of_project(conn: Connection, project_id: int) -> list[int]:
    rows = conn.execute(select(project_teams.c.team_id).where(project_teams.c.project_id == project_id))
    return sorted(r.team_id for r in rows)


def add_member(conn: Connection, team_id: int, user_id: int) -> bool:
    """Add a user to a team; False when they already were in it."""
    exists = conn.execute(
        select(team_members.c.user_id).where(team_members.c.team_id == team_id, team_members.c.user_id == user_id)
    ).first()
    if exists:
        return False
    conn.execute(insert(team_members).values(team_id=team_id, user_id=user_id))
    return True


def remove_member(conn: Connection, team_id: int, user_id: int) -> bool:
    return (
        conn.execute(
            delete(team_members).where(team_members.c.team_id == team_id, team_members.c.user_id == user_id)
        ).rowcount
        > 0
    )


def add_project(conn: Connection, team_id: int, project_id: int) -> bool:
    """Give a team a project; False when it already had it."""
    exists = conn.execute(
        select(project_teams.c.team_id).where(
            project_teams.c.team_id == team_id, project_teams.c.project_id == project_id
        )
    ).first()
    if exists:
        return False
    conn.execute(insert(project_teams).values(team_id=team_id, project_id=project_id))
    return True


def remove_project(conn: Connection, team_id: int, project_id: int) -> bool:
    return (
        conn.execute(
            delete(project_teams).where(project_teams.c.team_id == team_id, project_teams.c.project_id == project_id)
        ).rowcount
        > 0
    )


def visible_project_ids(conn: Connection, user_id: int) -> frozenset[int]:
    """The projects owned by any team the user is in."""
    rows = conn.execute(
        select(project_teams.c.project_id)
        .join(team_members, team_members.c.team_id == project_teams.c.team_id)
        .where(team_members.c.user_id == user_id)
    )
    return frozenset(r.project_id for r in rows)


def assignable_user_ids(conn: Connection, project_id: int) -> frozenset[int]:
    """Who may be assigned a project's issues: active members of the teams owning it, and active admins.
    Offering (or accepting) anyone else would show one team the people of another."""
    members = select(team_members.c.user_id).join(
        project_teams, project_teams.c.team_id == team_members.c.team_id
    ).where(project_teams.c.project_id == project_id)
    rows = conn.execute(
        select(users.c.id).where(users.c.is_active.is_(True), (users.c.role == "admin") | users.c.id.in_(members))
    )
    return frozenset(int(row.id) for row in rows)


def check_project_name(conn: Connection, name: str, team_ids: list[int], *, except_project: int | None = None) -> None:
    """Refuse a project name one of these teams already has (letter case aside), so that the project
    switcher of each member never shows two projects it cannot tell apart. No teams: the check is among
    the projects of no team (the admins' own).

    >>> # check_project_name(conn, "Shop", [payments_id]) -> ProjectError('name: team Payments already …')
    """
    same = select(projects.c.id).where(func.lower(projects.c.name) == name.strip().lower())
    if except_project is not None:
        same = same.where(projects.c.id != except_project)
    if team_ids:
        clash = conn.execute(
            select(teams.c.name).join(project_teams, project_teams.c.team_id == teams.c.id)
            .where(project_teams.c.team_id.in_(team_ids), project_teams.c.project_id.in_(same))
        ).first()
        if clash is not None:
            raise ProjectError(f"name: team {clash.name} already has a project called “{name.strip()}”; "
                               "choose another name")
        return
    teamless = same.where(~projects.c.id.in_(select(project_teams.c.project_id)))
    if conn.execute(teamless).first() is not None:
        raise ProjectError(f"name: there is already a project called “{name.strip()}” (with no team); "
                           "choose another name")


def team_names_of_projects(conn: Connection) -> dict[int, list[str]]:
    """Each project's team names, for telling projects of the same name apart."""
    names: dict[int, list[str]] = {}
    rows = conn.execute(
        select(project_teams.c.project_id, teams.c.name).join(teams, teams.c.id == project_teams.c.team_id)
        .order_by(teams.c.name)
    )
    for row in rows:
        names.setdefault(row.project_id, []).append(row.name)
    return names
