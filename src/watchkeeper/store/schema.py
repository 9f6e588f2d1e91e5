"""The one MetaData every domain's tables hang on, and column types that work on SQLite and PostgreSQL.

Timestamps are epoch seconds in double precision: cheap to compare and bucket on both databases,
and the clock hands them out that way.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Integer, MetaData

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# SQLite only auto-increments an INTEGER PRIMARY KEY (the rowid), PostgreSQL wants BIGINT for big tables.
RowId = BigInteger().with_variant(Integer(), "sqlite")


def load_all_tables() -> MetaData:
    """Import every domain's tables so the metadata is complete (for migrations and tests)."""
    from watchkeeper.alerting import tables as _alerting  # noqa: F401
    from watchkeeper.auth import tables as _auth  # noqa: F401
    from watchkeeper.errors import tables as _errors  # noqa: F401
    from watchkeeper.lib import signals as _signals  # noqa: F401
    from watchkeeper.store import leases as _leases  # noqa: F401
    from watchkeeper.uptime import tables as _uptime  # noqa: F401

    return metadata
