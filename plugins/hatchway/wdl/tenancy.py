"""One Cromwell shared by many workspaces, CromIAM's way (see :mod:`hatchway.domain.cromwell`).

Per-workflow calls are allowed only when the workflow's *root* carries the caller's workspace in
the reserved label; otherwise the caller hears what a stranger's id would get from Cromwell:
404 "Unrecognized workflow ID". Sub-workflows are judged by their root, as CromIAM does.
"""

from __future__ import annotations

import re

from hatchway.domain.cromwell import owned_by
from hatchway.hooks.cromwell import CromwellHook, CromwellNotFound

WORKFLOW_ID = re.compile(r"^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$")


def unknown(workflow_id: str) -> CromwellNotFound:
    message = f"Unrecognized workflow ID: {workflow_id}"
    return CromwellNotFound(message, 404, message)


def check_owner(hook: CromwellHook, workspace: str, workflow_id: str) -> None:
    """Raise :class:`CromwellNotFound` unless ``workflow_id``'s root workflow belongs to ``workspace``."""
    meta = hook.metadata(workflow_id, include=["rootWorkflowId", "labels"])
    root = meta.get("rootWorkflowId") or workflow_id
    labels = meta.get("labels") if root == workflow_id else hook.labels(root)
    if not owned_by(labels, workspace):
        raise unknown(workflow_id)
