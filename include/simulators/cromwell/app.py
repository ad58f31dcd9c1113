"""FastAPI app of the Cromwell simulator.

Routes of Cromwell's REST API (``tests/contracts/cromwell-api-c805f3c5.yaml``), for any
``{version}`` segment as Cromwell itself: ``POST /api/workflows/{version}`` (submit),
``GET .../{id}/status``, ``POST .../{id}/abort``, ``POST .../{id}/releaseHold``,
``GET .../{id}/outputs``, ``GET|PATCH .../{id}/labels``, ``GET .../{id}/metadata``,
``GET|POST .../query``, ``GET .../backends``, ``POST /api/womtool/{version}/describe``,
``GET /engine/{version}/version`` and ``GET /engine/{version}/status``.

Where the swagger and Cromwell's code disagree the simulator answers like the code (the
contract copy's header lists the places): ``/outputs`` is ``{"id", "outputs"}``; submit
answers 201 with ``Submitted`` or ``On Hold``; ``On Hold`` is a valid query status; abort of
an unknown or ended workflow is 404 ``{"status": "error", ...}``, never 403; labels are an
object; describe's types carry ``typeName``.

Where Cromwell would accept a submission and fail the workflow later, the simulator refuses
it at once with 400, so a client's mistake shows in the answer: a ``workflowDependencies``
part that is not a zip, and a ``workflowType`` / ``workflowTypeVersion`` other than WDL
(draft-2, 1.0, 1.1) or CWL.

Cromwell has no authentication: any ``Authorization`` header, or none, is accepted. Each
call's header is kept as its scheme and SHA-256 only, so a test can check what a client sent
while the token itself is never stored, printed or logged.

Control routes under ``/_sim/`` (not in the contract, no auth, loopback only) steer
workflows, inject faults and expose records; see :func:`create_app`. Chaos mode
(:mod:`include.simulators.chaos`, ``/_sim/chaos``) answers its errors in Cromwell's envelope and
spares ``GET /engine/{version}/version``, the readiness route.
"""

from __future__ import annotations

import io
import json
import time
import zipfile
from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from starlette.datastructures import UploadFile

from include.simulators.chaos import Chaos, install_chaos
from include.simulators.cromwell.state import (
    BACKEND, ROUTES, UUID_RE, Course, Fault, Query, SimError, SimState, Workflow, describe_wdl, detect_version, digest,
    label_errors, workflow_name)

CROMWELL_VERSION = "87-sim"
_SUBMIT_PARTS = {"workflowSource", "wdlSource", "workflowUrl", "workflowRoot", "workflowType", "workflowTypeVersion",
                 "workflowInputs", "workflowOptions", "labels", "workflowDependencies", "wdlDependencies",
                 "workflowOnHold", "requestedWorkflowId"}
_TYPE_VERSIONS = {"WDL": ("draft-2", "1.0", "1.1"), "CWL": ("v1.0", "v1.1", "v1.2")}


def _envelope(exc: SimError) -> JSONResponse:
    return JSONResponse({"status": exc.kind, "message": exc.message}, status_code=exc.status)


def _envelope_body(status: int, message: str) -> dict[str, str]:
    error = SimError(status, message)
    return {"status": error.kind, "message": error.message}


# -- control-route bodies
class CourseBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    match: dict[str, str] | None = None
    outcome: str = "succeed"
    after: int = 2
    failure: str | None = None
    outputs: dict[str, Any] | None = None
    intermediates: list[Any] = []
    return_code: int | None = None
    runtime: dict[str, dict[str, Any]] | None = None
    call_seconds: float | None = None


class FaultBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    status: int | None = None
    count: int = 1
    routes: list[str] | None = None
    unknown_after_submit: int | None = None


# -- request parsing
async def _form(request: Request) -> list[tuple[str, str | bytes, dict[str, Any]]]:
    """The multipart parts as ``(name, value, record)``: text parts as ``str``, file parts
    as ``bytes``; ``record`` is what ``/_sim/submissions`` shows of the part."""
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise SimError(400, "Error(s): the request must be multipart/form-data")
    try:
        form = await request.form(max_part_size=64 * 1024 * 1024)
    except Exception as exc:  # noqa: BLE001 - any parse failure is the client's malformed body
        raise SimError(400, f"Error(s): malformed multipart body: {exc}") from None
    parts = []
    for name, value in form.multi_items():
        if isinstance(value, UploadFile):
            data = await value.read()
            parts.append((name, data, {"name": name, "filename": value.filename, "size": len(data),
                                       "sha256": digest(data), "content_type": value.content_type}))
        else:
            parts.append((name, value, {"name": name, "value": value}))
    return parts


def _text(value: str | bytes | None) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return value.decode("utf-8", errors="replace")


def _json_or_yaml(text: str, what: str) -> Any:
    try:
        value = json.loads(text)
    except ValueError:
        import yaml  # Cromwell reads inputs as YAML too (JSON is a subset)

        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ValueError(f"{what} is not valid yaml nor json: {exc}") from None
    return value


class Submission:
    """The parts of a submit request, validated like ``PartialWorkflowSources.fromSubmitRoute``.

    :raises SimError: 400 ``Error(s): ...`` with every reason found.
    """

    def __init__(self, parts: list[tuple[str, str | bytes, dict]]) -> None:
        values = {name: value for name, value, _ in parts}  # the last part of a name wins, as in Cromwell
        errors = [f"Unexpected body part name: {name}" for name in values
                  if name not in _SUBMIT_PARTS and not name.startswith("workflowInputs_")]
        self.source = _text(values.get("workflowSource", values.get("wdlSource")))
        self.url = _text(values.get("workflowUrl"))
        if self.source is None and self.url is None:
            errors.append("Either workflow source or url has to be supplied")
        elif self.source is not None and self.url is not None:
            errors.append("Both workflow source and url can't be supplied")
        self.inputs_text, self.inputs = self._inputs(values, errors)
        self.options_text = _text(values.get("workflowOptions")) or "{}"
        self._check_object(self.options_text, "Invalid workflow options provided", errors)
        self.labels_text = _text(values.get("labels")) or "{}"
        self.labels = self._labels(self.labels_text, errors)
        self._check_zip(values.get("workflowDependencies", values.get("wdlDependencies")), errors)
        self.on_hold = self._on_hold(_text(values.get("workflowOnHold")), errors)
        self.requested_id = _text(values.get("requestedWorkflowId"))
        if self.requested_id is not None:
            self.requested_id = self.requested_id.strip()
            if not UUID_RE.match(self.requested_id):
                errors.append(f"Invalid requested workflow ID: '{self.requested_id}'")
        self.workflow_type, self.type_version = self._type(values, errors)
        if errors:
            raise SimError(400, "Error(s): " + "\n".join(errors))
        self.name = workflow_name(self.source, self.url)

    @staticmethod
    def _inputs(values: dict, errors: list[str]) -> tuple[str, dict[str, Any]]:
        """Merged inputs: ``workflowInputs`` then ``workflowInputs_N`` in order of N (later wins)."""
        texts = [("workflowInputs", _text(values["workflowInputs"]))] if "workflowInputs" in values else []
        aux = sorted((k for k in values if k.startswith("workflowInputs_")),
                     key=lambda k: int(k.split("_", 1)[1]) if k.split("_", 1)[1].isdigit() else 0)
        texts += [(k, _text(values[k])) for k in aux]
        merged: dict[str, Any] = {}
        for name, text in texts:
            try:
                value = _json_or_yaml(text or "{}", "Input file")
            except ValueError as exc:
                errors.append(str(exc))
                continue
            if isinstance(value, list):
                if len(value) > 1:
                    errors.append("To submit more than one workflow at a time, use the batch endpoint.")
                    continue
                value = value[0] if value else {}
            if not isinstance(value, dict):
                errors.append("Submitted inputs couldn't be processed, please check for syntactical errors")
                continue
            merged.update(value)
        if len(texts) == 1:
            return texts[0][1] or "{}", merged
        return json.dumps(merged) if texts else "{}", merged

    @staticmethod
    def _check_object(text: str, prefix: str, errors: list[str]) -> None:
        try:
            value = json.loads(text)
        except ValueError as exc:
            errors.append(f"{prefix}: {exc}")
            return
        if not isinstance(value, dict):
            errors.append(f"{prefix}: not a JSON object")

    @staticmethod
    def _labels(text: str, errors: list[str]) -> dict[str, str]:
        try:
            value = json.loads(text)
        except ValueError as exc:
            errors.append(f"Workflow contains invalid labels JSON: {exc}")
            return {}
        if not isinstance(value, dict):
            errors.append('Invalid workflow labels JSON. Expected a JsObject of "labelKey": "labelValue" values.')
            return {}
        problems = label_errors(value)
        errors.extend(problems)
        return {} if problems else value

    @staticmethod
    def _check_zip(data: str | bytes | None, errors: list[str]) -> None:
        if data is None:
            return
        raw = data.encode() if isinstance(data, str) else data
        try:
            with zipfile.ZipFile(io.BytesIO(raw)) as archive:
                bad = archive.testzip()
        except zipfile.BadZipFile as exc:
            errors.append(f"workflowDependencies is not a valid zip file: {exc}")
            return
        if bad is not None:
            errors.append(f"workflowDependencies has a corrupt member: {bad}")

    @staticmethod
    def _on_hold(text: str | None, errors: list[str]) -> bool:
        if text is None:
            return False
        if text.strip().lower() not in ("true", "false"):
            errors.append(f'For input string: "{text}"')
            return False
        return text.strip().lower() == "true"

    def _type(self, values: dict, errors: list[str]) -> tuple[str, str]:
        given_type = (_text(values.get("workflowType")) or "WDL").strip()
        kind = given_type.upper()
        if kind not in _TYPE_VERSIONS:
            errors.append(f"Unsupported workflow type '{given_type}': the simulator takes WDL or CWL")
            return given_type, ""
        version = _text(values.get("workflowTypeVersion"))
        if version is None:
            return kind, detect_version(self.source or "") if kind == "WDL" else "v1.0"
        if version.strip() not in _TYPE_VERSIONS[kind]:
            errors.append(f"Unsupported {kind} version '{version}': one of {', '.join(_TYPE_VERSIONS[kind])}")
        return kind, version.strip()


def _metadata_filter(metadata: dict[str, Any], include: list[str], exclude: list[str]) -> dict[str, Any]:
    """Cromwell's ``includeKey`` / ``excludeKey``: key prefixes, applied at the top level and
    inside each call. ``id`` always stays, and so do a call's ``shardIndex`` and ``attempt``
    (they identify the call); a call left with nothing else is dropped, and so is ``calls``
    when an include leaves no call. A prefix of ``calls`` itself keeps or drops all calls."""
    if not include and not exclude:
        return metadata

    def wanted(key: str) -> bool:
        if include:
            return any(key.startswith(p) for p in include)
        return not any(key.startswith(p) for p in exclude)

    out = {k: v for k, v in metadata.items() if k == "id" or (k != "calls" and wanted(k))}
    if include and wanted("calls"):
        out["calls"] = metadata["calls"]
        return out
    if exclude and not wanted("calls"):
        return out
    calls = {}
    for fqn, entries in metadata["calls"].items():
        kept = [{k: v for k, v in e.items() if k in ("shardIndex", "attempt") or wanted(k)} for e in entries]
        if exclude or any(set(e) - {"shardIndex", "attempt"} for e in kept):
            calls[fqn] = kept
    if calls or exclude:
        out["calls"] = calls
    return out


def _authorization(request: Request) -> dict[str, str] | None:
    """The Authorization header as its scheme and SHA-256: never the token itself."""
    auth = request.headers.get("authorization")
    return {"scheme": auth.partition(" ")[0], "sha256": digest(auth)} if auth else None


def _bool_param(request: Request, name: str) -> bool:
    text = request.query_params.get(name)
    if text is None:
        return False
    if text.lower() not in ("true", "false"):
        raise SimError(400, f"The query parameter '{name}' was malformed: '{text}' is not a valid Boolean value")
    return text.lower() == "true"


def create_app(root: str | None = None, s3_endpoint: str | None = None) -> FastAPI:
    """Build the simulator app.

    :param root: ``s3://bucket/prefix`` under which workflows write their files (workflow
        root ``<root>/<name>/<id>``); ``None``: paths are reported, nothing is written.
    :param s3_endpoint: the S3 endpoint URL for ``root`` (credentials from the environment).
    """
    state = SimState(root, s3_endpoint)
    app = FastAPI(title="Cromwell simulator", version=CROMWELL_VERSION, docs_url=None, redoc_url=None,
                  openapi_url=None)
    app.state.sim = state

    @app.exception_handler(SimError)
    async def _sim_error(request: Request, exc: SimError):
        return _envelope(exc)

    @app.middleware("http")
    async def _log_answer(request: Request, call_next):
        response = await call_next(request)
        entry = request.scope.get("state", {}).get("sim_entry")
        if entry is not None:
            entry["status"] = response.status_code
        return response

    def gate(route: str):
        """Count and log a call of ``route`` (with the Authorization header's digest, never the
        header), then answer an injected fault if one is due."""
        async def dependency(request: Request) -> None:
            entry = state.record(route, {
                "t": time.time(), "route": route, "method": request.method, "path": request.url.path,
                "query": list(request.query_params.multi_items()), "status": None,
                "authorization": _authorization(request),
            })
            request.state.sim_entry = entry
            fault = state.take_fault(route)
            if fault is not None:
                raise SimError(fault.status, f"Simulated fault: HTTP {fault.status} on {route}")
        return Depends(dependency)

    api = APIRouter()

    @api.post("/api/workflows/{version}", status_code=201, dependencies=[gate("submit")])
    async def submit(request: Request):
        parts = await _form(request)
        record: dict[str, Any] = {"t": time.time(), "fields": [r for _, _, r in parts], "id": None,
                                  "authorization": _authorization(request)}
        state.submissions.append(record)
        try:
            sub = Submission(parts)
            wf = state.submit(name=sub.name, source=sub.source, url=sub.url, inputs=sub.inputs,
                              inputs_text=sub.inputs_text, options_text=sub.options_text, labels=sub.labels,
                              labels_text=sub.labels_text, workflow_type=sub.workflow_type,
                              type_version=sub.type_version, on_hold=sub.on_hold, requested_id=sub.requested_id)
        except SimError as exc:
            record["error"] = exc.message
            raise
        record["id"] = wf.id
        answer = {"id": wf.id, "status": wf.status}
        state.start_course(wf)
        return JSONResponse(answer, status_code=201)

    @api.get("/api/workflows/{version}/backends", dependencies=[gate("backends")])
    async def backends():
        return {"supportedBackends": [BACKEND], "defaultBackend": BACKEND}

    @api.get("/api/workflows/{version}/{wf_id}/status", dependencies=[gate("status")])
    async def status(wf_id: str):
        wf = state.find(wf_id)
        state.observe(wf)
        return {"id": wf.id, "status": wf.status}

    @api.post("/api/workflows/{version}/{wf_id}/abort", dependencies=[gate("abort")])
    async def abort(wf_id: str):
        wf = state.lookup(wf_id)
        return {"id": wf.id, "status": wf.abort(time.time())}

    @api.post("/api/workflows/{version}/{wf_id}/releaseHold", dependencies=[gate("releaseHold")])
    async def release_hold(wf_id: str):
        wf = state.find(wf_id)
        wf.release_hold()
        state.start_course(wf)
        return {"id": wf.id, "status": "Submitted"}

    @api.get("/api/workflows/{version}/{wf_id}/outputs", dependencies=[gate("outputs")])
    async def outputs(wf_id: str):
        wf = state.find(wf_id)
        return {"id": wf.id, "outputs": dict(wf.outputs)}

    @api.get("/api/workflows/{version}/{wf_id}/labels", dependencies=[gate("labels")])
    async def get_labels(wf_id: str):
        wf = state.find(wf_id)
        return {"id": wf.id, "labels": wf.all_labels()}

    @api.patch("/api/workflows/{version}/{wf_id}/labels", dependencies=[gate("labels")])
    async def patch_labels(request: Request, wf_id: str):
        try:
            body = json.loads(await request.body() or b"null")
        except ValueError:
            raise SimError(400, "The request content was malformed: not JSON") from None
        if not isinstance(body, dict) or not all(isinstance(v, str) for v in body.values()):
            raise SimError(400, "The request content was malformed: expected an object of string label values")
        errors = label_errors(body)
        if errors:
            raise SimError(400, ",".join(errors))
        wf = state.find(wf_id)
        wf.labels.update(body)
        return {"id": wf.id, "labels": wf.all_labels()}

    @api.get("/api/workflows/{version}/{wf_id}/metadata", dependencies=[gate("metadata")])
    async def metadata(request: Request, wf_id: str):
        include = request.query_params.getlist("includeKey")
        exclude = request.query_params.getlist("excludeKey")
        if include and exclude:
            raise SimError(400, "includeKey and excludeKey may not be specified together")
        _bool_param(request, "expandSubWorkflows")  # validated; there are no sub-workflows to expand
        wf = state.find(wf_id)
        state.observe(wf)
        return _metadata_filter(wf.metadata(), include, exclude)

    def run_query(params: list[tuple[str, str]]) -> dict[str, Any]:
        q = Query.parse(params)
        page, total = state.query(q)
        results = [wf.query_result(q.with_labels) for wf in page]
        for wf in page:
            state.observe(wf)
        return {"results": results, "totalResultsCount": total}

    @api.get("/api/workflows/{version}/query", dependencies=[gate("query")])
    async def query_get(request: Request):
        return run_query(list(request.query_params.multi_items()))

    @api.post("/api/workflows/{version}/query", dependencies=[gate("query")])
    async def query_post(request: Request):
        try:
            body = json.loads(await request.body() or b"null")
        except ValueError:
            raise SimError(400, "The request content was malformed: not JSON") from None
        if not isinstance(body, list) or not all(isinstance(i, dict) and all(isinstance(v, str) for v in i.values())
                                                 for i in body):
            raise SimError(400, "The request content was malformed: expected a list of objects of strings, "
                                'e.g. [{"status": "Running"}]')
        return run_query([(k, v) for item in body for k, v in item.items()])

    @api.post("/api/womtool/{version}/describe", dependencies=[gate("describe")])
    async def describe(request: Request):
        values = {name: value for name, value, _ in await _form(request)}
        source = _text(values.get("workflowSource"))
        if source is None:
            reason = ("the simulator cannot fetch workflowUrl" if "workflowUrl" in values
                      else "workflowSource needs to be supplied")
            raise SimError(400, f"Error(s): {reason}")
        kind = (_text(values.get("workflowType")) or "WDL").upper()
        if kind != "WDL":
            raise SimError(400, f"Error(s): the simulator describes WDL only, not {kind}")
        return await run_in_threadpool(describe_wdl, source, _text(values.get("workflowInputs")))

    @api.get("/engine/{version}/version", dependencies=[gate("version")])
    async def version():
        return {"cromwell": CROMWELL_VERSION}

    @api.get("/engine/{version}/status", dependencies=[gate("engine_status")])
    async def engine_status():
        return {}

    app.include_router(api)
    chaos = install_chaos(app, exempt=("GET /engine/{version}/version",), error_body=_envelope_body)
    app.include_router(_control_routes(state, chaos))
    return app


def _control_routes(state: SimState, chaos: Chaos) -> APIRouter:
    """``/_sim/``: steer courses, inject faults, read records."""
    sim = APIRouter(prefix="/_sim")

    @sim.post("/course")
    async def set_course(body: CourseBody):
        try:
            course = Course(**body.model_dump())
        except (TypeError, ValueError) as exc:
            raise HTTPException(400, str(exc)) from None
        return {"course": asdict(course), "changed": state.set_course(course)}

    @sim.get("/courses")
    async def courses():
        return {"default": asdict(state.default_course), "courses": [asdict(c) for c in state.courses]}

    @sim.post("/faults")
    async def add_fault(body: FaultBody):
        if body.status is None and body.unknown_after_submit is None:
            raise HTTPException(400, "give status (with count, routes) and/or unknown_after_submit")
        if body.unknown_after_submit is not None:
            if body.unknown_after_submit < 0:
                raise HTTPException(400, "unknown_after_submit must be >= 0")
            state.unknown_after_submit = body.unknown_after_submit
        if body.status is not None:
            try:
                state.faults.append(Fault(status=body.status, count=body.count, routes=body.routes))
            except ValueError as exc:
                raise HTTPException(400, str(exc)) from None
        return {"faults": [asdict(f) for f in state.faults], "unknown_after_submit": state.unknown_after_submit}

    @sim.get("/calls")
    async def calls():
        return {"routes": dict(state.calls), "log": state.log}

    @sim.get("/submissions")
    async def submissions():
        return {"submissions": state.submissions}

    @sim.get("/workflows")
    async def workflows():
        return {"workflows": [wf.summary() for wf in state.workflows.values()], "write_errors": state.write_errors}

    @sim.get("/workflows/{wf_id}")
    async def workflow(wf_id: str):
        wf = state.workflows.get(wf_id.lower())
        if wf is None:
            raise HTTPException(404, f"no workflow {wf_id}")
        return wf.summary()

    @sim.post("/workflows/{wf_id}/parent")
    async def make_sub_workflow(wf_id: str, body: dict):
        """Make a workflow a sub-workflow of ``{"parent": id}`` (its root is the parent's root),
        as Cromwell reports a sub-workflow it started: the labels stay the workflow's own."""
        wf, parent = state.workflows.get(wf_id.lower()), state.workflows.get(str(body.get("parent", "")).lower())
        if wf is None or parent is None:
            raise HTTPException(404, "no such workflow or parent")
        wf.parent_id, wf.root_id = parent.id, parent.root_id or parent.id
        return wf.summary() | {"parentWorkflowId": wf.parent_id, "rootWorkflowId": wf.root_id}

    @sim.post("/advance/{wf_id}")
    async def advance(wf_id: str):
        wf: Workflow | None = state.workflows.get(wf_id.lower())
        if wf is None:
            raise HTTPException(404, f"no workflow {wf_id}")
        state.observe(wf)
        return {"id": wf.id, "status": wf.status, "observations": wf.observations}

    @sim.post("/reset")
    async def reset():
        state.reset()
        chaos.reset()
        return {"reset": True}

    @sim.get("/routes")
    async def routes():
        return {"routes": list(ROUTES)}

    return sim
