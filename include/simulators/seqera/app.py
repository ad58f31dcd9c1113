"""FastAPI app of the Seqera Platform simulator.

Spec routes (Seqera API 1.187, ``tests/contracts/seqera-platform-api-1.187.yaml``):
``GET /service-info``, ``GET /workflow``, ``GET /workflow/{workflowId}``,
``POST /workflow/launch``, ``POST /workflow/{workflowId}/cancel``. Answers carry only the
fields the spec allows; a field that would be null is left out, because the spec declares
those fields non-nullable (the real service sends nulls anyway: clients must accept both).

Where the spec is silent, the simulator picks (and Hatchway must tolerate):
- ``search`` matches runs whose ``runName`` contains the text, case-insensitively; the spec
  says only "Filter search parameter".
- Lists are newest first. ``max`` defaults to 50; ``totalSize`` counts every match.
- An unknown workflow id, or one in another workspace, answers 403 without a body
  ("Operation not allowed"), like a workspace the token may not see.
- 401 (no token / wrong token), 429 and 5xx are not in the spec; they carry an
  ``ErrorResponse`` body (``{"message": ...}``).

Control routes under ``/_sim/`` (not in the spec, no auth, loopback only) steer runs,
inject faults and expose counters; see :func:`create_app`. Chaos mode
(:mod:`include.simulators.chaos`, ``/_sim/chaos``) spares ``GET /service-info``, the readiness route.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from include.simulators.chaos import install_chaos
from include.simulators.seqera.state import TERMINAL, Course, Fault, SimState

API_VERSION = "1.187.0"
DEFAULT_MAX = 50


class _SimError(Exception):
    def __init__(self, status: int, message: str | None = None, headers: dict[str, str] | None = None):
        self.status, self.message, self.headers = status, message, headers or {}


def _error(status: int, message: str | None, headers: dict[str, str] | None = None) -> Response:
    if message is None:  # the spec's 403 has no content
        return Response(status_code=status, headers=headers)
    return JSONResponse({"message": message}, status_code=status, headers=headers)


def _int_or_none(value: str | None, name: str) -> int | None:
    if value in (None, ""):
        return None
    try:
        return int(value)
    except ValueError:
        raise _SimError(400, f"Invalid {name} parameter: {value!r}") from None


# -- control-route bodies
class CourseBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    run_name: str
    kind: str = "succeed"
    after: int = 2
    submitted_polls: int = 0
    exit_status: int = 12
    error_report: str | None = None
    outputs: dict[str, str] | None = None
    tasks: list[dict[str, Any]] | None = None


class FaultBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    status: int | str = Field(description="429, 500, 502, 503, 504 or 'hang'")
    count: int = 1
    route: str | None = None
    workspace_id: int | None = None
    seconds: float = 30.0
    retry_after: int | None = None


class NewRun(BaseModel):
    model_config = ConfigDict(extra="forbid")
    run_name: str
    workspace_id: int | None = None
    pipeline: str = "gdp-public/pgsc_calc"
    revision: str | None = "v2.0.0"
    work_dir: str | None = None
    course: dict | None = None


class NewRuns(BaseModel):
    runs: list[NewRun]


class ConfigBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    forbidden_workspaces: list[int] | None = None
    max_page: int | None = -1
    default_course: dict | None = None
    token: str | None = None
    outputs_endpoint_url: str | None = None


def create_app(token: str, *, forbidden_workspaces: tuple[int, ...] = (), max_page: int | None = None) -> FastAPI:
    """Build the simulator app.

    :param token: the Bearer token the API accepts.
    :param forbidden_workspaces: workspace ids the token may not see (403).
    :param max_page: cap on ``max`` for ``GET /workflow`` (None: no cap).
    """
    state = SimState(token, forbidden_workspaces, max_page)
    app = FastAPI(title="Seqera Platform simulator", version=API_VERSION, docs_url=None, redoc_url=None,
                  openapi_url=None)
    app.state.sim = state

    @app.exception_handler(_SimError)
    async def _sim_error(request: Request, exc: _SimError):
        return _error(exc.status, exc.message, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _bad_request(request: Request, exc: RequestValidationError):
        # The spec's error answer is 400 ErrorResponse, not FastAPI's 422.
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return _error(400, f"Bad request: {where}: {first.get('msg', 'invalid')}")

    async def gate(request: Request) -> int | None:
        """Every spec route with BearerAuth: count, record, inject faults, authenticate, authorise."""
        route = f"{request.method} {request.scope['route'].path}"
        workspace_id = _int_or_none(request.query_params.get("workspaceId"), "workspaceId")
        body = (await request.body()).decode(errors="replace")
        auth = request.headers.get("authorization")
        state.record(route, workspace_id, {
            "method": request.method, "path": request.url.path, "route": route,
            "query": list(request.query_params.multi_items()),
            # Recorded so spec validation can see a Bearer header; never the token itself.
            "headers": {"authorization": "Bearer <redacted>" if auth else None,
                        "content-type": request.headers.get("content-type")},
            "body": body or None,
        })
        request.state.route, request.state.workspace_id = route, workspace_id
        fault = state.take_fault(route, workspace_id)
        if fault is not None:
            if fault.status == "hang":
                await asyncio.sleep(fault.seconds)
            else:
                status = int(fault.status)
                headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else None
                state.log_answer(route, workspace_id, status)
                raise _SimError(status, "Too many requests" if status == 429 else "Internal server error", headers)
        scheme, _, given = (auth or "").partition(" ")
        if scheme.lower() != "bearer" or not given or not _same(given.strip(), state.token):
            state.log_answer(route, workspace_id, 401)
            raise _SimError(401, "Unauthorized", {"WWW-Authenticate": "Bearer"})
        if workspace_id is not None and workspace_id in state.forbidden_workspaces:
            state.log_answer(route, workspace_id, 403)
            raise _SimError(403)
        return workspace_id

    api = APIRouter(dependencies=[Depends(gate)])

    @app.get("/service-info")
    async def service_info():
        return {"serviceInfo": {
            "version": "25.1.0-sim", "apiVersion": API_VERSION, "commitId": "simulator",
            "authTypes": ["token"], "waveEnabled": False, "groundswellEnabled": False, "seqeraCloud": False,
            "heartbeatInterval": 60, "userWorkspaceEnabled": True, "allowInstanceCredentials": False,
            "launchParamsTextMaxSize": 512_000, "launchConfigTextMaxSize": 512_000,
        }}

    @api.get("/workflow")
    async def list_workflows(request: Request, search: str | None = None, max: str | None = Query(None),
                             offset: str | None = None, attributes: str | None = None,
                             includeTotalSize: str | None = None):
        workspace_id = request.state.workspace_id
        size = _int_or_none(max, "max")
        start = _int_or_none(offset, "offset") or 0
        size = DEFAULT_MAX if size is None else size
        if size < 0 or start < 0:
            raise _SimError(400, "max and offset must be >= 0")
        if state.max_page is not None:
            size = min(size, state.max_page)
        found = state.list_runs(workspace_id, search)
        page = found[start:start + size]
        now = time.time()
        wanted = set((attributes or "").split(","))
        out = []
        for run in page:
            run.poll(now)
            element: dict[str, Any] = {"workflow": run.workflow_dto(), "progress": run.progress(),
                                       "starred": False, "orgId": 1, "orgName": "hatchway-sim"}
            if workspace_id is not None:
                element.update(workspaceId=workspace_id, workspaceName=f"workspace-{workspace_id}")
            if "labels" in wanted:
                element["labels"] = []
            if "optimized" in wanted:
                element["optimized"] = False
            out.append(element)
        state.log_answer(request.state.route, workspace_id, 200)
        return {"workflows": out, "totalSize": len(found), "hasMore": start + len(page) < len(found)}

    @api.post("/workflow/launch")
    async def launch(request: Request):
        workspace_id = request.state.workspace_id
        try:
            body = json.loads(await request.body() or b"null")
        except ValueError:
            raise _SimError(400, "Request body is not valid JSON") from None
        launch = body.get("launch") if isinstance(body, dict) else None
        if not isinstance(launch, dict):
            raise _SimError(400, "Missing launch request")
        for required in ("computeEnvId", "pipeline"):
            if not isinstance(launch.get(required), str) or not launch[required]:
                raise _SimError(400, f"Missing launch field: {required}")
        params_text = launch.get("paramsText")
        if params_text is not None and not isinstance(params_text, str):
            raise _SimError(400, "paramsText must be a string")
        run = state.create_run(run_name=launch.get("runName"), workspace_id=workspace_id,
                               pipeline=launch["pipeline"], revision=launch.get("revision"),
                               work_dir=launch.get("workDir"), compute_env_id=launch["computeEnvId"],
                               params_text=params_text)
        state.log_answer(request.state.route, workspace_id, 200)
        return {"workflowId": run.id}

    def visible_run(request: Request, workflow_id: str):
        """The run, if the token's workspace may see it; 403 without a body otherwise (as Seqera)."""
        workspace_id = request.state.workspace_id
        run = state.get_run(workflow_id, workspace_id)
        if run is None:
            state.log_answer(request.state.route, workspace_id, 403)
            raise _SimError(403)
        return workspace_id, run

    @api.get("/workflow/{workflowId}")
    async def describe(request: Request, workflowId: str, attributes: str | None = None):
        workspace_id, run = visible_run(request, workflowId)
        run.poll(time.time())
        answer: dict[str, Any] = {"workflow": run.workflow_dto(max_fields=True), "progress": run.progress(),
                                  "labels": [], "messages": [], "optimized": False, "orgId": 1,
                                  "orgName": "hatchway-sim"}
        if workspace_id is not None:
            answer.update(workspaceId=workspace_id, workspaceName=f"workspace-{workspace_id}")
        state.log_answer(request.state.route, workspace_id, 200)
        return answer

    @api.get("/workflow/{workflowId}/tasks")
    async def list_tasks(request: Request, workflowId: str, max: str | None = Query(None),
                         offset: str | None = None):
        workspace_id, run = visible_run(request, workflowId)
        size = _int_or_none(max, "max")
        start = _int_or_none(offset, "offset") or 0
        size = DEFAULT_MAX if size is None else size
        if size < 0 or start < 0:
            raise _SimError(400, "max and offset must be >= 0")
        tasks = run.tasks()
        state.log_answer(request.state.route, workspace_id, 200)
        return {"tasks": [{"task": task} for task in tasks[start:start + size]], "total": len(tasks)}

    @api.post("/workflow/{workflowId}/cancel")
    async def cancel(request: Request, workflowId: str, force: str | None = None):
        workspace_id, run = visible_run(request, workflowId)
        if run.status in TERMINAL:
            state.log_answer(request.state.route, workspace_id, 400)
            raise _SimError(400, f"Workflow {workflowId} is not active: {run.status}")
        run.cancel(time.time())
        state.log_answer(request.state.route, workspace_id, 204)
        return Response(status_code=204)

    app.include_router(api)
    chaos = install_chaos(app, exempt=("GET /service-info",))

    # -- control routes
    sim = APIRouter(prefix="/_sim")

    @sim.post("/courses")
    async def set_course(body: CourseBody):
        fields = body.model_dump(exclude={"run_name"}, exclude_none=True)
        try:
            course = Course(**fields)
        except ValueError as exc:
            raise HTTPException(400, str(exc)) from None
        return {"run_name": body.run_name, "course": asdict(course), "changed": state.set_course(body.run_name, course)}

    @sim.post("/runs")
    async def create_runs(body: NewRuns):
        ids = {}
        for item in body.runs:
            try:
                course = Course(**item.course) if item.course else None
            except (TypeError, ValueError) as exc:
                raise HTTPException(400, str(exc)) from None
            run = state.create_run(run_name=item.run_name, workspace_id=item.workspace_id, pipeline=item.pipeline,
                                   revision=item.revision, work_dir=item.work_dir, compute_env_id="ce-helm",
                                   course=course)
            ids[item.run_name] = run.id
        return {"ids": ids}

    @sim.get("/runs")
    async def list_runs():
        return {"runs": [run.summary() for run in state.runs.values()], "output_errors": state.output_errors}

    @sim.post("/faults")
    async def add_fault(body: FaultBody):
        if body.status != "hang" and not (isinstance(body.status, int) and 400 <= body.status <= 599):
            raise HTTPException(400, "status must be an HTTP error code or 'hang'")
        state.faults.append(Fault(**body.model_dump()))
        return {"faults": [asdict(f) for f in state.faults]}

    @sim.get("/calls")
    async def calls(since: float = 0.0):
        return {"routes": dict(state.calls),
                "by_workspace": {route: dict(c) for route, c in state.calls_by_workspace.items()},
                "log": [entry for entry in state.log if entry[0] >= since]}

    @sim.get("/requests")
    async def requests_():
        return {"requests": state.requests}

    @sim.post("/config")
    async def configure(body: ConfigBody):
        try:
            state.configure(**body.model_dump(exclude_unset=True))
        except (TypeError, ValueError) as exc:
            raise HTTPException(400, str(exc)) from None
        return {"forbidden_workspaces": sorted(state.forbidden_workspaces), "max_page": state.max_page,
                "default_course": asdict(state.default_course), "outputs_endpoint_url": state.outputs_endpoint_url}

    @sim.post("/reset")
    async def reset():
        state.reset()
        chaos.reset()
        return {"reset": True}

    app.include_router(sim)
    return app


def _same(given: str, expected: str) -> bool:
    import hmac

    return hmac.compare_digest(given.encode(), expected.encode())
