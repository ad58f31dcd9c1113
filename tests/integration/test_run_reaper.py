"""run_reaper through the real DAG (dag.test) against the Seqera simulator and the GCS emulator:
what stuck or crashed runs left behind is removed, what a live run uses is kept.

The live Airflow runs are real DAG runs in this session's metadata DB (triggered, left queued:
no scheduler runs here), and the reaper asks Airflow about them through the Task SDK.
"""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage

from hatchway.domain.wes import new_run_id
from hatchway.jobs.buckets import RUN_LABEL
from hatchway.jobs.stuck import run_timeout, sweep_job_buckets
from support import register_dags, run_dag, task_states, xcom_values

NS = "hwtest"  # the jobs fixture's namespace


@pytest.fixture(scope="module")
def registered(airflow_db):
    """job_run and wes_run serialized in the DB, so that runs of them can be triggered."""
    register_dags()


def live_run(dag_id: str, run_id: str, conf: dict | None = None) -> None:
    """A queued (so: live) DAG run, as the intake or the door makes it."""
    from airflow.api.common.trigger_dag import trigger_dag
    from airflow.utils.session import create_session
    from airflow.utils.types import DagRunTriggeredByType

    with create_session() as session:
        trigger_dag(dag_id, triggered_by=DagRunTriggeredByType.TEST, run_id=run_id, conf=conf or {},
                    session=session)


def wes_conf(run_id: str) -> dict:
    from hatchway.domain.wes import WesRunConf, WorkflowRef, executing_context

    context = executing_context(prefix="hatchway", queue_mode="per_user", cost_tag_key="hatchway:cost-center",
                                executing="alice", owner="alice@example.org", run_id=run_id, calling="alice")
    return WesRunConf(run_id=run_id, calling="alice", deploying="alice", executing="alice",
                      bucket="hatchway-test-data", context=context,
                      workflow=WorkflowRef(name="hello", version="1", engine="NFL",
                                           git_url="https://github.com/nextflow-io/hello")).model_dump(mode="json")


@pytest.fixture
def gcs(gcs_emulator, monkeypatch):
    """The session's GCS emulator with none of this namespace's buckets: earlier tests' job runs
    leave results buckets there, and a sweep would rightly take them too."""
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_emulator.url)
    client = storage.Client(project=gcs_emulator.project, credentials=AnonymousCredentials())
    for bucket in client.list_buckets(prefix=f"{NS}-"):
        bucket.delete(force=True)
    return client


def job_bucket(gcs, job: str, kind: str = "work", label: str | None = None) -> storage.Bucket:
    bucket = gcs.create_bucket(f"{NS}-{job}-{kind}")
    bucket.labels = {RUN_LABEL: label or f"job__{job}", "hatchway-job": job}
    bucket.patch()
    bucket.blob("input.vcf").upload_from_string(b"##fileformat=VCFv4.2\n")
    return bucket


def test_live_seqera_runs_without_a_live_airflow_run_are_cancelled_the_others_kept(
        jobs, seqera, gcs, registered):
    from support.jobs import request

    wes_orphan, wes_live = new_run_id(), new_run_id()
    names = {"job_orphan": f"{NS}-intp00000000701", "job_live": f"{NS}-intp00000000702",
             "wes_orphan": f"wes-{wes_orphan}", "wes_live": f"wes-{wes_live}",
             "not_ours": "otherns-intp00000000703"}
    seqera.create_runs([{"run_name": name, "workspace_id": seqera.workspace_id, "course": {"kind": "running"}}
                        for name in names.values()])
    live_run("job_run", "job__intp00000000702", request(702))
    live_run("wes_run", f"wes__{wes_live}", wes_conf(wes_live))

    run = run_dag("run_reaper", grace_hours=1)
    assert run.state == "success", task_states(run)
    report = xcom_values(run)["sweep_seqera_runs:return_value"]
    assert sorted(report["cancelled"]) == sorted([names["job_orphan"], names["wes_orphan"]])
    assert sorted(report["kept"]) == sorted([names["job_live"], names["wes_live"]])
    status = {r["runName"]: r["status"] for r in seqera.runs()}
    assert status[names["job_orphan"]] == status[names["wes_orphan"]] == "CANCELLED"
    assert status[names["job_live"]] != "CANCELLED" and status[names["wes_live"]] != "CANCELLED"
    assert status[names["not_ours"]] != "CANCELLED"  # another deployment's run is never touched

    # A dry run reports and changes nothing.
    seqera.create_runs([{"run_name": f"{NS}-intp00000000704", "workspace_id": seqera.workspace_id,
                         "course": {"kind": "running"}}])
    dry = xcom_values(run_dag("run_reaper", dry_run=True))["sweep_seqera_runs:return_value"]
    assert dry["orphaned"] == [f"{NS}-intp00000000704"] and dry["cancelled"] == []
    assert {r["runName"]: r["status"] for r in seqera.runs()}[f"{NS}-intp00000000704"] != "CANCELLED"


def test_old_orphan_job_buckets_are_deleted_young_ones_and_live_runs_buckets_kept(jobs, seqera, gcs, registered):
    from support.jobs import request

    orphan = job_bucket(gcs, "intp00000000801")
    live_run("job_run", "job__intp00000000802", request(802))
    live = job_bucket(gcs, "intp00000000802")
    foreign = gcs.create_bucket(f"{NS}-intp00000000803-work")  # no run label: not made by a run
    time.sleep(3)
    young = job_bucket(gcs, "intp00000000804")

    # Grace between the two ages: the orphan is past it, the young bucket is not.
    young.reload()
    grace = timedelta(seconds=2)
    def only_802_is_live(dag_id: str, run_id: str) -> str | None:
        return "running" if (dag_id, run_id) == ("job_run", "job__intp00000000802") else None

    report = sweep_job_buckets(gcs, namespace=NS, grace=grace, now=young.time_created + timedelta(seconds=1),
                               run_state=only_802_is_live)
    assert report["deleted"] == [orphan.name] and live.name in report["kept"]
    assert young.name in report["kept"] and foreign.name not in report["kept"] + report["deleted"]
    assert gcs.lookup_bucket(orphan.name) is None
    assert gcs.lookup_bucket(young.name) is not None and gcs.lookup_bucket(foreign.name) is not None

    # Through the DAG, with a grace of 0: the live run's bucket stays, the young orphan goes.
    run = run_dag("run_reaper", grace_hours=0)
    assert run.state == "success", task_states(run)
    swept = xcom_values(run)["sweep_job_buckets:return_value"]
    assert young.name in swept["deleted"] and live.name in swept["kept"]
    assert gcs.lookup_bucket(live.name) is not None and gcs.lookup_bucket(young.name) is None
    assert gcs.lookup_bucket(foreign.name) is not None


def test_a_succeeded_jobs_results_bucket_is_kept_its_leftover_work_bucket_removed(gcs, jobs):
    results = job_bucket(gcs, "intp00000000901", "results")
    work = job_bucket(gcs, "intp00000000901", "work")
    report = sweep_job_buckets(gcs, namespace=NS, grace=timedelta(0),
                               run_state=lambda dag_id, run_id: "success" if run_id == "job__intp00000000901" else None)
    assert results.name in report["kept"] and work.name in report["deleted"]
    assert gcs.lookup_bucket(results.name) is not None and gcs.lookup_bucket(work.name) is None


def test_the_run_timeout_is_configurable_and_set_on_both_run_dags(airflow_db, monkeypatch):
    from support import _dagbag

    assert run_timeout() == timedelta(hours=72)
    monkeypatch.setenv("HATCHWAY_DAGRUN_TIMEOUT_HOURS", "6")
    assert run_timeout() == timedelta(hours=6)
    monkeypatch.setenv("HATCHWAY_DAGRUN_TIMEOUT_HOURS", "0")
    with pytest.raises(ValueError, match="HATCHWAY_DAGRUN_TIMEOUT_HOURS"):
        run_timeout()
    monkeypatch.delenv("HATCHWAY_DAGRUN_TIMEOUT_HOURS")
    for dag_id in ("job_run", "wes_run"):
        assert _dagbag().get_dag(dag_id).dagrun_timeout == timedelta(hours=72), dag_id
