"""FastAPI app of the Wave simulator.

Routes of Wave's API (``tests/contracts/wave-api-7b8b9f6d.yaml``): ``POST /v1alpha2/container``,
``GET /v1alpha2/container/{requestId}``, ``GET /v1alpha2/container/{requestId}/status``,
``GET /v1alpha1/builds/{buildId}``, ``GET /v1alpha1/builds/{buildId}/status``,
``GET /v1alpha1/builds/{buildId}/logs`` (text/plain) and ``GET /service-info``.

Where the TypeSpec and Wave's code disagree the simulator answers like the code (the contract
copy's header lists the places): the POST answer has ``succeeded`` and no ``status``; build
templates are ``conda/micromamba:v2`` and the like; vulnerabilities are a map severity -> count;
durations are seconds as strings; errors are ``{"message": ...}``; null fields are left out.

Wave reads the Platform token from the request body (``towerAccessToken``). Any token is
accepted (there is no Platform to ask); each call keeps only its SHA-256, and the bodies kept
for ``/_sim/requests`` carry ``sha256:<hex>`` in its place, so a test can check what a client
sent while the token itself is never stored, printed or logged.

Control routes under ``/_sim/`` (not in the contract, no auth, loopback only) script builds,
inject faults, set the server's configuration and expose records; see :func:`create_app`.
Chaos mode (:mod:`include.simulators.chaos`, ``/_sim/chaos``) spares ``GET /service-info``, the
readiness route.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel, ConfigDict
from starlette.exceptions import HTTPException as StarletteHTTPException

from include.simulators.chaos import Chaos, install_chaos
from include.simulators.wave.state import (
    ROUTES, WAVE_VERSION, Config, Course, Fault, SimState, Submission, WaveError, digest, redact)


# -- control-route bodies
class CourseBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    outcome: str = "succeed"
    after: int = 2
    scan_polls: int = 1
    log: str | None = None
    vulnerabilities: dict[str, int] = {}
    match: dict[str, str] | None = None


class FaultBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    status: int
    count: int = 1
    routes: list[str] | None = None


class ConfigBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    anonymous: bool | None = None
    scan_by_default: bool | None = None
    public_repository: str | None = None


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"message": message}, status_code=status)


def _authorization(request: Request) -> dict[str, str] | None:
    """The Authorization header as its scheme and SHA-256: never the credential itself."""
    auth = request.headers.get("authorization")
    return {"scheme": auth.partition(" ")[0], "sha256": digest(auth)} if auth else None


def create_app() -> FastAPI:
    """Build the simulator app (state in ``app.state.sim``)."""
    state = SimState()
    app = FastAPI(title="Wave simulator", version=WAVE_VERSION, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.sim = state

    @app.exception_handler(WaveError)
    async def _wave_error(request: Request, exc: WaveError):
        return _error(exc.status, exc.message)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException):
        return _error(exc.status_code, str(exc.detail))

    @app.middleware("http")
    async def _log_answer(request: Request, call_next):
        response = await call_next(request)
        entry = request.scope.get("state", {}).get("sim_entry")
        if entry is not None:
            entry["status"] = response.status_code
        return response

    def gate(route: str):
        """Count and log a call of ``route`` (digests of credentials only), then answer an
        injected fault if one is due."""
        async def dependency(request: Request) -> None:
            entry = state.record(route, {
                "t": time.time(), "route": route, "method": request.method, "path": request.url.path,
                "status": None, "tower_token": None, "authorization": _authorization(request),
            })
            request.state.sim_entry = entry
            fault = state.take_fault(route)
            if fault is not None:
                raise WaveError(fault.status, f"Simulated fault: HTTP {fault.status} on {route}")
        return Depends(dependency)

    api = APIRouter()

    @api.post("/v1alpha2/container", dependencies=[gate("submit")])
    async def submit(request: Request):
        raw = await request.body()
        try:
            body: Any = json.loads(raw or b"null")
        except ValueError as exc:
            body, problem = None, f"Invalid JSON: {exc}"
        else:
            problem = None
        token = body.get("towerAccessToken") if isinstance(body, dict) else None
        if isinstance(token, str) and token:
            request.state.sim_entry["tower_token"] = {"sha256": digest(token)}
        received: dict[str, Any] = {"t": time.time(), "body": redact(body), "status": None, "requestId": None,
                                    "error": None}
        if body is None and problem:
            received["raw_sha256"] = digest(raw)
        state.received.append(received)
        try:
            if problem:
                raise WaveError(400, problem)
            sub = Submission.check(body, state.config)
            req = state.submit(sub, request.client.host if request.client else None, time.time())
        except WaveError as exc:
            received.update(status=exc.status, error=exc.message)
            raise
        received.update(status=200, requestId=req.id)
        return JSONResponse(req.response())

    @api.get("/v1alpha2/container/{request_id}", dependencies=[gate("container")])
    async def container(request_id: str):
        return JSONResponse(state.request(request_id).record())

    @api.get("/v1alpha2/container/{request_id}/status", dependencies=[gate("status")])
    async def container_status(request_id: str):
        return JSONResponse(state.request(request_id).status(time.time()))

    @api.get("/v1alpha1/builds/{build_id}", dependencies=[gate("build")])
    async def build_record(build_id: str):
        return JSONResponse(state.build(build_id).record(offset_id="Z"))

    @api.get("/v1alpha1/builds/{build_id}/status", dependencies=[gate("build_status")])
    async def build_status(build_id: str):
        build = state.build(build_id)
        build.observe(time.time())
        return JSONResponse(build.status())

    @api.get("/v1alpha1/builds/{build_id}/logs", dependencies=[gate("logs")])
    async def build_logs(build_id: str):
        log = state.build(build_id).log()
        if log is None:
            raise WaveError(404, "Not Found")
        return PlainTextResponse(log, headers={"Content-Disposition": f"attachment; filename={build_id}.log"})

    @api.get("/service-info", dependencies=[gate("service_info")])
    async def service_info():
        return JSONResponse({"serviceInfo": {"version": WAVE_VERSION, "commitId": "7b8b9f6d"}})

    app.include_router(api)
    chaos = install_chaos(app, exempt=("GET /service-info",))
    app.include_router(_control_routes(state, chaos))
    return app


def _control_routes(state: SimState, chaos: Chaos) -> APIRouter:
    """``/_sim/``: script builds, inject faults, configure, read records."""
    sim = APIRouter(prefix="/_sim")

    @sim.post("/course")
    async def set_course(body: CourseBody):
        try:
            course = Course(**body.model_dump())
        except (TypeError, ValueError) as exc:
            raise HTTPException(400, str(exc)) from None
        state.set_course(course)
        return {"course": asdict(course)}

    @sim.get("/courses")
    async def courses():
        return {"default": asdict(state.default_course), "courses": [asdict(c) for c in state.courses]}

    @sim.post("/faults")
    async def add_fault(body: FaultBody):
        try:
            state.faults.append(Fault(status=body.status, count=body.count, routes=body.routes))
        except ValueError as exc:
            raise HTTPException(400, str(exc)) from None
        return {"faults": [asdict(f) for f in state.faults]}

    @sim.post("/config")
    async def configure(body: ConfigBody):
        changes = body.model_dump(exclude_unset=True)
        state.config = Config(**{**asdict(state.config), **changes})
        return {"config": asdict(state.config)}

    @sim.get("/calls")
    async def calls():
        return {"routes": dict(state.calls), "log": state.log}

    @sim.get("/requests")
    async def requests():
        return {"requests": state.received}

    @sim.get("/builds")
    async def builds():
        return {"builds": [{"buildId": b.id, "containerId": b.container_id, "targetImage": b.target_image,
                            "observations": b.observations, "running": b.running, "succeeded": b.succeeded,
                            "course": asdict(b.course)} for b in state.builds.values()]}

    @sim.post("/reset")
    async def reset():
        state.reset()
        chaos.reset()
        return {"reset": True}

    @sim.get("/routes")
    async def routes():
        return {"routes": list(ROUTES)}

    return sim
