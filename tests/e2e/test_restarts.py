"""Components killed mid-work: the triggerer, then the scheduler, each SIGKILLed with 20
``container_build`` runs deferred on Wave and started again (every run completes, none twice);
then the api-server, while 20 WES submissions are in flight (each client retries with its
``Idempotency-Key`` and gets the run it started: 20 runs, not more).

Production-shaped: PostgreSQL, Redis, a Celery worker and each component in its own process
(``hatchway_dev.airflow.Airflow`` in celery mode). A triggerer that dies leaves its triggers
assigned to it until its heartbeat is stale; the new one then takes them over
(``triggerer_health_check_threshold``, shortened here).
"""

from __future__ import annotations

import json
import shutil
import time
from concurrent.futures import ThreadPoolExecutor

import boto3
import pytest

from hatchway_dev.airflow import Airflow
from hatchway_dev.client import AirflowClient
from hatchway_dev.demo import airflow_env, dev_stack
from hatchway_dev.endpoints import WaveSimulator
from hatchway_dev.settings import HATCHWAY_CONFIG, REGION
from hatchway_dev.wes_demo import HELLO, OUTPUTS, Door, door_env, wait_for_door
from support.wave import submitted

WAITING = 20


def _until(what: str, check, timeout: float = 240, on_poll=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if on_poll:
            on_poll()
        value = check()
        if value:
            return value
        time.sleep(1)
    raise TimeoutError(f"{what} did not happen in {timeout:.0f}s")


@pytest.mark.e2e
@pytest.mark.timeout(1200)
def test_killed_components_lose_no_run_and_double_none(tmp_path):
    for tool in ("redis-server", "initdb"):
        if not (shutil.which(tool) or shutil.which(tool, path="/usr/lib/postgresql/15/bin")):
            pytest.fail(f"{tool} is not installed: run `make system-deps` / install PostgreSQL 15")
    stack = dev_stack(tmp_path / "endpoints")
    stack.services.append(WaveSimulator())
    with stack:
        moto, wave, seqera = stack["moto"], stack["wave"], stack["seqera"]
        boto3.client("s3", endpoint_url=moto.url, region_name=REGION, aws_access_key_id="testing",
                     aws_secret_access_key="testing").create_bucket(Bucket=HATCHWAY_CONFIG["bucket"])
        seqera.configure(outputs_endpoint_url=moto.url, default_course={"kind": "succeed", "after": 2,
                                                                         "outputs": OUTPUTS})
        door, settings = door_env(tmp_path, HATCHWAY_CONFIG["bucket"])
        env = {**airflow_env(stack), **door,
               "AIRFLOW_VAR_HATCHWAY_CONTAINER_CONFIG": json.dumps({"poll_interval_seconds": 1,
                                                                     "timeout_seconds": 900}),
               "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": "10",
               "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "60"}
        with Airflow(tmp_path / "airflow", mode="celery", env=env, worker_concurrency=8) as airflow:
            client = AirflowClient(airflow.url, airflow.username, airflow.password).login()

            def alive() -> None:
                stack.check()
                airflow.check()

            client.wait_for_dag("container_build", on_poll=alive)
            client.unpause("container_build")
            for round_no, component in enumerate(("triggerer", "scheduler")):
                # Long enough builds that every run is deferred when the component dies.
                wave.set_course("succeed", after=25)
                runs = [f"{component}-{n:02d}" for n in range(WAITING)]
                for n, run_id in enumerate(runs):
                    client.trigger("container_build", run_id, {"workspace": "alice", "name": f"img{round_no}-{n}",
                                                               "packages": [f"samtools=1.{round_no * 100 + n}"]})
                _until(f"{WAITING} builds deferred",
                       lambda: client.count_task_instances("container_build", "deferred") == WAITING, on_poll=alive)
                polls_before = wave.calls()["status"]

                airflow.kill(component)
                time.sleep(5)
                if component == "triggerer":  # nobody polls while no triggerer runs
                    assert wave.calls()["status"] - polls_before <= WAITING
                airflow.restart(component)

                finished = [client.wait_for_run("container_build", r, timeout=600, on_poll=alive) for r in runs]
                assert [f["state"] for f in finished] == ["success"] * WAITING, [
                    (f["dag_run_id"], client.task_instances("container_build", f["dag_run_id"])) for f in finished
                    if f["state"] != "success"]
                # none twice: one Wave request per run, and each build task ran once (it was resumed,
                # not retried)
                bodies = submitted(wave)
                assert len(bodies) == WAITING * (round_no + 1)
                for run_id in runs:
                    [ti] = client.task_instances("container_build", run_id)
                    assert ti["try_number"] == 1 and ti["state"] == "success", ti

            # The api-server, with WES submissions in flight: a retried key gets its own run back.
            client.wait_for_dag("wes_run", on_poll=alive)
            client.unpause("wes_run")
            base = f"{airflow.url}/hatchway"
            wait_for_door(base)
            alice = Door.for_workspace(base, settings, "alice")
            alice.deploy(HELLO)

            def submit(n: int) -> str:
                time.sleep(n * 0.3)  # spread over the kill
                return alice.run("hatchway://alice/pgsc-calc", {"target_build": "GRCh38"}, tags={"n": str(n)},
                                 idempotency_key=f"backend-job-{n}", retry_for=240)

            with ThreadPoolExecutor(max_workers=5) as pool:
                futures = [pool.submit(submit, n) for n in range(WAITING)]
                _until("the first submissions", lambda: sum(f.done() for f in futures) >= 3, timeout=120)
                airflow.kill("api-server")
                time.sleep(3)
                airflow.restart("api-server")
                run_ids = [f.result(timeout=300) for f in futures]
            assert len(set(run_ids)) == WAITING
            listed = {r["run_id"] for r in alice._call("GET", "/ga4gh/wes/v1/runs", params={"page_size": 100})["runs"]}
            assert listed == set(run_ids)  # no second run behind any retry
            wes_runs = {r["dag_run_id"] for r in client.login().runs("wes_run")}
            assert wes_runs == {f"wes__{r}" for r in run_ids}
