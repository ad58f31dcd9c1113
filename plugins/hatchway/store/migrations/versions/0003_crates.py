"""Workflow Run RO-Crates per run (hatchway_crates).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06 00:00:01

"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: Union[str, Sequence[str], None] = "0002"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table(
        "hatchway_crates",
        sa.Column("dag_id", sa.String(250), nullable=False),
        sa.Column("dag_run_id", sa.String(250), nullable=False),
        sa.Column("run_id", sa.String(250), nullable=False),
        sa.Column("location", sa.String(2048), nullable=False),
        sa.Column("crate", sa.JSON(), nullable=False),
        sa.Column("written_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("dag_id", "dag_run_id", name="pk_hatchway_crates"),
    )


def downgrade() -> None:
    op.drop_table("hatchway_crates")
