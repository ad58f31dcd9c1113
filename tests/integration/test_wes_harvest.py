"""wes_run through the real DAG (dag.test), against moto over HTTP and the Seqera simulator:
the launch's cost tag, a harvest that does not finish keeping the run's outputs, what a run used
and cost, its budget notice, and its Workflow Run RO-Crate on any end.

The door is not in the way here: the conf is the one the door builds (``executing_context``).
"""

from __future__ import annotations

import json

import pytest

from hatchway.domain.names import WorkspaceNames
from hatchway.domain.wes import (WesRunConf, WorkflowRef, catalog_prefix, executing_context, harvest_marker_key,
                                 new_run_id, outputs_prefix, run_prefix)
from hatchway.domain.workspace import QueueMode, WorkspaceRecord, utcnow
from hatchway.outputs import stac
from support import run_dag, task_states, xcom_values
from support.wave import wave, wave_simulator  # noqa: F401 - fixtures

BUCKET = "hatchway-test-data"  # TEST_CONFIG["bucket"]
COST_KEY = "hatchway:cost-center"  # TEST_CONFIG's default cost_tag_key
OUTPUTS = {"scores/aggregated_scores.tsv": "sampleset\tIID\tSUM\ndemo\tS1\t0.42\n",
           "report.html": "<html><body>report</body></html>\n"}


@pytest.fixture
def wes(aws, sim, moto_server, airflow_db, monkeypatch):
    """The platform bucket on moto; succeeding simulator runs publish their outputs there."""
    aws.s3.create_bucket(Bucket=BUCKET)
    sim.configure(outputs_endpoint_url=moto_server.url)
    monkeypatch.setenv("AIRFLOW_VAR_HATCHWAY_WES_CONFIG", json.dumps(
        {"poll_interval_seconds": 0.2, "timeout_seconds": 30, "deployed_timeout_seconds": 60}))
    return aws


def provision_record(s3, workspace: str, cost_center: str) -> None:
    """A workspace record as ``workspace_provision`` writes it (the launch only reads it)."""
    now = utcnow()
    record = WorkspaceRecord(workspace=workspace, owner=f"{workspace}@example.org", cost_center=cost_center,
                             queue_mode=QueueMode("per_user"), created_at=now, last_active_at=now)
    s3.put_object(Bucket=BUCKET, Key=WorkspaceNames("hatchway", workspace).record_key,
                  Body=record.model_dump_json().encode())


def wes_conf(executing: str = "alice", calling: str = "alice") -> WesRunConf:
    run_id = new_run_id()
    context = executing_context(prefix="hatchway", queue_mode="per_user", cost_tag_key=COST_KEY,
                                executing=executing, owner=f"{executing}@example.org", run_id=run_id,
                                calling=calling)
    return WesRunConf(run_id=run_id, calling=calling, deploying=executing, executing=executing, bucket=BUCKET,
                      workflow=WorkflowRef(name="hello", version="1", engine="NFL",
                                           git_url="https://github.com/nextflow-io/hello", git_ref="master"),
                      context=context)


def run_wes(conf: WesRunConf):
    return run_dag("wes_run", **conf.model_dump(mode="json"))


def launch_config(sim, conf: WesRunConf) -> list[str]:
    return [json.loads(r["body"])["launch"]["configText"] for r in sim.requests()
            if r["route"] == "POST /workflow/launch" and conf.engine_run_name in (r["body"] or "")]


def keys(s3, prefix: str) -> list[str]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
    return sorted(o["Key"] for page in pages for o in page.get("Contents", []))


def _crate_of(s3, conf: WesRunConf) -> dict:
    from hatchway.outputs.crate import CRATE_FILE

    return json.loads(s3.get_object(Bucket=BUCKET, Key=f"{catalog_prefix(conf.calling, conf.run_id)}{CRATE_FILE}")
                      ["Body"].read())


# -- cost identity --------------------------------------------------------------------------
def test_a_run_is_tagged_with_the_executing_workspaces_provisioned_cost_centre(wes, sim):
    provision_record(wes.s3, "alice", cost_center="cc-42")
    conf = wes_conf(executing="alice", calling="bob")
    sim.set_course(conf.engine_run_name, "succeed", after=1)
    run = run_wes(conf)
    assert run.state == "success", task_states(run)

    [config] = launch_config(sim, conf)
    assert f"'{COST_KEY}': 'cc-42'" in config
    assert f"'{COST_KEY}': 'alice'" not in config and f"'{COST_KEY}': 'bob'" not in config
    assert "'hatchway:calling-workspace': 'bob'" in config  # the caller is on every job, for chargeback


def test_a_run_marks_its_executing_workspace_as_in_use_for_the_reaper(wes, sim):
    from conftest import TEST_CONFIG
    from hatchway.domain.workspace import PlatformConfig
    from hatchway.workspace import activity

    config = PlatformConfig(**TEST_CONFIG)
    conf = wes_conf(executing="alice", calling="bob")
    sim.set_course(conf.engine_run_name, "succeed", after=1)
    before = utcnow().replace(microsecond=0)
    assert run_wes(conf).state == "success"
    touched = activity.touched(wes, config)
    assert list(touched) == ["alice"] and touched["alice"] >= before  # the executing one, not the caller
    body = wes.s3.get_object(Bucket=BUCKET, Key=activity.marker_key("alice"))["Body"].read().decode()
    assert body == f"wes_run {conf.run_id}"


def test_a_workspace_without_a_record_gets_no_cost_tag_never_its_name(wes, sim):
    conf = wes_conf(executing="carol")
    assert COST_KEY not in conf.context.tags  # the door does not invent one either
    sim.set_course(conf.engine_run_name, "succeed", after=1)
    assert run_wes(conf).state == "success"
    [config] = launch_config(sim, conf)
    assert COST_KEY not in config and "'hatchway:workspace': 'carol'" in config


# -- a harvest that does not finish ---------------------------------------------------------
def test_a_failed_harvest_keeps_the_outputs_and_a_second_harvest_finishes_and_cleans(wes, sim, fail_after):
    s3 = wes.s3
    conf = wes_conf(executing="alice", calling="bob")
    sim.set_course(conf.engine_run_name, "succeed", after=1, outputs=OUTPUTS)
    outputs = outputs_prefix("alice", conf.run_id)
    catalog = catalog_prefix("bob", conf.run_id)

    # The harvest copies one output for real, then fails: it did not finish.
    with fail_after(stac._Harvest, "_item"):
        first = run_wes(conf)
    states = task_states(first)
    assert first.state == "failed", states
    assert states["harvest_outputs"] == "failed" and states["clean_work"] == "success"
    assert keys(s3, outputs) == sorted(outputs + path for path in OUTPUTS)  # the only copy is kept
    assert f"{catalog}catalog.json" not in keys(s3, catalog)
    kept = xcom_values(first)["clean_work:return_value"]
    assert kept == {"removed": 0, "kept_outputs": f"s3://{BUCKET}/{outputs}"}
    assert harvest_marker_key("alice", conf.run_id) in keys(s3, run_prefix("alice", conf.run_id))

    # Running it again (the Seqera launch is an ensure: the finished run is found) converges:
    # the Items are written once, then the area is removed.
    second = run_wes(conf)
    assert second.state == "success", task_states(second)
    assert len([r for r in sim.runs() if r["runName"] == conf.engine_run_name]) == 1
    written = keys(s3, catalog)
    assert f"{catalog}catalog.json" in written
    # The catalog, one item and one copy per output, the run's RO-Crate; nothing stale.
    assert len(written) == 1 + 2 * len(OUTPUTS) + 1 and f"{catalog}ro-crate-metadata.json" in written
    assert keys(s3, run_prefix("alice", conf.run_id)) == []
    assert xcom_values(second)["clean_work:return_value"]["kept_outputs"] is None


# -- usage, estimated cost and the run's RO-Crate ----------------------------------------
TASKS = [{"process": "ALIGN", "cpus": 4, "memory_gib": 8.0, "minutes": 30.0, "machine_type": "m5.xlarge",
          "price_model": "spot"},
         {"process": "CALL", "cpus": 2, "memory_gib": 6.0, "minutes": 60.0, "machine_type": "r9.weird",
          "price_model": "standard"}]


def test_a_finished_run_records_its_usage_and_cost_and_writes_its_crate_beside_the_catalog(wes, sim, usage_store):
    """One run, both records: what it used (against the executing workspace) and what it was."""
    import hashlib

    from hatchway.domain.usage import PriceTable, seqera_tasks, task_cost
    from support.crate import COMPLETED, ids, properties, read_checked

    provision_record(wes.s3, "alice", cost_center="cc-42")
    conf = wes_conf(executing="alice", calling="bob")
    reads = b"@r1\nACGT\n+\nIIII\n" * 1000
    wes.s3.put_object(Bucket=BUCKET, Key="inputs/reads.fq", Body=reads)
    conf = conf.model_copy(update={"params": {"reads": f"s3://{BUCKET}/inputs/reads.fq", "min_score": 0.5}})
    sim.set_course(conf.engine_run_name, "succeed", after=1, outputs=OUTPUTS, tasks=TASKS)
    work = b"x" * 5000
    wes.s3.put_object(Bucket=BUCKET, Key=f"{conf.run_prefix}work/ab/cd/.command.log", Body=work)
    run = run_wes(conf)
    assert run.state == "success", task_states(run)

    [record] = usage_store.usage_of("alice")
    assert usage_store.usage_of("bob") == []  # the caller is named, the executing workspace pays
    assert (record.run_id, record.calling_workspace, record.cost_center, record.state) == \
        (conf.run_id, "bob", "cc-42", "SUCCEEDED")
    usage = record.usage
    assert usage.cpu_hours == pytest.approx(4 * 0.5 + 2 * 1.0)
    assert usage.memory_gib_hours == pytest.approx(8 * 0.5 + 6 * 1.0)
    assert (usage.task_count, usage.failed_tasks, usage.basis) == (2, 0, "estimate")
    assert usage.results_bytes == sum(len(text.encode()) for text in OUTPUTS.values())
    assert usage.work_bytes == len(work)
    # Ours from the default table: ALIGN on a priced m5.xlarge (spot), CALL on an unknown type per unit.
    [sim_run] = [r for r in sim.runs() if r["runName"] == conf.engine_run_name]
    table = PriceTable()
    expected = sum(task_cost(t, table)[0] for t in seqera_tasks(
        [{"name": s["process"], "status": "COMPLETED", "cpus": s["cpus"], "memory": int(s["memory_gib"] * 2**30),
          "realtime": int(s["minutes"] * 60_000), "machineType": s["machine_type"], "priceModel": s["price_model"]}
         for s in TASKS]))
    assert usage.estimated_cost == pytest.approx(expected, rel=1e-3)
    assert usage.priced_by == {"m5.xlarge": 1, "unit": 1}
    assert usage.engine_cost and usage.engine_cost != usage.estimated_cost  # Seqera's own, kept beside ours
    assert sim_run["status"] == "SUCCEEDED"
    assert xcom_values(run)["record_usage:return_value"]["estimated_cost"] == usage.estimated_cost

    # The crate.
    crate, workflow, action = read_checked(_crate_of(wes.s3, conf))
    assert workflow.get("codeRepository") == "https://github.com/nextflow-io/hello"
    assert workflow.get("programmingLanguage")["name"] == "Nextflow"
    assert ids(action.get("actionStatus")) == [COMPLETED]
    results = {crate.get(i).id.rsplit("/", 1)[-1]: crate.get(i) for i in ids(action.get("result"))}
    assert sorted(results) == sorted(path.rsplit("/", 1)[-1] for path in OUTPUTS)
    for path, text in OUTPUTS.items():  # every output with its size and sha256, as the harvest saw it
        entity = results[path.rsplit("/", 1)[-1]]
        assert entity.get("sha256") == hashlib.sha256(text.encode()).hexdigest()
        assert int(entity.get("contentSize")) == len(text.encode())
    [read_file] = [e for e in action.get("object") if e.id.endswith("reads.fq")]
    assert read_file.get("sha256") == hashlib.sha256(reads).hexdigest()
    assert int(read_file.get("contentSize")) == len(reads)
    assert read_file.get("exampleOfWork").get("name") == "reads"
    [score] = [e for e in action.get("object") if e.id == "#pv-min_score"]
    assert score.get("value") == 0.5 and score.get("exampleOfWork").get("additionalType") == "Float"
    facts = properties(crate, action)
    assert (facts["executing_workspace"], facts["calling_workspace"], facts["end_state"]) == ("alice", "bob",
                                                                                              "COMPLETE")
    assert facts["usage.estimated_cost"] == usage_store.usage_of("alice")[0].usage.estimated_cost
    engine = [e for e in crate.get_entities() if e.type == "OrganizeAction"][0]["instrument"]
    assert (engine.get("name"), engine.get("softwareVersion")) == ("Nextflow", "24.10.4")

    catalog = json.loads(wes.s3.get_object(Bucket=BUCKET, Key=f"{catalog_prefix('bob', conf.run_id)}catalog.json")
                         ["Body"].read())
    assert {"rel": "describedby", "href": "./ro-crate-metadata.json"}.items() <= next(
        link for link in catalog["links"] if link["rel"] == "describedby").items()
    location, stored = usage_store.get_crate("wes_run", run.run_id)
    assert stored == _crate_of(wes.s3, conf) and location.endswith("/ro-crate-metadata.json")


def test_a_failed_run_records_what_it_used_and_a_crate_that_says_what_failed(wes, sim, usage_store):
    from support.crate import FAILED, ids, properties, read_checked

    conf = wes_conf()
    sim.set_course(conf.engine_run_name, "fail", after=1, tasks=TASKS)
    run = run_wes(conf)
    assert run.state == "failed"
    assert task_states(run)["record_usage"] == task_states(run)["write_crate"] == "success"
    [record] = usage_store.usage_of("alice")
    assert (record.state, record.cost_center) == ("FAILED", None)  # no workspace record: no made-up centre
    assert (record.usage.task_count, record.usage.failed_tasks) == (2, 1)
    crate, _, action = read_checked(_crate_of(wes.s3, conf))
    assert ids(action.get("actionStatus")) == [FAILED]
    assert "the workflow failed" in action.get("error")
    assert action.get("result") in (None, [])
    assert properties(crate, action)["end_state"] == "EXECUTOR_ERROR"
    assert keys(wes.s3, conf.run_prefix) == []  # counted, then cleaned; the crate is beside the catalog


def test_the_run_that_takes_the_month_past_the_soft_limit_sends_a_budget_notice(wes, sim, usage_store, set_config,
                                                                                monkeypatch):
    from datetime import datetime, timezone

    from hatchway.domain.notify import Notice
    from support.notify import WebhookReceiver
    from support.usage import spend

    usage_store.migrate()
    now = datetime.now(timezone.utc)
    # earlier this month: 0.70 of a 1.00 budget
    spend(usage_store, "alice", "earlier", 0.70, now.replace(day=1, hour=0, minute=0, second=1))
    set_config(budgets={"alice": {"amount": 1.0, "soft_limit": 0.8}})
    receiver = WebhookReceiver()
    try:
        monkeypatch.setenv("AIRFLOW_VAR_HATCHWAY_NOTIFY_CONFIG", json.dumps({"default": {"webhook": receiver.url}}))
        conf = wes_conf()
        sim.set_course(conf.engine_run_name, "succeed", after=1, tasks=TASKS)  # ~0.10 more
        assert run_wes(conf).state == "success"
        def budget_notices() -> list[Notice]:  # the webhook hears the runs' own notices too
            return [n for n in (Notice.model_validate_json(p["body"]) for p in receiver.received) if n.kind == "budget"]

        [notice] = budget_notices()
        assert (notice.kind, notice.workspace, notice.state, notice.run_id) == (
            "budget", "alice", "SOFT_LIMIT", f"{now:%Y-%m}")
        assert notice.details["spent"] == pytest.approx(usage_store.spent("alice"), abs=0.01)
        assert 0.8 <= notice.details["spent"] < 1.0 and notice.details["last_run"] == conf.run_id
    finally:
        receiver.close()


def test_a_usage_store_that_cannot_be_written_still_leaves_nothing_behind(wes, sim, tmp_path, monkeypatch):
    """An injected failure in record_usage: the run's area is still removed by clean_work."""
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the store's folder should be")
    monkeypatch.setenv("HATCHWAY_DB_URL", f"sqlite:///{blocker}/usage.db")
    conf = wes_conf()
    sim.set_course(conf.engine_run_name, "succeed", after=1, outputs=OUTPUTS)
    wes.s3.put_object(Bucket=BUCKET, Key=f"{conf.run_prefix}work/ab/cd/.command.log", Body=b"log")
    run = run_wes(conf)
    states = task_states(run)
    assert states["record_usage"] == "failed" and states["clean_work"] == "success", states
    assert keys(wes.s3, conf.run_prefix) == []


# -- a container block: built on Wave before the launch --------------------------------------
def test_a_run_with_packages_launches_with_the_built_image_in_its_config(wes, sim, wave):
    conf = wes_conf().model_copy(update={"container": {"packages": ["samtools=1.19"]}})
    sim.set_course(conf.engine_run_name, "succeed", after=1, outputs=OUTPUTS)
    wave.set_course("succeed", after=1)
    run = run_wes(conf)
    assert run.state == "success", task_states(run)
    image = xcom_values(run)["build_container:return_value"]["image"]
    [record] = wave.builds()
    assert image.endswith(record["targetImage"].split("/", 1)[1])
    [config] = launch_config(sim, conf)
    assert config.endswith(f'process.container = "{image}"\n')
    assert f"process.queue = '{conf.context.job_queue}'" in config  # the workspace's own config is still there


def test_a_failed_build_fails_the_run_launches_nothing_and_leaves_nothing(wes, sim, wave):
    conf = wes_conf().model_copy(update={"container": {"packages": ["samtools=9.99"]}})
    wave.set_course("fail", after=1, log="critical libmamba nothing provides samtools 9.99")
    run = run_wes(conf)
    assert run.state == "failed"
    states = task_states(run)
    assert states["build_container"] == "failed" and states["launch"] == "upstream_failed", states
    assert launch_config(sim, conf) == [] and [r for r in sim.runs() if r["runName"] == conf.engine_run_name] == []
    assert keys(wes.s3, conf.run_prefix) == []
