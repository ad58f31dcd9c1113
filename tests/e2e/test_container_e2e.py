"""Containers end to end: Airflow standalone (scheduler, triggerer), the Wave and Seqera simulators,
moto for the image cache.

A ``container_build`` run that succeeds adds an event to ``hatchway-container://alice/samtools``;
the scheduler then runs the example consumer (include/examples/dags/pipeline_on_new_image.py),
which launches its pipeline on Seqera with ``process.container`` set to that image. A build
that fails adds no event, so the consumer does not run again.
"""

from __future__ import annotations

import json
import os
import time

import boto3
import pytest

from hatchway_dev.airflow import REPO, Airflow
from hatchway_dev.client import AirflowClient
from hatchway_dev.demo import task_log_errors
from hatchway_dev.endpoints import DevStack, MotoServer, SeqeraSimulator, WaveSimulator
from hatchway_dev.settings import HATCHWAY_CONFIG, REGION

CONSUMER = "pipeline_on_new_image"


def _launches(seqera) -> list[dict]:
    return [json.loads(r["body"])["launch"] for r in seqera.requests() if r["route"] == "POST /workflow/launch"]


@pytest.mark.e2e
@pytest.mark.timeout(900)
def test_a_built_image_starts_the_dag_scheduled_on_its_asset_and_a_failed_one_does_not(tmp_path):
    dags = tmp_path / "dags"
    dags.mkdir()
    os.symlink(REPO / "dags" / "container_build.py", dags / "container_build.py")
    os.symlink(REPO / "include" / "examples" / "dags" / f"{CONSUMER}.py", dags / f"{CONSUMER}.py")
    with DevStack([MotoServer(region=REGION), SeqeraSimulator(), WaveSimulator()], tmp_path / "endpoints") as stack:
        moto, seqera, wave = stack["moto"], stack["seqera"], stack["wave"]
        boto3.client("s3", endpoint_url=moto.url, region_name=REGION, aws_access_key_id="testing",
                     aws_secret_access_key="testing").create_bucket(Bucket=HATCHWAY_CONFIG["bucket"])
        # Retries on, as deployed (hatchway_dev.airflow.Airflow): Airflow 3.3 can fail a deferred task
        # whose trigger fires before the scheduler drained the defer-exit event (apache/airflow#71580,
        # #72716); the retry finds the image in the cache. A failed build is never retried.
        env = {**stack.airflow_env(),
               "AIRFLOW_VAR_HATCHWAY_CONFIG": json.dumps(HATCHWAY_CONFIG),
               "AIRFLOW_VAR_HATCHWAY_CONTAINER_CONFIG": json.dumps({"poll_interval_seconds": 0.5,
                                                                     "timeout_seconds": 120})}
        with Airflow(tmp_path / "airflow", dags_folder=dags, env=env) as airflow:
            client = AirflowClient(airflow.url, airflow.username, airflow.password).login()

            def alive() -> None:
                stack.check()
                airflow.check()

            for dag_id in ("container_build", CONSUMER):
                client.wait_for_dag(dag_id, on_poll=alive)
                client.unpause(dag_id)

            # 1. A build that succeeds: the consumer runs, and launches with the image.
            wave.set_course("succeed", after=2)
            client.trigger("container_build", "build-ok", {"workspace": "alice", "name": "samtools",
                                                           "packages": ["samtools=1.19"]})
            built = client.wait_for_run("container_build", "build-ok", timeout=240, on_poll=alive)
            assert built["state"] == "success", "\n".join(
                task_log_errors(airflow.home, "container_build", "build-ok", "build_container")) + airflow.log_tails()
            [record] = wave.builds()
            consumer_runs = _wait_for_runs(client, CONSUMER, 1, alive)
            consumed = client.wait_for_run(CONSUMER, consumer_runs[0]["dag_run_id"], timeout=240, on_poll=alive)
            assert consumed["state"] == "success", client.task_instances(CONSUMER, consumed["dag_run_id"])
            assert consumed["run_type"] == "asset_triggered"
            [launch] = _launches(seqera)
            image = launch["configText"].removeprefix('process.container = "').removesuffix('"\n')
            assert image.startswith("wave.local/wt/") and image.endswith(record["targetImage"].split("/", 1)[1])
            assert launch["pipeline"] == "https://github.com/nf-core/demo" and launch["runName"].startswith(
                "samtools-check-")

            # 2. A build that fails: no Asset event, no consumer run, no launch.
            wave.set_course("fail", after=1, log="critical libmamba nothing provides samtools 9.99")
            client.trigger("container_build", "build-bad", {"workspace": "alice", "name": "samtools",
                                                            "packages": ["samtools=9.99"]})
            failed = client.wait_for_run("container_build", "build-bad", timeout=240, on_poll=alive)
            assert failed["state"] == "failed"
            time.sleep(10)  # several scheduler loops: an event would have created a run by now
            assert len(client.runs(CONSUMER)) == 1 and len(_launches(seqera)) == 1


def _wait_for_runs(client: AirflowClient, dag_id: str, count: int, on_poll, timeout: float = 180) -> list[dict]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        on_poll()
        runs = client.runs(dag_id)
        if len(runs) >= count:
            return runs
        time.sleep(1)
    raise TimeoutError(f"{dag_id} did not get {count} run(s) in {timeout:.0f}s")
