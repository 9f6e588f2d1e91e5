"""errors: the root of the domain's own migration branch (changes nothing)

Every revision of the errors domain lives in this folder and descends from this one, so its revisions
never collide with another domain's. Revision ids are "errors_<number>"; a new one revises the newest
here (see docs/deployment.md, "Database migrations").

Revision ID: errors_0000
Revises: 0011_status
Create Date: 2026-12-07 15:30:00
"""

revision = "errors_0000"
down_revision = "0011_status"
branch_labels = ("errors",)
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
