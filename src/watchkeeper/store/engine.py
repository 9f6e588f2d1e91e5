"""Database engines: SQLite (WAL, busy timeout, foreign keys) by default, PostgreSQL by URL."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, create_engine, event

_WRITING = "watchkeeper_writing"

# Pages the WAL may hold before a commit copies them into the database file (SQLite's default: 1000,
# 4 MiB). Under ingest the same hot index pages are dirtied by every batch: each checkpoint writes them
# to the database file again, so a WAL ten times longer cut the bytes written per event by a fifth and
# the writer's CPU per event by ~12 % (bench/writer_batches.py). The WAL file stays ~40 MiB; durability
# is unchanged (every commit is still fsynced to the WAL).
WAL_AUTOCHECKPOINT_PAGES = 10_000


def for_writing(engine: Engine) -> Engine:
    """The same engine, but its transactions take SQLite's write lock at BEGIN.

    A deferred transaction that reads and then writes fails at once with "database is locked" when another
    connection committed in between (SQLite cannot upgrade a stale snapshot). Taking the lock up front makes
    it wait on the busy timeout instead. Readers keep deferred transactions so they never block each other.
    No effect on PostgreSQL.
    """
    return engine.execution_options(**{_WRITING: True})


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def make_engine(url: str, *, sqlite_synchronous: str = "FULL", pool_size: int = 8, cache_mib: int = 16) -> Engine:
    """Create the engine for a database URL.

    ``cache_mib``: SQLite's page cache per connection, which counts in the process's memory for as long
    as the connection lives in the pool. 16 MiB each for the server's readers and writer thread (the
    operating system caches the file as well); the writer process, which does the ingest writes, takes 64.

    >>> make_engine("sqlite://").dialect.name
    'sqlite'
    """
    if url.startswith("sqlite"):
        engine = (
            create_engine(
                url,
                connect_args={"check_same_thread": False, "timeout": 30},
                pool_size=pool_size,
                max_overflow=pool_size,
            )
            if url not in ("sqlite://", "sqlite:///:memory:")
            else create_engine(url)
        )

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            # Let SQLAlchemy, not pysqlite, decide when transactions begin (pysqlite's legacy
            # behaviour breaks SAVEPOINT and makes BEGIN implicit).
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA synchronous={sqlite_synchronous}")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA cache_size=-{cache_mib * 1024}")
            cursor.execute("PRAGMA temp_store=MEMORY")
            cursor.execute(f"PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT_PAGES}")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Any) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get(_WRITING) else "BEGIN")

        return engine
    return create_engine(url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)
