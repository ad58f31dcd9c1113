"""The front door: GA4GH WES 1.1 and workflow deployment, with workspace-scoped tokens.

Mounted by the Hatchway plugin under ``/hatchway`` in Airflow's api-server. Plugin apps are
not behind Airflow's auth, so every route here authenticates by itself: a Bearer JWT whose
``workspace:<name>`` scope is the calling workspace. Tenancy rules:

- a run is visible only to its calling workspace; any other gets 404, never 403, so that
  a run's existence is not revealed;
- a workflow is changed only by its deploying workspace; a private one is callable only
  from there (``hatchway.domain.access``), and an unknown or forbidden workflow get the same
  answer;
- every error is a WES ``ErrorResponse`` (``msg``, ``status_code``).
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException

from hatchway.api.airflow_runs import AirflowRuns, DagNotReady, RunView
from hatchway.api.auth import Caller, TokenVerifier, Unauthorized, bearer_token
from hatchway.api import wes_wdl
from hatchway.api.awe import add_awe_routes
from hatchway.api.cromwell_door import add_cromwell_routes
from hatchway.api.ui import add_ui_routes
from hatchway.domain import access
from hatchway.domain.cromwell import CromwellSettings
from hatchway.domain.cromwell_state import CROMWELL_DAG_ID
from hatchway.domain.workspace import PlatformConfig
from hatchway.domain.wes import (
    TASK_HARVEST,
    RunForm,
    WesRunConf,
    executing_context,
    WesState,
    WorkflowRef,
    catalog_url,
    dag_run_id,
    new_run_id,
    outputs_prefix,
    wes_state,
)

log = logging.getLogger(__name__)

WES_PREFIX = "/ga4gh/wes/v1"
DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE = 50, 500
MAX_ATTACHMENTS_BYTES = 10 * 1024 * 1024
MAX_FORM_BYTES = 12 * 1024 * 1024
IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e][\x20-\x7e]{0,254}$")
WORKFLOW_TYPES = {"NFL": "NFL", "NEXTFLOW": "NFL", "WDL": "WDL"}
RUNNABLE_ENGINES = {"NFL", "WDL"}  # NFL on wes_run (Seqera), WDL on cromwell_run (Cromwell)


class DoorError(Exception):
    """An answer other than 200, with the reason the caller reads."""

    def __init__(self, status: int, msg: str, headers: dict[str, str] | None = None):
        super().__init__(msg)
        self.status, self.msg, self.headers = status, msg, headers


def _not_found(what: str = "run") -> DoorError:
    return DoorError(404, f"{what} not found")


@dataclass
class DoorDeps:
    """What the door needs, made once on first use (the plugin imports this module in every
    Airflow process; only the api-server ever serves a request).

    :param store: Hatchway's store (``hatchway.store.Store``), migrated.
    :param verifier: verifies Bearer tokens.
    :param runs: trigger/read/fail DAG runs.
    :param platform: the platform settings (``hatchway_config``): bucket, prefix, queue mode, cost tag.
    :param cromwell: the Cromwell settings (``hatchway_cromwell_config``; defaults when it is not set).
    """

    store: Any
    verifier: TokenVerifier
    runs: AirflowRuns
    platform: PlatformConfig
    cromwell: CromwellSettings = field(default_factory=CromwellSettings)

    @property
    def bucket(self) -> str:
        return self.platform.bucket


class LazyDeps:
    """Build :class:`DoorDeps` on the first request, and again after ``ttl`` seconds, so a
    rotated signing key or a changed config reaches a running api-server."""

    def __init__(self, factory: Callable[[], DoorDeps], ttl: float = 300.0) -> None:
        self.factory, self.ttl = factory, ttl
        self._deps: DoorDeps | None = None
        self._made = 0.0
        self._lock = threading.Lock()

    def get(self) -> DoorDeps:
        if self._deps is None or time.monotonic() - self._made > self.ttl:
            with self._lock:
                if self._deps is None or time.monotonic() - self._made > self.ttl:
                    self._deps, self._made = self.factory(), time.monotonic()
        return self._deps


PLATFORM_VARIABLE = "hatchway_config"
CROMWELL_VARIABLE = "hatchway_cromwell_config"


class DoorNotConfigured(Exception):
    """The deployment lacks what the door needs (a Variable, a connection): answered 503.

    :param missing: one public line per missing or unusable piece, naming it, never its value.
    :param verifier: the token verifier when its connection is usable, so a caller's token is
        still checked (401) before the door admits it is not configured.
    """

    def __init__(self, missing: list[str], verifier: TokenVerifier | None = None):
        super().__init__("; ".join(missing))
        self.missing, self.verifier = missing, verifier

    @property
    def public(self) -> str:
        return "the front door is not configured: " + "; ".join(self.missing)


def deps_from_airflow() -> DoorDeps:
    """The deployment's dependencies: store URL from ``HATCHWAY_DB_URL`` (SQLite in the Airflow
    home by default), token rules from connection ``hatchway_api``, the bucket from Variable
    ``hatchway_config``.

    :raises DoorNotConfigured: the connection or the Variable is missing or unusable (checked
        before the store is opened, so an unconfigured door touches no database).
    """
    from airflow.models.variable import Variable

    from hatchway.api.auth import AuthConfigError, load_settings
    from hatchway.store import Store

    missing: list[str] = []
    verifier: TokenVerifier | None = None
    try:
        verifier = TokenVerifier(load_settings())
    except AuthConfigError as exc:  # its message names the connection, never its password
        missing.append(str(exc))
    config: PlatformConfig | None = None
    try:
        raw = Variable.get(PLATFORM_VARIABLE)
    except KeyError:
        missing.append(f"Variable {PLATFORM_VARIABLE!r} does not exist (JSON with at least 'bucket')")
    else:
        try:
            config = PlatformConfig.from_json(raw)
        except ValidationError as exc:
            missing.append(f"Variable {PLATFORM_VARIABLE!r} is not valid: {_first_error(exc)}")
        except ValueError:
            missing.append(f"Variable {PLATFORM_VARIABLE!r} is not valid JSON")
    cromwell = CromwellSettings()
    raw_cromwell = Variable.get(CROMWELL_VARIABLE, default_var=None)
    if raw_cromwell is not None:
        try:
            cromwell = CromwellSettings.model_validate_json(raw_cromwell)
        except ValidationError as exc:
            missing.append(f"Variable {CROMWELL_VARIABLE!r} is not valid: {_first_error(exc)}")
    if missing or verifier is None or config is None:
        raise DoorNotConfigured(missing, verifier)
    store = Store.from_env()
    store.migrate()
    return DoorDeps(store=store, verifier=verifier, runs=AirflowRuns(), platform=config, cromwell=cromwell)


@dataclass
class UiDeps:
    """What the workspace pages need when the door itself is not configured: the store and the
    platform config (no token rules: the pages are behind Airflow's login, not the door's tokens)."""

    store: Store
    platform: PlatformConfig


def ui_deps_from_airflow() -> UiDeps:
    """The store (``HATCHWAY_DB_URL``) and Variable ``hatchway_config``; raises when it is missing."""
    from airflow.models.variable import Variable

    from hatchway.store import Store

    config = PlatformConfig.from_json(Variable.get(PLATFORM_VARIABLE))
    store = Store.from_env()
    store.migrate()
    return UiDeps(store=store, platform=config)


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _when(text: str | None, name: str) -> datetime | None:
    """A ``from``/``to`` query value: an ISO 8601 date (midnight UTC) or date-time (UTC if naive)."""
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise DoorError(400, f"{name!r} must be an ISO 8601 date or date-time, e.g. 2026-12-01 or "
                             f"2026-12-01T00:00:00Z (got {text[:40]!r})") from None
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def usage_report(workspace: str, records: list, start: datetime | None, end: datetime | None) -> dict[str, Any]:
    """The usage route's answer: totals, then every run (oldest first)."""
    currencies = sorted({r.usage.currency for r in records})
    totals = {"runs": len(records), "cpu_hours": 0.0, "memory_gib_hours": 0.0, "task_count": 0,
              "work_bytes": 0, "results_bytes": 0, "estimated_cost": 0.0}
    for r in records:
        for key in ("cpu_hours", "memory_gib_hours", "task_count", "work_bytes", "results_bytes", "estimated_cost"):
            totals[key] += getattr(r.usage, key)
    totals = {k: round(v, 6) if isinstance(v, float) else v for k, v in totals.items()}
    return {"workspace": workspace, "from": _iso(start), "to": _iso(end), "basis": "estimate",
            "currency": currencies[0] if len(currencies) == 1 else currencies or None, "totals": totals,
            "runs": [{"run_id": r.run_id, "dag_id": r.dag_id, "state": r.state, "calling_workspace": r.calling_workspace,
                      "cost_center": r.cost_center, "started_at": _iso(r.started_at), "ended_at": _iso(r.ended_at),
                      **r.usage.model_dump(mode="json")} for r in records]}


def check_budget(d: DoorDeps, workspace: str) -> None:
    """Refuse a new run of ``workspace`` once its month's estimated cost has reached its budget
    (``budgets`` in ``hatchway_config``), with the figures; no budget: nothing to check."""
    from hatchway.usage.runs import month_refusal

    refusal = month_refusal(d.store, workspace, d.platform.budgets.get(workspace), d.platform.price_table.currency)
    if refusal:
        raise DoorError(403, refusal)


def _error(status: int, msg: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"msg": msg, "status_code": status}, status_code=status, headers=headers)


def create_app(deps: LazyDeps | Callable[[], DoorDeps]) -> FastAPI:
    """The front door app. ``deps`` is a :class:`LazyDeps` or a factory for one."""
    lazy = deps if isinstance(deps, LazyDeps) else LazyDeps(deps)
    app = FastAPI(title="Hatchway front door", version="1.1.0",
                  description="GA4GH WES 1.1 with workspace-scoped tokens, and workflow deployment.")

    @app.exception_handler(DoorError)
    async def _door_error(request: Request, exc: DoorError):
        return _error(exc.status, exc.msg, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return _error(400, f"{where}: {first.get('msg', 'invalid request')}")

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        return _error(exc.status_code, str(exc.detail))

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception):
        log.exception("front door: %s %s failed", request.method, request.url.path)
        return _error(500, "internal error; the server log has the details")

    def authenticate(request: Request) -> tuple[DoorDeps, Caller]:
        # A caller without credentials hears 401 whatever the door's state: whether the
        # deployment is configured is told only to callers that present a token.
        try:
            token = bearer_token(request.headers.get("authorization"))
            try:
                d = lazy.get()
            except DoorNotConfigured as exc:
                if exc.verifier is not None:
                    exc.verifier.verify(token)  # a bad token is still a 401
                log.warning("front door: %s", exc.public)
                raise DoorError(503, exc.public, {"Retry-After": "60"}) from None
            return d, d.verifier.verify(token)
        except Unauthorized as exc:
            raise DoorError(401, exc.reason, {"WWW-Authenticate": 'Bearer realm="hatchway"'}) from None

    def own_run(d: DoorDeps, caller: Caller, run_id: str):
        record = d.store.get_run(run_id) if len(run_id) <= 64 else None
        if record is None or record.calling_workspace != caller.workspace:
            raise _not_found()
        return record

    wdl_runs = AirflowRuns(CROMWELL_DAG_ID)

    def runs_of(d: DoorDeps, record) -> AirflowRuns:
        """The DAG a run's record names: ``cromwell_run`` for WDL runs, the door's own otherwise."""
        return wdl_runs if record.dag_id == CROMWELL_DAG_ID else d.runs

    def current_state(d: DoorDeps, record) -> tuple[WesState, RunView | None]:
        return current_states(d, [record])[record.run_id]

    def current_states(d: DoorDeps, records: list) -> dict[str, tuple[WesState, RunView | None]]:
        """The WES state of each record (and Airflow's view of the live ones), the changed ones
        written back: a constant number of database queries however many records (a page of
        ``GET /runs``): one read per DAG for the runs, one for their tasks, one write."""
        found: dict[str, tuple[WesState, RunView | None]] = {}
        live: dict[str, list] = {}  # by DAG id
        for record in records:
            stored = WesState(record.state) if record.state in WesState.__members__ else WesState.UNKNOWN
            if stored.terminal:
                found[record.run_id] = (stored, None)  # final: no need to ask Airflow again
            else:
                live.setdefault(record.dag_id, []).append(record)
        changed: dict[str, str] = {}
        for group in live.values():
            views = runs_of(d, group[0]).views([r.dag_run_id for r in group])
            for record in group:
                view = views[record.dag_run_id]
                if record.dag_id == CROMWELL_DAG_ID:
                    state = wes_wdl.state(d, record, view)  # one Cromwell query per live WDL run
                else:
                    state = wes_state(dag_run_state=view.state, tasks=view.task_states,
                                      cancel_requested=record.cancel_requested_at is not None)
                if state.value != record.state:
                    changed[record.run_id] = state.value
                found[record.run_id] = (state, view)
        if changed:
            d.store.update_states(changed)
        return found

    @app.get("/health")
    def health():
        """For load balancers and probes, without a token: 200 when the door can serve (its
        configuration loads and its store answers), 503 otherwise. Names what is wrong, never
        a value or a secret."""
        checks: dict[str, str] = {}
        try:
            d = lazy.get()
            checks["config"] = "ok"
        except DoorNotConfigured:
            checks["config"] = "missing"
            d = None
        except Exception:  # noqa: BLE001 - a probe answers, it does not crash
            log.exception("front door health: the configuration did not load")
            checks["config"] = "error"
            d = None
        if d is not None:
            try:
                d.store.ping()
                checks["store"] = "ok"
            except Exception:  # noqa: BLE001 - a probe answers, it does not crash
                log.exception("front door health: the store did not answer")
                checks["store"] = "error"
        healthy = all(v == "ok" for v in checks.values())
        return JSONResponse({"status": "ok" if healthy else "unavailable", "checks": checks},
                            status_code=200 if healthy else 503)

    # -- WES -------------------------------------------------------------------------------
    add_cromwell_routes(app, authenticate)
    add_awe_routes(app, authenticate, DoorError, check_budget)
    ui_lazy = LazyDeps(ui_deps_from_airflow)

    def ui_deps():
        try:
            return lazy.get()
        except DoorNotConfigured:  # the pages need no token rules: the store and the config will do
            return ui_lazy.get()

    add_ui_routes(app, ui_deps)

    @app.get(f"{WES_PREFIX}/service-info")
    def service_info(request: Request):
        d, caller = authenticate(request)
        counts: dict[str, int] = {}
        runs, token = d.store.list_runs(caller.workspace, page_size=MAX_PAGE_SIZE)
        for record in runs:
            counts[record.state] = counts.get(record.state, 0) + 1
        return {
            "id": "org.hatchway.wes",
            "name": "Hatchway front door",
            "type": {"group": "org.ga4gh", "artifact": "wes", "version": "1.1.0"},
            "description": "Runs deployed Nextflow (on Seqera Platform) and WDL (on Cromwell) workflows in Hatchway "
                           "workspaces.",
            "organization": {"name": "Hatchway", "url": "https://github.com/hatchway"},
            "version": "1.1.0",
            "workflow_type_versions": {"NFL": {"workflow_type_version": ["DSL2"]},
                                       "WDL": {"workflow_type_version": ["1.0"]}},
            "supported_wes_versions": ["1.1.0"],
            "supported_filesystem_protocols": ["s3"],
            "workflow_engine_versions": {"nextflow": {"workflow_engine_version": ["24.10"]},
                                         "cromwell": {"workflow_engine_version": ["87"]}},
            "default_workflow_engine_parameters": [],
            "system_state_counts": counts,
            "auth_instructions_url": "https://github.com/hatchway/hatchway#the-front-door",
            "tags": {"calling_workspace": caller.workspace,
                     "workflow_url": "hatchway://<deploying-workspace>/<workflow>[@version]"},
        }

    @app.get(f"{WES_PREFIX}/runs")
    def list_runs(request: Request, page_size: int | None = None, page_token: str | None = None):
        d, caller = authenticate(request)
        size = _page_size(page_size)
        try:
            records, next_token = d.store.list_runs(caller.workspace, page_size=size, page_token=page_token or None)
        except ValueError as exc:
            raise DoorError(400, f"page_token: {exc}") from None
        runs = []
        states = current_states(d, records)
        for record in records:
            state, view = states[record.run_id]
            summary = {"run_id": record.run_id, "state": state.value, "tags": record.tags or {}}
            if view and view.start_date:
                summary["start_time"] = _iso(view.start_date)
            if view and view.end_date:
                summary["end_time"] = _iso(view.end_date)
            runs.append(summary)
        return {"runs": runs, "next_page_token": next_token or ""}

    @app.post(f"{WES_PREFIX}/runs")
    async def run_workflow(request: Request):
        d, caller = await run_in_threadpool(authenticate, request)
        size = int(request.headers.get("content-length") or 0)
        if size > MAX_FORM_BYTES:
            raise DoorError(400, f"request is {size} bytes; at most {MAX_FORM_BYTES} are accepted")
        from hatchway.store import Conflict

        fields, attachments = await _read_form(request)
        run_id = _run_id_for(caller, request.headers.get("idempotency-key"))
        try:
            return await run_in_threadpool(_start_run, d, caller, fields, attachments, run_id)
        except Conflict:
            raise DoorError(400, "this Idempotency-Key was used for a different request: send a new key "
                                 "for a new run") from None

    @app.get(f"{WES_PREFIX}/runs/{{run_id}}")
    def get_run_log(run_id: str, request: Request):
        d, caller = authenticate(request)
        record = own_run(d, caller, run_id)
        state, view = current_state(d, record)
        view = view or runs_of(d, record).view(record.dag_run_id)
        request_body = dict(record.request or {})
        run_log: dict[str, Any] = {"name": f"{record.workflow_name}@{record.workflow_version}",
                                   "system_logs": [f"executing workspace: {record.executing_workspace}",
                                                   f"airflow run: {record.dag_run_id}"]}
        if view.task_states.get(TASK_HARVEST) == "failed":
            # clean_work keeps a run's area when its harvest did not finish: say where.
            run_log["system_logs"].append(
                f"outputs kept at s3://{d.bucket}/{outputs_prefix(record.executing_workspace, record.run_id)}: "
                f"the harvest did not finish; clearing {TASK_HARVEST} finishes it")
        if view.start_date:
            run_log["start_time"] = _iso(view.start_date)
        if view.end_date:
            run_log["end_time"] = _iso(view.end_date)
        outputs: dict[str, Any] = {}
        if state == WesState.COMPLETE and record.dag_id == CROMWELL_DAG_ID:
            outputs = wes_wdl.outputs(wdl_runs, record)
        elif state == WesState.COMPLETE:
            outputs = {"stac_catalog": catalog_url(d.bucket, record.calling_workspace, record.run_id)}
        crate = d.store.get_crate(record.dag_id, record.dag_run_id)
        if crate is not None:  # written by the run's write_crate teardown, whatever its end
            outputs["ro_crate"] = {"url": str(request.url_for("get_run_crate", run_id=record.run_id)),
                                   "location": crate[0]}
        used = d.store.get_usage(record.dag_id, record.dag_run_id)
        if used is not None:  # recorded by the run's record_usage teardown, whatever its end
            outputs["usage"] = {**used.usage.model_dump(mode="json"), "cost_center": used.cost_center}
        return {"run_id": record.run_id, "request": request_body, "state": state.value, "run_log": run_log,
                "task_logs_url": str(request.url_for("list_tasks", run_id=record.run_id)), "outputs": outputs}

    @app.get(f"{WES_PREFIX}/runs/{{run_id}}/ro-crate", name="get_run_crate")
    def get_run_crate(run_id: str, request: Request):
        """The run's Workflow Run RO-Crate (``ro-crate-metadata.json``), once its run wrote it."""
        d, caller = authenticate(request)
        record = own_run(d, caller, run_id)
        crate = d.store.get_crate(record.dag_id, record.dag_run_id)
        if crate is None:
            raise DoorError(404, f"run {run_id} has no RO-Crate yet: it is written when the run ends")
        return JSONResponse(crate[1], media_type="application/ld+json")

    @app.get(f"{WES_PREFIX}/runs/{{run_id}}/status")
    def get_run_status(run_id: str, request: Request):
        d, caller = authenticate(request)
        record = own_run(d, caller, run_id)
        state, _ = current_state(d, record)
        return {"run_id": record.run_id, "state": state.value}

    @app.post(f"{WES_PREFIX}/runs/{{run_id}}/cancel")
    def cancel_run(run_id: str, request: Request):
        d, caller = authenticate(request)
        record = own_run(d, caller, run_id)
        state, _ = current_state(d, record)
        if state.terminal:
            return {"run_id": record.run_id}  # nothing left to cancel: its outcome stands
        d.store.request_cancel(record.run_id)
        if record.dag_id == CROMWELL_DAG_ID:
            wes_wdl.abort(d, record)  # now, not when the teardown gets to it
        runs_of(d, record).fail(record.dag_run_id)
        d.store.update_run(record.run_id, state=WesState.CANCELING.value)
        log.info("WES run %s cancelled by %s (%s)", record.run_id, caller.subject, caller.workspace)
        return {"run_id": record.run_id}

    @app.get(f"{WES_PREFIX}/runs/{{run_id}}/tasks", name="list_tasks")
    def list_tasks(run_id: str, request: Request, page_size: int | None = None, page_token: str | None = None):
        d, caller = authenticate(request)
        record = own_run(d, caller, run_id)
        size = _page_size(page_size)
        start = 0
        if page_token:
            if not page_token.isdigit() or len(page_token) > 6:
                raise DoorError(404, "page_token is not one this service gave out")
            start = int(page_token)
        tasks = task_logs(d, record)
        page = tasks[start:start + size]
        more = start + size < len(tasks)
        return {"task_logs": page, "next_page_token": str(start + size) if more else ""}

    @app.get(f"{WES_PREFIX}/runs/{{run_id}}/tasks/{{task_id}}")
    def get_task(run_id: str, task_id: str, request: Request):
        d, caller = authenticate(request)
        record = own_run(d, caller, run_id)
        for task in task_logs(d, record):
            if task["id"] == task_id:
                return task
        raise _not_found("task")

    def task_logs(d: DoorDeps, record) -> list[dict[str, Any]]:
        """A WDL run's tasks are its Cromwell calls; a Nextflow run's, its Airflow tasks."""
        if record.dag_id == CROMWELL_DAG_ID:
            return wes_wdl.task_logs(d, record)
        return _task_logs(d.runs.view(record.dag_run_id))

    # -- usage -----------------------------------------------------------------------------
    @app.get("/workspaces/{workspace}/usage")
    def workspace_usage(workspace: str, request: Request):
        """What the workspace's runs used and their estimated cost, for runs that ended in
        ``[from, to)`` (ISO 8601 dates or times; default: all). Only the workspace's own token
        sees it: any other workspace hears 404, as for a workspace that does not exist."""
        d, caller = authenticate(request)
        if workspace != caller.workspace:
            raise _not_found("workspace")
        start, end = (_when(request.query_params.get(name), name) for name in ("from", "to"))
        if start and end and start >= end:
            raise DoorError(400, "'from' must be before 'to'")
        return usage_report(workspace, d.store.usage_of(workspace, start, end), start, end)

    # -- workflows -------------------------------------------------------------------------
    @app.post("/workspaces/{workspace}/workflows", status_code=201)
    async def deploy_workflow(workspace: str, request: Request):
        d, caller = await run_in_threadpool(authenticate, request)
        if not access.can_manage(workspace, caller.workspace):
            raise DoorError(403, f"only workspace {workspace!r} may deploy workflows there")
        try:
            spec = access.WorkflowDeploy.model_validate_json(await request.body())
        except ValidationError as exc:
            raise DoorError(400, _first_error(exc)) from None
        return await run_in_threadpool(_deploy, d, caller, spec)

    @app.get("/workspaces/{workspace}/workflows")
    def list_workflows(workspace: str, request: Request):
        d, caller = authenticate(request)
        rows = d.store.list_workflows(workspace)
        visible = [w for w in rows if _callable_by(w, caller.workspace)]
        return {"workflows": [_workflow_json(w) for w in visible]}

    def visible_workflow(request: Request, workspace: str, name: str):
        """The workflow if the caller may see it; 404 alike for a missing and a private one."""
        d, caller = authenticate(request)
        row = d.store.get_workflow(workspace, name)
        if row is None or not _callable_by(row, caller.workspace):
            raise _not_found("workflow")
        return d, caller, row

    @app.get("/workspaces/{workspace}/workflows/{name}")
    def get_workflow(workspace: str, name: str, request: Request):
        return _workflow_json(visible_workflow(request, workspace, name)[2])

    @app.delete("/workspaces/{workspace}/workflows/{name}")
    def remove_workflow(workspace: str, name: str, request: Request):
        d, caller, _ = visible_workflow(request, workspace, name)
        if not access.can_manage(workspace, caller.workspace):
            raise DoorError(403, f"only workspace {workspace!r} may remove its workflows")
        d.store.remove_workflow(caller.workspace, workspace, name)
        return {"removed": f"{workspace}/{name}"}

    def _deploy(d: DoorDeps, caller: Caller, spec: access.WorkflowDeploy) -> dict[str, Any]:
        d.store.ensure_workspace(caller.workspace, owner=caller.subject, bucket=d.bucket)
        row = d.store.deploy_workflow(caller.workspace, spec)
        return _workflow_json(row)

    def _start_run(d: DoorDeps, caller: Caller, fields: dict[str, str], attachments: list[dict[str, Any]],
                   run_id: str):
        try:
            form = RunForm.from_form(fields)
        except ValidationError as exc:
            raise DoorError(400, _first_error(exc)) from None
        except ValueError as exc:
            raise DoorError(400, str(exc)) from None
        try:
            deploying, name, version = access.parse_workflow_url(form.workflow_url)
        except ValueError as exc:
            raise DoorError(400, f"workflow_url: {exc}") from None
        unavailable = DoorError(403, f"workflow {deploying}/{name} is not deployed or not available to "
                                     f"workspace {caller.workspace!r}")
        row = d.store.get_workflow(deploying, name)
        if row is None:
            raise unavailable
        try:
            resolution = access.resolve(row.policy, deploying, caller.workspace)
        except access.AccessDenied:
            raise unavailable from None
        if version and version != row.version:
            raise DoorError(400, f"workflow {deploying}/{name} is deployed at version {row.version}, not {version}")
        engine = WORKFLOW_TYPES.get(form.workflow_type.upper())
        if engine != _value(row.engine):
            raise DoorError(400, f"workflow_type {form.workflow_type!r} does not match the workflow's engine "
                                 f"{_value(row.engine)}")
        if engine not in RUNNABLE_ENGINES:
            raise DoorError(400, f"{engine} workflows cannot be run here yet (no {engine} launcher configured)")
        try:
            row.check_params(form.workflow_params)
        except ValueError as exc:
            raise DoorError(400, f"workflow_params: {exc}") from None

        container = _container_block(form.workflow_engine_parameters, engine)
        if d.store.get_run(run_id) is None:  # a retried submission gets its run, budget or not
            check_budget(d, resolution.executing)
        d.store.ensure_workspace(caller.workspace, owner=caller.subject, bucket=d.bucket)
        request_body = {"workflow_url": form.workflow_url, "workflow_type": form.workflow_type,
                        "workflow_type_version": form.workflow_type_version or ("1.0" if engine == "WDL" else "DSL2"),
                        "workflow_params": form.workflow_params, "tags": form.tags,
                        "workflow_engine_parameters": form.workflow_engine_parameters}
        if attachments:
            request_body["workflow_attachment"] = attachments
        if engine == "WDL":
            return _start_wdl_run(d, caller, row, resolution, run_id, form, request_body)
        executing = d.store.get_workspace(resolution.executing)
        context = executing_context(
            prefix=d.platform.prefix, queue_mode=_value(d.platform.queue_mode), cost_tag_key=d.platform.cost_tag_key,
            executing=resolution.executing, owner=executing.owner if executing else caller.subject, run_id=run_id,
            calling=resolution.calling)
        conf = WesRunConf(
            run_id=run_id, calling=resolution.calling, deploying=resolution.deploying,
            executing=resolution.executing, bucket=d.bucket,
            workflow=WorkflowRef(name=row.name, version=row.version, engine=engine, git_url=row.git_url,
                                 git_ref=row.git_ref, pipeline=row.pipeline),
            params=form.workflow_params, engine_parameters=form.workflow_engine_parameters, tags=form.tags,
            context=context, container=container)
        d.store.add_run(_run_record(conf, request_body))
        try:
            d.runs.trigger(conf, user=f"wes:{caller.subject}")
        except DagNotReady as exc:
            d.store.update_run(run_id, state=WesState.SYSTEM_ERROR.value)
            raise DoorError(500, f"the platform cannot start runs now: {exc}") from None
        log.info("WES run %s: %s/%s called by %s, executing in %s", run_id, deploying, name,
                 resolution.calling, resolution.executing)
        return {"run_id": run_id}

    def _start_wdl_run(d: DoorDeps, caller: Caller, row, resolution, run_id: str, form: RunForm,
                       request_body: dict[str, Any]) -> dict[str, str]:
        if not row.git_url:
            raise DoorError(400, f"WDL workflow {row.deploying_workspace}/{row.name} has no git source: WDL "
                                 "workflows run from a git repository (main.wdl at its root)")
        try:
            conf = wes_wdl.wdl_conf(run_id=run_id, calling=resolution.calling, executing=resolution.executing,
                                    bucket=d.bucket, git_url=row.git_url, git_ref=row.git_ref,
                                    params=form.workflow_params)
        except ValidationError as exc:
            raise DoorError(400, _first_error(exc)) from None
        rec = wes_wdl.record(conf, calling=resolution.calling, deploying=resolution.deploying, name=row.name,
                             version=row.version, request_body=request_body, tags=form.tags)
        d.store.add_run(rec)
        try:
            wdl_runs.start(rec.dag_run_id, conf.model_dump(mode="json"), user=f"wes:{caller.subject}",
                           note=f"WES run {run_id} called by {resolution.calling}")
        except DagNotReady as exc:
            d.store.update_run(run_id, state=WesState.SYSTEM_ERROR.value)
            raise DoorError(500, f"the platform cannot start runs now: {exc}") from None
        log.info("WES run %s: WDL %s/%s called by %s, executing in %s", run_id, row.deploying_workspace, row.name,
                 resolution.calling, resolution.executing)
        return {"run_id": run_id}

    return app


async def _read_form(request: Request) -> tuple[dict[str, str], list[dict[str, Any]]]:
    """Form fields as strings, and a record (name, size, sha256) of each attachment.

    Attachments are accepted so that WES clients that always send them work unchanged; the
    workflow itself comes from its deployment, never from an upload.
    """
    ctype = request.headers.get("content-type", "")
    if not ctype.startswith(("multipart/form-data", "application/x-www-form-urlencoded")):
        raise DoorError(400, "POST /runs takes multipart/form-data (WES RunRequest fields as strings)")
    try:
        form = await request.form(max_files=100, max_fields=100, max_part_size=4 * 1024 * 1024)
    except Exception as exc:  # noqa: BLE001 - a broken body is the caller's error
        raise DoorError(400, f"unreadable form: {exc}") from None
    fields: dict[str, str] = {}
    attachments: list[dict[str, Any]] = []
    total = 0
    for key, value in form.multi_items():
        if isinstance(value, UploadFile):
            data = await value.read()
            total += len(data)
            if total > MAX_ATTACHMENTS_BYTES:
                raise DoorError(400, f"attachments exceed {MAX_ATTACHMENTS_BYTES} bytes")
            attachments.append({"name": (value.filename or key)[:256], "size": len(data),
                                "sha256": hashlib.sha256(data).hexdigest()})
        elif key in fields:
            raise DoorError(400, f"field {key!r} given twice")
        else:
            fields[key] = value
    return fields, attachments



def _run_id_for(caller: Caller, key: str | None) -> str:
    """The WES run id of a submission: new, or derived from the caller's ``Idempotency-Key``
    header, so a client that retries a POST whose answer it lost (an api-server that died
    mid-call) gets the run it started, not a second one."""
    if key is None:
        return new_run_id()
    if not IDEMPOTENCY_KEY.match(key):
        raise DoorError(400, "Idempotency-Key must be 1-255 printable ASCII characters")
    return hashlib.sha256(f"{caller.workspace}\0{key}".encode()).hexdigest()[:32]


def _container_block(engine_parameters: dict[str, str], engine: str) -> dict[str, Any] | None:
    """``workflow_engine_parameters["container"]``: a JSON container block (an image, or packages
    to build on Wave first), checked here so a bad one is a 400, not a failed run."""
    raw = engine_parameters.get("container")
    if raw is None:
        return None
    if engine != "NFL":
        raise DoorError(400, "workflow_engine_parameters.container applies to Nextflow runs only "
                             "(a WDL task names its image in its runtime section)")
    import json

    from hatchway.domain.wave import ContainerBlock

    try:
        block = json.loads(raw)
        ContainerBlock.model_validate(block)
    except ValidationError as exc:
        raise DoorError(400, f"workflow_engine_parameters.container: {_first_error(exc)}") from None
    except ValueError as exc:
        raise DoorError(400, f"workflow_engine_parameters.container is not JSON: {exc}") from None
    return block

def _page_size(asked: int | None) -> int:
    """The spec lets a server return fewer items than asked: out-of-range sizes are clamped."""
    if asked is None or asked < 1:
        return DEFAULT_PAGE_SIZE
    return min(asked, MAX_PAGE_SIZE)


def _task_logs(view: RunView) -> list[dict[str, Any]]:
    out = []
    order = sorted(view.tasks.values(), key=lambda t: (t.start_date is None, t.start_date or datetime.max, t.task_id))
    for task in order:
        entry: dict[str, Any] = {"id": task.task_id, "name": task.task_id,
                                 "system_logs": [f"state: {task.state or 'none'}", f"tries: {task.try_number}"]}
        if task.start_date:
            entry["start_time"] = _iso(task.start_date)
        if task.end_date:
            entry["end_time"] = _iso(task.end_date)
        if task.state in ("success", "failed"):
            entry["exit_code"] = 0 if task.state == "success" else 1
        out.append(entry)
    return out


def _callable_by(row, workspace: str) -> bool:
    try:
        access.resolve(row.policy, row.deploying_workspace, workspace)
        return True
    except access.AccessDenied:
        return False


def _value(v: Any) -> str:
    return str(getattr(v, "value", v))


def _workflow_json(row) -> dict[str, Any]:
    out = row.model_dump(mode="json")
    out["workflow_url"] = f"hatchway://{row.deploying_workspace}/{row.name}@{row.version}"
    return out


def _first_error(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first.get("loc", ()))
    return f"{where}: {first.get('msg')}" if where else str(first.get("msg"))


def _run_record(conf: WesRunConf, request_body: dict[str, Any]):
    from hatchway.store import RunRecord

    now = datetime.now(timezone.utc)
    return RunRecord(run_id=conf.run_id, dag_id="wes_run", dag_run_id=dag_run_id(conf.run_id),
                     calling_workspace=conf.calling, deploying_workspace=conf.deploying,
                     executing_workspace=conf.executing, workflow_name=conf.workflow.name,
                     workflow_version=conf.workflow.version, engine=conf.workflow.engine, request=request_body,
                     tags=conf.tags, state=WesState.QUEUED.value, cancel_requested_at=None, outputs=None,
                     created_at=now, updated_at=now)


__all__ = ["DoorDeps", "DoorNotConfigured", "LazyDeps", "create_app", "deps_from_airflow"]
