"""Who may do what: roles, team visibility and token scope folded into one `Principal`.

- admin: everything, every project (also projects in no team).
- member: reads and changes the projects of their teams (issues, settings, keys).
- viewer: reads the projects of their teams, changes nothing.

An API token carries its owner's role, and may be narrowed to some projects (`scope`) and to reading
(`read_only`). A project the principal cannot read must look like one that does not exist (404); one it
can read but not change is a 403.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection

from watchkeeper.auth.teams import visible_project_ids
from watchkeeper.auth.users import get_user

WRITER_ROLES = ("admin", "member")


@dataclass(frozen=True, slots=True)
class Principal:
    user_id: int
    email: str
    role: str
    # Projects visible through the user's teams; None = all (admins).
    projects: frozenset[int] | None
    # A token's project scope; None = not narrowed.
    scope: frozenset[int] | None = None
    read_only: bool = False
    token_id: int | None = None
    session_id: int | None = None

    @property
    def is_admin(self) -> bool:
        """Admin over users, teams and the audit log: an admin, not through a project-scoped token."""
        return self.role == "admin" and self.scope is None

    @property
    def may_write(self) -> bool:
        """Whether this principal may change anything at all (role and token allow it)."""
        return self.role in WRITER_ROLES and not self.read_only

    @property
    def may_create_projects(self) -> bool:
        # A project-scoped token could not see what it created.
        return self.may_write and self.scope is None

    def can_read(self, project_id: int) -> bool:
        """Whether the project is visible.

        >>> Principal(1, "a@b.c", "member", frozenset({3})).can_read(4)
        False
        """
        if self.scope is not None and project_id not in self.scope:
            return False
        return self.projects is None or project_id in self.projects

    def can_write(self, project_id: int) -> bool:
        return self.may_write and self.can_read(project_id)


def principal_for(
    conn: Connection,
    user_id: int,
    *,
    scope: frozenset[int] | None = None,
    read_only: bool = False,
    token_id: int | None = None,
    session_id: int | None = None,
) -> Principal:
    """The principal of an active user (from a session or a token); raises LookupError when there is none."""
    user = get_user(conn, user_id)
    if user is None or not user.is_active:
        raise LookupError(f"no active user {user_id}")
    projects = None if user.role == "admin" else visible_project_ids(conn, user_id)
    return Principal(user.id, user.email, user.role, projects, scope, read_only, token_id, session_id)
