"""The list of domains, in order, and where each keeps its migrations.

Each domain has its own Alembic branch in a `migrations/` folder beside its code, so two domains built
in parallel never write the same revision (docs/deployment.md, "Database migrations"). This list is the one
place that names them; the domain contract (issue 14) will carry the folder in each domain's record.
Nothing here imports a domain: `watchkeeper.store.migrate` reads it in a child process that must stay
small.
"""

from __future__ import annotations

from pathlib import Path

DOMAINS: tuple[str, ...] = ("auth", "errors", "uptime", "alerting")


def migration_locations() -> list[Path]:
    """Every domain's migrations folder, in the order of DOMAINS.

    >>> [path.parent.name for path in migration_locations()]
    ['auth', 'errors', 'uptime', 'alerting']
    """
    package = Path(__file__).parent
    return [package / name / "migrations" for name in DOMAINS]
