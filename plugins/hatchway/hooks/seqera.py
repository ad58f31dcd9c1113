"""Seqera Platform API hook: launch, list, describe and cancel workflow runs.

One hook wraps one HTTP client (``httpx``, sync and async). The endpoint, token, default
workspace and compute environment, and the retry rules all come from the Airflow connection
(default ``seqera_default``), not from call sites:

- ``host``: the API base URL, e.g. ``https://api.cloud.seqera.io`` (a bare host name gets
  ``https://``, or the connection's ``schema`` as scheme, and its ``port``);
- ``password``: the access token, sent as ``Authorization: Bearer``;
- ``extra``: ``workspace_id``, ``compute_env_id``, optional ``verify`` (bool or CA bundle
  path), ``timeout`` (seconds per request, default 30), ``max_attempts`` (default 5),
  ``backoff_base`` / ``backoff_max`` (seconds, default 1 / 30).

429, 5xx, timeouts and connection errors are retried with exponential backoff and jitter
(at most ``max_attempts`` tries, honouring ``Retry-After``); 401 and 403 raise
:class:`SeqeraAuthError` at once. Messages name the connection, never the token, and the
token is never logged.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx
from airflow.sdk import BaseHook

from hatchway.domain.jobs import JobEvent, seqera_event
from hatchway.hooks import rest
from hatchway.hooks.seqera_settings import DEFAULT_PAGE_SIZE, SEQERA_CONN_ID

if TYPE_CHECKING:
    from airflow.sdk import Connection

MAX_PAGES = 1000  # a runaway pagination (a server that ignores offset) stops here


class SeqeraError(Exception):
    """Any failure talking to Seqera Platform."""


class SeqeraAuthError(SeqeraError):
    """401/403: the token is wrong, expired, or may not see the workspace. Not retried."""


class SeqeraApiError(SeqeraError):
    """Another 4xx answer (a bad request): retrying would not help.

    :param status: the HTTP status.
    :param message: Seqera's ``ErrorResponse.message``, if any.
    """

    def __init__(self, text: str, status: int, message: str | None = None):
        super().__init__(text)
        self.status = status
        self.message = message


class SeqeraUnavailableError(SeqeraError):
    """429/5xx/timeouts persisted through every attempt."""


@dataclass(frozen=True)
class SeqeraEndpoint:
    """What a connection says about reaching Seqera; ``repr`` leaves the token out.

    :param conn_id: the Airflow connection it came from (named in error messages).
    :param base_url: API base URL without a trailing slash.
    :param token: the access token.
    :param workspace_id: default workspace (None: the user's personal context).
    :param compute_env_id: default compute environment for launches.
    :param verify: TLS verification: bool or CA bundle path.
    :param timeout: seconds per request.
    :param max_attempts: tries per call for retryable failures.
    :param backoff_base: first backoff, doubled on each retry.
    :param backoff_max: cap of one backoff.
    """

    conn_id: str
    base_url: str
    token: str = field(repr=False)
    workspace_id: int | None = None
    compute_env_id: str | None = None
    verify: bool | str = True
    timeout: float = 30.0
    max_attempts: int = 5
    backoff_base: float = 1.0
    backoff_max: float = 30.0

    @classmethod
    def from_connection(cls, conn: Connection) -> SeqeraEndpoint:
        extra = conn.extra_dejson or {}
        host = (conn.host or "").strip().rstrip("/")
        if not host:
            raise SeqeraError(f"connection {conn.conn_id!r} has no host: set it to the Seqera API base URL")
        if "://" not in host:
            host = f"{conn.schema or 'https'}://{host}" + (f":{conn.port}" if conn.port else "")
        if not conn.password:
            raise SeqeraAuthError(f"connection {conn.conn_id!r} has no password: set it to a Seqera access token")
        workspace = extra.get("workspace_id")
        return cls(
            conn_id=conn.conn_id,
            base_url=host,
            token=conn.password,
            workspace_id=int(workspace) if workspace not in (None, "") else None,
            compute_env_id=extra.get("compute_env_id") or None,
            # The UI's form stores an empty field as null: that means the default, verify.
            verify=True if extra.get("verify") is None else extra["verify"],
            timeout=float(extra.get("timeout", 30.0)),
            max_attempts=max(1, int(extra.get("max_attempts", 5))),
            backoff_base=float(extra.get("backoff_base", 1.0)),
            backoff_max=float(extra.get("backoff_max", 30.0)),
        )

    @property
    def identity(self) -> tuple[str, str]:
        """Who is asking where: base URL and a digest of the token (never the token itself).

        Shared pollers are keyed on this, so two tenants' tokens never share an answer.
        """
        return self.base_url, hashlib.sha256(self.token.encode()).hexdigest()[:16]

    @property
    def retry(self) -> rest.Backoff:
        """The connection's retry rules."""
        return rest.Backoff(self.max_attempts, self.backoff_base, self.backoff_max)

    def backoff(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait after failed try ``attempt`` (1-based): exponential, jittered, capped."""
        return self.retry.delay(attempt, retry_after)


def newest_by_name(elements: Iterable[dict[str, Any]], names: set[str] | None) -> dict[str, dict[str, Any]]:
    """Pick, per run name, the newest workflow among list elements (a name can be relaunched).

    :param elements: ``ListWorkflowsResponse.workflows`` items.
    :param names: run names wanted (None: all).
    :return: run name -> the element's ``workflow`` dict.
    """
    found: dict[str, dict[str, Any]] = {}
    for element in elements:
        wf = (element or {}).get("workflow") or {}
        name = wf.get("runName")
        if not name or (names is not None and name not in names):
            continue
        if name not in found or _created(wf) > _created(found[name]):
            found[name] = wf
    return found


def _created(wf: dict[str, Any]) -> str:
    # ISO-8601 UTC strings order as text; real answers may carry nulls.
    return wf.get("dateCreated") or wf.get("submit") or ""


class SeqeraHook(rest.HttpClients, BaseHook):
    """Talk to the Seqera Platform API through one Airflow connection.

    :param seqera_conn_id: the connection (see the module docstring for its fields).
    :param endpoint: an already resolved endpoint (the triggers' shared poller passes one,
        so a thousand waiting runs do not each fetch the connection).
    """

    conn_name_attr = "seqera_conn_id"
    default_conn_name = SEQERA_CONN_ID
    conn_type = "seqera"
    hook_name = "Seqera Platform"

    def __init__(self, seqera_conn_id: str = default_conn_name, *, endpoint: SeqeraEndpoint | None = None) -> None:
        super().__init__()
        self.seqera_conn_id = endpoint.conn_id if endpoint else seqera_conn_id
        self._endpoint = endpoint

    # -- connection
    @property
    def endpoint(self) -> SeqeraEndpoint:
        if self._endpoint is None:
            self._endpoint = SeqeraEndpoint.from_connection(self.get_connection(self.seqera_conn_id))
        return self._endpoint

    async def aget_endpoint(self) -> SeqeraEndpoint:
        """The endpoint, reading the connection without blocking the event loop."""
        if self._endpoint is None:
            self._endpoint = SeqeraEndpoint.from_connection(await self.aget_connection(self.seqera_conn_id))
        return self._endpoint

    def _client_kwargs(self, ep: SeqeraEndpoint) -> dict[str, Any]:
        return {"base_url": ep.base_url, "timeout": httpx.Timeout(ep.timeout), "verify": ep.verify,
                "headers": {"Authorization": f"Bearer {ep.token}", "Accept": "application/json"}}


    def _workspace(self, workspace_id: int | None) -> int | None:
        return workspace_id if workspace_id is not None else self.endpoint.workspace_id

    # -- answers
    def _answer(self, resp: httpx.Response, method: str, path: str, workspace_id: int | None) -> Any:
        """Return the decoded body of a 2xx; raise for the rest (:class:`hatchway.hooks.rest.Retry` for retryable ones)."""
        rest.raise_for_retry(resp)
        status = resp.status_code
        ep = self.endpoint
        if status == 401:
            raise SeqeraAuthError(
                f"Seqera Platform at {ep.base_url} rejected the access token of connection {ep.conn_id!r} "
                f"(HTTP 401 on {method} {path}): the token is missing, wrong or expired; "
                f"update the connection's password")
        if status == 403:
            where = f"workspace {workspace_id}" if workspace_id is not None else "the personal workspace"
            raise SeqeraAuthError(
                f"Seqera Platform at {ep.base_url} refused {method} {path} in {where} (HTTP 403, operation "
                f"not allowed) for the token of connection {ep.conn_id!r}: the token may not see that "
                f"workspace, or the workflow does not exist there")
        if status >= 400:
            try:
                message = resp.json().get("message")
            except (ValueError, AttributeError):
                message = None
            raise SeqeraApiError(f"Seqera Platform answered HTTP {status} to {method} {path} "
                                 f"(connection {ep.conn_id!r}): {message or resp.reason_phrase}", status, message)
        if status == 204 or not resp.content:
            return None
        return resp.json()

    def _give_up(self, method: str, path: str, attempts: int, reason: str) -> SeqeraUnavailableError:
        ep = self.endpoint
        return SeqeraUnavailableError(f"Seqera Platform at {ep.base_url} did not answer {method} {path} "
                                      f"(connection {ep.conn_id!r}) after {attempts} attempts: {reason}")

    def _note_retry(self, method: str, path: str, attempt: int, reason: str, delay: float) -> None:
        self.log.warning("Seqera %s %s (connection %r): %s; retry %d/%d in %.1fs", method, path,
                         self.seqera_conn_id, reason, attempt, self.endpoint.max_attempts - 1, delay)

    # -- transport (hatchway.hooks.rest: retries, backoff)
    def note_retry(self, method: str, path: str, attempt: int, reason: str, delay: float) -> None:
        self._note_retry(method, path, attempt, reason, delay)

    def give_up(self, method: str, path: str, attempts: int, reason: str) -> SeqeraUnavailableError:
        return self._give_up(method, path, attempts, reason)

    def _request(self, method: str, path: str, *, workspace_id: int | None = None,
                 params: dict[str, Any] | None = None, body: Any = None, attempts: int | None = None) -> Any:
        client = self.get_conn()
        query = {k: v for k, v in {"workspaceId": workspace_id, **(params or {})}.items() if v is not None}
        return rest.call(self, self.endpoint.retry, method, path,
                         lambda: client.request(method, path, params=query, json=body),
                         lambda resp: self._answer(resp, method, path, workspace_id), attempts)

    async def _arequest(self, method: str, path: str, *, workspace_id: int | None = None,
                        params: dict[str, Any] | None = None, body: Any = None) -> Any:
        client = await self.aget_conn()
        query = {k: v for k, v in {"workspaceId": workspace_id, **(params or {})}.items() if v is not None}
        return await rest.acall(self, self.endpoint.retry, method, path,
                                lambda: client.request(method, path, params=query, json=body),
                                lambda resp: self._answer(resp, method, path, workspace_id))

    # -- API (sync)
    def service_info(self) -> dict[str, Any]:
        """``GET /service-info``."""
        return self._request("GET", "/service-info")["serviceInfo"]

    def test_connection(self) -> tuple[bool, str]:
        """For the Airflow UI: reach the API and list one workflow with the token."""
        try:
            info = self.service_info()
            self.list_workflows(max=1)
        except SeqeraError as exc:
            return False, str(exc)
        return True, f"Seqera Platform {info.get('version', '?')} (API {info.get('apiVersion', '?')}) answered"

    def list_workflows(self, search: str | None = None, workspace_id: int | None = None, *,
                       max: int | None = None, offset: int | None = None) -> dict[str, Any]:
        """``GET /workflow``: one page of a workspace's runs.

        :param search: Seqera's filter text (the run name, or a prefix of it).
        :param workspace_id: workspace (default: the connection's).
        :param max: page size.
        :param offset: page start.
        :return: the ``ListWorkflowsResponse``.
        """
        return self._request("GET", "/workflow", workspace_id=self._workspace(workspace_id),
                             params={"search": search, "max": max, "offset": offset})

    def iter_workflows(self, search: str | None = None, workspace_id: int | None = None, *,
                       page_size: int = DEFAULT_PAGE_SIZE) -> Iterator[dict[str, Any]]:
        """Every list element matching ``search``, page by page (``max``/``offset``)."""
        offset = 0
        for _ in range(MAX_PAGES):
            page = self.list_workflows(search, workspace_id, max=page_size, offset=offset)
            items = page.get("workflows") or []
            yield from items
            offset += len(items)
            if _last_page(page, items, offset, page_size):
                return

    def find_workflow(self, run_name: str, workspace_id: int | None = None) -> dict[str, Any] | None:
        """The newest run named exactly ``run_name`` (``search`` also matches longer names), or None."""
        return newest_by_name(self.iter_workflows(run_name, workspace_id), {run_name}).get(run_name)

    def get_workflow(self, workflow_id: str, workspace_id: int | None = None) -> dict[str, Any]:
        """``GET /workflow/{workflowId}``: the ``DescribeWorkflowResponse``."""
        return self._request("GET", f"/workflow/{workflow_id}", workspace_id=self._workspace(workspace_id))

    def list_tasks(self, workflow_id: str, workspace_id: int | None = None, *,
                   page_size: int = DEFAULT_PAGE_SIZE) -> list[dict[str, Any]]:
        """``GET /workflow/{workflowId}/tasks``, every page: the run's ``Task`` objects."""
        tasks: list[dict[str, Any]] = []
        for _ in range(MAX_PAGES):
            page = self._request("GET", f"/workflow/{workflow_id}/tasks", workspace_id=self._workspace(workspace_id),
                                 params={"max": page_size, "offset": len(tasks)})
            items = [element.get("task") or {} for element in page.get("tasks") or []]
            tasks.extend(items)
            if not items or len(tasks) >= int(page.get("total") or 0):
                return tasks
        raise SeqeraError(f"GET /workflow/{workflow_id}/tasks: more than {MAX_PAGES} pages")

    def cancel(self, workflow_id: str, workspace_id: int | None = None) -> None:
        """``POST /workflow/{workflowId}/cancel``."""
        self._request("POST", f"/workflow/{workflow_id}/cancel", workspace_id=self._workspace(workspace_id),
                      body={})

    def launch(self, run_name: str, pipeline: str, revision: str | None, params: dict[str, Any] | None,
               work_dir: str | None, workspace_id: int | None = None, compute_env_id: str | None = None,
               **launch_fields: Any) -> str:
        """Ensure a run named ``run_name`` is launched; return its workflow id.

        An ensure, not a create: a live or succeeded run of that name is returned as it is,
        and a launch whose answer was lost (timeout, 5xx) is looked up by name before it is
        sent again, so a retry never starts a second run. A run of that name that failed or
        was cancelled is launched anew.

        :param run_name: Seqera run name (derived from the job id).
        :param pipeline: pipeline repository URL or name.
        :param revision: git revision.
        :param params: Nextflow params, sent as JSON ``paramsText``.
        :param work_dir: Nextflow work directory.
        :param workspace_id: workspace (default: the connection's).
        :param compute_env_id: compute environment (default: the connection's).
        :param launch_fields: more ``WorkflowLaunchRequest`` fields (``configProfiles``, ...).
        """
        ws = self._workspace(workspace_id)
        existing = self.find_workflow(run_name, ws)
        if _reusable(existing):
            self.log.info("Seqera run %r already exists in workspace %s (%s): not launching again",
                          run_name, ws, existing.get("status"))
            return existing["id"]
        body = self._launch_body(run_name, pipeline, revision, params, work_dir, compute_env_id, launch_fields)
        attempts = self.endpoint.max_attempts
        for attempt in range(1, attempts + 1):
            try:
                answer = self._request("POST", "/workflow/launch", workspace_id=ws, body=body, attempts=1)
                return answer["workflowId"]
            except SeqeraUnavailableError as exc:
                if attempt == attempts:
                    raise
                delay = self.endpoint.backoff(attempt)
                self.log.warning("Seqera launch of %r did not answer (%s); checking in %.1fs whether it started "
                                 "before sending it again", run_name, exc, delay)
                time.sleep(delay)
                existing = self.find_workflow(run_name, ws)
                if _reusable(existing):
                    return existing["id"]
        raise AssertionError("unreachable")

    def _launch_body(self, run_name, pipeline, revision, params, work_dir, compute_env_id, extra) -> dict:
        compute_env = compute_env_id or self.endpoint.compute_env_id
        if not compute_env:
            raise SeqeraError(f"no compute environment: pass compute_env_id or set extra.compute_env_id on "
                              f"connection {self.seqera_conn_id!r}")
        launch = {"computeEnvId": compute_env, "pipeline": pipeline, "runName": run_name, **extra}
        if revision:
            launch["revision"] = revision
        if work_dir:
            launch["workDir"] = work_dir
        if params:
            launch["paramsText"] = json.dumps(params, sort_keys=True)
        return {"launch": launch}

    # -- API (async, for triggers)
    async def alist_workflows(self, search: str | None = None, workspace_id: int | None = None, *,
                              max: int | None = None, offset: int | None = None) -> dict[str, Any]:
        """Async :meth:`list_workflows`."""
        await self.aget_endpoint()
        return await self._arequest("GET", "/workflow", workspace_id=self._workspace(workspace_id),
                                    params={"search": search, "max": max, "offset": offset})

    async def afind_workflows(self, run_names: set[str] | None, *, search: str | None = None,
                              workspace_id: int | None = None,
                              page_size: int = DEFAULT_PAGE_SIZE) -> tuple[dict[str, dict[str, Any]], int]:
        """List a workspace page by page until every run in ``run_names`` is found (or the end).

        :param run_names: names wanted (None: every run matching ``search``).
        :param search: Seqera filter text (a common prefix of the names narrows the listing).
        :return: run name -> newest workflow dict, and the number of list calls made.
        """
        found: dict[str, dict[str, Any]] = {}
        offset = calls = 0
        for _ in range(MAX_PAGES):
            page = await self.alist_workflows(search, workspace_id, max=page_size, offset=offset)
            calls += 1
            items = page.get("workflows") or []
            for name, wf in newest_by_name(items, run_names).items():
                if name not in found or _created(wf) > _created(found[name]):
                    found[name] = wf
            offset += len(items)
            # Lists are newest first, so once every wanted name was seen, older pages add nothing.
            if (run_names is not None and run_names <= found.keys()) or _last_page(page, items, offset, page_size):
                break
        return found, calls

    async def afind_workflow(self, run_name: str, workspace_id: int | None = None) -> dict[str, Any] | None:
        """Async :meth:`find_workflow`."""
        found, _ = await self.afind_workflows({run_name}, search=run_name, workspace_id=workspace_id)
        return found.get(run_name)

    async def aget_workflow(self, workflow_id: str, workspace_id: int | None = None) -> dict[str, Any]:
        """Async :meth:`get_workflow`."""
        await self.aget_endpoint()
        return await self._arequest("GET", f"/workflow/{workflow_id}", workspace_id=self._workspace(workspace_id))

    async def acancel(self, workflow_id: str, workspace_id: int | None = None) -> None:
        """Async :meth:`cancel`."""
        await self.aget_endpoint()
        await self._arequest("POST", f"/workflow/{workflow_id}/cancel", workspace_id=self._workspace(workspace_id),
                             body={})


def _last_page(page: dict[str, Any], items: list, offset: int, page_size: int) -> bool:
    if not items or page.get("hasMore") is False:
        return True
    total = page.get("totalSize")
    if total is not None:
        return offset >= total
    # Neither hint: a short page is the last (a server-side cap on max would end early here).
    return page.get("hasMore") is None and len(items) < page_size


def _reusable(wf: dict[str, Any] | None) -> bool:
    """A run that a launch may return instead of starting another: live or succeeded."""
    return bool(wf and wf.get("id")) and seqera_event(wf.get("status")) is not JobEvent.FAILED
