"""Hatchway's metrics through Airflow's own Stats facade, read from a local StatsD listener.

The listener is a UDP socket in the test; Airflow's StatsD logger is configured the way a
deployment does it (``[metrics] statsd_on`` and friends, here as environment variables) and
built by Airflow's own factory, as a task process does at start.
"""

from __future__ import annotations

import json
import socket
import time
from collections import defaultdict
from types import SimpleNamespace

import pytest

from support import run_dag, task_states
from support.jobs import request
from support.notify import sent_mail
from support.wave import notify_by_mail, wave, wave_simulator  # noqa: F401 - fixtures

BUCKET = "hatchway-test-data"


class StatsdListener:
    """A StatsD server of one UDP socket: ``name:value|type`` lines, summed per name and type."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setblocking(False)
        self.port = self.sock.getsockname()[1]
        self.lines: list[str] = []

    def read(self) -> list[str]:
        while True:
            try:
                packet = self.sock.recv(65535)
            except BlockingIOError:
                return self.lines
            self.lines += packet.decode().splitlines()

    def counters(self, prefix: str = "airflow.hatchway.") -> dict[str, float]:
        totals: dict[str, float] = defaultdict(float)
        for line in self.read():
            name, _, rest = line.partition(":")
            value, _, kind = rest.partition("|")
            if name.startswith(prefix) and kind.startswith("c"):
                totals[name.removeprefix("airflow.")] += float(value)
        return dict(totals)

    def values(self, name: str, kind: str) -> list[float]:
        return [float(line.split(":")[1].split("|")[0]) for line in self.read()
                if line.startswith(f"airflow.{name}:") and line.split("|")[1].startswith(kind)]

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def statsd(monkeypatch):
    from airflow.sdk.observability import stats
    from airflow.sdk.observability.metrics.stats_utils import get_stats_factory

    listener = StatsdListener()
    for key, value in {"STATSD_ON": "True", "STATSD_HOST": "127.0.0.1", "STATSD_PORT": str(listener.port),
                       "STATSD_PREFIX": "airflow"}.items():
        monkeypatch.setenv(f"AIRFLOW__METRICS__{key}", value)
    from airflow.sdk._shared.observability.metrics.base_stats_logger import NoStatsLogger

    stats.initialize(factory=get_stats_factory(), export_legacy_names=False)
    yield listener
    stats.initialize(factory=NoStatsLogger, export_legacy_names=False)
    listener.close()


def _settle(listener: StatsdListener, check, timeout: float = 5.0):
    deadline = time.monotonic() + timeout
    while True:
        found = listener.counters()
        if check(found) or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def test_intake_counts_messages_runs_duplicates_dead_letters_by_reason_and_lag(jobs, airflow_db, statsd):
    bad_schema = request(941)  # job numbers of its own: the session database outlives the test
    bad_schema["globus_details"]["files"][0]["filename"] = "hapnest.pgen"  # not .c4gh
    jobs.produce([request(942), request(942), b"{not json", bad_schema, request(943)])
    run = run_dag("job_intake")
    assert run.state == "success", task_states(run)

    found = _settle(statsd, lambda f: f.get("hatchway.intake.messages", 0) >= 5)
    assert found["hatchway.intake.messages"] == 5
    assert found["hatchway.intake.triggered"] == 2 and found["hatchway.intake.duplicates"] == 1
    assert found["hatchway.intake.dead_letters.not_json"] == 1
    assert found["hatchway.intake.dead_letters.invalid"] == 1
    lags = statsd.values("hatchway.intake.lag", "ms")
    assert len(lags) == 3 and all(0 <= lag < 120_000 for lag in lags)


def test_a_build_counts_poller_calls_per_endpoint_waiting_runs_and_notices(wave, aws, moto_server, monkeypatch,
                                                                          statsd):
    aws.s3.create_bucket(Bucket=BUCKET)
    notify_by_mail(monkeypatch, aws)
    wave.set_course("succeed", after=3)
    run = run_dag("container_build", workspace="alice", name="metrics", packages=["samtools=1.19"])
    assert run.state == "success", task_states(run)

    endpoint = f"127_0_0_1_{wave.port}"
    found = _settle(statsd, lambda f: f.get("hatchway.notices.sent.email", 0) >= 1)
    # every status call the poller made is counted against the endpoint it went to
    assert found[f"hatchway.poller.calls.wave.{endpoint}"] == wave.calls()["status"] >= 3
    assert f"hatchway.poller.errors.wave.{endpoint}" not in found
    assert statsd.values("hatchway.runs_waiting.wave", "g")[0] == 1
    assert found["hatchway.notices.sent.email"] == 1 and len(sent_mail(moto_server)) == 1


def test_a_failing_round_is_counted_as_a_poller_error(wave, aws, monkeypatch, statsd):
    aws.s3.create_bucket(Bucket=BUCKET)
    monkeypatch.setenv("AIRFLOW_CONN_WAVE_DEFAULT", json.dumps(wave.connection(max_attempts=2, backoff_base=0.05)))
    wave.set_course("succeed", after=2)
    wave.fault(503, count=2, routes=["status"])  # both tries of the first round fail
    run = run_dag("container_build", workspace="alice", name="errors", packages=["samtools=1.19"])
    found = _settle(statsd, lambda f: any(k.startswith("hatchway.poller.errors.wave.") for k in f))
    assert found.get(f"hatchway.poller.errors.wave.127_0_0_1_{wave.port}", 0) == 1, (run.state, found)
    assert run.state == "success", task_states(run)  # the next round saw the build through


def test_a_failed_teardown_of_a_hatchway_dag_is_counted(statsd):
    from airflow.providers.standard.operators.empty import EmptyOperator
    from airflow.sdk import DAG

    from hatchway.listeners import TeardownListener

    with DAG("job_run_probe", schedule=None, tags=["hatchway"]):
        work = EmptyOperator(task_id="work")
        clean = EmptyOperator(task_id="cleanup_buckets").as_teardown(setups=work)
    with DAG("someone_elses", schedule=None, tags=["other"]):
        theirs = EmptyOperator(task_id="cleanup").as_teardown()

    listener = TeardownListener()
    for task in (clean, work, theirs):
        listener.on_task_instance_failed(None, SimpleNamespace(task=task, dag_id=task.dag_id, task_id=task.task_id),
                                         RuntimeError("boom"))
    found = _settle(statsd, lambda f: bool(f))
    assert found == {"hatchway.teardown.failures.job_run_probe.cleanup_buckets": 1}
