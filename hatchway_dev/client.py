"""A small client for Airflow's REST API v2: log in, unpause, trigger, wait, list task states."""

from __future__ import annotations

import time
from typing import Any, Callable

import requests

TERMINAL_RUN_STATES = {"success", "failed"}


class AirflowClient:
    """Talks to one api-server as one SimpleAuthManager user.

    :param url: base URL, e.g. ``http://127.0.0.1:8080``.
    :param username: login name.
    :param password: password.
    :param timeout: seconds per HTTP request.
    """

    def __init__(self, url: str, username: str, password: str, timeout: float = 30) -> None:
        self.url = url.rstrip("/")
        self.username = username
        self.password = password
        self.timeout = timeout
        self.session = requests.Session()

    def login(self) -> AirflowClient:
        """Get a bearer token from ``POST /auth/token`` and use it from now on."""
        resp = self.session.post(f"{self.url}/auth/token", json={"username": self.username, "password": self.password},
                                 timeout=self.timeout)
        _raise_for_status(resp)
        self.session.headers["Authorization"] = f"Bearer {resp.json()['access_token']}"
        return self

    def _call(self, method: str, path: str, **kwargs) -> Any:
        resp = self.session.request(method, f"{self.url}/api/v2{path}", timeout=self.timeout, **kwargs)
        if resp.status_code == 401 and "Authorization" in self.session.headers:
            # Tokens expire (24 h by default); a --keep session can outlive one.
            self.login()
            resp = self.session.request(method, f"{self.url}/api/v2{path}", timeout=self.timeout, **kwargs)
        _raise_for_status(resp)
        return resp.json() if resp.content else None

    def _paged(self, path: str, key: str, params: dict | None = None) -> list[dict]:
        # The API caps a page at [api] maximum_page_limit (100 by default).
        items: list[dict] = []
        while True:
            page = self._call("GET", path, params={**(params or {}), "limit": 100, "offset": len(items)})
            items += page[key]
            if not page[key] or len(items) >= page["total_entries"]:
                return items

    def dag(self, dag_id: str) -> dict | None:
        """:return: the DAG as the API shows it, or None if it is not parsed (yet)."""
        try:
            return self._call("GET", f"/dags/{dag_id}")
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    def import_errors(self) -> list[dict]:
        """:return: DAG files that failed to parse, with their stack traces."""
        return self._paged("/importErrors", "import_errors")

    def wait_for_dag(self, dag_id: str, timeout: float = 180, on_poll: Callable[[], None] | None = None) -> dict:
        """Wait until the DAG processor has parsed ``dag_id``.

        :param on_poll: called every poll (e.g. a stack health check that raises).
        :raises TimeoutError: listing the import errors, the usual cause.
        """
        deadline = time.monotonic() + timeout
        while True:
            if on_poll:
                on_poll()
            dag = self.dag(dag_id)
            if dag is not None:
                return dag
            if time.monotonic() > deadline:
                errors = "".join(f"\n{e['filename']}:\n{e['stack_trace']}" for e in self.import_errors())
                raise TimeoutError(f"DAG {dag_id} not parsed after {timeout:.0f}s; import errors:{errors or ' none'}")
            time.sleep(2)

    def unpause(self, dag_id: str) -> dict:
        return self._call("PATCH", f"/dags/{dag_id}", json={"is_paused": False})

    def pause(self, dag_id: str) -> dict:
        return self._call("PATCH", f"/dags/{dag_id}", json={"is_paused": True})

    def mark_failed(self, dag_id: str, run_id: str) -> dict:
        """Cancel a run the way a person does in the UI: mark it failed."""
        return self._call("PATCH", f"/dags/{dag_id}/dagRuns/{run_id}", json={"state": "failed"})

    def wait_for_new_run(self, dag_id: str, run_id: str, timeout: float = 300, poll: float = 1,
                         on_poll: Callable[[], None] | None = None) -> dict:
        """Wait until a run that something else starts (intake, a sensor) exists."""
        deadline = time.monotonic() + timeout
        while True:
            if on_poll:
                on_poll()
            try:
                return self.run(dag_id, run_id)
            except ApiError as exc:
                if exc.status != 404:
                    raise
            if time.monotonic() > deadline:
                raise TimeoutError(f"run {dag_id}/{run_id} was not created within {timeout:.0f}s")
            time.sleep(poll)

    def trigger(self, dag_id: str, run_id: str, conf: dict | None = None) -> dict:
        """Start a manual run now.

        :raises ApiError: 400 with the reason when ``conf`` breaks the DAG's Params.
        """
        body = {"dag_run_id": run_id, "logical_date": None, "conf": conf or {}}
        return self._call("POST", f"/dags/{dag_id}/dagRuns", json=body)

    def runs(self, dag_id: str) -> list[dict]:
        """Every run of the DAG (all pages)."""
        return self._paged(f"/dags/{dag_id}/dagRuns", "dag_runs")

    def run(self, dag_id: str, run_id: str) -> dict:
        return self._call("GET", f"/dags/{dag_id}/dagRuns/{run_id}")

    def wait_for_run(
        self, dag_id: str, run_id: str, timeout: float = 600, poll: float = 2,
        on_poll: Callable[[], None] | None = None,
    ) -> dict:
        """Poll a run until it is ``success`` or ``failed``.

        :param on_poll: called every poll; let it raise to stop waiting (a component died).
        :return: the run as the API shows it at the end.
        :raises TimeoutError: when the run is still going after ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        while True:
            if on_poll:
                on_poll()
            run = self.run(dag_id, run_id)
            if run["state"] in TERMINAL_RUN_STATES:
                return run
            if time.monotonic() > deadline:
                raise TimeoutError(f"run {dag_id}/{run_id} still {run['state']} after {timeout:.0f}s")
            time.sleep(poll)

    def task_instances(self, dag_id: str, run_id: str) -> list[dict]:
        """:return: the run's task instances (``task_id``, ``map_index``, ``state``, ...)."""
        return self._paged(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances", "task_instances")

    def count_task_instances(self, dag_id: str, *states: str, run_id: str = "~") -> int:
        """:return: how many task instances of ``dag_id`` (every run by default) are in one of
        ``states`` (``running``, ``queued``, ``deferred``, ``none`` ...; none given: all), read from
        one page's ``total_entries``."""
        params: dict[str, Any] = {"limit": 1}
        if states:
            params["state"] = list(states)
        return self._call("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances", params=params)["total_entries"]

    def count_runs(self, dag_id: str, *states: str) -> int:
        """:return: how many runs of ``dag_id`` are in one of ``states`` (none given: all)."""
        params: dict[str, Any] = {"limit": 1}
        if states:
            params["state"] = list(states)
        return self._call("GET", f"/dags/{dag_id}/dagRuns", params=params)["total_entries"]


class ApiError(RuntimeError):
    """An API call answered with an error status; ``status`` and the body are kept."""

    def __init__(self, status: int, method: str, url: str, body: str) -> None:
        super().__init__(f"{method} {url} -> {status}: {body[:2000]}")
        self.status = status
        self.body = body


def _raise_for_status(resp: requests.Response) -> None:
    if resp.status_code >= 400:
        raise ApiError(resp.status_code, resp.request.method, resp.url, resp.text)
