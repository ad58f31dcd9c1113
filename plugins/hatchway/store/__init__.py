"""Hatchway's own relational store (SQLAlchemy + Alembic): workspaces, workflows, WES runs, usage."""

from hatchway.store.store import (
    Conflict,
    Member,
    NotAllowed,
    NotFound,
    RunRecord,
    Store,
    UsageRecord,
    Workflow,
    Workspace,
)

__all__ = ["Conflict", "Member", "NotAllowed", "NotFound", "RunRecord", "Store", "UsageRecord", "Workflow", "Workspace"]
