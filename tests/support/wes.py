"""Helpers for the front-door tests: tokens, a WES caller per workspace, the WES spec made local."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
import yaml

from hatchway.api.auth import AuthSettings, issue_token
from hatchway_dev.wes_demo import run_form

REPO = Path(__file__).resolve().parents[2]
WES_SPEC = REPO / "tests" / "contracts" / "ga4gh-wes-1.1.0.openapi.yaml"
SERVICE_INFO_SCHEMA = REPO / "include" / "schemas" / "ga4gh-service-info-1.0.0.json"

HELLO = {"name": "hello", "engine": "NFL", "version": "1", "git_url": "https://github.com/nextflow-io/hello",
         "git_ref": "master", "policy": "private",
         "parameter_schema": {"type": "object", "properties": {"greeting": {"type": "string", "maxLength": 100}},
                              "additionalProperties": True}}


def wes_spec() -> dict[str, Any]:
    """The WES 1.1 spec with its one remote ``$ref`` (GA4GH service-info) replaced by the local copy."""
    spec = yaml.safe_load(WES_SPEC.read_text())
    service = json.loads(SERVICE_INFO_SCHEMA.read_text())
    all_of = spec["components"]["schemas"]["ServiceInfo"]["allOf"]
    all_of[0] = {"$ref": "#/components/schemas/Ga4ghService"}
    spec["components"]["schemas"]["Ga4ghService"] = service["components"]["schemas"]["Service"]
    for name, schema in service["components"]["schemas"].items():
        spec["components"]["schemas"].setdefault(name, schema)
    return spec


@dataclass
class WesCaller:
    """A workspace calling the door with its own token.

    :param base: the door's root URL (``.../hatchway``).
    """

    base: str
    workspace: str
    token: str

    @property
    def wes(self) -> str:
        return f"{self.base}/ga4gh/wes/v1"

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def get(self, path: str, **kwargs) -> requests.Response:
        return requests.get(f"{self.wes}{path}", headers=self.headers, timeout=30, **kwargs)

    def post(self, path: str, **kwargs) -> requests.Response:
        return requests.post(f"{self.wes}{path}", headers=self.headers, timeout=30, **kwargs)

    def deploy(self, workflow: dict[str, Any], workspace: str | None = None) -> requests.Response:
        return requests.post(f"{self.base}/workspaces/{workspace or self.workspace}/workflows",
                             headers=self.headers, json=workflow, timeout=30)

    def run(self, workflow_url: str, params: dict[str, Any] | None = None, *, workflow_type: str = "NFL",
            tags: dict[str, str] | None = None, raw_params: str | None = None) -> requests.Response:
        raw = raw_params if raw_params is not None else json.dumps(params or {})
        return self.post("/runs", files=run_form(workflow_url, raw, workflow_type=workflow_type, tags=tags))

    def state(self, run_id: str) -> str:
        resp = self.get(f"/runs/{run_id}/status")
        resp.raise_for_status()
        return resp.json()["state"]


def callers(base: str, settings: AuthSettings, *workspaces: str) -> dict[str, WesCaller]:
    return {ws: WesCaller(base, ws, issue_token(settings, workspace=ws, subject=f"{ws}@example.org"))
            for ws in workspaces}


class ThreadedServer:
    """An ASGI app served by uvicorn on a free loopback port, in a thread of this process."""

    def __init__(self, app) -> None:
        import uvicorn

        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning",
                                                    lifespan="off"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> ThreadedServer:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the door's test server did not start")
            time.sleep(0.05)
        return self

    @property
    def url(self) -> str:
        port = self.server.servers[0].sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def check_wes_conformance(base_url: str, headers: dict[str, str], run_id: str, examples: int = 25) -> list[str]:
    """Drive every operation of the WES 1.1 spec with schemathesis-generated requests against
    ``base_url`` (the door's ``.../ga4gh/wes/v1``), then the GET routes for a real run; every
    answer must conform (status code, content type, body schema). Returns what was checked.

    ``positive_data_acceptance`` counts any 4xx to a schema-valid request against the server;
    an opaque ``page_token`` this server never issued is refused with 400 (documented for
    ListRuns), so that one check is left out. Every conformance check stays on.
    """
    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from schemathesis.specs.openapi.checks import positive_data_acceptance

    schema = schemathesis.openapi.from_dict(wes_spec())
    skip = [positive_data_acceptance]
    checked: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()

        @settings(max_examples=examples, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy())
        def conforms(case):
            case.call_and_validate(base_url=base_url, headers=headers, excluded_checks=skip)

        conforms()
        checked.append(operation.label)
    # Generated run ids meet 404s: the answers about a real run are checked too.
    for path in ("/runs/{run_id}", "/runs/{run_id}/status", "/runs/{run_id}/tasks", "/runs/{run_id}/tasks/{task_id}"):
        operation = schema[path]["GET"]
        params = {"run_id": run_id, **({"task_id": "launch"} if "task_id" in path else {})}
        response = operation.Case(path_parameters=params).call_and_validate(base_url=base_url, headers=headers,
                                                                             excluded_checks=skip)
        assert response.status_code == 200, (path, response.text)
        checked.append(f"GET {path} (real run)")
    return checked


def door_deps(folder, bucket: str = "hatchway-test-data", **cromwell):
    """The door's dependencies for a test: a fresh SQLite store in ``folder``, an HS256 key,
    Airflow's runs, and Cromwell settings (``cromwell`` fields over the defaults).

    :return: the deps and the key's settings (to issue tokens).
    """
    import secrets

    from hatchway.api.airflow_runs import AirflowRuns
    from hatchway.api.auth import AuthSettings, TokenVerifier
    from hatchway.api.door import DoorDeps
    from hatchway.domain.cromwell import CromwellSettings
    from hatchway.domain.workspace import PlatformConfig
    from hatchway.store import Store

    store = Store(f"sqlite:///{folder}/hatchway.db")
    store.migrate()
    settings = AuthSettings(audience="hatchway", issuer="hatchway-test", hs256_key=secrets.token_urlsafe(32))
    deps = DoorDeps(store=store, verifier=TokenVerifier(settings), runs=AirflowRuns(),
                    platform=PlatformConfig(bucket=bucket, prefix="hwtest", queue_mode="shared"),
                    cromwell=CromwellSettings(**cromwell))
    return deps, settings
