"""Test session setup: an isolated AIRFLOW_HOME with a migrated SQLite DB, and a moto server.

Environment is set at import time, before anything imports Airflow, so no test can
touch a developer's own Airflow home.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# One home per test process: sessions running side by side never share a database.
HOME = REPO / ".airflow-test" / f"session-{os.getpid()}"
os.environ.update({
    "AIRFLOW_HOME": str(HOME),
    "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
    "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
    "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{HOME}/airflow.db",
    "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(HOME / "logs"),
    "HATCHWAY_TASK_RETRIES": "0",  # a failed task fails its run now: failure tests read the outcome
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
})
sys.path.insert(0, str(REPO / "plugins"))
# A fresh home for every session, removed before anything can open its database.
if HOME.exists():
    shutil.rmtree(HOME)
HOME.mkdir(parents=True)

from hatchway_dev.endpoints import MotoServer  # noqa: E402
from hatchway.workspace.clients import AwsClients  # noqa: E402
from support.bench_table import bench_table, pytest_terminal_summary  # noqa: E402,F401 - make bench's table

TEST_CONFIG = {"region": "us-east-1", "bucket": "hatchway-test-data", "prefix": "hatchway",
               "compute_wait_delay": 1}


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """A migrated metadata DB for ``dag.test()`` (made once per session)."""
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True,
                   env=os.environ.copy())
    return HOME


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory):
    """One moto server for the session; AWS managed policies loaded, calls recorded."""
    workdir = tmp_path_factory.mktemp("moto")
    server = MotoServer(env={
        "MOTO_IAM_LOAD_MANAGED_POLICIES": "true",
        "MOTO_ENABLE_RECORDING": "True",
        "MOTO_RECORDER_FILEPATH": str(workdir / "calls.jsonl"),
    })
    server.start(workdir)
    server.recording = workdir / "calls.jsonl"
    yield server
    server.stop()


@pytest.fixture
def aws(moto_server, monkeypatch):
    """A clean moto account, with Airflow's connection and config Variable pointing at it."""
    import requests

    requests.post(f"{moto_server.url}/moto-api/reset", timeout=10).raise_for_status()
    requests.post(f"{moto_server.url}/moto-api/config", json={"batch": {"use_docker": False}},
                  timeout=10).raise_for_status()
    for key, value in moto_server.airflow_env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("AIRFLOW_VAR_HATCHWAY_CONFIG", json.dumps(TEST_CONFIG))
    return AwsClients.from_endpoint(moto_server.url)


@pytest.fixture
def set_config(monkeypatch):
    """Change the platform configuration seen by the DAGs in this test."""

    def _set(**changes):
        monkeypatch.setenv("AIRFLOW_VAR_HATCHWAY_CONFIG", json.dumps({**TEST_CONFIG, **changes}))

    return _set


@pytest.fixture(scope="session")
def kafka_cluster(tmp_path_factory):
    from hatchway_dev.endpoints import KafkaMockCluster

    cluster = KafkaMockCluster()
    cluster.start(tmp_path_factory.mktemp("kafka"))
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def gcs_emulator(tmp_path_factory):
    from hatchway_dev.endpoints import GcsEmulator

    emulator = GcsEmulator()
    emulator.start(tmp_path_factory.mktemp("gcs"))
    yield emulator
    emulator.stop()


@pytest.fixture
def jobs(kafka_cluster, gcs_emulator, monkeypatch):
    """Kafka and GCS for the job lifecycle, with topics of this test's own."""
    import uuid

    from support.jobs import JobsEnv

    suffix = uuid.uuid4().hex[:8]
    config = {"namespace": "hwtest", "intake_topic": f"launch-{suffix}", "status_topic": f"status-{suffix}",
              "dead_letter_topic": f"dlq-{suffix}", "poll_interval_seconds": 0.2, "timeout_seconds": 30,
              "deployed_timeout_seconds": 60}
    for service in (kafka_cluster, gcs_emulator):
        for key, value in service.airflow_env().items():
            monkeypatch.setenv(key, value)
    kafka_conn = json.loads(kafka_cluster.airflow_env()["AIRFLOW_CONN_KAFKA_DEFAULT"])
    kafka_conn["extra"]["group.id"] = f"intake-{suffix}"  # tests never share a consumer group
    monkeypatch.setenv("AIRFLOW_CONN_KAFKA_DEFAULT", json.dumps(kafka_conn))
    monkeypatch.setenv("AIRFLOW_VAR_HATCHWAY_JOBS_CONFIG", json.dumps(config))
    return JobsEnv(config=config, bootstrap=kafka_cluster.bootstrap, monkeypatch=monkeypatch)


@pytest.fixture
def usage_store(tmp_path, monkeypatch):
    """Hatchway's store in a file of this test's (``HATCHWAY_DB_URL``): where the runs' teardowns
    record usage and keep crates, and where the test reads them."""
    from hatchway.store import Store

    url = f"sqlite:///{tmp_path / 'usage.db'}"
    monkeypatch.setenv("HATCHWAY_DB_URL", url)
    store = Store(url)
    yield store
    store.dispose()


SEQERA_WS, SEQERA_FORBIDDEN_WS = 1001, 666


@pytest.fixture(scope="session")
def seqera_simulator(tmp_path_factory):
    """One Seqera simulator for the session; workspace 666 is forbidden to its token.
    Short timeouts and backoffs in the connection keep retry tests fast."""
    from hatchway_dev.endpoints import SeqeraSimulator

    simulator = SeqeraSimulator(workspace_id=SEQERA_WS, forbidden_workspaces=(SEQERA_FORBIDDEN_WS,),
                                conn_extra={"timeout": 2, "max_attempts": 4, "backoff_base": 0.05,
                                            "backoff_max": 0.2})
    simulator.start(tmp_path_factory.mktemp("seqera"))
    yield simulator
    simulator.stop()


@pytest.fixture
def sim(seqera_simulator, monkeypatch):
    """The Seqera simulator, reset, with Airflow's ``seqera_default`` connection pointing at it."""
    seqera_simulator.reset()
    for key, value in seqera_simulator.airflow_env().items():
        monkeypatch.setenv(key, value)
    return seqera_simulator


@pytest.fixture
def seqera(sim, jobs):
    """The simulator beside Kafka and GCS, for the job lifecycle."""
    return sim


class InjectedFault(RuntimeError):
    """Raised on purpose by :func:`fail_after`, right after the real work of a step."""


@pytest.fixture
def fail_after(monkeypatch):
    """``with fail_after(Owner, "method"):`` makes the method do its real work, then raise.

    Right after the work is the worst moment for leaks: the resource exists and the task
    failed. Fault injection lives here only (tests run tasks in-process through
    ``dag.test()``); nothing of the production package can reach it.
    """
    import contextlib
    import functools

    @contextlib.contextmanager
    def _fail(owner: type, method: str):
        original = getattr(owner, method)

        @functools.wraps(original)
        def work_then_fail(*args, **kwargs):
            original(*args, **kwargs)
            raise InjectedFault(f"fault injected after {owner.__name__}.{method}")

        with monkeypatch.context() as patched:
            patched.setattr(owner, method, work_then_fail)
            yield

    return _fail
