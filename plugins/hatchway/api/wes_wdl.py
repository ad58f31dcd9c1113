"""WES runs of WDL workflows: the door's ``workflow_type: WDL`` runs on ``cromwell_run``.

A deployed WDL workflow is a git repository and ref; its main WDL is ``main.wdl`` at the
repository's root. The run executes in the executing workspace (the reserved label and
``hogGroup`` name it), and its outputs are placed in the calling workspace's
``processing-results/<run id>/``, where Nextflow runs' STAC catalogs go. The WES state is
:func:`hatchway.domain.cromwell_state.run_state`, with a cancel winning as for every WES run;
the WES tasks are the workflow's Cromwell calls, with their state and return code.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Any

from hatchway.domain.cromwell import CromwellRunConf
from hatchway.domain.cromwell_state import CROMWELL_DAG_ID, run_state
from hatchway.domain.wes import WesState, catalog_prefix, dag_run_id

log = logging.getLogger(__name__)
MAIN_WDL = "main.wdl"
# Cromwell call states as WES reads them: the call's end, or that it is still going.
ENDED_CALLS = {"Done": 0, "Failed": None, "Aborted": None, "Bypassed": 0, "Unstartable": None}


def wdl_conf(*, run_id: str, calling: str, executing: str, bucket: str, git_url: str, git_ref: str,
             params: dict[str, Any]) -> CromwellRunConf:
    """The ``cromwell_run`` conf of a WES run of a deployed WDL workflow."""
    return CromwellRunConf(run_id=run_id, workspace=executing,
                           source={"repo": git_url, "ref": git_ref, "path": MAIN_WDL}, inputs=params,
                           labels={"hatchway-calling": calling},
                           destination=f"s3://{bucket}/{catalog_prefix(calling, run_id)}")


def record(conf: CromwellRunConf, *, calling: str, deploying: str, name: str, version: str,
           request_body: dict[str, Any], tags: dict[str, str]):
    from hatchway.store import RunRecord

    now = datetime.now(timezone.utc)
    return RunRecord(run_id=conf.run_id, dag_id=CROMWELL_DAG_ID, dag_run_id=dag_run_id(conf.run_id),
                     calling_workspace=calling, deploying_workspace=deploying, executing_workspace=conf.workspace,
                     workflow_name=name, workflow_version=version, engine="WDL", request=request_body, tags=tags,
                     state=WesState.QUEUED.value, cancel_requested_at=None, outputs=None, created_at=now,
                     updated_at=now)


def _hook(deps: Any, rec: Any):
    from hatchway.api.cromwell_door import workspace_hook

    return workspace_hook(deps, rec.executing_workspace)


def workflow(deps: Any, rec: Any) -> dict[str, Any] | None:
    """The run's newest Cromwell workflow (a query record), or None when nothing was submitted
    (or, in ``per_workspace`` mode, the executing workspace has no server any more)."""
    from hatchway.wdl.runs import run_workflows
    from hatchway.wdl.servers import NoServer

    try:
        hook = _hook(deps, rec)
    except NoServer:
        return None
    try:
        found = run_workflows(hook, rec.executing_workspace, rec.run_id)
    finally:
        hook.close()
    return found[0] if found else None


def state(deps: Any, rec: Any, view: Any) -> WesState:
    """The run's WES state; a requested cancel reads CANCELING until the run has ended, then CANCELED."""
    current = workflow(deps, rec)
    result = run_state(dag_run_state=view.state, tasks=view.task_states,
                       cromwell_status=current.get("status") if current else None)
    if rec.cancel_requested_at is not None and result not in (WesState.CANCELED, WesState.CANCELING):
        return WesState.CANCELED if view.state in ("success", "failed") else WesState.CANCELING
    return result


def abort(deps: Any, rec: Any) -> dict[str, Any] | None:
    """Abort the run's workflow now if it is live (the DAG run's teardown would, later)."""
    from hatchway.wdl.runs import abort_if_live

    current = workflow(deps, rec)
    if current is None:
        return None
    hook = _hook(deps, rec)
    try:
        return abort_if_live(hook, current["id"])
    finally:
        hook.close()


def task_logs(deps: Any, rec: Any) -> list[dict[str, Any]]:
    """The workflow's Cromwell calls as WES task logs (id ``<call>:<shard>:<attempt>``)."""
    current = workflow(deps, rec)
    if current is None:
        return []
    hook = _hook(deps, rec)
    try:
        calls = hook.metadata(current["id"], include=["calls"]).get("calls") or {}
    finally:
        hook.close()
    out = []
    for name, attempts in sorted(calls.items()):
        for call in attempts:
            entry: dict[str, Any] = {
                "id": f"{name}:{call.get('shardIndex', -1)}:{call.get('attempt', 1)}", "name": name,
                "system_logs": [f"state: {call.get('executionStatus')}", f"backend: {call.get('backend')}",
                                f"job: {call.get('jobId')}"]}
            for key, field in (("start", "start_time"), ("end", "end_time"), ("stdout", "stdout"),
                               ("stderr", "stderr")):
                if call.get(key):
                    entry[field] = call[key]
            if call.get("returnCode") is not None:
                entry["exit_code"] = call["returnCode"]
            out.append(entry)
    return out


def outputs(runs: Any, rec: Any) -> dict[str, Any]:
    """Where the outputs were placed: the ``place_outputs`` task's report."""
    placed = runs.xcom(rec.dag_run_id, "place_outputs") or {}
    return {"destination": placed.get("destination"), "outputs": placed.get("outputs") or {},
            "manifest": placed.get("manifest")}
