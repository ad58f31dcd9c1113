"""The AWE-style routes (``/hatchway/awe/{user}/{label}``) over HTTP: a researcher starts a WDL
run from git by a label, reads its state, outputs and metadata, and cancels it; nobody else
sees it. The run itself executes with ``dag.test()`` (no scheduler here), on the run the door
created: the test gives ``dag.test()`` that run's id.
"""

from __future__ import annotations

import httpx
import pytest

from hatchway.api.airflow_runs import AirflowRuns
from hatchway.api.auth import issue_token
from hatchway.api.door import create_app
from hatchway.domain.cromwell_state import awe_run_id
from support import task_states
from support.cromwell import (  # noqa: F401 - fixtures
    OUTPUTS, airflow_dags, cromwell, cromwell_simulator, execute_queued, git, repo)
from support.wes import ThreadedServer, door_deps

ALICE, BOB = "alice@example.org", "bob@example.org"


@pytest.fixture
def door(cromwell, airflow_dags, tmp_path):
    deps, settings = door_deps(tmp_path)
    with ThreadedServer(create_app(lambda: deps)) as server:
        yield {who: httpx.Client(base_url=f"{server.url}/awe/{who}", timeout=30, headers={
            "Authorization": f"Bearer {issue_token(settings, workspace=ws, subject=who)}"})
            for who, ws in ((ALICE, "alice-lab"), (BOB, "bob-lab"))}


def test_a_run_by_label_completes_with_its_commit_and_placed_outputs(door, cromwell, repo, git):
    cromwell.set_course("succeed", after=1, outputs=OUTPUTS)
    alice = door[ALICE]
    body = {"workflow_repo": repo["url"], "ref": "v1", "inputs": {"hello.name": "ada"}}
    started = alice.post("/first", json=body)
    assert started.status_code == 201, started.text
    run_id = started.json()["run_id"]
    assert run_id == awe_run_id("alice-lab", ALICE, "first")
    assert alice.get("/first/status").json()["state"] == "QUEUED"
    assert alice.post("/first", json=body).status_code == 409  # a label names one run

    run = execute_queued(f"awe__{run_id}")
    assert run.state == "success", task_states(run)
    status = alice.get("/first/status").json()
    assert status["state"] == "COMPLETE" and status["cromwell_status"] == "Succeeded"
    assert status["commit"] == git.rev_parse(repo["name"], "v1")
    outputs = alice.get("/first/outputs").json()
    assert outputs["placed"] is True
    assert outputs["outputs"] == {"hello.greeting": f"s3://hatchway-test-data/alice-lab/cromwell/{run_id}/"
                                                    "call-say/execution/greeting.txt"}
    assert alice.get("/first/metadata").json()["id"] == status["workflow_id"]

    # bob: not his user name (404), and his own name with alice's label is another, absent, run.
    bob = door[BOB]
    intruder = httpx.Client(base_url=str(bob.base_url).replace(f"/awe/{BOB}", f"/awe/{ALICE}"), headers=bob.headers)
    for path in ("/first/status", "/first/outputs", "/first/metadata"):
        assert intruder.get(path).status_code == 404, path
    assert intruder.delete("/first").status_code == 404
    assert bob.get("/first/status").status_code == 404
    assert alice.get("/first/status").json()["state"] == "COMPLETE"  # bob's cancel changed nothing


def test_a_cancel_before_anything_ran_reads_canceling_and_never_runs(door, cromwell, repo):
    """No scheduler runs here, so the cancelled run's teardowns never run and it stays CANCELING
    (``run_state`` reads CANCELED once they ran: tests/unit/test_cromwell_rules.py)."""
    alice = door[ALICE]
    started = alice.post("/second", json={"workflow_repo": repo["url"], "ref": "v1"})
    assert started.status_code == 201
    cancelled = alice.delete("/second")
    assert cancelled.status_code == 200 and cancelled.json()["workflow_id"] is None
    view = AirflowRuns("cromwell_run").view(f"awe__{started.json()['run_id']}")
    assert view.task_states["fetch_source"] == "skipped" and view.task_states["submit"] == "skipped"
    assert alice.get("/second/status").json()["state"] == "CANCELING"
    assert cromwell.submissions() == []


def test_bad_input_is_refused_with_a_reason(door, cromwell):
    alice = door[ALICE]
    assert alice.post("/x", json={"workflow_repo": "file:///etc", "ref": "v1", "bogus": 1}).status_code == 400
    bad_ref = alice.post("/y", json={"workflow_repo": "https://github.com/x/y", "ref": "a..b"})
    assert bad_ref.status_code == 400 and "ref" in bad_ref.json()["msg"]
    labelled = alice.post("/z", json={"workflow_repo": "https://github.com/x/y", "ref": "v1",
                                      "labels": {"hatchway-workspace": "bob-lab"}})
    assert labelled.status_code == 400 and "hatchway-workspace" in labelled.json()["msg"]
    assert alice.post("/bad label", json={}).status_code == 404


def test_an_awe_run_past_the_workspaces_budget_is_refused_with_the_figures(cromwell, airflow_dags, tmp_path, repo):
    from datetime import datetime, timezone

    from hatchway.domain.workspace import PlatformConfig
    from support.usage import spend

    deps, settings = door_deps(tmp_path)
    deps.platform = PlatformConfig(bucket="hatchway-test-data", prefix="hwtest", queue_mode="shared",
                                   budgets={"alice-lab": {"amount": 5.0}})
    spend(deps.store, "alice-lab", "spent", 5.25, datetime.now(timezone.utc), dag_id="cromwell_run", engine="wdl",
          state="Succeeded")
    body = {"workflow_repo": repo["url"], "ref": "v1", "inputs": {"hello.name": "ada"}}
    with ThreadedServer(create_app(lambda: deps)) as server:
        alice = httpx.Client(base_url=f"{server.url}/awe/{ALICE}", timeout=30, headers={
            "Authorization": f"Bearer {issue_token(settings, workspace='alice-lab', subject=ALICE)}"})
        refused = alice.post("/over", json=body)
        assert refused.status_code == 403, refused.text
        assert "5.25 USD of its 5.00 USD budget" in refused.text
        assert alice.get("/over/status").status_code == 404  # nothing was started
