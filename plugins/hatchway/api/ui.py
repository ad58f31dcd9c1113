"""The workspace pages of the Airflow UI: ``/hatchway/ui/workspaces[/{ws}]`` (server-rendered HTML),
and each run's RO-Crate at ``/hatchway/ui/crates/{dag_id}/{dag_run_id}``.

Registered as an Airflow 3 external view (``HatchwayPlugin.external_views``): the Airflow UI
shows it in its navigation, in a frame of its own origin. Behind Airflow's own login: a page
is served only to a request whose Airflow session (the ``_token`` cookie the UI's login sets,
or a Bearer token) the auth manager accepts, and only to users it lets view plugins. These
are the operators' pages (every workspace); researchers use the front door with their
workspace tokens.

A workspace page: its record and resource names, its members and workflows, its budget and the
month's estimated cost, usage per day over the last 30 days as a bar chart (inline SVG), and
its runs (the usage recordings) with state, CPU-hours and cost, each linked to its RO-Crate
and catalog.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse

log = logging.getLogger(__name__)
UI_PREFIX = "/ui/workspaces"
UI_CRATES = "/ui/crates"  # + /{dag_id}/{dag_run_id}: any run's RO-Crate, behind the same login
CHART_DAYS = 30
_STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5rem;color:#1d2433}
h1{font-size:1.4rem;margin:0 0 .2rem} h2{font-size:1.1rem;margin:1.6rem 0 .5rem}
table{border-collapse:collapse;width:100%;font-size:.9rem} th,td{text-align:left;padding:.35rem .6rem;
border-bottom:1px solid #e3e6ec} th{background:#f4f6f9} td.n{text-align:right;font-variant-numeric:tabular-nums}
.muted{color:#687385} .ok{color:#1a7f37} .bad{color:#c62828} .pill{padding:.1rem .45rem;border-radius:.6rem;
background:#eef1f6} dl{display:grid;grid-template-columns:max-content auto;gap:.25rem 1rem;margin:0} dt{color:#687385}
"""


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(f"<!doctype html><html><head><meta charset='utf-8'><title>{_e(title)}</title>"
                        f"<style>{_STYLE}</style></head><body>{body}</body></html>", status_code=status)


async def airflow_user(request: Request) -> Any | None:
    """The Airflow user of this request (its session cookie or Bearer token), if it may view plugins."""
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.base_auth_manager import COOKIE_NAME_JWT_TOKEN

    header = request.headers.get("authorization") or ""
    token = header[7:] if header.lower().startswith("bearer ") else request.cookies.get(COOKIE_NAME_JWT_TOKEN)
    if not token:
        return None
    try:
        manager = get_auth_manager()
        user = await manager.get_user_from_token(token)
    except Exception:  # noqa: BLE001 - expired, invalid or forged (or no auth manager here): not logged in
        return None
    from airflow.api_fastapi.auth.managers.models.resource_details import AccessView

    return user if manager.is_authorized_view(access_view=AccessView.PLUGINS, user=user) else None


def _state_class(state: str) -> str:
    upper = state.upper()
    if upper in ("SUCCEEDED", "COMPLETE", "DONE"):
        return "ok"
    return "bad" if upper in ("FAILED", "EXECUTOR_ERROR", "SYSTEM_ERROR", "CANCELLED", "ABORTED") else ""


def usage_chart(records: list, now: datetime, days: int = CHART_DAYS) -> str:
    """Estimated cost per day (UTC) over the last ``days`` days as an inline SVG bar chart."""
    start = (now - timedelta(days=days - 1)).date()
    per_day = {start + timedelta(days=n): 0.0 for n in range(days)}
    for r in records:
        day = r.ended_at.astimezone(timezone.utc).date()
        if day in per_day:
            per_day[day] += r.usage.estimated_cost
    top = max(per_day.values()) or 1.0
    width, height, bar = 24 * days, 140, 18
    bars = []
    for n, (day, cost) in enumerate(per_day.items()):
        h = 0 if not cost else max(2, int(cost / top * (height - 30)))
        x = n * 24 + 3
        bars.append(f"<rect x='{x}' y='{height - 20 - h}' width='{bar}' height='{h}' fill='#3b6fd8'>"
                    f"<title>{day:%Y-%m-%d}: {cost:.4f}</title></rect>")
        if n % 5 == 0:
            bars.append(f"<text x='{x}' y='{height - 5}' font-size='9' fill='#687385'>{day:%m-%d}</text>")
    return (f"<svg role='img' aria-label='estimated cost per day' width='{width}' height='{height}' "
            f"viewBox='0 0 {width} {height}'>{''.join(bars)}</svg>")


def workspaces_page(*, store: Any, platform: Any) -> str:
    """The body of the workspaces list (HTML): each workspace, its owner and its all-time cost, in
    two store queries whatever the number of workspaces."""
    spent = store.spent_by_workspace()
    currency = _e(platform.price_table.currency)
    items = "".join(f"<tr><td><a href='workspaces/{_e(w.name)}'>{_e(w.name)}</a></td><td>{_e(w.owner)}</td>"
                    f"<td class=n>{spent.get(w.name, 0.0):.2f} {currency}</td></tr>" for w in store.list_workspaces())
    return ("<h1>Hatchway workspaces</h1><table><thead><tr><th>workspace</th><th>owner</th>"
            "<th>estimated cost, all time</th></tr></thead><tbody>"
            + (items or "<tr><td colspan=3 class=muted>none yet</td></tr>") + "</tbody></table>")


def workspace_page(workspace: str, *, store: Any, platform: Any, record: Any, record_error: str | None,
                   crate_url: Callable[[Any], str], now: datetime | None = None) -> str:
    """The body of one workspace's page (HTML). ``crate_url(run)``: the link to a run's kept
    RO-Crate, asked only for the runs that have one (found in one store query)."""
    from hatchway.domain.names import WorkspaceNames
    from hatchway.domain.usage import month_start

    now = now or datetime.now(timezone.utc)
    row = store.get_workspace(workspace)
    records = store.usage_of(workspace)
    month = [r for r in records if r.ended_at >= month_start(now)]
    currency = platform.price_table.currency
    spent = sum(r.usage.estimated_cost for r in month)
    budget = platform.budgets.get(workspace)
    names = WorkspaceNames(platform.prefix, workspace)
    facts = [("owner", row.owner if row else (record.owner if record else None)),
             ("state", record.state.value if record else None), ("cost centre", record.cost_center if record else None),
             ("queue mode", record.queue_mode.value if record else None),
             ("last active", f"{record.last_active_at:%Y-%m-%d %H:%M} UTC" if record else None),
             ("data", f"s3://{platform.bucket}/{names.s3_prefix}"), ("job role", names.job_role),
             ("job queue", names.job_queue if not record or record.queue_mode.value == "per_user" else "shared"),
             ("compute environment", names.compute_environment), ("Kubernetes namespace", names.namespace),
             ("estimated cost this month", f"{spent:.2f} {currency}"
              + (f" of a {budget.amount:.2f} {currency} budget" if budget else " (no budget)"))]
    info = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v) if v is not None else '<span class=muted>-</span>'}</dd>"
                   for k, v in facts)
    if record_error:
        info += f"<dt>record</dt><dd class=muted>{_e(record_error)}</dd>"
    members = ", ".join(f"{_e(m.user)} ({_e(m.role)})" for m in store.members(workspace)) if row else ""
    workflows = ", ".join(f"{_e(w.name)} {_e(w.version)} ({_e(w.policy)})" for w in store.list_workflows(workspace))
    crated = store.crated((r.dag_id, r.dag_run_id) for r in records)
    runs = []
    for r in reversed(records):
        crate = crate_url(r) if (r.dag_id, r.dag_run_id) in crated else None
        catalog = (f"s3://{platform.bucket}/{r.calling_workspace or workspace}/processing-results/{r.run_id}/"
                   "catalog.json") if r.dag_id == "wes_run" else None
        links = " ".join(part for part in (
            f"<a href='{_e(crate)}'>RO-Crate</a>" if crate else "",
            f"<span class=muted title='{_e(catalog)}'>catalog</span>" if catalog else "") if part)
        runs.append(f"<tr><td>{_e(r.run_id)}</td><td>{_e(r.dag_id)}</td>"
                    f"<td><span class='pill {_state_class(r.state)}'>{_e(r.state)}</span></td>"
                    f"<td>{_e(f'{r.ended_at:%Y-%m-%d %H:%M}')}</td><td class=n>{r.usage.task_count}</td>"
                    f"<td class=n>{r.usage.cpu_hours:.2f}</td><td class=n>{r.usage.memory_gib_hours:.2f}</td>"
                    f"<td class=n>{r.usage.estimated_cost:.4f} {_e(r.usage.currency)}</td><td>{links}</td></tr>")
    table = ("<table><thead><tr><th>run</th><th>lifecycle</th><th>state</th><th>ended (UTC)</th><th>tasks</th>"
             "<th>CPU-hours</th><th>GiB-hours</th><th>estimated cost</th><th></th></tr></thead><tbody>"
             + ("".join(runs) or "<tr><td colspan=9 class=muted>no run has ended yet</td></tr>") + "</tbody></table>")
    return (f"<p class=muted><a href='../workspaces'>Workspaces</a></p><h1>Workspace {_e(workspace)}</h1>"
            f"<dl>{info}</dl><h2>Members and workflows</h2><p>{members or '<span class=muted>-</span>'}</p>"
            f"<p>{workflows or '<span class=muted>no workflow deployed</span>'}</p>"
            f"<h2>Estimated cost per day, last {CHART_DAYS} days</h2>{usage_chart(records, now)}"
            f"<h2>Runs ({len(records)})</h2>{table}"
            "<p class=muted>Costs are estimates from the deployment's price table.</p>")


def _login() -> HTMLResponse:
    return _page("Log in", "<h1>Log in to Airflow</h1><p><a href='/'>Airflow</a></p>", status=401)


def add_ui_routes(app: FastAPI, deps: Callable[[], Any]) -> None:
    """Add the workspace pages to the front door app. :param deps: the door's ``() -> DoorDeps``."""

    def configured() -> tuple[Any, HTMLResponse | None]:
        """The door's dependencies, or the page that says why there are none (503)."""
        try:
            return deps(), None
        except Exception as exc:  # noqa: BLE001 - the door's configuration is missing: say so
            return None, _page("Hatchway", f"<h1>Hatchway</h1><p>{_e(f'Hatchway is not configured: {exc}')}</p>",
                               status=503)

    @app.get(UI_PREFIX, response_class=HTMLResponse)
    async def workspaces(request: Request):
        if await airflow_user(request) is None:
            return _login()
        d, unconfigured = configured()
        if unconfigured is not None:
            return unconfigured
        body = await run_in_threadpool(lambda: workspaces_page(store=d.store, platform=d.platform))
        return _page("Hatchway workspaces", body)

    @app.get(UI_PREFIX + "/{workspace}", response_class=HTMLResponse)
    async def workspace(workspace: str, request: Request):
        from hatchway.domain import names

        if await airflow_user(request) is None:
            return _login()
        try:
            names.check_workspace_name(workspace)
        except ValueError as exc:
            return _page("Not found", f"<h1>No workspace</h1><p>{_e(exc)}</p>", status=404)
        d, unconfigured = configured()
        if unconfigured is not None:
            return unconfigured
        record, error = await run_in_threadpool(_record, d.platform, workspace)
        if record is None and d.store.get_workspace(workspace) is None and not d.store.usage_of(workspace):
            return _page("Not found", f"<h1>No workspace {_e(workspace)}</h1>", status=404)

        def crate_url(usage: Any) -> str:
            return str(request.url_for("ui_run_crate", dag_id=usage.dag_id, dag_run_id=usage.dag_run_id))

        body = await run_in_threadpool(lambda: workspace_page(workspace, store=d.store, platform=d.platform,
                                                              record=record, record_error=error, crate_url=crate_url))
        return _page(f"Workspace {workspace}", body)

    @app.get(UI_CRATES + "/{dag_id}/{dag_run_id}", name="ui_run_crate")
    async def run_crate(dag_id: str, dag_run_id: str, request: Request):
        """A run's Workflow Run RO-Crate as its ``write_crate`` teardown kept it: WES, Cromwell and
        job runs alike (a failed job's crate lives only in the store)."""
        if await airflow_user(request) is None:
            return _login()
        d, unconfigured = configured()
        if unconfigured is not None:
            return unconfigured
        found = await run_in_threadpool(d.store.get_crate, dag_id, dag_run_id)
        if found is None:
            return _page("Not found", f"<h1>No RO-Crate for {_e(dag_id)} run {_e(dag_run_id)}</h1>", status=404)
        return JSONResponse(found[1], media_type="application/ld+json")


def _record(platform: Any, workspace: str) -> tuple[Any | None, str | None]:
    """The workspace's record from the platform bucket (the api-server's AWS connection)."""
    try:
        from hatchway.workspace.clients import AwsClients
        from hatchway.workspace.provision import read_record

        return read_record(AwsClients.from_connection(platform.aws_conn_id, platform.region), platform,
                           workspace), None
    except Exception as exc:  # noqa: BLE001 - the page still shows what the store knows
        log.warning("workspace page %s: record not read: %s", workspace, type(exc).__name__)
        return None, f"not read ({type(exc).__name__})"
