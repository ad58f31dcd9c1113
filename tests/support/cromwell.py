"""The Cromwell lifecycle's test bed: a git server with a WDL workflow, the Cromwell simulator
writing into moto's S3, and the Variable and connection ``cromwell_run`` reads.

Fixtures here are imported by the test modules that use them (``from support.cromwell import ...``).
"""

from __future__ import annotations

import json

import pytest

from hatchway_dev.endpoints import CromwellSimulator
from support import unique
from support.git import GitHttpServer

EXEC_BUCKET, DATA_BUCKET = "hatchway-cromwell-exec", "hatchway-test-data"
TASK = """version 1.0
task say {
  input { String name }
  command <<< echo "hello ~{name}" > greeting.txt >>>
  output { File greeting = "greeting.txt" }
}
"""
MAIN = """version 1.0
import "tasks/say.wdl" as s

workflow hello {
  input { String name }
  call s.say { input: name = name }
  output { File greeting = say.greeting }
}
"""
OUTPUTS = {"hello.greeting": {"path": "call-say/execution/greeting.txt", "content": "hello ada\n"}}


@pytest.fixture(scope="module")
def git():
    """An https git server (deployed workflows must be https) with a CA of its own."""
    server = GitHttpServer(tls=True)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def repo(git) -> dict:
    url = git.create(unique("hello"), {"main.wdl": MAIN, "tasks/say.wdl": TASK}, tag="v1")
    return {"url": url, "name": url.rsplit("/", 1)[1].removesuffix(".git")}


@pytest.fixture(scope="module")
def cromwell_simulator(moto_server, tmp_path_factory):
    simulator = CromwellSimulator(root=f"s3://{EXEC_BUCKET}/executions", s3_endpoint=moto_server.url)
    simulator.start(tmp_path_factory.mktemp("cromwell"))
    yield simulator
    simulator.stop()


@pytest.fixture
def cromwell(aws, cromwell_simulator, git, monkeypatch, airflow_db):
    """A reset simulator, the buckets, and the Variable and connection cromwell_run reads."""
    for bucket in (EXEC_BUCKET, DATA_BUCKET):
        aws.s3.create_bucket(Bucket=bucket)
    cromwell_simulator.reset()
    for key, value in cromwell_simulator.airflow_env().items():
        monkeypatch.setenv(key, value)
    settings = {"source": {"allowed_schemes": ["https"], "allowed_hosts": [f"127.0.0.1:{git.port}"],
                           "private_hosts": ["127.0.0.1"], "timeout_seconds": 30, "ca_bundle": str(git.ca_file)},
                "poll_interval_seconds": 0.2, "not_started_timeout_seconds": 20, "run_timeout_seconds": 20}
    monkeypatch.setenv("AIRFLOW_VAR_HATCHWAY_CROMWELL_CONFIG", json.dumps(settings))
    cromwell_simulator.s3 = aws.s3
    return cromwell_simulator


@pytest.fixture(scope="module")
def airflow_dags(airflow_db):
    """cromwell_run serialized and unpaused in this session's Airflow DB, as the door needs it."""
    from support import register_dags

    register_dags("cromwell_run")


def execute_queued(dag_run_id: str):
    """Run the door's queued DAG run in-process, as a scheduler would: dag.test() cannot pick up
    an existing run, so the run is replaced by one of the same id and conf, which dag.test() runs."""
    from datetime import datetime, timezone
    from unittest.mock import patch

    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    from hatchway.api.airflow_runs import AirflowRuns
    from support import _dagbag

    assert AirflowRuns("cromwell_run").view(dag_run_id).state == "queued"
    with create_session() as session:
        queued = session.query(DagRun).filter(DagRun.dag_id == "cromwell_run", DagRun.run_id == dag_run_id).one()
        run_conf = dict(queued.conf)
        session.delete(queued)
    with patch.object(DagRun, "generate_run_id", return_value=dag_run_id):
        run = _dagbag().get_dag("cromwell_run").test(run_after=datetime.now(timezone.utc), run_conf=run_conf)
    assert run.run_id == dag_run_id, run.run_id
    return run
