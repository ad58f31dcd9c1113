"""Seqera Wave hook: ask for a container build, read its status and its log.

One hook wraps one HTTP client (``httpx``, sync and async) for one Airflow connection
(default ``wave_default``, type ``wave``):

- ``host`` (with ``schema`` and ``port``, or a full URL): the Wave server, e.g. ``https://wave.seqera.io``;
- ``extra``: ``seqera_conn_id`` (a Seqera connection: its token, URL and workspace id go into
  each request as ``towerAccessToken``/``towerEndpoint``/``towerWorkspaceId``, as Wave wants),
  ``timeout`` (default 30), ``max_attempts`` (default 5), ``backoff_base`` / ``backoff_max``,
  ``verify`` (bool or CA bundle).

Answers follow Wave's code where its TypeSpec differs (tests/contracts/wave-api-7b8b9f6d.yaml):
``POST /v1alpha2/container`` answers ``succeeded`` and no ``status``; a build log is text.
429, 5xx, timeouts and connection errors are retried (:mod:`hatchway.hooks.rest`); a 4xx is
:class:`WaveApiError` with Wave's ``message``. Messages never carry the token.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx
from airflow.sdk import BaseHook

from hatchway.hooks import rest

if TYPE_CHECKING:
    from airflow.sdk import Connection

    from hatchway.domain.wave import TowerAuth

WAVE_CONN_ID = "wave_default"


class WaveError(Exception):
    """Any failure talking to Wave."""


class WaveApiError(WaveError):
    """A 4xx answer: retrying would not help. ``message`` is Wave's own reason."""

    def __init__(self, text: str, status: int, message: str | None = None):
        super().__init__(text)
        self.status = status
        self.message = message


class WaveNotFound(WaveApiError):
    """404: Wave does not know the request or build."""


class WaveUnavailable(WaveError):
    """429/5xx/timeouts persisted through every attempt."""


@dataclass(frozen=True)
class WaveEndpoint:
    """What a connection says about reaching Wave."""

    conn_id: str
    base_url: str
    seqera_conn_id: str | None = None
    verify: bool | str = True
    timeout: float = 30.0
    retry: rest.Backoff = rest.Backoff()

    @classmethod
    def from_connection(cls, conn: Connection) -> WaveEndpoint:
        extra = conn.extra_dejson or {}
        host = (conn.host or "").strip().rstrip("/")
        if not host:
            raise WaveError(f"connection {conn.conn_id!r} has no host: set it to the Wave server's URL")
        if "://" not in host:
            host = f"{conn.schema or 'https'}://{host}" + (f":{conn.port}" if conn.port else "")
        return cls(conn_id=conn.conn_id, base_url=host, seqera_conn_id=extra.get("seqera_conn_id") or None,
                   verify=True if extra.get("verify") is None else extra["verify"],
                   timeout=float(extra.get("timeout", 30.0)),
                   retry=rest.Backoff(max(1, int(extra.get("max_attempts", 5))), float(extra.get("backoff_base", 1.0)),
                                      float(extra.get("backoff_max", 30.0))))

    @property
    def identity(self) -> tuple[str, str]:
        """The shared poller's key: the server and the Seqera identity asking (a digest, never a token)."""
        return self.base_url, hashlib.sha256((self.seqera_conn_id or "").encode()).hexdigest()[:16]


def _message(resp: httpx.Response) -> str | None:
    try:
        body = resp.json()
    except ValueError:
        return resp.text[:300] or None
    return body.get("message") if isinstance(body, dict) else None


class WaveHook(rest.HttpClients, BaseHook):
    """Talk to one Wave server through one Airflow connection.

    :param wave_conn_id: the connection (see the module docstring).
    :param endpoint: an already resolved endpoint (the shared poller passes one).
    """

    conn_name_attr = "wave_conn_id"
    default_conn_name = WAVE_CONN_ID
    conn_type = "wave"
    hook_name = "Seqera Wave"

    def __init__(self, wave_conn_id: str = default_conn_name, *, endpoint: WaveEndpoint | None = None):
        super().__init__()
        self.wave_conn_id = endpoint.conn_id if endpoint else wave_conn_id
        self._endpoint = endpoint

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        return {"hidden_fields": ["login", "password"], "relabeling": {"host": "Wave URL"},
                "placeholders": {"host": "https://wave.seqera.io",
                                 "extra": '{"seqera_conn_id": "seqera_default", "timeout": 30}'}}

    @property
    def endpoint(self) -> WaveEndpoint:
        if self._endpoint is None:
            self._endpoint = WaveEndpoint.from_connection(self.get_connection(self.wave_conn_id))
        return self._endpoint

    async def aget_endpoint(self) -> WaveEndpoint:
        if self._endpoint is None:
            self._endpoint = WaveEndpoint.from_connection(await self.aget_connection(self.wave_conn_id))
        return self._endpoint

    def _client_kwargs(self, ep: WaveEndpoint) -> dict[str, Any]:
        return {"base_url": ep.base_url, "timeout": httpx.Timeout(ep.timeout), "verify": ep.verify,
                "headers": {"Accept": "application/json"}}

    # -- transport
    def note_retry(self, method: str, path: str, attempt: int, reason: str, delay: float) -> None:
        self.log.warning("Wave %s %s (connection %r): %s; retry %d/%d in %.1fs", method, path,
                         self.wave_conn_id, reason, attempt, self.endpoint.retry.max_attempts - 1, delay)

    def give_up(self, method: str, path: str, attempts: int, reason: str) -> WaveUnavailable:
        return WaveUnavailable(f"Wave at {self.endpoint.base_url} did not answer {method} {path} "
                               f"(connection {self.wave_conn_id!r}) after {attempts} attempts: {reason}")

    def _answer(self, resp: httpx.Response, method: str, path: str, text: bool = False) -> Any:
        rest.raise_for_retry(resp)
        status = resp.status_code
        if status >= 400:
            message = _message(resp)
            kind = WaveNotFound if status == 404 else WaveApiError
            raise kind(f"Wave at {self.endpoint.base_url} answered HTTP {status} to {method} {path} "
                       f"(connection {self.wave_conn_id!r}): {message or resp.reason_phrase}", status, message)
        if text:
            return resp.text
        return resp.json() if resp.content else None

    def _request(self, method: str, path: str, text: bool = False, **kwargs: Any) -> Any:
        client = self.get_conn()
        return rest.call(self, self.endpoint.retry, method, path, lambda: client.request(method, path, **kwargs),
                         lambda resp: self._answer(resp, method, path, text))

    async def _arequest(self, method: str, path: str, **kwargs: Any) -> Any:
        client = await self.aget_conn()
        return await rest.acall(self, self.endpoint.retry, method, path,
                                lambda: client.request(method, path, **kwargs),
                                lambda resp: self._answer(resp, method, path))

    # -- identity
    def tower_auth(self) -> TowerAuth | None:
        """The Seqera identity of ``seqera_conn_id`` (None: anonymous requests)."""
        if not self.endpoint.seqera_conn_id:
            return None
        from hatchway.domain.wave import TowerAuth
        from hatchway.hooks.seqera import SeqeraEndpoint

        seqera = SeqeraEndpoint.from_connection(self.get_connection(self.endpoint.seqera_conn_id))
        return TowerAuth(endpoint=seqera.base_url, token=seqera.token, workspace_id=seqera.workspace_id)

    # -- API (sync)
    def service_info(self) -> dict[str, Any]:
        return self._request("GET", "/service-info")

    def test_connection(self) -> tuple[bool, str]:
        """For the Airflow UI: reach the server."""
        try:
            info = self.service_info()
        except WaveError as exc:
            return False, str(exc)
        return True, f"Wave answered: {info.get('serviceInfo', info)}"

    def request_container(self, body: dict[str, Any]) -> dict[str, Any]:
        """``POST /v1alpha2/container``: ``{requestId, targetImage, containerImage, buildId,
        cached, freeze, succeeded, ...}``. The body may hold a token: it is never logged."""
        return self._request("POST", "/v1alpha2/container", json=body)

    def container(self, request_id: str) -> dict[str, Any]:
        """``GET /v1alpha2/container/{requestId}``: the request's record."""
        return self._request("GET", f"/v1alpha2/container/{request_id}")

    def status(self, request_id: str) -> dict[str, Any]:
        """``GET /v1alpha2/container/{requestId}/status``: ``{status, succeeded, reason, duration, ...}``."""
        return self._request("GET", f"/v1alpha2/container/{request_id}/status")

    def build_logs(self, build_id: str) -> str | None:
        """``GET /v1alpha1/builds/{buildId}/logs`` (text/plain); None when Wave keeps none."""
        try:
            return self._request("GET", f"/v1alpha1/builds/{build_id}/logs", text=True,
                                 headers={"Accept": "text/plain"})
        except WaveNotFound:
            return None

    # -- API (async, for the shared poller)
    async def astatus(self, request_id: str) -> dict[str, Any]:
        await self.aget_endpoint()
        return await self._arequest("GET", f"/v1alpha2/container/{request_id}/status")
