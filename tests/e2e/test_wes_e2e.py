"""The front door end to end: Airflow standalone with the Hatchway plugin mounted, moto, the Seqera
simulator. Workspaces deploy and run workflows with their own tokens, over HTTP only.

- POST /runs -> wes_run -> COMPLETE -> STAC Items in the calling workspace's catalog;
- a public workflow called by another workspace runs and harvests there;
- a failing workflow -> EXECUTOR_ERROR, nothing left;
- cancel -> CANCELING -> CANCELED on every route, never COMPLETE; Seqera's run cancelled, nothing left.
"""

from __future__ import annotations

import json

import boto3
import pytest
import requests

from hatchway_dev.airflow import Airflow
from hatchway_dev.client import AirflowClient
from hatchway_dev.demo import airflow_env, dev_stack
from hatchway_dev.settings import HATCHWAY_CONFIG, REGION
from hatchway_dev.wes_demo import HELLO, OUTPUTS, Door, catalog_items, door_env, wait_for_door
from support.wes import check_wes_conformance

BUCKET = HATCHWAY_CONFIG["bucket"]
CHAOS_RUNS = 6


def _keys(s3, prefix: str) -> list[str]:
    return [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])]


@pytest.mark.e2e
@pytest.mark.timeout(900)
def test_wes_runs_through_the_door(tmp_path):
    with dev_stack(tmp_path / "endpoints") as stack:
        moto, seqera = stack["moto"], stack["seqera"]
        s3 = boto3.client("s3", endpoint_url=moto.url, region_name=REGION, aws_access_key_id="testing",
                          aws_secret_access_key="testing")
        s3.create_bucket(Bucket=BUCKET)
        seqera.configure(outputs_endpoint_url=moto.url,
                         default_course={"kind": "succeed", "after": 2, "outputs": OUTPUTS})
        env, settings = door_env(tmp_path, BUCKET)
        airflow = Airflow(tmp_path / "airflow", env={**airflow_env(stack), **env})
        with airflow:
            client = AirflowClient(airflow.url, airflow.username, airflow.password).login()

            def alive() -> None:
                stack.check()
                airflow.check()

            client.wait_for_dag("wes_run", on_poll=alive)
            client.unpause("wes_run")
            base = f"{airflow.url}/hatchway"
            wait_for_door(base)
            alice, bob = (Door.for_workspace(base, settings, ws) for ws in ("alice", "bob"))
            alice.deploy(HELLO)
            alice.deploy({**HELLO, "name": "pgsc-public", "policy": "public"})

            # 1. alice runs her private workflow: every state, then the catalog in her workspace.
            run = alice.run("hatchway://alice/pgsc-calc", {"target_build": "GRCh38"}, tags={"study": "demo"})
            seen = alice.wait(run, on_poll=alive)
            assert seen[-1] == "COMPLETE", (seen, client.task_instances("wes_run", f"wes__{run}"))
            assert "RUNNING" in seen and seen.index("RUNNING") < seen.index("COMPLETE")
            log = alice.log(run)
            catalog = log["outputs"]["stac_catalog"]
            assert catalog == f"s3://{BUCKET}/alice/processing-results/{run}/catalog.json"
            items = catalog_items(s3, BUCKET, catalog)
            assert len(items) == len(OUTPUTS)
            for item in items:
                assert item["properties"]["hatchway:run_id"] == run
                assert item["properties"]["hatchway:workflow"] == "pgsc-calc"
                assert item["properties"]["hatchway:workflow_version"] == "2.0.0"
                assert all(a["file:checksum"].startswith("1220") for a in item["assets"].values())
            assert _keys(s3, f"alice/runs/{run}/") == []  # work dir and raw outputs removed
            launched = [r for r in seqera.runs() if r["runName"] == f"wes-{run}"]
            assert launched[0]["pipeline"] == HELLO["git_url"] and launched[0]["revision"] == "v2.0.0"
            assert launched[0]["workDir"] == f"s3://{BUCKET}/alice/runs/{run}/work"
            # The launch pins the run to the executing workspace: its job role, queue, namespace, tags.
            bodies = [json.loads(r["body"])["launch"] for r in seqera.requests()
                      if r["route"] == "POST /workflow/launch" and f"wes-{run}" in (r["body"] or "")]
            config = bodies[0]["configText"]
            account = boto3.client("sts", endpoint_url=moto.url, region_name=REGION, aws_access_key_id="testing",
                                   aws_secret_access_key="testing").get_caller_identity()["Account"]
            assert f"aws.batch.jobRole = 'arn:aws:iam::{account}:role/hatchway/hatchway-alice-jobs'" in config
            assert "process.queue = 'hatchway-alice-queue'" in config and "'hatchway:workspace': 'alice'" in config

            # 2. bob calls alice's public workflow: it runs in bob's workspace, harvests into bob's catalog.
            bobs = bob.run("hatchway://alice/pgsc-public", {"target_build": "GRCh37"})
            assert bob.wait(bobs, on_poll=alive)[-1] == "COMPLETE"
            assert bob.log(bobs)["outputs"]["stac_catalog"].startswith(f"s3://{BUCKET}/bob/processing-results/{bobs}/")
            assert _keys(s3, f"alice/processing-results/{bobs}/") == []
            assert requests.get(f"{base}/ga4gh/wes/v1/runs/{bobs}", timeout=10,
                                headers={"Authorization": f"Bearer {alice.token}"}).status_code == 404

            # 3. a workflow that fails: EXECUTOR_ERROR, no catalog, nothing left.
            seqera.configure(default_course={"kind": "fail", "after": 1, "exit_status": 12})
            failing = alice.run("hatchway://alice/pgsc-calc", {})
            assert alice.wait(failing, on_poll=alive)[-1] == "EXECUTOR_ERROR"
            assert alice.log(failing)["outputs"] == {}
            assert _keys(s3, f"alice/runs/{failing}/") == [] and _keys(s3, f"alice/processing-results/{failing}/") == []

            # 4. cancel while it runs: CANCELING, then CANCELED on every route, never COMPLETE.
            seqera.configure(default_course={"kind": "running", "outputs": OUTPUTS})
            cancelled = alice.run("hatchway://alice/pgsc-calc", {})
            assert alice.wait(cancelled, until={"RUNNING"}, on_poll=alive)[-1] == "RUNNING"
            alice.cancel(cancelled)
            after = alice.wait(cancelled, until={"CANCELED"}, on_poll=alive)
            assert after[0] == "CANCELING" and after[-1] == "CANCELED" and "COMPLETE" not in after, after
            dag_run = client.wait_for_run("wes_run", f"wes__{cancelled}", timeout=120, on_poll=alive)
            assert alice.log(cancelled)["state"] == "CANCELED"
            listed = {r["run_id"]: r["state"] for r in requests.get(
                f"{base}/ga4gh/wes/v1/runs", headers={"Authorization": f"Bearer {alice.token}"}, timeout=10,
            ).json()["runs"]}
            assert listed[cancelled] == "CANCELED" and listed[run] == "COMPLETE"
            assert [r["status"] for r in seqera.runs() if r["runName"] == f"wes-{cancelled}"] == ["CANCELLED"]
            assert _keys(s3, f"alice/runs/{cancelled}/") == []
            assert dag_run["state"] in ("failed", "success")  # either way the door says CANCELED

            # 5. The WES 1.1 contract, against the door as Airflow's api-server serves it.
            checked = check_wes_conformance(f"{base}/ga4gh/wes/v1", {"Authorization": f"Bearer {alice.token}"},
                                            run, examples=10)
            assert len(checked) == 12, checked

            # 6. Seqera misbehaving on 20% of its API calls (5xx, 429 with Retry-After, slow answers,
            # connection resets, cut-off JSON, answers lost after the work was done): every run
            # reaches the end Seqera gave it, each launched once, nothing left behind.
            seqera.configure(default_course={"kind": "running", "outputs": OUTPUTS})
            seqera.chaos(rate_5xx=0.04, rate_429=0.04, rate_slow=0.03, rate_reset=0.03, rate_malformed=0.03,
                                 rate_lost=0.03, slow_seconds=1, retry_after_seconds=1, seed=20261205)
            chaotic = [alice.run("hatchway://alice/pgsc-calc", {"n": n}) for n in range(CHAOS_RUNS)]
            truth = {r: ("fail" if n % 3 == 2 else "succeed") for n, r in enumerate(chaotic)}
            for r in chaotic:
                # Scripted while they run ("running" until now): no race with the launch.
                alice.wait(r, until={"RUNNING"}, timeout=300, on_poll=alive)
                seqera.set_course(f"wes-{r}", truth[r], after=2, exit_status=3)
            ends = {r: alice.wait(r, timeout=300, on_poll=alive)[-1] for r in chaotic}
            stats = seqera.calm()
            expected = {r: "COMPLETE" if kind == "succeed" else "EXECUTOR_ERROR" for r, kind in truth.items()}
            assert ends == expected, (ends, stats)
            launched = [x for x in seqera.runs() if x["runName"].removeprefix("wes-") in truth]
            assert sorted(x["runName"] for x in launched) == sorted(f"wes-{r}" for r in chaotic)  # once each
            assert {x["runName"]: x["status"] for x in launched} == {
                f"wes-{r}": "SUCCEEDED" if kind == "succeed" else "FAILED" for r, kind in truth.items()}
            # Chaos really struck (the shared poller makes few calls: one list per interval for all runs).
            assert stats["counts"]["requests"] - stats["counts"]["passed"] >= 3, stats
            for r in chaotic:
                assert _keys(s3, f"alice/runs/{r}/") == []
