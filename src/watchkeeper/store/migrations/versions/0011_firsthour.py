"""auth: users.must_change_password (a generated one-time password is replaced at the first login)

Revision ID: 0011_firsthour
Revises: 0010
Create Date: 2026-12-07 14:50:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0011_firsthour"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("must_change_password", sa.Boolean(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.drop_column("must_change_password")
