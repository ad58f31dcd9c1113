"""Which Cromwell server a workspace's workflows go to.

``shared`` mode: the one server of the connection ``cromwell_conn_id``, shared by every
workspace (isolated by the reserved label). ``per_workspace`` mode: the workspace's own server,
named by the Variable :func:`hatchway.domain.cromwell.server_variable` that
``cromwell_server_provision`` writes; a workspace without one is refused with what to do.
The caller passes how to read a Variable (a task and the front door read them differently).
"""

from __future__ import annotations

import json
from collections.abc import Callable

from hatchway.domain.cromwell import CromwellSettings, server_variable
from hatchway.hooks.cromwell import CromwellEndpoint, CromwellError, CromwellHook


class NoServer(CromwellError):
    """``per_workspace`` mode and the workspace has no Cromwell server (yet, or any more)."""


def server_url(settings: CromwellSettings, workspace: str, read_variable: Callable[[str], str | None]) -> str | None:
    """The workspace's own server's base URL (``per_workspace``), or None for the shared server."""
    if settings.mode == "shared":
        return None
    raw = read_variable(server_variable(workspace))
    if not raw:
        raise NoServer(f"workspace {workspace!r} has no Cromwell server of its own: run cromwell_server_provision "
                       "for it (hatchway_cromwell_config has mode per_workspace)")
    return json.loads(raw)["endpoint"].rstrip("/")


def hook_for(settings: CromwellSettings, workspace: str, read_variable: Callable[[str], str | None]) -> CromwellHook:
    """A hook on the server that holds ``workspace``'s workflows."""
    url = server_url(settings, workspace, read_variable)
    return hook_at(settings, url)


def hook_at(settings: CromwellSettings, url: str | None) -> CromwellHook:
    """A hook on ``url`` (a workspace's own server), or on the shared server when None."""
    if url is None:
        return CromwellHook(settings.cromwell_conn_id)
    return CromwellHook(endpoint=CromwellEndpoint(conn_id=f"workspace server {url}", base_url=url))
