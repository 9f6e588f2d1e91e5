"""Schema migrations (Alembic), applied at start and by `watchkeeper migrate`.

Alembic is imported only inside the functions that need it: `watchkeeper serve` migrates in a short-lived
child process (`upgrade_in_child`), so the long-running server never holds Alembic's ~10 MB.
"""

from __future__ import annotations

import functools
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).parent / "migrations"


def _config() -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


@functools.cache
def head_revision() -> str | None:
    """The newest revision of the migration scripts (read once per process: Alembic compiles and runs
    every script to learn it)."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_config()).get_current_head()


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at (None before the first migration), without Alembic."""
    with engine.connect() as conn:
        try:
            return conn.scalar(text("SELECT version_num FROM alembic_version"))
        except SQLAlchemyError:  # no version table yet
            return None


def upgrade(engine: Engine) -> None:
    """Bring the database to the newest schema; a no-op when it is current.

    >>> from watchkeeper.store.engine import make_engine
    >>> engine = make_engine("sqlite://"); upgrade(engine); current_revision(engine) == head_revision()
    True
    """
    from alembic import command

    from watchkeeper.store.engine import for_writing

    if current_revision(engine) == head_revision():
        return  # what Alembic would find too, after loading every script and the environment (~0.2 s)
    config = _config()
    # The write lock from BEGIN: Alembic reads the version table before it changes the schema, and a
    # server already running on the database (a rolling restart, `watchkeeper migrate` beside it)
    # commits in between; a deferred transaction would then fail at once with "database is locked".
    with for_writing(engine).begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "head")


def upgrade_in_child(database_url: str) -> None:
    """`upgrade` in a child process. Raises RuntimeError with the child's output if it failed."""
    # The URL travels on stdin: it can hold a password, and `ps` shows command lines to every user.
    done = subprocess.run([sys.executable, "-P", "-m", "watchkeeper.store.migrate"], input=database_url,
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"database migration failed:\n{done.stderr.strip() or done.stdout.strip()}")


def make_revision(engine: Engine, message: str) -> None:
    """Developer tool: autogenerate a migration from the difference between tables and database."""
    from alembic import command

    config = _config()
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.revision(config, message=message, autogenerate=True)


if __name__ == "__main__":
    from watchkeeper.store.engine import make_engine

    child_engine = make_engine(sys.stdin.read().strip())
    upgrade(child_engine)
    child_engine.dispose()
