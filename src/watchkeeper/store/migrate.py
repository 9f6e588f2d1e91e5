"""Schema migrations (Alembic), applied at start and by `watchkeeper migrate`.

Alembic is imported only inside the functions that need it: `watchkeeper serve` migrates in a short-lived
child process (`upgrade_in_child`), so the long-running server never holds Alembic's ~10 MB.

The revisions form a tree: the shared history (one chain, as every database made before it holds it),
then one branch per domain in the domain's own `migrations/` folder and one for the platform, so a
database is at several heads at once (docs/deployment.md, "Database migrations").
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).parent / "migrations"
# The shared history (0001 … 0011_*: in users' databases, never renamed) ends where every domain's own
# branch starts; the platform's tables (store/, lib/) have a branch of their own beside it.
SHARED_VERSIONS = MIGRATIONS / "versions"
PLATFORM_VERSIONS = MIGRATIONS / "platform"


def version_locations(extra: Sequence[Path] = ()) -> list[Path]:
    """Every folder that holds revisions: the shared history, the platform's branch, each domain's
    branch (watchkeeper.domains), then `extra` (a domain registered by a test)."""
    from watchkeeper.domains import migration_locations

    return [SHARED_VERSIONS, PLATFORM_VERSIONS, *migration_locations(), *extra]


def _config(extra: Sequence[Path] = ()) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("path_separator", "os")
    locations = os.pathsep.join(str(path) for path in version_locations(extra))
    config.set_main_option("version_locations", locations.replace("%", "%%"))  # ConfigParser interpolates %
    return config


def head_revisions(extra: Sequence[Path] = ()) -> frozenset[str]:
    """The newest revision of every branch (with `extra` folders: read again each time, as a test writes
    revisions there).

    >>> sorted(head_revisions())[:2]
    ['alerting_0000', 'auth_0000']
    """
    return _read_heads(tuple(extra)) if extra else _installed_heads()


@functools.cache
def _installed_heads() -> frozenset[str]:
    """Read once per process: Alembic compiles and runs every script to learn the heads (~0.2 s)."""
    return _read_heads(())


def _read_heads(extra: tuple[Path, ...]) -> frozenset[str]:
    from alembic.script import ScriptDirectory

    return frozenset(ScriptDirectory.from_config(_config(extra)).get_heads())


def current_revisions(engine: Engine) -> frozenset[str]:
    """The revisions the database is at, one per branch (empty before the first migration), without
    Alembic. A database made before the branches has one row (e.g. "0010")."""
    with engine.connect() as conn:
        try:
            return frozenset(conn.scalars(text("SELECT version_num FROM alembic_version")))
        except SQLAlchemyError:  # no version table yet
            return frozenset()


def describe(revisions: frozenset[str]) -> str:
    """Revisions as one line for people and health checks: "alerting_0000 auth_0000 …" or "none"."""
    return " ".join(sorted(revisions)) or "none"


def upgrade(engine: Engine, extra: Sequence[Path] = ()) -> None:
    """Bring the database to the newest schema, every branch to its head; a no-op when it is current.

    >>> from watchkeeper.store.engine import make_engine
    >>> engine = make_engine("sqlite://"); upgrade(engine); current_revisions(engine) == head_revisions()
    True
    """
    from alembic import command

    from watchkeeper.store.engine import for_writing

    if current_revisions(engine) == head_revisions(extra):
        return  # what Alembic would find too, after loading every script and the environment (~0.2 s)
    config = _config(extra)
    # The write lock from BEGIN: Alembic reads the version table before it changes the schema, and a
    # server already running on the database (a rolling restart, `watchkeeper migrate` beside it)
    # commits in between; a deferred transaction would then fail at once with "database is locked".
    with for_writing(engine).begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "heads")


def upgrade_in_child(database_url: str) -> None:
    """`upgrade` in a child process. Raises RuntimeError with the child's output if it failed."""
    # The URL travels on stdin: it can hold a password, and `ps` shows command lines to every user.
    done = subprocess.run([sys.executable, "-P", "-m", "watchkeeper.store.migrate"], input=database_url,
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"database migration failed:\n{done.stderr.strip() or done.stdout.strip()}")


def make_revision(engine: Engine, branch: str, message: str, extra: Sequence[Path] = ()) -> Path:
    """Developer tool: draft a revision on `branch` ("errors", "platform", …) from the difference between
    the tables and a database at every head; written to that branch's folder as
    `<number>_<message>.py` with the id "<branch>_<number>". Returns its path."""
    from alembic import command
    from alembic.script import Script, ScriptDirectory

    config = _config(extra)
    newest = ScriptDirectory.from_config(config).get_revision(f"{branch}@head")
    assert newest is not None
    number = f"{int(newest.revision.rsplit('_', 1)[1]) + 1:04d}"
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        written = command.revision(config, message=message, autogenerate=True, head=f"{branch}@head",
                                   rev_id=f"{branch}_{number}", version_path=str(Path(newest.path).parent))
    assert isinstance(written, Script)
    path = Path(written.path)
    return path.rename(path.with_name(f"{number}_{path.name.removeprefix(f'{branch}_{number}_')}"))


if __name__ == "__main__":
    from watchkeeper.store.engine import make_engine

    child_engine = make_engine(sys.stdin.read().strip())
    upgrade(child_engine)
    child_engine.dispose()
