"""Usage and estimated cost per run (hatchway_usage).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-06 00:00:00

"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: Union[str, Sequence[str], None] = "0001"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table(
        "hatchway_usage",
        sa.Column("dag_id", sa.String(250), nullable=False),
        sa.Column("dag_run_id", sa.String(250), nullable=False),
        sa.Column("run_id", sa.String(250), nullable=False),
        sa.Column("executing_workspace", sa.String(63), nullable=False),
        sa.Column("calling_workspace", sa.String(63), nullable=True),
        sa.Column("cost_center", sa.String(256), nullable=True),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=True),
        sa.Column("ended_at", sa.DateTime(), nullable=False),
        sa.Column("usage", sa.JSON(), nullable=False),
        sa.Column("estimated_cost", sa.Float(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("recorded_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("dag_id", "dag_run_id", name="pk_hatchway_usage"),
    )
    op.create_index("ix_hatchway_usage_workspace_ended", "hatchway_usage", ["executing_workspace", "ended_at"])


def downgrade() -> None:
    op.drop_index("ix_hatchway_usage_workspace_ended", table_name="hatchway_usage")
    op.drop_table("hatchway_usage")
