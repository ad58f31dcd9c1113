"""Tables of Hatchway's own store, in their own MetaData, every name prefixed ``hatchway_``.

The store may live in the same PostgreSQL database as Airflow's metadata: the prefix, the
separate MetaData and a version table of our own (see ``migrations/env.py``) keep the two
schemas from ever touching each other.

The tables are created by the Alembic migrations, not by ``create_all``: these classes
are the Python view of them and must follow every migration.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    JSON,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    MetaData,
    String,
    Text,
    TypeDecorator,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Named constraints: Alembic can only alter or drop what it can name, on every backend.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator):
    """Aware UTC datetimes in, aware UTC datetimes out, on every backend.

    Stored as a plain timestamp in UTC: SQLite keeps no zone, so storing one on PostgreSQL
    only would make the same store return different values on the two.
    """

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: the store only takes timezone-aware datetimes")
        return value.astimezone(timezone.utc).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return None if value is None else value.replace(tzinfo=timezone.utc)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class WorkspaceRow(Base):
    __tablename__ = "hatchway_workspaces"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    owner: Mapped[str] = mapped_column(String(128))
    bucket: Mapped[str | None] = mapped_column(String(63))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class MemberRow(Base):
    __tablename__ = "hatchway_members"
    __table_args__ = (CheckConstraint("role IN ('owner', 'member')", name="role"),)

    workspace: Mapped[str] = mapped_column(
        String(32), ForeignKey("hatchway_workspaces.name", ondelete="CASCADE"), primary_key=True
    )
    user: Mapped[str] = mapped_column(String(128), primary_key=True)
    role: Mapped[str] = mapped_column(String(16))


class WorkflowRow(Base):
    __tablename__ = "hatchway_workflows"

    deploying_workspace: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(63), primary_key=True)
    engine: Mapped[str] = mapped_column(String(8))
    version: Mapped[str] = mapped_column(String(32))
    git_url: Mapped[str | None] = mapped_column(String(2048))
    git_ref: Mapped[str | None] = mapped_column(String(255))
    pipeline: Mapped[str | None] = mapped_column(String(512))
    parameter_schema: Mapped[dict] = mapped_column(JSON)
    policy: Mapped[str] = mapped_column(String(16))
    description: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class RunRow(Base):
    __tablename__ = "hatchway_runs"
    # Serves both "runs of a workspace" and keyset paging on (created_at, run_id) within it.
    __table_args__ = (Index("ix_hatchway_runs_calling_page", "calling_workspace", "created_at", "run_id"),)

    run_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    dag_id: Mapped[str] = mapped_column(String(250))
    dag_run_id: Mapped[str] = mapped_column(String(250), unique=True)
    calling_workspace: Mapped[str] = mapped_column(String(32))
    deploying_workspace: Mapped[str] = mapped_column(String(32))
    executing_workspace: Mapped[str] = mapped_column(String(32))
    workflow_name: Mapped[str] = mapped_column(String(63))
    workflow_version: Mapped[str] = mapped_column(String(32))
    engine: Mapped[str] = mapped_column(String(8))
    request: Mapped[dict] = mapped_column(JSON)
    tags: Mapped[dict] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(32))
    cancel_requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # SQL NULL, not JSON 'null', so "no outputs yet" is a plain IS NULL.
    outputs: Mapped[dict | None] = mapped_column(JSON(none_as_null=True))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class UsageRow(Base):
    """What one Airflow run used and its estimated cost (:class:`hatchway.domain.usage.Usage`)."""

    __tablename__ = "hatchway_usage"
    # Serves "usage of a workspace between two times".
    __table_args__ = (Index("ix_hatchway_usage_workspace_ended", "executing_workspace", "ended_at"),)

    dag_id: Mapped[str] = mapped_column(String(250), primary_key=True)
    dag_run_id: Mapped[str] = mapped_column(String(250), primary_key=True)
    run_id: Mapped[str] = mapped_column(String(250))
    executing_workspace: Mapped[str] = mapped_column(String(63))
    calling_workspace: Mapped[str | None] = mapped_column(String(63))
    cost_center: Mapped[str | None] = mapped_column(String(256))
    state: Mapped[str] = mapped_column(String(32))
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    ended_at: Mapped[datetime] = mapped_column(UTCDateTime())
    usage: Mapped[dict] = mapped_column(JSON)
    estimated_cost: Mapped[float] = mapped_column(Float)
    currency: Mapped[str] = mapped_column(String(3))
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime())


class CrateRow(Base):
    """A run's Workflow Run RO-Crate (:mod:`hatchway.outputs.crate`), as written beside its outputs."""

    __tablename__ = "hatchway_crates"

    dag_id: Mapped[str] = mapped_column(String(250), primary_key=True)
    dag_run_id: Mapped[str] = mapped_column(String(250), primary_key=True)
    run_id: Mapped[str] = mapped_column(String(250))
    location: Mapped[str] = mapped_column(String(2048))
    crate: Mapped[dict] = mapped_column(JSON)
    written_at: Mapped[datetime] = mapped_column(UTCDateTime())
