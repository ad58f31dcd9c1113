"""``mode: per_workspace``: each workspace's workflows go to its own Cromwell server, found through
the Variable ``cromwell_server_provision`` writes (here set in the environment, as Airflow reads
Variables from there first). A workspace without a server is refused with what to do.
"""

from __future__ import annotations

import json

import httpx
import pytest

from hatchway.api.auth import issue_token
from hatchway.api.door import create_app
from hatchway.domain.cromwell import server_variable
from hatchway_dev.endpoints import CromwellSimulator
from support import run_dag, task_states, unique, xcom_values
from support.cromwell import OUTPUTS, cromwell, cromwell_simulator, git, repo  # noqa: F401 - fixtures
from support.wes import ThreadedServer, door_deps

HELLO = "version 1.0\nworkflow hello { output { Int n = 1 } }\n"


def _publish(monkeypatch, workspace: str, url: str) -> None:
    monkeypatch.setenv(f"AIRFLOW_VAR_{server_variable(workspace).upper()}", json.dumps({"endpoint": url}))


@pytest.fixture(scope="module")
def bobs_server(tmp_path_factory):
    sim = CromwellSimulator()
    sim.start(tmp_path_factory.mktemp("bobs-cromwell"))
    yield sim
    sim.stop()


def test_each_workspace_reaches_only_its_own_server_through_the_door(cromwell, bobs_server, monkeypatch, tmp_path):
    bobs_server.reset()
    _publish(monkeypatch, "alice", cromwell.url)
    _publish(monkeypatch, "bob", bobs_server.url)
    deps, settings = door_deps(tmp_path, mode="per_workspace")
    with ThreadedServer(create_app(lambda: deps)) as server:
        def client(ws: str) -> httpx.Client:
            return httpx.Client(base_url=f"{server.url}/cromwell/{ws}/api/workflows/v1/", timeout=30, headers={
                "Authorization": f"Bearer {issue_token(settings, workspace=ws, subject=f'{ws}@example.org')}"})

        def submit(who: httpx.Client) -> httpx.Response:
            return who.post(str(who.base_url).rstrip("/"), files={"workflowSource": ("hello.wdl", HELLO)},
                            data={"workflowType": "WDL", "workflowTypeVersion": "1.0"})

        alice, bob, carol = client("alice"), client("bob"), client("carol")
        answer = submit(alice)
        assert answer.status_code == 201, answer.text
        workflow = answer.json()["id"]
        assert [s["id"] for s in cromwell.submissions()] == [workflow] and bobs_server.submissions() == []
        assert submit(bob).status_code == 201 and len(bobs_server.submissions()) == 1
        assert workflow not in [r["id"] for r in bob.get("query").json()["results"]]
        assert bob.get(f"{workflow}/status").status_code == 404
        assert bob.post(f"{workflow}/abort").status_code == 404
        assert alice.get(f"{workflow}/status").json()["status"] in ("Submitted", "Running", "Succeeded")
        refused = carol.get("query")
        assert refused.status_code == 503 and "cromwell_server_provision" in refused.json()["message"]


def test_a_run_goes_to_its_workspaces_server_and_a_workspace_without_one_is_refused(cromwell, repo, monkeypatch):
    settings = json.loads(__import__("os").environ["AIRFLOW_VAR_HATCHWAY_CROMWELL_CONFIG"])
    monkeypatch.setenv("AIRFLOW_VAR_HATCHWAY_CROMWELL_CONFIG", json.dumps({**settings, "mode": "per_workspace",
                                                                           "cromwell_conn_id": "no_such_conn"}))
    _publish(monkeypatch, "alice-lab", cromwell.url)
    cromwell.set_course("succeed", after=1, outputs=OUTPUTS)
    conf = {"run_id": unique("run"), "workspace": "alice-lab", "inputs": {"hello.name": "ada"},
            "source": {"repo": repo["url"], "ref": "v1", "path": "main.wdl"}}
    run = run_dag("cromwell_run", **conf)
    assert run.state == "success", task_states(run)
    assert xcom_values(run)["submit:return_value"]["server"] == cromwell.url
    assert len(cromwell.submissions()) == 1

    orphan = run_dag("cromwell_run", **{**conf, "run_id": unique("run"), "workspace": "dave-lab"})
    states = task_states(orphan)
    assert orphan.state == "failed" and states["submit"] == "failed" and states["abort"] == "success"
    assert len(cromwell.submissions()) == 1  # nothing more was submitted anywhere
