"""platform: the root of the platform's own migration branch (changes nothing)

Revisions of the tables that store/ and lib/ own (leases, signals) live in this folder and descend from
this one, so they never collide with a domain's. Revision ids are "platform_<number>"; a new one revises the newest
here (see docs/deployment.md, "Database migrations").

Revision ID: platform_0000
Revises: 0011_status
Create Date: 2026-12-07 15:30:00
"""

revision = "platform_0000"
down_revision = "0011_status"
branch_labels = ("platform",)
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
