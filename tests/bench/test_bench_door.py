"""The front door's GET /runs/{id}/status vs Airflow's REST GET dagRuns/{id}, 1,000 runs indexed (``make bench``).

Both are served by the same api-server process of one Airflow standalone, for the same runs,
measured one after the other in this run with the same client: requests per second and p99
latency, and their ratio. The door verifies a JWT, reads Hatchway's store, then Airflow's DB;
Airflow's route verifies its own JWT and reads its DB.
"""

from __future__ import annotations

import random
import statistics
import threading
import time

import boto3
import pytest
import requests

from hatchway_dev.airflow import Airflow
from hatchway_dev.client import AirflowClient
from hatchway_dev.demo import airflow_env, dev_stack
from hatchway_dev.settings import HATCHWAY_CONFIG, REGION
from hatchway_dev.wes_demo import HELLO, Door, door_env, wait_for_door

pytestmark = pytest.mark.bench
RUNS = 1000
REQUESTS = 3000
CLIENTS = 8


def _load(urls: list[str], headers: dict[str, str]) -> tuple[float, float, int]:
    """``REQUESTS`` GETs from ``CLIENTS`` threads, each with a keep-alive session: (rps, p99 ms, errors)."""
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    per_client = REQUESTS // CLIENTS

    def client(seed: int) -> None:
        rng = random.Random(seed)
        session = requests.Session()
        session.headers.update(headers)
        mine = []
        for _ in range(per_client):
            t0 = time.perf_counter()
            resp = session.get(rng.choice(urls), timeout=30)
            mine.append(time.perf_counter() - t0)
            if resp.status_code != 200:
                with lock:
                    errors[0] += 1
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    p99 = statistics.quantiles(latencies, n=100)[98] * 1000
    return len(latencies) / wall, p99, errors[0]


@pytest.mark.timeout(1800)
def test_status_route_against_airflow_rest(tmp_path, bench_table):
    bucket = HATCHWAY_CONFIG["bucket"]
    with dev_stack(tmp_path / "endpoints") as stack:
        boto3.client("s3", endpoint_url=stack["moto"].url, region_name=REGION, aws_access_key_id="testing",
                     aws_secret_access_key="testing").create_bucket(Bucket=bucket)
        env, settings = door_env(tmp_path, bucket)
        with Airflow(tmp_path / "airflow", env={**airflow_env(stack), **env}) as airflow:
            client = AirflowClient(airflow.url, airflow.username, airflow.password).login()
            client.wait_for_dag("wes_run")
            client.unpause("wes_run")
            base = f"{airflow.url}/hatchway"
            wait_for_door(base)
            alice = Door.for_workspace(base, settings, "alice")
            alice.deploy(HELLO)
            t0 = time.monotonic()
            run_ids = [alice.run("hatchway://alice/pgsc-calc", {}) for _ in range(RUNS)]
            made_in = time.monotonic() - t0
            client.pause("wes_run")  # the runs stay queued: the scheduler does not load the machine

            door_urls = [f"{base}/ga4gh/wes/v1/runs/{r}/status" for r in run_ids]
            rest_urls = [f"{airflow.url}/api/v2/dags/wes_run/dagRuns/wes__{r}" for r in run_ids]
            rest_headers = {"Authorization": client.session.headers["Authorization"]}
            door_headers = {"Authorization": f"Bearer {alice.token}"}
            _load(door_urls[:50], door_headers)  # warm both paths once
            _load(rest_urls[:50], rest_headers)
            door_rps, door_p99, door_err = _load(door_urls, door_headers)
            rest_rps, rest_p99, rest_err = _load(rest_urls, rest_headers)

    print(f"\nfront door, {RUNS} runs indexed (made through POST /runs in {made_in:.0f}s), "
          f"{REQUESTS} requests from {CLIENTS} clients:")
    print(f"  GET /hatchway/ga4gh/wes/v1/runs/{{id}}/status : {door_rps:7.1f} req/s, p99 {door_p99:6.1f} ms, "
          f"{door_err} errors")
    print(f"  GET /api/v2/dags/wes_run/dagRuns/{{id}}        : {rest_rps:7.1f} req/s, p99 {rest_p99:6.1f} ms, "
          f"{rest_err} errors")
    print(f"  ratio door/airflow: {door_rps / rest_rps:.2f}x throughput, {door_p99 / rest_p99:.2f}x p99")
    bench_table.add(f"front door status, {RUNS} runs: req/s", f"{door_rps:.0f}", f"{rest_rps:.0f} (Airflow REST)",
                    door_rps / rest_rps)
    bench_table.add(f"front door status, {RUNS} runs: p99", f"{door_p99:.1f} ms", f"{rest_p99:.1f} ms (Airflow REST)",
                    door_p99 / rest_p99)
    assert door_err == 0 and rest_err == 0
