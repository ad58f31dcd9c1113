"""Hatchway's store: workspaces, members, deployed workflows and WES runs.

Revision ID: 0001
Revises:
Create Date: 2025-01-01 00:00:00

"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0001"
down_revision: Union[str, Sequence[str], None] = None
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        "hatchway_workspaces",
        sa.Column("name", sa.String(32), nullable=False),
        sa.Column("owner", sa.String(128), nullable=False),
        sa.Column("bucket", sa.String(63), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_hatchway_workspaces"),
    )
    op.create_table(
        "hatchway_members",
        sa.Column("workspace", sa.String(32), nullable=False),
        sa.Column("user", sa.String(128), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.PrimaryKeyConstraint("workspace", "user", name="pk_hatchway_members"),
        sa.ForeignKeyConstraint(["workspace"], ["hatchway_workspaces.name"], ondelete="CASCADE",
                                name="fk_hatchway_members_workspace_hatchway_workspaces"),
        sa.CheckConstraint("role IN ('owner', 'member')", name="ck_hatchway_members_role"),
    )
    op.create_table(
        "hatchway_workflows",
        sa.Column("deploying_workspace", sa.String(32), nullable=False),
        sa.Column("name", sa.String(63), nullable=False),
        sa.Column("engine", sa.String(8), nullable=False),
        sa.Column("version", sa.String(32), nullable=False),
        sa.Column("git_url", sa.String(2048), nullable=True),
        sa.Column("git_ref", sa.String(255), nullable=True),
        sa.Column("pipeline", sa.String(512), nullable=True),
        sa.Column("parameter_schema", sa.JSON(), nullable=False),
        sa.Column("policy", sa.String(16), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("deploying_workspace", "name", name="pk_hatchway_workflows"),
    )
    op.create_table(
        "hatchway_runs",
        sa.Column("run_id", sa.String(32), nullable=False),
        sa.Column("dag_id", sa.String(250), nullable=False),
        sa.Column("dag_run_id", sa.String(250), nullable=False),
        sa.Column("calling_workspace", sa.String(32), nullable=False),
        sa.Column("deploying_workspace", sa.String(32), nullable=False),
        sa.Column("executing_workspace", sa.String(32), nullable=False),
        sa.Column("workflow_name", sa.String(63), nullable=False),
        sa.Column("workflow_version", sa.String(32), nullable=False),
        sa.Column("engine", sa.String(8), nullable=False),
        sa.Column("request", sa.JSON(), nullable=False),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("cancel_requested_at", sa.DateTime(), nullable=True),
        sa.Column("outputs", sa.JSON(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("run_id", name="pk_hatchway_runs"),
        sa.UniqueConstraint("dag_run_id", name="uq_hatchway_runs_dag_run_id"),
    )
    op.create_index("ix_hatchway_runs_calling_page", "hatchway_runs",
                    ["calling_workspace", "created_at", "run_id"])


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_index("ix_hatchway_runs_calling_page", table_name="hatchway_runs")
    op.drop_table("hatchway_runs")
    op.drop_table("hatchway_workflows")
    op.drop_table("hatchway_members")
    op.drop_table("hatchway_workspaces")
