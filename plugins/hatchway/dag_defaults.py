"""What every Hatchway DAG shares: owner, tags, retries, and the Params of a workspace."""

from __future__ import annotations

import os
from datetime import timedelta

from airflow.sdk import Param

from hatchway.domain.names import OWNER_SCHEMA, WORKSPACE_HELP, WORKSPACE_SCHEMA

# HATCHWAY_TASK_RETRIES lets failure tests (and cautious operators) turn retries off.
DEFAULT_ARGS = {"owner": "hatchway", "retries": int(os.environ.get("HATCHWAY_TASK_RETRIES", "2")), "retry_delay": timedelta(seconds=30),
                "retry_exponential_backoff": True}


def workspace_param() -> Param:
    return Param(type="string", title="Workspace", description=WORKSPACE_HELP, **WORKSPACE_SCHEMA)


def owner_param() -> Param:
    return Param(type="string", title="Owner", description="the researcher's user name or e-mail, lowercase",
                 **OWNER_SCHEMA)
