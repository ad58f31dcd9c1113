"""What every Hatchway DAG shares: owner, tags, retries, the run timeout, and the Params of a
workspace. Imported by every DAG file when it is parsed: keep it light (no pydantic model, no
provider, no hook)."""

from __future__ import annotations

import os
from datetime import timedelta

from airflow.sdk import Param

from hatchway.domain.limits import run_timeout  # noqa: F401  (job_run's and wes_run's dagrun_timeout)
from hatchway.domain.name_forms import OWNER_SCHEMA, WORKSPACE_HELP, WORKSPACE_SCHEMA

# HATCHWAY_TASK_RETRIES lets failure tests (and cautious operators) turn retries off;
# HATCHWAY_TASK_RETRY_DELAY (seconds) shortens the wait before a retry (the dev stack: 2 s).
DEFAULT_ARGS = {"owner": "hatchway", "retries": int(os.environ.get("HATCHWAY_TASK_RETRIES", "2")),
                "retry_delay": timedelta(seconds=float(os.environ.get("HATCHWAY_TASK_RETRY_DELAY", "30"))),
                "retry_exponential_backoff": True}


def workspace_param() -> Param:
    return Param(type="string", title="Workspace", description=WORKSPACE_HELP, **WORKSPACE_SCHEMA)


def owner_param() -> Param:
    return Param(type="string", title="Owner", description="the researcher's user name or e-mail, lowercase",
                 **OWNER_SCHEMA)

