"""Cromwell's API per workspace through the front door, against the Cromwell simulator: tenancy on
every route (shared-server mode), and cromshell 2.1.1, Cromwell's own client, working unchanged.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path

import httpx
import pytest

from hatchway.api.auth import issue_token
from hatchway.api.door import create_app
from hatchway.domain.cromwell import WORKSPACE_LABEL
from hatchway_dev.endpoints import CromwellSimulator
from support.wes import ThreadedServer, door_deps

VENV_BIN = Path(__file__).resolve().parents[2] / ".venv" / "bin"
HELLO = """version 1.0
workflow hello {
  input { String name }
  call say { input: name = name }
  output { File greeting = say.greeting }
}
task say {
  input { String name }
  command <<< echo "hello ~{name}" > greeting.txt >>>
  output { File greeting = "greeting.txt" }
}
"""
OUTPUTS = {"hello.greeting": {"path": "call-say/execution/greeting.txt", "content": "hello ada\n"}}


@pytest.fixture(scope="module")
def cromwell_sim(tmp_path_factory):
    sim = CromwellSimulator()
    sim.start(tmp_path_factory.mktemp("cromwell-door"))
    yield sim
    sim.stop()


@pytest.fixture(scope="module")
def door(cromwell_sim, tmp_path_factory):
    deps, settings = door_deps(tmp_path_factory.mktemp("door"), cromwell_conn_id="cromwell_door")
    os.environ["AIRFLOW_CONN_CROMWELL_DOOR"] = cromwell_sim.airflow_env()["AIRFLOW_CONN_CROMWELL_DEFAULT"]
    with ThreadedServer(create_app(lambda: deps)) as server:
        tokens = {ws: issue_token(settings, workspace=ws, subject=f"{ws}@example.org") for ws in ("alice", "bob")}
        yield server.url, tokens
    os.environ.pop("AIRFLOW_CONN_CROMWELL_DOOR", None)


@pytest.fixture
def sim(cromwell_sim):
    cromwell_sim.reset()
    return cromwell_sim


class CromwellClient:
    """A workspace's HTTP client on its Cromwell routes."""

    def __init__(self, base: str, workspace: str, token: str, path_workspace: str | None = None):
        self.api = f"{base}/cromwell/{path_workspace or workspace}/api/workflows/v1"
        self.http = httpx.Client(headers={"Authorization": f"Bearer {token}"}, timeout=30)

    def submit(self, labels: dict | None = None, options: dict | None = None, **data) -> httpx.Response:
        files = {"workflowSource": ("hello.wdl", HELLO), "workflowInputs": ("inputs.json", '{"hello.name": "ada"}')}
        if labels is not None:
            files["labels"] = ("labels.json", json.dumps(labels))
        if options is not None:
            files["workflowOptions"] = ("options.json", json.dumps(options))
        return self.http.post(self.api, files=files, data={"workflowType": "WDL", "workflowTypeVersion": "1.0",
                                                             **data})

    def get(self, path: str, **kwargs) -> httpx.Response:
        return self.http.get(f"{self.api}{path}", **kwargs)

    def post(self, path: str, **kwargs) -> httpx.Response:
        return self.http.post(f"{self.api}{path}", **kwargs)


def test_workspaces_share_one_cromwell_and_never_see_each_others_workflows(door, sim):
    base, tokens = door
    alice, bob = CromwellClient(base, "alice", tokens["alice"]), CromwellClient(base, "bob", tokens["bob"])
    sim.set_course("succeed", after=1, outputs=OUTPUTS)
    answer = alice.submit(labels={"project": "gwas"}, options={"write_to_cache": False})
    assert answer.status_code == 201, answer.text
    workflow = answer.json()["id"]
    mine = bob.submit()
    assert mine.status_code == 201

    # What Cromwell got: the reserved label and the fairness group, with the caller's own.
    labels = sim.workflow(workflow)["labels"]
    assert labels[WORKSPACE_LABEL] == "alice" and labels["project"] == "gwas"
    meta = alice.get(f"/{workflow}/metadata", params={"includeKey": "submittedFiles"}).json()
    assert json.loads(meta["submittedFiles"]["options"]) == {"write_to_cache": False, "hogGroup": "alice"}

    # alice sees her workflow on every route.
    assert alice.get(f"/{workflow}/status").json()["id"] == workflow
    assert alice.get(f"/{workflow}/labels").json()["labels"]["project"] == "gwas"
    listed = alice.get("/query", params={"additionalQueryResultFields": "labels"}).json()
    assert [r["id"] for r in listed["results"]] == [workflow] and listed["totalResultsCount"] == 1

    # bob: 404 with Cromwell's message on every per-workflow route, nothing of alice's in a query.
    unknown = {"status": "fail", "message": f"Unrecognized workflow ID: {workflow}"}
    for method, action in (("GET", "status"), ("GET", "outputs"), ("GET", "metadata"), ("GET", "labels"),
                           ("POST", "abort")):
        resp = bob.http.request(method, f"{bob.api}/{workflow}/{action}")
        assert (resp.status_code, resp.json()) == (404, unknown), action
    assert [r["id"] for r in bob.get("/query").json()["results"]] == [mine.json()["id"]]
    post_query = bob.post("/query", json=[{"status": "Submitted"}, {"status": "Running"}, {"status": "Succeeded"}])
    assert mine.json()["id"] in [r["id"] for r in post_query.json()["results"]]
    assert workflow not in [r["id"] for r in post_query.json()["results"]]
    assert sim.workflow(workflow)["status"] != "Aborted"  # bob's abort never reached Cromwell

    # Widening and forging are refused before Cromwell is asked.
    for params in ({"labelor": f"{WORKSPACE_LABEL}:alice"}, {"excludeLabelOr": "x:y"},
                   {"label": f"{WORKSPACE_LABEL}:alice"}):
        resp = bob.get("/query", params=params)
        assert resp.status_code == 400 and resp.json()["status"] == "fail", params
    assert bob.post("/query", json=[{"labelor": f"{WORKSPACE_LABEL}:alice"}]).status_code == 400
    assert bob.submit(labels={WORKSPACE_LABEL: "alice"}).status_code == 400
    assert bob.submit(options={"hogGroup": "alice"}).status_code == 400
    assert bob.submit(workflowUrl="http://169.254.169.254/x.wdl").status_code == 400
    # bob's token on alice's path: 404, as for a workspace that does not exist.
    intruder = CromwellClient(base, "bob", tokens["bob"], path_workspace="alice")
    assert intruder.get(f"/{workflow}/status").status_code == 404
    assert intruder.get("/query").status_code == 404
    assert httpx.get(f"{alice.api}/{workflow}/status").status_code == 401  # no token at all


def test_a_sub_workflow_is_judged_by_its_root(door, sim):
    base, tokens = door
    alice, bob = CromwellClient(base, "alice", tokens["alice"]), CromwellClient(base, "bob", tokens["bob"])
    root = alice.submit().json()["id"]
    # A sub-workflow of alice's whose own labels say bob: the root decides, as in CromIAM.
    child = bob.submit().json()["id"]
    assert sim.workflow(child)["labels"][WORKSPACE_LABEL] == "bob"
    made = httpx.post(f"{sim.url}/_sim/workflows/{child}/parent", json={"parent": root})
    assert made.json()["rootWorkflowId"] == root
    assert bob.get(f"/{child}/status").status_code == 404
    assert alice.get(f"/{child}/status").status_code == 200


@pytest.fixture
def cromshell(door, tmp_path):
    """cromshell 2.1.1 as a researcher runs it: its token from a `gcloud` on PATH (here a script
    that prints alice's token), its config in a folder of its own."""
    base, tokens = door
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    gcloud = bin_dir / "gcloud"
    gcloud.write_text(f"#!/bin/sh\necho {tokens['alice']}\n")
    gcloud.chmod(gcloud.stat().st_mode | stat.S_IEXEC)
    (tmp_path / "hello.wdl").write_text(HELLO)
    (tmp_path / "inputs.json").write_text('{"hello.name": "ada"}')
    env = {**os.environ, "PATH": f"{bin_dir}:{VENV_BIN}:{os.environ['PATH']}", "CROMSHELL_CONFIG": str(tmp_path)}

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(VENV_BIN / "cromshell"), "--no_turtle", "--cromwell_url", f"{base}/cromwell/alice",
                               "--gcloud_token_email", "alice@example.org", *args],
                              cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)

    return run


def test_cromshell_submits_reads_status_lists_outputs_and_aborts_through_the_door(cromshell, sim, door):
    sim.set_course("succeed", after=2, outputs=OUTPUTS, match={"name": "hello"})
    submitted = cromshell("submit", "hello.wdl", "inputs.json")
    assert submitted.returncode == 0, submitted.stdout + submitted.stderr
    workflow = json.loads(submitted.stdout[submitted.stdout.index("{"):submitted.stdout.rindex("}") + 1])["id"]
    assert sim.workflow(workflow)["labels"][WORKSPACE_LABEL] == "alice"
    # cromshell's handshake reached Cromwell through the door, which admits no call without
    # alice's token (from the gcloud script; see the 401 in the test above).
    assert sim.calls().get("backends", 0) >= 1

    for _ in range(10):
        status = cromshell("status", workflow)
        if '"Succeeded"' in status.stdout:
            break
    assert '"Succeeded"' in status.stdout, status.stdout + status.stderr
    outputs = cromshell("list-outputs", workflow)
    assert outputs.returncode == 0, outputs.stdout + outputs.stderr
    assert "hello.greeting" in outputs.stdout

    sim.set_course("hang", after=1, match={"name": "hello"})
    second = cromshell("submit", "hello.wdl", "inputs.json")
    hanging = json.loads(second.stdout[second.stdout.index("{"):second.stdout.rindex("}") + 1])["id"]
    aborted = cromshell("abort", hanging)
    assert aborted.returncode == 0, aborted.stdout + aborted.stderr
    assert sim.workflow(hanging)["status"] in ("Aborting", "Aborted")


def test_a_workspace_past_its_monthly_budget_submits_nothing_to_cromwell_and_reads_the_figures(cromwell_sim, tmp_path):
    """The WES door's budget rule holds on Cromwell's own API too: once alice's month has reached
    her budget, a submission is refused in Cromwell's envelope before Cromwell is asked; her
    other calls and bob's submissions go on."""
    from datetime import datetime, timedelta, timezone

    from hatchway.domain.usage import month_start
    from hatchway.domain.workspace import PlatformConfig
    from support.usage import spend

    deps, settings = door_deps(tmp_path, cromwell_conn_id="cromwell_budget")
    deps.platform = PlatformConfig(bucket="hatchway-test-data", prefix="hwtest", queue_mode="shared",
                                   budgets={"alice": {"amount": 2.0}}, price_table={"currency": "EUR"})
    now = datetime.now(timezone.utc)

    def spent(name: str, cost: float, ended: datetime) -> None:
        spend(deps.store, "alice", name, cost, ended, dag_id="cromwell_run", engine="wdl", state="Succeeded",
              currency="EUR")

    cromwell_sim.reset()
    os.environ["AIRFLOW_CONN_CROMWELL_BUDGET"] = cromwell_sim.airflow_env()["AIRFLOW_CONN_CROMWELL_DEFAULT"]
    try:
        with ThreadedServer(create_app(lambda: deps)) as server:
            tokens = {ws: issue_token(settings, workspace=ws, subject=f"{ws}@example.org") for ws in ("alice", "bob")}
            alice = CromwellClient(server.url, "alice", tokens["alice"])
            bob = CromwellClient(server.url, "bob", tokens["bob"])
            spent("last-month", 50.0, month_start(now) - timedelta(seconds=1))  # another month's budget
            spent("first", 1.5, now)
            first = alice.submit()
            assert first.status_code == 201, first.text  # 1.50 of 2.00 EUR: still under
            spent("second", 0.75, now)
            refused = alice.submit()
            assert refused.status_code == 403
            assert refused.json() == {"status": "fail", "message": refused.json()["message"]}
            assert "2.25 EUR of its 2.00 EUR" in refused.json()["message"], refused.json()
            listed = alice.get("/query").json()
            assert [r["id"] for r in listed["results"]] == [first.json()["id"]]  # nothing more reached Cromwell
            assert alice.get(f"/{first.json()['id']}/status").status_code == 200
            assert bob.submit().status_code == 201  # bob has no budget
    finally:
        os.environ.pop("AIRFLOW_CONN_CROMWELL_BUDGET", None)
