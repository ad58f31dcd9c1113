"""Cromwell REST API hook: submit, status, abort, outputs, metadata, labels and query.

One hook wraps one HTTP client (``httpx``, sync and async) for one Airflow connection
(default ``cromwell_default``, type ``http``):

- ``host`` (with ``schema`` and ``port``, or a full URL): the server, e.g. ``https://cromwell.example.org``;
- ``password``: a bearer token, if the server (or a proxy in front of it) wants one;
- ``extra``: ``timeout`` (seconds per request, default 30), ``max_attempts`` (default 5),
  ``backoff_base`` / ``backoff_max`` (default 1 / 30), ``verify`` (bool or CA bundle),
  ``api_version`` (default ``v1``).

429, 5xx, timeouts and connection errors are retried (:mod:`hatchway.hooks.rest`). Answers
follow Cromwell's code where its swagger is wrong (tests/contracts/README.md): submit answers
201, ``/outputs`` is ``{"id", "outputs"}``. Messages name the connection, never the token.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx
from airflow.sdk import BaseHook

from hatchway.hooks import rest

if TYPE_CHECKING:
    from airflow.sdk import Connection

CROMWELL_CONN_ID = "cromwell_default"
PAGE_SIZE = 200
MAX_PAGES = 1000


class CromwellError(Exception):
    """Any failure talking to Cromwell."""


class CromwellApiError(CromwellError):
    """A 4xx answer: retrying would not help.

    :param status: the HTTP status.
    :param message: Cromwell's error envelope ``message``, if any.
    """

    def __init__(self, text: str, status: int, message: str | None = None):
        super().__init__(text)
        self.status = status
        self.message = message


class CromwellNotFound(CromwellApiError):
    """404: Cromwell does not know the workflow (or, right after a submit, does not know it yet)."""


class CromwellUnavailable(CromwellError):
    """429/5xx/timeouts persisted through every attempt."""


@dataclass(frozen=True)
class CromwellEndpoint:
    """What a connection says about reaching a Cromwell server; ``repr`` leaves the token out."""

    conn_id: str
    base_url: str
    token: str | None = field(default=None, repr=False)
    api_version: str = "v1"
    verify: bool | str = True
    timeout: float = 30.0
    retry: rest.Backoff = rest.Backoff()

    @classmethod
    def from_connection(cls, conn: Connection) -> CromwellEndpoint:
        extra = conn.extra_dejson or {}
        host = (conn.host or "").strip().rstrip("/")
        if not host:
            raise CromwellError(f"connection {conn.conn_id!r} has no host: set it to the Cromwell server's URL")
        if "://" not in host:
            host = f"{conn.schema or 'https'}://{host}" + (f":{conn.port}" if conn.port else "")
        return cls(conn_id=conn.conn_id, base_url=host, token=conn.password or None,
                   api_version=str(extra.get("api_version") or "v1"),
                   verify=True if extra.get("verify") is None else extra["verify"],
                   timeout=float(extra.get("timeout", 30.0)),
                   retry=rest.Backoff(max(1, int(extra.get("max_attempts", 5))), float(extra.get("backoff_base", 1.0)),
                                      float(extra.get("backoff_max", 30.0))))

    @property
    def identity(self) -> tuple[str, str]:
        """Base URL and a digest of the token: the shared poller's key (never the token itself)."""
        return self.base_url, hashlib.sha256((self.token or "").encode()).hexdigest()[:16]

    @property
    def workflows(self) -> str:
        return f"/api/workflows/{self.api_version}"


def _envelope_message(resp: httpx.Response) -> str | None:
    try:
        body = resp.json()
    except ValueError:
        return resp.text[:300] or None
    return body.get("message") if isinstance(body, dict) else None


class CromwellHook(rest.HttpClients, BaseHook):
    """Talk to one Cromwell server through one Airflow connection.

    :param cromwell_conn_id: the connection (see the module docstring).
    :param endpoint: an already resolved endpoint (the shared poller passes one).
    """

    conn_name_attr = "cromwell_conn_id"
    default_conn_name = CROMWELL_CONN_ID
    conn_type = "http"
    hook_name = "Cromwell"

    def __init__(self, cromwell_conn_id: str = default_conn_name, *, endpoint: CromwellEndpoint | None = None):
        super().__init__()
        self.cromwell_conn_id = endpoint.conn_id if endpoint else cromwell_conn_id
        self._endpoint = endpoint

    @property
    def endpoint(self) -> CromwellEndpoint:
        if self._endpoint is None:
            self._endpoint = CromwellEndpoint.from_connection(self.get_connection(self.cromwell_conn_id))
        return self._endpoint

    async def aget_endpoint(self) -> CromwellEndpoint:
        if self._endpoint is None:
            self._endpoint = CromwellEndpoint.from_connection(await self.aget_connection(self.cromwell_conn_id))
        return self._endpoint

    def _client_kwargs(self, ep: CromwellEndpoint) -> dict[str, Any]:
        headers = {"Accept": "application/json"}
        if ep.token:
            headers["Authorization"] = f"Bearer {ep.token}"
        return {"base_url": ep.base_url, "timeout": httpx.Timeout(ep.timeout), "verify": ep.verify, "headers": headers}

    # -- transport
    def note_retry(self, method: str, path: str, attempt: int, reason: str, delay: float) -> None:
        self.log.warning("Cromwell %s %s (connection %r): %s; retry %d/%d in %.1fs", method, path,
                         self.cromwell_conn_id, reason, attempt, self.endpoint.retry.max_attempts - 1, delay)

    def give_up(self, method: str, path: str, attempts: int, reason: str) -> CromwellUnavailable:
        return CromwellUnavailable(f"Cromwell at {self.endpoint.base_url} did not answer {method} {path} "
                                   f"(connection {self.cromwell_conn_id!r}) after {attempts} attempts: {reason}")

    def _answer(self, resp: httpx.Response, method: str, path: str) -> Any:
        rest.raise_for_retry(resp)
        status = resp.status_code
        if status >= 400:
            message = _envelope_message(resp)
            kind = CromwellNotFound if status == 404 else CromwellApiError
            raise kind(f"Cromwell at {self.endpoint.base_url} answered HTTP {status} to {method} {path} "
                       f"(connection {self.cromwell_conn_id!r}): {message or resp.reason_phrase}", status, message)
        return resp.json() if resp.content else None

    def _request(self, method: str, path: str, attempts: int | None = None, **kwargs: Any) -> Any:
        client = self.get_conn()
        return rest.call(self, self.endpoint.retry, method, path, lambda: client.request(method, path, **kwargs),
                         lambda resp: self._answer(resp, method, path), attempts)

    async def _arequest(self, method: str, path: str, **kwargs: Any) -> Any:
        client = await self.aget_conn()
        return await rest.acall(self, self.endpoint.retry, method, path,
                                lambda: client.request(method, path, **kwargs),
                                lambda resp: self._answer(resp, method, path))

    def relay(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Send one request as it is and return Cromwell's answer, whatever its status (for a
        front door that passes Cromwell's own answers through). Timeouts and connection errors
        raise :class:`CromwellUnavailable`."""
        try:
            return self.get_conn().request(method, path, **kwargs)
        except (httpx.TimeoutException, httpx.TransportError) as exc:
            raise self.give_up(method, path, 1, type(exc).__name__) from None

    def _wf(self, workflow_id: str, action: str = "") -> str:
        return f"{self.endpoint.workflows}/{workflow_id}" + (f"/{action}" if action else "")

    # -- API (sync)
    def backends(self) -> dict[str, Any]:
        """``GET /backends``: ``{"supportedBackends", "defaultBackend"}``."""
        return self._request("GET", f"{self.endpoint.workflows}/backends")

    def test_connection(self) -> tuple[bool, str]:
        """For the Airflow UI: reach the server and read its backends."""
        try:
            backends = self.backends()
        except CromwellError as exc:
            return False, str(exc)
        return True, f"Cromwell answered; backends {backends.get('supportedBackends')}"

    def submit(self, *, workflow_source: str, workflow_inputs: dict[str, Any] | None = None,
               workflow_options: dict[str, Any] | None = None, labels: dict[str, str] | None = None,
               dependencies_zip: bytes | None = None, workflow_type: str = "WDL",
               workflow_type_version: str | None = None, requested_id: str | None = None,
               on_hold: bool = False, attempts: int | None = None) -> dict[str, Any]:
        """``POST /api/workflows/{v}`` (multipart): submit once; ``{"id", "status"}``.

        Not an ensure by itself: :func:`hatchway.wdl.submit.ensure_submitted` looks first.
        """
        files: dict[str, Any] = {"workflowSource": ("workflow.wdl", workflow_source.encode(), "application/octet-stream")}
        data = {"workflowType": workflow_type, "workflowOnHold": "true" if on_hold else "false"}
        if workflow_type_version:
            data["workflowTypeVersion"] = workflow_type_version
        for name, value in (("workflowInputs", workflow_inputs), ("workflowOptions", workflow_options),
                            ("labels", labels)):
            if value is not None:
                files[name] = (f"{name}.json", json.dumps(value).encode(), "application/json")
        if dependencies_zip is not None:
            files["workflowDependencies"] = ("dependencies.zip", dependencies_zip, "application/zip")
        if requested_id:
            data["requestedWorkflowId"] = requested_id
        return self._request("POST", self.endpoint.workflows, attempts, data=data, files=files)

    def status(self, workflow_id: str) -> str:
        return self._request("GET", self._wf(workflow_id, "status"))["status"]

    def abort(self, workflow_id: str) -> dict[str, Any]:
        """``POST /{id}/abort``: ``{"id", "status": "Aborted"|"Aborting"}``."""
        return self._request("POST", self._wf(workflow_id, "abort"))

    def outputs(self, workflow_id: str) -> dict[str, Any]:
        """``GET /{id}/outputs``: the ``outputs`` map (Cromwell's body is ``{"id", "outputs"}``)."""
        return self._request("GET", self._wf(workflow_id, "outputs")).get("outputs") or {}

    def metadata(self, workflow_id: str, include: list[str] | None = None, exclude: list[str] | None = None,
                 expand_subworkflows: bool = False) -> dict[str, Any]:
        params: list[tuple[str, str]] = [("includeKey", k) for k in include or []]
        params += [("excludeKey", k) for k in exclude or []]
        if expand_subworkflows:
            params.append(("expandSubWorkflows", "true"))
        return self._request("GET", self._wf(workflow_id, "metadata"), params=params)

    def engine_version(self) -> str | None:
        """``GET /engine/{v}/version``: Cromwell's version (``{"cromwell": "87"}``)."""
        return (self._request("GET", f"/engine/{self.endpoint.api_version}/version") or {}).get("cromwell")

    def labels(self, workflow_id: str) -> dict[str, str]:
        return self._request("GET", self._wf(workflow_id, "labels")).get("labels") or {}

    def query_page(self, params: list[tuple[str, str]]) -> dict[str, Any]:
        """``GET /query`` with these parameters (one page): ``{"results", "totalResultsCount"}``."""
        return self._request("GET", f"{self.endpoint.workflows}/query", params=params)

    def query(self, params: list[tuple[str, str]], page_size: int = PAGE_SIZE) -> Iterator[dict[str, Any]]:
        """Every ``/query`` result for these parameters, page by page."""
        base = [(k, v) for k, v in params if k not in {"page", "pageSize"}]
        seen = 0
        for page in range(1, MAX_PAGES + 1):
            answer = self.query_page([*base, ("page", str(page)), ("pageSize", str(page_size))])
            results = answer.get("results") or []
            yield from results
            seen += len(results)
            if not results or seen >= int(answer.get("totalResultsCount") or 0):
                return

    # -- API (async, for the shared poller)
    async def aquery_ids(self, ids: list[str], page_size: int = PAGE_SIZE) -> tuple[list[dict[str, Any]], int]:
        """``POST /query`` for these workflow ids (one body, however many ids), page by page.

        :return: the results and the number of calls made.
        """
        await self.aget_endpoint()
        terms = [{"id": i} for i in ids] + [{"includeSubworkflows": "false"}]
        results: list[dict[str, Any]] = []
        calls = 0
        for page in range(1, MAX_PAGES + 1):
            answer = await self._arequest("POST", f"{self.endpoint.workflows}/query",
                                          json=[*terms, {"page": str(page)}, {"pageSize": str(page_size)}])
            calls += 1
            batch = answer.get("results") or []
            results += batch
            if not batch or len(results) >= int(answer.get("totalResultsCount") or 0):
                return results, calls
        return results, calls

    async def ametadata(self, workflow_id: str, include: list[str]) -> dict[str, Any]:
        await self.aget_endpoint()
        return await self._arequest("GET", self._wf(workflow_id, "metadata"),
                                    params=[("includeKey", k) for k in include])
