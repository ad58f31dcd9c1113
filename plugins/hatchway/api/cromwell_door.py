"""Cromwell's own REST API, per workspace, so Cromwell's clients (cromshell, cromwell-tools) work unchanged.

``/hatchway/cromwell/{workspace}/api/workflows/v1/...`` answers like Cromwell, with the
tenancy rules of :mod:`hatchway.domain.cromwell` applied on the way (CromIAM's design):

- the caller's token must name ``{workspace}``; any other workspace in the path is 404;
- a submission gets the reserved workspace label and ``hogGroup``; a caller's label of a
  reserved key, a workflow option Hatchway owns, or a ``workflowUrl`` (Cromwell would fetch
  from anywhere) is refused with 400;
- every query is narrowed to the workspace; ``labelor`` and ``excludeLabel*`` are refused;
- every per-workflow call (status, outputs, metadata, labels, logs, abort...) first checks the
  root workflow's reserved label and answers Cromwell's 404 "Unrecognized workflow ID" otherwise;
- ``backends`` and womtool's ``describe`` pass through (they reveal no workflow);
- a submission of a workspace whose month has reached its budget (``budgets`` in
  ``hatchway_config``) is refused with 403 and the figures, as the WES door refuses a run.

Errors are Cromwell's envelope, ``{"status": "fail"|"error", "message"}``, so its clients show
them. The shared server is the ``cromwell_conn_id`` of ``hatchway_cromwell_config``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from starlette.datastructures import UploadFile

from hatchway.domain.cromwell import TenancyError, submission_labels, submission_options, tenant_query

log = logging.getLogger(__name__)
PREFIX = "/cromwell/{workspace}/api/workflows/{version}"
PER_WORKFLOW = {"status", "outputs", "metadata", "labels", "logs", "timing", "abort", "releaseHold"}
MAX_SUBMISSION_BYTES = 20 * 1024 * 1024


def read_variable(key: str) -> str | None:
    """An Airflow Variable as the door reads it (it runs in the api-server, on the metadata DB)."""
    from airflow.models.variable import Variable

    return Variable.get(key, default_var=None)


def workspace_hook(deps: Any, workspace: str):
    """A hook on the server holding ``workspace``'s workflows (the shared one, or its own).

    :raises hatchway.wdl.servers.NoServer: ``per_workspace`` mode and the workspace has none.
    """
    from hatchway.wdl.servers import hook_for

    return hook_for(deps.cromwell, workspace, read_variable)


class CromwellDoorError(Exception):
    def __init__(self, status: int, message: str, kind: str = "fail"):
        super().__init__(message)
        self.status, self.message, self.kind = status, message, kind


def _relayed(resp: Any) -> Response:
    return Response(resp.content, status_code=resp.status_code,
                    media_type=resp.headers.get("content-type", "application/json"))


def add_cromwell_routes(app: FastAPI, authenticate: Callable[[Request], tuple[Any, Any]]) -> None:
    """Add the per-workspace Cromwell routes to the front door app.

    :param authenticate: the door's ``request -> (deps, caller)``; ``deps.cromwell`` holds the settings.
    """

    @app.exception_handler(CromwellDoorError)
    async def _cromwell_error(request: Request, exc: CromwellDoorError):
        return JSONResponse({"status": exc.kind, "message": exc.message}, status_code=exc.status)

    def tenant(request: Request, workspace: str, *, submitting: bool = False):
        from hatchway.wdl.servers import NoServer

        deps, caller = authenticate(request)
        if caller.workspace != workspace:
            raise CromwellDoorError(404, f"no Cromwell workspace {workspace!r} for this token")
        if submitting:
            refused(deps, workspace)
        try:
            return caller, workspace_hook(deps, workspace), deps.cromwell
        except NoServer as exc:
            raise CromwellDoorError(503, str(exc), "error") from None

    def refused(deps: Any, workspace: str) -> None:
        """The WES door's budget rule (:func:`hatchway.usage.runs.month_refusal`), in Cromwell's envelope."""
        from hatchway.usage.runs import month_refusal

        refusal = month_refusal(deps.store, workspace, deps.platform.budgets.get(workspace),
                                deps.platform.price_table.currency)
        if refusal:
            raise CromwellDoorError(403, refusal)

    def call(hook, fn: Callable[[], Response]) -> Response:
        from hatchway.hooks.cromwell import CromwellApiError, CromwellError

        try:
            return fn()
        except CromwellApiError as exc:
            raise CromwellDoorError(exc.status, exc.message or str(exc)) from None
        except CromwellError as exc:
            log.warning("Cromwell door: %s", exc)
            raise CromwellDoorError(503, "the workspace's Cromwell server is not reachable now", "error") from None
        finally:
            hook.close()

    @app.get(PREFIX + "/backends")
    def backends(workspace: str, version: str, request: Request):
        _, hook, _ = tenant(request, workspace)
        return call(hook, lambda: _relayed(hook.relay("GET", f"/api/workflows/{version}/backends")))

    @app.post("/cromwell/{workspace}/api/womtool/{version}/describe")
    async def describe(workspace: str, version: str, request: Request):
        _, hook, _ = await run_in_threadpool(tenant, request, workspace)
        data, files = await _form(request)
        return await run_in_threadpool(call, hook, lambda: _relayed(
            hook.relay("POST", f"/api/womtool/{version}/describe", data=data, files=files)))

    @app.post(PREFIX)
    async def submit(workspace: str, version: str, request: Request):
        caller, hook, settings = await run_in_threadpool(lambda: tenant(request, workspace, submitting=True))
        data, files = await _form(request)
        try:
            data, files = _tenant_submission(workspace, data, files, settings.workflow_options)
        except TenancyError as exc:
            raise CromwellDoorError(400, str(exc)) from None
        answer = await run_in_threadpool(call, hook, lambda: _relayed(
            hook.relay("POST", f"/api/workflows/{version}", data=data, files=files)))
        log.info("Cromwell door: %s of workspace %s submitted (HTTP %s)", caller.subject, workspace,
                 answer.status_code)
        return answer

    @app.get(PREFIX + "/query")
    def query(workspace: str, version: str, request: Request):
        _, hook, _ = tenant(request, workspace)
        try:
            params = tenant_query(workspace, request.query_params.multi_items())
        except TenancyError as exc:
            raise CromwellDoorError(400, str(exc)) from None
        return call(hook, lambda: _relayed(hook.relay("GET", f"/api/workflows/{version}/query", params=params)))

    @app.post(PREFIX + "/query")
    async def query_post(workspace: str, version: str, request: Request):
        _, hook, _ = await run_in_threadpool(tenant, request, workspace)
        try:
            terms = [(k, str(v)) for term in await request.json() for k, v in dict(term).items()]
            body = [{k: v} for k, v in tenant_query(workspace, terms)]
        except TenancyError as exc:
            raise CromwellDoorError(400, str(exc)) from None
        except (ValueError, TypeError, AttributeError):
            raise CromwellDoorError(400, "the query body must be a JSON array of single-key objects") from None
        return await run_in_threadpool(call, hook, lambda: _relayed(
            hook.relay("POST", f"/api/workflows/{version}/query", json=body)))

    def per_workflow(method: str):
        def route(workspace: str, version: str, workflow_id: str, action: str, request: Request):
            from hatchway.wdl.tenancy import WORKFLOW_ID, check_owner

            if action not in PER_WORKFLOW:
                raise CromwellDoorError(404, f"no route {action!r}")
            _, hook, _ = tenant(request, workspace)
            if not WORKFLOW_ID.match(workflow_id):
                raise CromwellDoorError(400, f"Invalid workflow ID: '{workflow_id}'.")

            def checked() -> Response:
                check_owner(hook, workspace, workflow_id)
                path = f"/api/workflows/{version}/{workflow_id}/{action}"
                kwargs: dict[str, Any] = {"params": list(request.query_params.multi_items())}
                return _relayed(hook.relay(method, path, **kwargs))

            return call(hook, checked)

        return route

    app.add_api_route(PREFIX + "/{workflow_id}/{action}", per_workflow("GET"), methods=["GET"])
    app.add_api_route(PREFIX + "/{workflow_id}/{action}", per_workflow("POST"), methods=["POST"])


async def _form(request: Request) -> tuple[dict[str, str], dict[str, tuple[str, bytes, str]]]:
    """A multipart form as httpx ``data`` and ``files``, size-capped."""
    data: dict[str, str] = {}
    files: dict[str, tuple[str, bytes, str]] = {}
    total = 0
    form = await request.form(max_part_size=MAX_SUBMISSION_BYTES)
    for key, value in form.multi_items():
        if isinstance(value, UploadFile):
            content = await value.read()
            total += len(content)
            files[key] = (value.filename or key, content, value.content_type or "application/octet-stream")
        else:
            total += len(value)
            data[key] = value
        if total > MAX_SUBMISSION_BYTES:
            raise CromwellDoorError(413, f"the submission is larger than {MAX_SUBMISSION_BYTES} bytes")
    return data, files


def _part(data: dict[str, str], files: dict[str, tuple[str, bytes, str]], name: str) -> str | None:
    if name in files:
        return files.pop(name)[1].decode()
    return data.pop(name, None)


def _tenant_submission(workspace: str, data: dict[str, str], files: dict[str, tuple[str, bytes, str]],
                       defaults: dict[str, Any]) -> tuple[dict[str, str], dict[str, tuple[str, bytes, str]]]:
    """The submission with the workspace's label and options, as CromIAM rebuilds it."""
    if "workflowUrl" in data or "workflowUrl" in files:
        raise TenancyError("workflowUrl is not allowed here (Cromwell would fetch it from anywhere): send the "
                           "workflow as workflowSource, or run it from git through cromwell_run")
    try:
        labels = json.loads(_part(data, files, "labels") or "{}")
        options = json.loads(_part(data, files, "workflowOptions") or "{}")
    except ValueError:
        raise TenancyError("labels and workflowOptions must be JSON objects") from None
    if not isinstance(labels, dict) or not isinstance(options, dict):
        raise TenancyError("labels and workflowOptions must be JSON objects")
    files["labels"] = ("labels.json", json.dumps(submission_labels(workspace, labels)).encode(), "application/json")
    files["workflowOptions"] = ("options.json", json.dumps(submission_options(workspace, options, defaults)).encode(),
                                "application/json")
    return data, files
