"""The AWS endpoint dies mid-provision and comes back with what it had done: the task's retry
converges to one set of resources, the set a calm provision makes.

moto keeps its state in memory, so a restart alone would forget everything, which AWS never
does. Here moto records every request it receives (``MOTO_ENABLE_RECORDING``) with its random
source seeded, is SIGKILLed the moment ``CreateAccessKey`` reaches it (the key may or may not
exist, and its secret never reaches the task: a lost answer), then starts again on the same
port and replays the recording, so it has every resource, with the same identifiers, that
the dead server had made or was making. The AWS connection makes one attempt per call, so the
dead endpoint fails the task instead of botocore's retries waiting it out.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter

import pytest
import requests

from conftest import TEST_CONFIG
from hatchway.workspace.clients import AwsClients
from hatchway.workspace.inventory import inventory
from hatchway_dev.endpoints import MotoServer
from support import recorded_calls, run_dag, run_dag_retrying, task_states, try_numbers

KILL_AT = "CreateAccessKey"
RETRY_DELAY = 10


def _recording_moto(port: int | None, recording) -> MotoServer:
    return MotoServer(port=port, env={"MOTO_ENABLE_RECORDING": "True", "MOTO_RECORDER_FILEPATH": str(recording)})


def _called(recording, action: str) -> bool:
    try:
        return any(a == action for _service, a, _mutating in recorded_calls(recording))
    except ValueError:  # the last line is being written
        return False


def _waiting_for_retry(dag_id: str) -> bool:
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from airflow.utils.state import TaskInstanceState

    with create_session() as session:
        return session.query(TaskInstance).filter(TaskInstance.dag_id == dag_id,
                                                  TaskInstance.state == TaskInstanceState.UP_FOR_RETRY).count() > 0


def _until(check, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check() and time.monotonic() < deadline:
        time.sleep(0.1)


@pytest.mark.timeout(300)
def test_a_provision_cut_by_an_endpoint_restart_converges_to_one_set_of_resources(tmp_path, airflow_db,
                                                                                     monkeypatch):
    recording = tmp_path / "calls.jsonl"
    moto = _recording_moto(None, recording).start(tmp_path / "moto-1")
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", json.dumps({
        "conn_type": "aws", "login": "testing", "password": "testing",
        "extra": {"endpoint_url": moto.url, "region_name": "us-east-1",
                  "config_kwargs": {"retries": {"max_attempts": 1, "mode": "standard"}}}}))
    monkeypatch.setenv("AIRFLOW_VAR_HATCHWAY_CONFIG", json.dumps(TEST_CONFIG))
    requests.post(f"{moto.url}/moto-api/seed", params={"a": "42"}, timeout=10).raise_for_status()
    restarted, restored_in = threading.Event(), []
    servers = [moto]

    def cut_and_restore() -> None:
        deadline = time.monotonic() + 120
        while not _called(recording, KILL_AT):
            if time.monotonic() > deadline:
                return
            time.sleep(0.02)
        cut_at = time.monotonic()
        servers[0].process.popen.kill()  # SIGKILL: no answer, no cleanup
        servers[0].process.popen.wait()
        # Back only once a task has failed on the dead endpoint (its retry waits RETRY_DELAY).
        _until(lambda: _waiting_for_retry("workspace_provision"), timeout=30)
        again = _recording_moto(servers[0].port, recording).start(tmp_path / "moto-2")
        servers.append(again)
        requests.post(f"{again.url}/moto-api/recorder/replay-recording", timeout=120).raise_for_status()
        restored_in.append(time.monotonic() - cut_at)
        restarted.set()

    try:
        assert run_dag("platform_bootstrap").state == "success"
        watcher = threading.Thread(target=cut_and_restore, daemon=True)
        watcher.start()
        # The retry starts after the restart and the replay (about 4 s for this recording).
        run = run_dag_retrying("workspace_provision", retry_delay=RETRY_DELAY, workspace="alice",
                               owner="alice@example.org")
        watcher.join(timeout=60)
        assert restarted.is_set(), "the endpoint was never cut: CreateAccessKey was not called"
        assert restored_in[0] < RETRY_DELAY, f"the endpoint was back after {restored_in[0]:.1f}s, after the retry"
        assert run.state == "success", task_states(run)
        # The cut failed the task calling (ensure_access_key or record, by how fast the kill
        # was); its retry finished it.
        cut = {task: n for task, n in try_numbers(run).items() if n > 1}
        assert list(cut.values()) == [2] and set(cut) <= {"ensure_access_key", "record"}, try_numbers(run)

        # The same set as a calm provision of another workspace, on the same endpoint.
        assert run_dag("workspace_provision", workspace="bob", owner="bob@example.org").state == "success"
        clients = AwsClients.from_endpoint(moto.url)
        alice, bob = inventory(clients, "alice"), inventory(clients, "bob")
        assert Counter(r.kind for r in alice) == Counter(r.kind for r in bob), (alice, bob)
        # One access key, and it is the one whose secret is stored (not the key of the lost answer
        # beside a second one).
        keys = clients.iam.list_access_keys(UserName="hatchway-alice-user")["AccessKeyMetadata"]
        stored = json.loads(clients.secrets.get_secret_value(
            SecretId="hatchway/workspaces/alice/aws-access-key")["SecretString"])
        assert [k["AccessKeyId"] for k in keys] == [stored["aws_access_key_id"]]
    finally:
        for server in servers:
            server.stop()
