"""The ``wes_run`` DAG's id and task ids: one place, read by the DAG file (when it is parsed,
so no pydantic here) and by the WES state mapping in :mod:`hatchway.domain.wes`."""

from __future__ import annotations

WES_DAG_ID = "wes_run"
TASK_LAUNCH = "launch"
TASK_WAIT = "wait_for_workflow"
TASK_HARVEST = "harvest_outputs"
TASK_STOP = "stop_workflow"
TASK_USAGE = "record_usage"
TASK_CRATE = "write_crate"
TASK_CLEAN = "clean_work"
TEARDOWNS = (TASK_STOP, TASK_USAGE, TASK_CRATE, TASK_CLEAN)
