"""WDL on Cromwell end to end: Airflow standalone (scheduler, triggerer, the door mounted), moto,
the Cromwell simulator writing into moto's S3, and an https git server with a CA of its own.

- a WES run of a deployed WDL workflow -> COMPLETE, outputs placed, intermediates gone;
- WES cancel while it runs -> Cromwell aborts; CANCELING -> CANCELED on every route, never COMPLETE;
- an AWE run cancelled the way a person does in Airflow's UI (the DAG run marked failed) ->
  the teardown aborts the workflow; CANCELED on the AWE and Cromwell routes.
"""

from __future__ import annotations

import json
import time

import boto3
import pytest
import requests

from hatchway.api.auth import issue_token
from hatchway_dev.airflow import Airflow
from hatchway_dev.client import AirflowClient
from hatchway_dev.demo import airflow_env, dev_stack
from hatchway_dev.endpoints import CromwellSimulator
from hatchway_dev.settings import HATCHWAY_CONFIG, REGION
from hatchway_dev.wes_demo import Door, door_env, wait_for_door
from support.cromwell import MAIN, OUTPUTS, TASK
from support.git import GitHttpServer

BUCKET = HATCHWAY_CONFIG["bucket"]
EXEC_BUCKET = "hatchway-cromwell-exec"


def _keys(s3, bucket: str, prefix: str) -> list[str]:
    return [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])]


def _until(what, check, on_poll, timeout: float = 180):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        on_poll()
        time.sleep(0.5)
    raise TimeoutError(f"{what} did not happen in {timeout:.0f}s")


@pytest.mark.e2e
@pytest.mark.timeout(900)
def test_wdl_runs_and_cancels_through_every_door(tmp_path):
    git = GitHttpServer(tls=True)
    repo = git.create("hello-wdl", {"main.wdl": MAIN, "tasks/say.wdl": TASK}, tag="v1")
    try:
        with dev_stack(tmp_path / "endpoints") as stack:
            moto = stack["moto"]
            s3 = boto3.client("s3", endpoint_url=moto.url, region_name=REGION, aws_access_key_id="testing",
                              aws_secret_access_key="testing")
            for bucket in (BUCKET, EXEC_BUCKET):
                s3.create_bucket(Bucket=bucket)
            cromwell = CromwellSimulator(root=f"s3://{EXEC_BUCKET}/executions", s3_endpoint=moto.url)
            cromwell.start(tmp_path / "cromwell")
            try:
                _run(tmp_path, stack, cromwell, git, repo, s3)
            finally:
                cromwell.stop()
    finally:
        git.stop()


def _run(tmp_path, stack, cromwell, git, repo, s3) -> None:
    env, settings = door_env(tmp_path, BUCKET)
    env.update(cromwell.airflow_env())
    env["AIRFLOW_VAR_HATCHWAY_CROMWELL_CONFIG"] = json.dumps({
        "source": {"allowed_hosts": [f"127.0.0.1:{git.port}"], "private_hosts": ["127.0.0.1"],
                   "ca_bundle": str(git.ca_file)},
        "poll_interval_seconds": 1, "not_started_timeout_seconds": 120, "run_timeout_seconds": 600})
    airflow = Airflow(tmp_path / "airflow", env={**airflow_env(stack), **env})
    with airflow:
        client = AirflowClient(airflow.url, airflow.username, airflow.password).login()

        def alive() -> None:
            stack.check()
            airflow.check()

        client.wait_for_dag("cromwell_run", on_poll=alive)
        client.unpause("cromwell_run")
        base = f"{airflow.url}/hatchway"
        wait_for_door(base)
        alice = Door.for_workspace(base, settings, "alice")
        bob = Door.for_workspace(base, settings, "bob")
        alice.deploy({"name": "hello-wdl", "version": "1.0", "engine": "WDL", "git_url": repo, "git_ref": "v1",
                      "policy": "private"})

        # 1. A WES run of the WDL workflow: every state to COMPLETE, outputs placed, nothing left behind.
        cromwell.set_course("succeed", after=2, outputs=OUTPUTS, intermediates=["call-say/execution/tmp.bam"])
        run = alice.run("hatchway://alice/hello-wdl", {"hello.name": "ada"}, workflow_type="WDL")
        seen = alice.wait(run, on_poll=alive)
        assert seen[-1] == "COMPLETE", (seen, client.task_instances("cromwell_run", f"wes__{run}"))
        placed = alice.log(run)["outputs"]["outputs"]["hello.greeting"]
        assert placed == f"s3://{BUCKET}/alice/processing-results/{run}/call-say/execution/greeting.txt"
        [workflow] = [w for w in cromwell.workflows() if w["labels"].get("hatchway-run") == run]
        assert _keys(s3, EXEC_BUCKET, f"executions/hello/{workflow['id']}/") == []
        assert requests.get(f"{base}/ga4gh/wes/v1/runs/{run}", timeout=10,
                            headers={"Authorization": f"Bearer {bob.token}"}).status_code == 404

        # 2. WES cancel while it runs: Cromwell aborts; CANCELING, then CANCELED, never COMPLETE.
        cromwell.set_course("hang", after=1)
        cancelled = alice.run("hatchway://alice/hello-wdl", {"hello.name": "bo"}, workflow_type="WDL")
        assert alice.wait(cancelled, until={"RUNNING"}, on_poll=alive)[-1] == "RUNNING"
        alice.cancel(cancelled)
        after = alice.wait(cancelled, until={"CANCELED"}, on_poll=alive)
        assert "COMPLETE" not in after and after[-1] == "CANCELED", after
        [aborted] = [w for w in cromwell.workflows() if w["labels"].get("hatchway-run") == cancelled]
        assert cromwell.workflow(aborted["id"])["status"] in ("Aborting", "Aborted")
        client.wait_for_run("cromwell_run", f"wes__{cancelled}", timeout=180, on_poll=alive)
        assert alice.log(cancelled)["state"] == "CANCELED"

        # 3. An AWE run cancelled in Airflow (the DAG run marked failed): the teardown aborts the workflow.
        token = issue_token(settings, workspace="alice", subject="alice@example.org")
        awe = requests.Session()
        awe.headers["Authorization"] = f"Bearer {token}"
        awe_base = f"{base}/awe/alice@example.org/long-one"
        started = awe.post(awe_base, json={"workflow_repo": repo, "ref": "v1", "inputs": {"hello.name": "cy"}},
                           timeout=30)
        assert started.status_code == 201, started.text
        awe_run = started.json()["run_id"]
        _until("the AWE run running", lambda: awe.get(f"{awe_base}/status", timeout=10).json()["state"] == "RUNNING",
               alive)
        client.mark_failed("cromwell_run", f"awe__{awe_run}")
        client.wait_for_run("cromwell_run", f"awe__{awe_run}", timeout=180, on_poll=alive)
        # The teardown's abort leaves Cromwell "Aborting" (CANCELING) until its next step, then "Aborted".
        seen_awe: list[dict] = []

        def awe_cancelled() -> bool:
            seen_awe.append(awe.get(f"{awe_base}/status", timeout=10).json())
            return seen_awe[-1]["state"] not in ("RUNNING", "CANCELING")

        _until("the AWE run cancelled", awe_cancelled, alive)
        status = seen_awe[-1]
        assert status["state"] == "CANCELED" and status["cromwell_status"] == "Aborted", seen_awe
        assert {s["state"] for s in seen_awe} <= {"RUNNING", "CANCELING", "CANCELED"}, seen_awe
        crom = requests.get(f"{base}/cromwell/alice/api/workflows/v1/{status['workflow_id']}/status", timeout=10,
                            headers={"Authorization": f"Bearer {token}"}).json()
        assert crom["status"] in ("Aborted", "Aborting")
        assert cromwell.calls()["abort"] >= 2  # the WES cancel's and the teardown's
