"""A job's retry policy is stored on it, fixed when it is created.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # NULL for older jobs: read as "retry nothing but a lost worker".
    op.add_column("jobs", sa.Column("retry_on", sa.JSON))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("retry_on")
