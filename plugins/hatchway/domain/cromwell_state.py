"""One state for a ``cromwell_run``, from the DAG run, its tasks and its Cromwell workflow.

Cromwell's own status is the truth about the workflow; the DAG run adds what Hatchway does
around it (fetching and checking the source before, placing the outputs after). A run reads
CANCELED whenever its workflow was aborted, or the run was stopped before anything was
submitted, never COMPLETE (Airflow can end a run marked failed as success once its teardowns
pass: docs/airflow-behaviour.md).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

from hatchway.domain.cromwell import WES_STATES, CromwellState, state
from hatchway.domain.wes import WesState

CROMWELL_DAG_ID = "cromwell_run"
ENDED = frozenset({"success", "failed"})


def run_state(*, dag_run_state: str | None, tasks: Mapping[str, str | None], cromwell_status: str | None) -> WesState:
    """The run's WES state.

    :param dag_run_state: the ``cromwell_run`` DAG run's state (None: no such run).
    :param tasks: its task states by task id.
    :param cromwell_status: its workflow's Cromwell status (None: nothing submitted, or not listed yet).
    """
    if dag_run_state is None:
        return WesState.UNKNOWN
    # Marking a run failed (a cancel) skips every task that had not run; nothing else skips here.
    cancelled = "skipped" in tasks.values()
    ended = dag_run_state in ENDED
    current = state(cromwell_status)
    if current in (CromwellState.ABORTING, CromwellState.ABORTED):
        return WesState(WES_STATES[current])
    if current is CromwellState.SUCCEEDED:
        if dag_run_state == "success" and tasks.get("place_outputs") == "success":
            return WesState.COMPLETE
        if cancelled:
            return WesState.CANCELED if ended else WesState.CANCELING
        return WesState.SYSTEM_ERROR if ended else WesState.RUNNING  # placing outputs
    if current is not None and not cancelled:
        return WesState(WES_STATES[current])
    if cancelled:  # a live workflow is aborted by the teardown; until then the run is canceling
        return WesState.CANCELED if ended and current is None else WesState.CANCELING
    # Nothing submitted (or not listed yet): the DAG run tells.
    if not ended:
        return WesState.QUEUED
    if tasks.get("fetch_source") == "failed":
        return WesState.EXECUTOR_ERROR  # the source was refused: the caller's to fix
    if tasks.get("submit") == "failed":
        return WesState.SYSTEM_ERROR
    return WesState.CANCELED  # ended before anything was submitted: stopped by a cancel


def awe_run_id(workspace: str, user: str, label: str) -> str:
    """The Hatchway run of an AWE-style ``/awe/{user}/{label}``: fixed by workspace, user and label."""
    return "awe-" + hashlib.sha256(f"{workspace}\0{user}\0{label}".encode()).hexdigest()[:24]
