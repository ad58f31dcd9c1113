"""AWE-style routes: a researcher runs a WDL workflow from git by a label of their own.

``/hatchway/awe/{user}/{label}``, as AWE proposed (seed 004), on Hatchway's ``cromwell_run``:

- ``POST`` ``{"workflow_repo", "ref", "path"?, "inputs"?, "options"?, "labels"?}`` starts the run
  (201; 409 when the label is taken by a run of this user);
- ``DELETE`` cancels it: the workflow is aborted at once and the DAG run is marked failed, so
  its teardowns run;
- ``GET .../status`` (one WES-style state, :func:`hatchway.domain.cromwell_state.run_state`),
  ``.../outputs`` (where the outputs were placed, or what Cromwell reports so far),
  ``.../metadata`` (Cromwell's metadata of the workflow).

``{user}`` must be the token's subject and the run lives in the token's workspace; another
user's label is 404, as a label that does not exist.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from hatchway.domain.cromwell_state import CROMWELL_DAG_ID, awe_run_id, run_state

log = logging.getLogger(__name__)
LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


class AweSubmit(BaseModel):
    """The body of ``POST /awe/{user}/{label}``."""

    model_config = ConfigDict(extra="forbid")

    workflow_repo: str
    ref: str
    path: str = "main.wdl"
    inputs: dict[str, Any] = Field(default_factory=dict)
    options: dict[str, Any] = Field(default_factory=dict)
    labels: dict[str, str] = Field(default_factory=dict)


def add_awe_routes(app: FastAPI, authenticate: Callable[[Request], tuple[Any, Any]],
                   error: Callable[[int, str], Exception],
                   check_budget: Callable[[Any, str], None] = lambda deps, workspace: None) -> None:
    """Add the AWE-style routes to the front door app.

    :param authenticate: the door's ``request -> (deps, caller)``.
    :param error: makes the door's error for a status and a message.
    :param check_budget: the door's ``(deps, workspace)`` check that refuses a run past its budget.
    """
    from hatchway.api.airflow_runs import AirflowRuns, DagNotReady

    runs = AirflowRuns(CROMWELL_DAG_ID)

    def own(request: Request, user: str, label: str) -> tuple[Any, Any, str]:
        deps, caller = authenticate(request)
        if user != caller.subject or not LABEL.match(label):
            raise error(404, f"no run {label!r} of user {user!r}")
        run_id = awe_run_id(caller.workspace, user, label)
        return deps, caller, run_id

    def hook(deps: Any, caller: Any):
        from hatchway.api.cromwell_door import workspace_hook
        from hatchway.wdl.servers import NoServer

        try:
            return workspace_hook(deps, caller.workspace)
        except NoServer as exc:
            raise error(503, str(exc)) from None

    def workflow_of(deps: Any, caller: Any, run_id: str) -> tuple[str | None, str | None]:
        from hatchway.hooks.cromwell import CromwellError
        from hatchway.wdl.runs import run_workflows

        cromwell = hook(deps, caller)
        try:
            found = run_workflows(cromwell, caller.workspace, run_id)
        except CromwellError as exc:
            log.warning("AWE door: Cromwell not reachable: %s", exc)
            raise error(503, "the workspace's Cromwell server is not reachable now") from None
        finally:
            cromwell.close()
        return (found[0]["id"], found[0].get("status")) if found else (None, None)

    @app.post("/awe/{user}/{label}", status_code=201)
    async def submit(user: str, label: str, request: Request):
        from fastapi.concurrency import run_in_threadpool

        from hatchway.domain.cromwell import CromwellRunConf

        deps, caller, run_id = await run_in_threadpool(own, request, user, label)
        try:
            body = AweSubmit.model_validate(await request.json())
            conf = CromwellRunConf(run_id=run_id, workspace=caller.workspace,
                                   source={"repo": body.workflow_repo, "ref": body.ref, "path": body.path},
                                   inputs=body.inputs, options=body.options, labels=body.labels)
        except ValidationError as exc:
            first = exc.errors()[0]
            raise error(400, f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}") from None
        except ValueError:
            raise error(400, "the body must be a JSON object") from None
        dag_run_id = f"awe__{run_id}"
        if await run_in_threadpool(runs.exists, dag_run_id):
            raise error(409, f"label {label!r} is taken by a run of {user}: choose another label")
        await run_in_threadpool(check_budget, deps, caller.workspace)
        try:
            await run_in_threadpool(lambda: runs.start(dag_run_id, conf.model_dump(mode="json"), user=f"awe:{user}",
                                                       note=f"AWE run {label} of {user} in {caller.workspace}"))
        except DagNotReady as exc:
            raise error(500, f"the platform cannot start runs now: {exc}") from None
        log.info("AWE run %s (%s of %s) started in workspace %s", run_id, label, user, caller.workspace)
        return {"user": user, "label": label, "run_id": run_id, "state": "QUEUED"}

    @app.get("/awe/{user}/{label}/status")
    def status(user: str, label: str, request: Request):
        deps, caller, run_id = own(request, user, label)
        view = runs.view(f"awe__{run_id}")
        if view.state is None:
            raise error(404, f"no run {label!r} of user {user!r}")
        workflow, cromwell_status = workflow_of(deps, caller, run_id)
        state = run_state(dag_run_state=view.state, tasks=view.task_states, cromwell_status=cromwell_status)
        fetched = runs.xcom(f"awe__{run_id}", "fetch_source") or {}
        answer = {"user": user, "label": label, "run_id": run_id, "state": state.value, "workflow_id": workflow,
                  "cromwell_status": cromwell_status, "commit": fetched.get("commit")}
        refused = runs.xcom(f"awe__{run_id}", "fetch_source", key="refused")
        if refused:
            answer["reason"] = refused
        return answer

    @app.get("/awe/{user}/{label}/outputs")
    def outputs(user: str, label: str, request: Request):
        deps, caller, run_id = own(request, user, label)
        placed = runs.xcom(f"awe__{run_id}", "place_outputs")
        if placed:
            return {"run_id": run_id, "placed": True, "destination": placed["destination"],
                    "outputs": placed["outputs"]}
        workflow, _ = workflow_of(deps, caller, run_id)
        if workflow is None:
            return {"run_id": run_id, "placed": False, "outputs": {}}
        cromwell = hook(deps, caller)
        try:
            return {"run_id": run_id, "placed": False, "outputs": cromwell.outputs(workflow)}
        finally:
            cromwell.close()

    @app.get("/awe/{user}/{label}/metadata")
    def metadata(user: str, label: str, request: Request):
        deps, caller, run_id = own(request, user, label)
        workflow, _ = workflow_of(deps, caller, run_id)
        if workflow is None:
            raise error(404, f"run {label!r} has no Cromwell workflow (yet)")
        cromwell = hook(deps, caller)
        try:
            return cromwell.metadata(workflow, exclude=["submittedFiles"])
        finally:
            cromwell.close()

    @app.delete("/awe/{user}/{label}")
    def cancel(user: str, label: str, request: Request):
        from hatchway.wdl.runs import abort_if_live

        deps, caller, run_id = own(request, user, label)
        if runs.view(f"awe__{run_id}").state is None:
            raise error(404, f"no run {label!r} of user {user!r}")
        workflow, _ = workflow_of(deps, caller, run_id)
        aborted = None
        if workflow is not None:
            cromwell = hook(deps, caller)
            try:
                aborted = abort_if_live(cromwell, workflow)
            finally:
                cromwell.close()
        runs.fail(f"awe__{run_id}")
        log.info("AWE run %s (%s of %s) cancelled", run_id, label, user)
        return {"user": user, "label": label, "run_id": run_id, "workflow_id": workflow,
                "cromwell_status": aborted and aborted["status"]}
