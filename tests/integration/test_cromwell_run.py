"""cromwell_run for real: a WDL workflow from a git repository served over HTTP, submitted to the
Cromwell simulator, waited on through the shared poller, its outputs placed in moto's S3.

Every DAG run here is ``dag.test()`` (tasks, deferral and teardowns in-process).
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from pathlib import Path

import httpx
import pytest
import yaml

from hatchway.domain.cromwell import RUN_LABEL, WORKSPACE_LABEL
from support import all_xcom_text, run_dag, task_states, unique, xcom_values
from support.crate import COMPLETED, FAILED, ids, properties, read_checked
from support.cromwell import (  # noqa: F401 - fixtures
    DATA_BUCKET, EXEC_BUCKET, MAIN, OUTPUTS, TASK, cromwell, cromwell_simulator, git, repo)

CONTRACT = Path(__file__).resolve().parents[1] / "contracts" / "cromwell-api-c805f3c5.yaml"
# Line 6, column 7: a Boolean where an Int is declared.
BROKEN = """version 1.0
import "tasks/say.wdl" as s

workflow hello {
  input { String name }
  Int n = true
  call s.say { input: name = name }
}
"""
INTERMEDIATES = ["call-say/execution/work/tmp.bam"]


def _conf(repo: dict, ref: str = "v1", **more) -> dict:
    return {"run_id": unique("run"), "workspace": "alice-lab", "source": {"repo": repo["url"], "ref": ref,
                                                                          "path": "main.wdl"},
            "inputs": {"hello.name": "ada"}, "labels": {"project": "gwas"}, **more}


def _keys(s3, bucket: str, prefix: str = "") -> list[str]:
    return [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
            for o in page.get("Contents", [])]


def _submit_form() -> dict[str, dict]:
    """The contract's form fields of ``POST /api/workflows/{version}``, ``$ref``s resolved."""
    contract = yaml.safe_load(CONTRACT.read_text())
    params = [contract["parameters"][p["$ref"].rsplit("/", 1)[1]] if "$ref" in p else p
              for p in contract["paths"]["/api/workflows/{version}"]["post"]["parameters"]]
    return {p["name"]: p for p in params if p.get("in") == "formData"}


def _fields(submission: dict) -> dict[str, dict]:
    return {f["name"]: f for f in submission["fields"]}


def test_a_workflow_with_an_import_from_a_tag_runs_places_its_outputs_and_removes_intermediates(cromwell, repo, git):
    cromwell.set_course("succeed", after=1, outputs=OUTPUTS, intermediates=INTERMEDIATES)
    conf = _conf(repo)
    run = run_dag("cromwell_run", **conf)
    assert run.state == "success", task_states(run)
    xcoms = xcom_values(run)
    tag_commit = git.rev_parse(repo["name"], "v1")
    assert xcoms["fetch_source:return_value"]["commit"] == tag_commit
    assert xcoms["fetch_source:return_value"]["imports"] == ["tasks/say.wdl"]
    workflow = xcoms["submit:return_value"]["workflow_id"]

    # What reached Cromwell: one multipart submission with the contract's field names.
    [submission] = cromwell.submissions()
    fields = _fields(submission)
    declared = _submit_form()
    assert set(fields) <= set(declared)
    for name, field in fields.items():  # files as files, the rest as text within the contract's enums
        spec = declared[name]
        assert ("filename" in field) == (spec["type"] == "file"), name
        if "enum" in spec:
            assert field["value"] in spec["enum"], name
    assert {"workflowSource", "workflowInputs", "workflowOptions", "labels", "workflowDependencies", "workflowType",
            "workflowTypeVersion", "requestedWorkflowId"} <= set(fields)
    assert fields["workflowType"]["value"] == "WDL" and fields["workflowTypeVersion"]["value"] == "1.0"
    meta = httpx.get(f"{cromwell.api_url}/{workflow}/metadata",
                     params=[("includeKey", "labels"), ("includeKey", "submittedFiles")]).json()
    labels = meta["labels"]
    assert labels[WORKSPACE_LABEL] == "alice-lab" and labels[RUN_LABEL] == conf["run_id"]
    assert labels["hatchway-commit"] == tag_commit and labels["project"] == "gwas"
    assert json.loads(meta["submittedFiles"]["options"])["hogGroup"] == "alice-lab"
    assert json.loads(meta["submittedFiles"]["inputs"]) == {"hello.name": "ada"}
    # The dependencies zip holds the import, as the fetch built it from the pinned commit.
    deps = fields["workflowDependencies"]
    assert deps["size"] > 0
    from hatchway.domain.wdl import GitSourceSettings, WorkflowSourceRequest
    from hatchway.wdl.source import fetch

    again = fetch(WorkflowSourceRequest(repo=repo["url"], ref=tag_commit, path="main.wdl"),
                  Path(cromwell.workdir) / unique("refetch"),
                  GitSourceSettings(allowed_hosts=[f"127.0.0.1:{git.port}"], private_hosts=["127.0.0.1"],
                                    ca_bundle=str(git.ca_file)))
    assert hashlib.sha256(again.dependencies_zip).hexdigest() == deps["sha256"]
    assert zipfile.ZipFile(io.BytesIO(again.dependencies_zip)).namelist() == ["tasks/say.wdl"]

    # Outputs at the destination, a manifest, and nothing left of the execution directory.
    s3 = cromwell.s3
    destination = f"alice-lab/cromwell/{conf['run_id']}/"
    placed = s3.get_object(Bucket=DATA_BUCKET, Key=destination + "call-say/execution/greeting.txt")
    assert placed["Body"].read() == b"hello ada\n"
    manifest = json.loads(s3.get_object(Bucket=DATA_BUCKET, Key=destination + "outputs.json")["Body"].read())
    assert manifest == {"workflow_id": workflow, "outputs": {
        "hello.greeting": f"s3://{DATA_BUCKET}/{destination}call-say/execution/greeting.txt"}}
    assert _keys(s3, EXEC_BUCKET, f"executions/hello/{workflow}/") == []
    assert xcoms["place_outputs:return_value"]["removed"] >= 2  # the output and the intermediates


def test_a_moving_branch_does_not_change_what_was_recorded(cromwell, git):
    url = git.create(unique("moving"), {"main.wdl": MAIN, "tasks/say.wdl": TASK})
    name = url.rsplit("/", 1)[1].removesuffix(".git")
    first = git.rev_parse(name, "main")
    cromwell.set_course("succeed", after=1, outputs=OUTPUTS)
    run = run_dag("cromwell_run", **_conf({"url": url}, ref="main"))
    assert run.state == "success", task_states(run)
    git.commit(name, {"tasks/say.wdl": TASK.replace("hello ~{name}", "bye ~{name}")}, "move main")
    assert xcom_values(run)["fetch_source:return_value"]["commit"] == first
    workflow = xcom_values(run)["submit:return_value"]["workflow_id"]
    assert cromwell.workflow(workflow)["labels"]["hatchway-commit"] == first


def test_a_type_error_is_refused_with_file_line_and_column_before_anything_is_submitted(cromwell, git):
    url = git.create(unique("broken"), {"main.wdl": BROKEN, "tasks/say.wdl": TASK}, tag="v1")
    run = run_dag("cromwell_run", **_conf({"url": url}))
    states = task_states(run)
    assert run.state == "failed"
    # The setup failed, so nothing exists to abort: Airflow skips its teardowns, the run is failed.
    assert states == {"fetch_source": "failed", "submit": "upstream_failed", "wait": "upstream_failed",
                      "place_outputs": "upstream_failed", "abort": "upstream_failed", "record_usage": "upstream_failed",
                      "write_crate": "upstream_failed", "finish": "upstream_failed"}
    assert xcom_values(run)["fetch_source:refused"].splitlines()[-1] == "main.wdl:6:11: Expected Int instead of Boolean"
    assert cromwell.submissions() == [] and cromwell.calls().get("submit", 0) == 0


@pytest.mark.parametrize("repo_url, reason", [
    ("file:///tmp/hello.git", "scheme"),
    ("ssh://git@127.0.0.1/hello.git", "scheme"),
    ("https://169.254.169.254/latest/meta-data/", "169.254.169.254"),
    ("http://127.0.0.1/hello.git", "scheme 'http://' is not allowed"),
    ("https://bob:s3cret-token@github.com/x/hello.git", "credentials"),
])
def test_bad_sources_are_refused_before_anything_is_submitted(cromwell, repo_url, reason):
    run = run_dag("cromwell_run", **_conf({"url": repo_url}))
    assert run.state == "failed" and task_states(run)["fetch_source"] == "failed"
    assert reason in xcom_values(run)["fetch_source:refused"]
    assert "s3cret" not in all_xcom_text()
    assert cromwell.submissions() == []


def test_a_failed_workflow_fails_the_run_with_cromwells_first_failure_and_keeps_everything(cromwell, repo):
    cromwell.set_course("fail", after=1, failure="Job hello.say:NA:1 exited with return code 3",
                        intermediates=INTERMEDIATES, return_code=3)
    conf = _conf(repo)
    run = run_dag("cromwell_run", **conf)
    states = task_states(run)
    assert run.state == "failed"
    assert states["wait"] == "failed" and states["place_outputs"] == "upstream_failed" and states["finish"] == "failed"
    event = xcom_values(run)["wait:cromwell_event"]
    assert event["status"] == "failed" and event["cromwell_status"] == "Failed"
    assert "exited with return code 3" in event["reason"]
    workflow = event["workflow_id"]
    assert _keys(cromwell.s3, EXEC_BUCKET, f"executions/hello/{workflow}/")  # kept for a post-mortem
    # Nothing placed: the destination holds the run's RO-Crate alone, which says what failed.
    destination = f"alice-lab/cromwell/{conf['run_id']}/"
    assert _keys(cromwell.s3, DATA_BUCKET, destination) == [destination + "ro-crate-metadata.json"]
    crate = json.loads(cromwell.s3.get_object(Bucket=DATA_BUCKET, Key=destination + "ro-crate-metadata.json")
                       ["Body"].read())
    _, _, action = read_checked(crate)
    assert ids(action.get("actionStatus")) == [FAILED] and "exited with return code 3" in action.get("error")


def test_a_workflow_that_outlives_its_run_is_aborted_by_the_teardown(cromwell, repo, monkeypatch):
    settings = json.loads(__import__("os").environ["AIRFLOW_VAR_HATCHWAY_CROMWELL_CONFIG"])
    monkeypatch.setenv("AIRFLOW_VAR_HATCHWAY_CROMWELL_CONFIG", json.dumps({**settings, "run_timeout_seconds": 1}))
    cromwell.set_course("hang", after=1)
    run = run_dag("cromwell_run", **_conf(repo))
    states = task_states(run)
    assert run.state == "failed" and states["wait"] == "failed" and states["abort"] == "success"
    workflow = xcom_values(run)["submit:return_value"]["workflow_id"]
    assert cromwell.calls()["abort"] == 1
    assert cromwell.workflow(workflow)["status"] in ("Aborting", "Aborted")
    assert "did not finish within 1s" in xcom_values(run)["wait:cromwell_event"]["reason"]


def test_a_failed_placement_keeps_every_output_and_says_where(cromwell, repo, monkeypatch):
    """The destination bucket does not exist: nothing may be deleted from the execution directory."""
    cromwell.set_course("succeed", after=1, outputs=OUTPUTS, intermediates=INTERMEDIATES)
    conf = _conf(repo, destination="s3://no-such-bucket-here/x")
    run = run_dag("cromwell_run", **conf)
    assert run.state == "failed" and task_states(run)["place_outputs"] == "failed"
    workflow = xcom_values(run)["submit:return_value"]["workflow_id"]
    kept = _keys(cromwell.s3, EXEC_BUCKET, f"executions/hello/{workflow}/")
    assert f"executions/hello/{workflow}/call-say/execution/greeting.txt" in kept
    assert f"executions/hello/{workflow}/call-say/execution/work/tmp.bam" in kept


def _ends(kafka_cluster, topic: str, expect: int) -> list[dict]:
    import time
    import uuid

    from confluent_kafka import Consumer

    consumer = Consumer({"bootstrap.servers": kafka_cluster.bootstrap, "group.id": f"reader-{uuid.uuid4().hex}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.subscribe([topic])
    messages, deadline = [], time.monotonic() + 20
    while len(messages) < expect and time.monotonic() < deadline:
        messages += [m for m in consumer.consume(10, timeout=0.5) if not m.error()]
    consumer.close()
    return [json.loads(m.value()) | {"key": m.key().decode()} for m in messages]


def test_each_end_is_told_on_the_notify_topic(cromwell, repo, git, kafka_cluster, monkeypatch):
    topic = unique("cromwell-ends")
    for key, value in kafka_cluster.airflow_env().items():
        monkeypatch.setenv(key, value)
    settings = json.loads(__import__("os").environ["AIRFLOW_VAR_HATCHWAY_CROMWELL_CONFIG"])
    monkeypatch.setenv("AIRFLOW_VAR_HATCHWAY_CROMWELL_CONFIG", json.dumps({**settings, "notify_topic": topic}))
    cromwell.set_course("succeed", after=1, outputs=OUTPUTS)
    ok = _conf(repo)
    assert run_dag("cromwell_run", **ok).state == "success"
    cromwell.set_course("fail", after=1, failure="Job hello.say:NA:1 exited with return code 3")
    failed = _conf(repo)
    assert run_dag("cromwell_run", **failed).state == "failed"
    refused = _conf(repo, ref="no-such-tag")
    assert run_dag("cromwell_run", **refused).state == "failed"

    ends = {m["key"]: m for m in _ends(kafka_cluster, topic, 3)}
    assert set(ends) == {ok["run_id"], failed["run_id"], refused["run_id"]}
    done = ends[ok["run_id"]]
    assert done["state"] == "COMPLETE" and done["commit"] == git.rev_parse(repo["name"], "v1")
    assert done["outputs"]["hello.greeting"].endswith("/call-say/execution/greeting.txt") and done["reason"] is None
    assert ends[failed["run_id"]]["state"] == "EXECUTOR_ERROR"
    assert "return code 3" in ends[failed["run_id"]]["reason"]
    assert ends[refused["run_id"]]["state"] == "EXECUTOR_ERROR" and "no-such-tag" in ends[refused["run_id"]]["reason"]


def test_a_run_records_what_its_calls_used_from_cromwells_metadata(cromwell, repo, usage_store):
    cromwell.set_course("succeed", after=1, outputs=OUTPUTS, intermediates=INTERMEDIATES, call_seconds=1800,
                        runtime={"say": {"cpu": 4, "memory": "8 GiB", "preemptible": 1}})
    conf = _conf(repo)
    run = run_dag("cromwell_run", **conf)
    assert run.state == "success", task_states(run)
    workflow = xcom_values(run)["submit:return_value"]["workflow_id"]
    calls = httpx.get(f"{cromwell.api_url}/{workflow}/metadata").json()["calls"]
    assert [c["runtimeAttributes"]["memory"] for attempts in calls.values() for c in attempts] == ["8 GiB"]

    [record] = usage_store.usage_of("alice-lab")
    usage = record.usage
    assert (record.run_id, record.state, usage.engine, usage.task_count) == (conf["run_id"], "Succeeded", "wdl", 1)
    assert usage.cpu_hours == pytest.approx(4 * 0.5) and usage.memory_gib_hours == pytest.approx(8 * 0.5)
    placed = sum(o["Size"] for page in cromwell.s3.get_paginator("list_objects_v2").paginate(
        Bucket=DATA_BUCKET, Prefix=f"alice-lab/cromwell/{conf['run_id']}/") for o in page.get("Contents", [])
        if not o["Key"].endswith("ro-crate-metadata.json"))  # written after the usage was counted
    assert usage.results_bytes == placed > 0
    # Spot (preemptible) capacity per unit, from the default table: 4 vCPU and 8 GiB for half an hour.
    assert usage.estimated_cost == pytest.approx((4 * 0.0125 + 8 * 0.0017) * 0.5, rel=0.01)


def test_a_finished_run_writes_a_workflow_run_crate_beside_its_outputs(cromwell, repo, git, usage_store):
    import hashlib

    cromwell.set_course("succeed", after=1, outputs=OUTPUTS)
    conf = _conf(repo)
    run = run_dag("cromwell_run", **conf)
    assert run.state == "success", task_states(run)
    destination = f"alice-lab/cromwell/{conf['run_id']}/"
    crate_json = json.loads(cromwell.s3.get_object(Bucket=DATA_BUCKET, Key=destination + "ro-crate-metadata.json")
                            ["Body"].read())
    crate, workflow, action = read_checked(crate_json)
    assert ids(action.get("actionStatus")) == [COMPLETED]
    assert workflow.get("identifier") == git.rev_parse(repo["name"], "v1")  # the commit that ran, not the tag
    assert workflow.get("programmingLanguage").get("alternateName") == "WDL"
    [greeting] = [crate.get(i) for i in ids(action.get("result"))]
    body = cromwell.s3.get_object(Bucket=DATA_BUCKET, Key=destination + "call-say/execution/greeting.txt")["Body"].read()
    assert greeting.get("sha256") == hashlib.sha256(body).hexdigest() and int(greeting.get("contentSize")) == len(body)
    assert greeting.get("exampleOfWork").get("name") == "hello.greeting"
    assert [crate.get(i).get("value") for i in ids(action.get("object"))] == ["ada"]
    engine = [e for e in crate.get_entities() if e.type == "OrganizeAction"][0].get("instrument")
    assert engine.get("name") == "Cromwell" and engine.get("softwareVersion")
    assert properties(crate, action)["end_state"] == "Succeeded"
    assert usage_store.get_crate("cromwell_run", run.run_id)[1] == crate_json
