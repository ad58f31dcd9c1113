"""WES runs of a deployed WDL workflow: the door starts ``cromwell_run``, reads its state, its
outputs and its Cromwell calls as WES tasks, cancels it, and shows none of it to another workspace.

The local git server speaks https with a CA of its own (``ca_bundle`` in the settings). The
queued run executes with ``dag.test()`` (no scheduler here): ``execute_queued``.
"""

from __future__ import annotations

import pytest

from hatchway.api.door import create_app
from hatchway.domain.cromwell import WORKSPACE_LABEL
from support import task_states
from support.cromwell import (  # noqa: F401 - fixtures
    DATA_BUCKET, OUTPUTS, airflow_dags, cromwell, cromwell_simulator, execute_queued, git, repo)
from support.wes import ThreadedServer, callers, door_deps


@pytest.fixture
def door(cromwell, repo, airflow_dags, tmp_path):
    deps, settings = door_deps(tmp_path, bucket=DATA_BUCKET)
    store = deps.store
    with ThreadedServer(create_app(lambda: deps)) as server:
        people = callers(server.url, settings, "alice", "bob")
        deployed = people["alice"].deploy({"name": "hello-wdl", "version": "1.0", "engine": "WDL",
                                           "git_url": repo["url"], "git_ref": "v1", "policy": "private"})
        assert deployed.status_code == 201, deployed.text
        yield people, store


def test_a_wdl_run_completes_with_its_outputs_and_its_calls_as_tasks(door, cromwell):
    people, store = door
    alice, bob = people["alice"], people["bob"]
    cromwell.set_course("succeed", after=1, outputs=OUTPUTS)
    started = alice.run("hatchway://alice/hello-wdl", {"hello.name": "ada"}, workflow_type="WDL")
    assert started.status_code == 200, started.text
    run_id = started.json()["run_id"]
    record = store.get_run(run_id)
    assert (record.dag_id, record.engine, record.executing_workspace) == ("cromwell_run", "WDL", "alice")
    assert alice.state(run_id) == "QUEUED"

    run = execute_queued(record.dag_run_id)
    assert run.state == "success", task_states(run)
    log = alice.get(f"/runs/{run_id}").json()
    assert log["state"] == "COMPLETE"
    destination = f"s3://{DATA_BUCKET}/alice/processing-results/{run_id}/"
    assert log["outputs"]["destination"] == destination
    assert log["outputs"]["outputs"] == {"hello.greeting": destination + "call-say/execution/greeting.txt"}
    [workflow] = [w for w in cromwell.workflows() if w["labels"].get("hatchway-run") == run_id]
    assert workflow["labels"][WORKSPACE_LABEL] == "alice"

    tasks = alice.get(f"/runs/{run_id}/tasks").json()["task_logs"]
    assert [(t["name"], t["exit_code"]) for t in tasks] == [("hello.say", 0)]
    assert alice.get(f"/runs/{run_id}/tasks/{tasks[0]['id']}").json()["name"] == "hello.say"

    # Another workspace: the run does not exist, on every route.
    for path in (f"/runs/{run_id}", f"/runs/{run_id}/status", f"/runs/{run_id}/tasks"):
        assert bob.get(path).status_code == 404, path
    assert bob.post(f"/runs/{run_id}/cancel").status_code == 404
    assert run_id not in [r["run_id"] for r in bob.get("/runs").json()["runs"]]


def test_a_cancelled_wdl_run_never_reads_complete(door, cromwell):
    """No scheduler runs here: the cancelled run's teardowns do not run, so it reads CANCELING."""
    people, store = door
    alice = people["alice"]
    run_id = alice.run("hatchway://alice/hello-wdl", {"hello.name": "ada"}, workflow_type="WDL").json()["run_id"]
    assert alice.post(f"/runs/{run_id}/cancel").json() == {"run_id": run_id}
    assert alice.state(run_id) == "CANCELING"
    assert cromwell.submissions() == []


def test_a_failed_wdl_run_reads_executor_error_with_the_failed_call(door, cromwell):
    people, store = door
    alice = people["alice"]
    cromwell.set_course("fail", after=1, failure="Job hello.say:NA:1 exited with return code 3", return_code=3,
                        intermediates=["call-say/execution/work/tmp"])
    run_id = alice.run("hatchway://alice/hello-wdl", {"hello.name": "ada"}, workflow_type="WDL").json()["run_id"]
    run = execute_queued(store.get_run(run_id).dag_run_id)
    assert run.state == "failed"
    assert alice.state(run_id) == "EXECUTOR_ERROR"
    tasks = {t["name"]: t for t in alice.get(f"/runs/{run_id}/tasks").json()["task_logs"]}
    assert tasks["hello.say"]["exit_code"] == 3 and "state: Failed" in tasks["hello.say"]["system_logs"]
