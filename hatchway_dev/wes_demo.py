"""The front door in the demo and the end-to-end tests: tokens, a deployed workflow, WES runs.

Everything goes over HTTP to the door that Airflow's api-server mounts under ``/hatchway``:
the workspaces deploy workflows and run them with their own tokens, never with Airflow's.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from hatchway.api.auth import AuthSettings, issue_token

WES_CONFIG = {"poll_interval_seconds": 1, "timeout_seconds": 60, "deployed_timeout_seconds": 180}
OUTPUTS = {"scores/aggregated_scores.tsv": "sampleset\tIID\tPGS000001_SUM\ndemo\tS1\t0.42\n",
           "report.html": "<html><body>pgsc_calc report</body></html>\n"}
HELLO = {"name": "pgsc-calc", "engine": "NFL", "version": "2.0.0", "git_url": "https://github.com/PGScatalog/pgsc_calc",
         "git_ref": "v2.0.0", "description": "Polygenic scores (demo)",
         "parameter_schema": {"type": "object", "properties": {"target_build": {"enum": ["GRCh37", "GRCh38"]}},
                              "additionalProperties": True}}
FINAL = {"COMPLETE", "EXECUTOR_ERROR", "SYSTEM_ERROR", "CANCELED"}


def run_form(workflow_url: str, workflow_params: str, *, workflow_type: str = "NFL",
             tags: dict[str, str] | None = None) -> dict[str, tuple[None, str]]:
    """A ``POST /runs`` multipart body as WES clients send it: every field a string."""
    fields = {"workflow_url": workflow_url, "workflow_type": workflow_type,
              "workflow_type_version": "1.0" if workflow_type == "WDL" else "DSL2",
              "workflow_params": workflow_params, "tags": json.dumps(tags or {})}
    return {k: (None, v) for k, v in fields.items()}


def door_env(workdir: Path, bucket: str) -> tuple[dict[str, str], AuthSettings]:
    """Airflow environment for the door (signing key, store, lifecycle settings), and the key's settings."""
    settings = AuthSettings(audience="hatchway", issuer="hatchway-dev", hs256_key=secrets.token_urlsafe(32))
    env = {**door_env_exports(settings),
           "HATCHWAY_DB_URL": f"sqlite:///{Path(workdir).resolve()}/hatchway.db",
           "AIRFLOW_VAR_HATCHWAY_WES_CONFIG": json.dumps(WES_CONFIG)}
    return env, settings


class DoorUnavailable(RuntimeError):
    """The door answered 5xx (it is starting, or a component behind it is down)."""


@dataclass
class Door:
    """One workspace's view of the door (its token), over HTTP."""

    base: str
    workspace: str
    token: str = field(repr=False)

    @classmethod
    def for_workspace(cls, base: str, settings: AuthSettings, workspace: str) -> Door:
        return cls(base, workspace, issue_token(settings, workspace=workspace, subject=f"{workspace}@example.org"))

    def _call(self, method: str, path: str, headers: dict[str, str] | None = None, **kwargs) -> Any:
        resp = requests.request(method, f"{self.base}{path}", timeout=30, **kwargs,
                                headers={"Authorization": f"Bearer {self.token}", **(headers or {})})
        if resp.status_code >= 500:
            raise DoorUnavailable(f"{method} {path} as {self.workspace}: {resp.status_code} {resp.text[:500]}")
        if resp.status_code >= 400:
            raise RuntimeError(f"{method} {path} as {self.workspace}: {resp.status_code} {resp.text[:500]}")
        return resp.json()

    def deploy(self, workflow: dict[str, Any]) -> dict:
        return self._call("POST", f"/workspaces/{self.workspace}/workflows", json=workflow)

    def run(self, workflow_url: str, params: dict[str, Any], tags: dict[str, str] | None = None,
            workflow_type: str = "NFL", idempotency_key: str | None = None, retry_for: float = 0.0) -> str:
        """Submit a run; with an ``idempotency_key``, retry connection errors and 5xx answers for
        up to ``retry_for`` seconds (safe: the door gives a retried key the run it started)."""
        body = run_form(workflow_url, json.dumps(params), tags=tags, workflow_type=workflow_type)
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        deadline = time.monotonic() + (retry_for if idempotency_key else 0.0)
        while True:
            try:
                return self._call("POST", "/ga4gh/wes/v1/runs", files=body, headers=headers)["run_id"]
            except (requests.ConnectionError, requests.Timeout, DoorUnavailable):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)

    def status(self, run_id: str) -> str:
        return self._call("GET", f"/ga4gh/wes/v1/runs/{run_id}/status")["state"]

    def log(self, run_id: str) -> dict:
        return self._call("GET", f"/ga4gh/wes/v1/runs/{run_id}")

    def cancel(self, run_id: str) -> dict:
        return self._call("POST", f"/ga4gh/wes/v1/runs/{run_id}/cancel")

    def wait(self, run_id: str, until: set[str] = FINAL, timeout: float = 240,
             on_poll: Callable[[], None] | None = None) -> list[str]:
        """Every state the run goes through until one in ``until``, in order."""
        seen: list[str] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = self.status(run_id)
            if not seen or seen[-1] != state:
                seen.append(state)
            if state in until:
                return seen
            if on_poll:
                on_poll()
            time.sleep(0.5)
        raise TimeoutError(f"WES run {run_id} still {seen[-1] if seen else '?'} after {timeout:.0f}s: {seen}")


def wait_for_door(base: str, timeout: float = 60) -> None:
    """The api-server answers 401 on the door once the plugin is mounted (no token sent)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{base}/ga4gh/wes/v1/service-info", timeout=5).status_code == 401:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"the front door is not mounted at {base}")


def catalog_items(s3, bucket: str, catalog_url: str) -> list[dict]:
    """The STAC Items a run's catalog links, read back from the bucket."""
    prefix = catalog_url.removeprefix(f"s3://{bucket}/").rsplit("/", 1)[0]
    catalog = json.loads(s3.get_object(Bucket=bucket, Key=f"{prefix}/catalog.json")["Body"].read())
    items = []
    for link in catalog["links"]:
        if link["rel"] == "item":
            key = f"{prefix}/{link['href'].removeprefix('./')}"
            items.append(json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read()))
    return items


def show_door(client, stack, airflow_url: str, settings: AuthSettings, env_file: Path,
              alive: Callable[[], None], out: Callable[[str], None] = print) -> int:
    """The demo's front-door part: a workspace deploys a workflow and runs it through WES.

    :param env_file: where the door's settings are written (0600) for tokens after the demo.
    """
    import boto3

    from hatchway_dev.settings import HATCHWAY_CONFIG, REGION

    bucket = HATCHWAY_CONFIG["bucket"]
    env_file.write_text("".join(f"export {k}='{v}'\n" for k, v in door_env_exports(settings).items()))
    env_file.chmod(0o600)
    client.wait_for_dag("wes_run", on_poll=alive)
    client.unpause("wes_run")
    stack["seqera"].configure(outputs_endpoint_url=stack["moto"].url,
                              default_course={"kind": "succeed", "after": 2, "outputs": OUTPUTS})
    base = f"{airflow_url}/hatchway"
    wait_for_door(base)
    alice, bob = (Door.for_workspace(base, settings, ws) for ws in ("alice-demo", "bob-demo"))
    alice.deploy(HELLO)
    out(f"\nFront door (GA4GH WES 1.1 at {base}/ga4gh/wes/v1, workspace tokens):")
    out("  alice-demo deployed workflow hatchway://alice-demo/pgsc-calc (private)")
    run_id = alice.run("hatchway://alice-demo/pgsc-calc", {"target_build": "GRCh38"}, tags={"study": "demo"})
    states = alice.wait(run_id, on_poll=alive)
    out(f"  POST /runs -> {run_id}: {' -> '.join(states)}")
    hidden = requests.get(f"{base}/ga4gh/wes/v1/runs/{run_id}", headers={"Authorization": f"Bearer {bob.token}"},
                          timeout=30).status_code
    out(f"  bob-demo reading that run: HTTP {hidden}")
    if states[-1] != "COMPLETE":
        return 1
    catalog = alice.log(run_id)["outputs"]["stac_catalog"]
    s3 = boto3.client("s3", endpoint_url=stack["moto"].url, region_name=REGION, aws_access_key_id="testing",
                      aws_secret_access_key="testing")
    out(f"  outputs: {catalog}")
    items = catalog_items(s3, bucket, catalog)
    if not items:
        out(f"  error: the catalog has no Items (simulator: {stack['seqera'].output_errors()})")
        return 1
    for item in items:
        for asset in item["assets"].values():
            out(f"    STAC Item {item['id']}: {asset['href']} ({asset.get('file:size')} bytes, "
                f"sha256 {asset['file:checksum'][4:16]}...)")
    out(f"  tokens: source {env_file} && PYTHONPATH=plugins .venv/bin/python -m hatchway.api.tokens "
        "--workspace alice-demo --subject alice")
    return 0 if hidden == 404 else 1


def door_env_exports(settings: AuthSettings) -> dict[str, str]:
    conn = {"conn_type": "generic", "password": settings.hs256_key,
            "extra": {"audience": settings.audience, "issuer": settings.issuer}}
    return {"AIRFLOW_CONN_HATCHWAY_API": json.dumps(conn)}
