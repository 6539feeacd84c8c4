"""Checkpoints of long jobs (their resume state) and their per-frame result items.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "job_checkpoints",
        sa.Column(
            "job_id",
            sa.String(36),
            sa.ForeignKey("jobs.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("state", sa.JSON, nullable=False),
        sa.Column("frames", sa.Integer, nullable=False),
        sa.Column("at", sa.Double, nullable=False),
    )
    op.create_table(
        "job_frames",
        sa.Column(
            "job_id",
            sa.String(36),
            sa.ForeignKey("jobs.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("seq", sa.Integer, primary_key=True),
        sa.Column("frame", sa.Integer),
        sa.Column("timestamp_s", sa.Double),
        sa.Column("item", sa.JSON, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("job_frames")
    op.drop_table("job_checkpoints")
