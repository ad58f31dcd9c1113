"""job_run through the real DAG (dag.test), against the GCS emulator, the Kafka mock cluster and
the Seqera simulator: every outcome sends its status messages and leaves no bucket behind."""

from __future__ import annotations

import time

import pytest
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage

from hatchway.domain.jobs import JobNames
from support import run_dag, task_states
from tests_jobs import request

NS = "hwtest"


@pytest.fixture
def gcs(gcs_emulator, monkeypatch):
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_emulator.url)
    return storage.Client(project=gcs_emulator.project, credentials=AnonymousCredentials())


def _job(number: int):
    body = request(number)
    return body, JobNames(NS, body["pipeline_param"]["id"])


def _events(jobs, names, expect):
    return [s for s in jobs.statuses(expect=expect) if s["run_name"] == names.run_name]


def test_success_sends_every_state_in_order_and_keeps_only_results(jobs, seqera, gcs, airflow_db):
    body, names = _job(101)
    seqera.set_course(names.run_name, "succeed", after=2)
    run = run_dag("job_run", **body)
    assert run.state == "success", task_states(run)
    events = _events(jobs, names, 4)
    assert [e["event"] for e in events] == ["Requested", "Created", "Deployed", "Succeeded"]
    assert all("trace_name" not in e and e["utc_time"].endswith("Z") for e in events)
    assert gcs.lookup_bucket(names.work_bucket) is None
    assert gcs.lookup_bucket(names.results_bucket) is not None
    launched = [r for r in seqera.runs() if r["runName"] == names.run_name]
    assert len(launched) == 1


def test_backend_only_events_when_extras_are_switched_off(jobs, seqera, gcs, airflow_db):
    jobs.set(extra_status_events=False)
    body, names = _job(102)
    seqera.set_course(names.run_name, "succeed", after=1)
    assert run_dag("job_run", **body).state == "success"
    assert [e["event"] for e in _events(jobs, names, 2)] == ["Deployed", "Succeeded"]


def test_seqera_failure_sends_trace_and_removes_both_buckets(jobs, seqera, gcs, airflow_db):
    body, names = _job(103)
    seqera.set_course(names.run_name, "fail", after=1, exit_status=12,
                      error_report="Process `PGSC_CALC:SCORE` terminated with an error\nexit status 12")
    run = run_dag("job_run", **body)
    assert run.state == "failed"
    failed = _events(jobs, names, 4)[-1]
    assert failed["event"] == "Failed" and failed["trace_exit"] == 12
    assert failed["trace_name"] == "Process `PGSC_CALC:SCORE` terminated with an error"
    assert [e["event"] for e in _events(jobs, names, 4)].count("Failed") == 1
    assert gcs.lookup_bucket(names.work_bucket) is None and gcs.lookup_bucket(names.results_bucket) is None


@pytest.mark.parametrize("course", ["not_started", "running"])
def test_timeouts_fail_the_run_cancel_seqera_and_clean(course, jobs, seqera, gcs, airflow_db):
    jobs.set(timeout_seconds=3, deployed_timeout_seconds=3)
    body, names = _job(104 if course == "not_started" else 105)
    seqera.set_course(names.run_name, course)
    run = run_dag("job_run", **body)
    assert run.state == "failed", task_states(run)
    events = _events(jobs, names, 4)
    assert events[-1]["event"] == "Failed" and events[-1]["trace_exit"] is None
    assert gcs.lookup_bucket(names.work_bucket) is None and gcs.lookup_bucket(names.results_bucket) is None
    if course == "running":
        assert [r["status"] for r in seqera.runs() if r["runName"] == names.run_name] == ["CANCELLED"]


def test_existing_bucket_fails_the_job_and_is_left_untouched(jobs, seqera, gcs, airflow_db):
    body, names = _job(106)
    foreign = gcs.create_bucket(names.results_bucket)
    foreign.blob("someone-elses.txt").upload_from_string(b"keep")
    run = run_dag("job_run", **body)
    assert run.state == "failed"
    assert task_states(run)["setup_buckets"] == "failed"
    assert [e["event"] for e in _events(jobs, names, 3)] == ["Requested", "Created", "Failed"]
    assert gcs.bucket(names.results_bucket).blob("someone-elses.txt").download_as_bytes() == b"keep"
    assert gcs.lookup_bucket(names.work_bucket) is None  # the run's own bucket was rolled back
    assert not [r for r in seqera.runs() if r["runName"] == names.run_name]


def test_failed_install_fails_the_job_and_cleans(jobs, seqera, gcs, airflow_db):
    jobs.set(launcher="helm", helm={"seqera_secret_name": "Not A Valid Name!",
                                    "globus_base_url": "https://g-1.data.globus.org"})
    body, names = _job(107)
    run = run_dag("job_run", **body)
    assert run.state == "failed"
    assert task_states(run)["launch"] == "failed"
    events = _events(jobs, names, 3)
    assert events[-1]["event"] == "Failed" and "launch" in events[-1]["trace_name"]
    assert gcs.lookup_bucket(names.work_bucket) is None and gcs.lookup_bucket(names.results_bucket) is None


def test_launch_reuses_a_live_run_of_the_same_name(jobs, seqera, gcs, airflow_db):
    body, names = _job(108)
    # An earlier try launched the run, then lost the answer: the run is live in Seqera.
    seqera.create_runs([{"run_name": names.run_name, "workspace_id": seqera.workspace_id,
                         "course": {"kind": "succeed", "after": 1}}])
    run = run_dag("job_run", **body)
    assert run.state == "success", task_states(run)
    assert len([r for r in seqera.runs() if r["runName"] == names.run_name]) == 1


def test_helm_launcher_without_a_cluster_fails_at_launch_naming_the_connection(jobs, seqera, gcs, airflow_db,
                                                                               monkeypatch, capfd):
    monkeypatch.delenv("KUBECONFIG", raising=False)
    # A long not-started timeout: the run must end at launch, not by waiting it out.
    jobs.set(launcher="helm", timeout_seconds=3600,
             helm={"seqera_secret_name": "seqera-credentials", "globus_base_url": "https://g-1.data.globus.org",
                   "key_handler_url": "https://keys.example.org/key"})
    body, names = _job(109)
    started = time.monotonic()
    run = run_dag("job_run", **body)
    assert time.monotonic() - started < 120
    assert run.state == "failed"
    states = task_states(run)
    assert states["launch"] == "failed" and states["wait_for_seqera"] == "upstream_failed", states
    events = _events(jobs, names, 3)
    assert [e["event"] for e in events] == ["Requested", "Created", "Failed"]
    assert "launch" in events[-1]["trace_name"]
    out, err = capfd.readouterr()
    refusal = [line for line in (out + err).splitlines() if "no Kubernetes cluster" in line]
    assert refusal and "kubernetes_conn_id" in refusal[0] and "KUBECONFIG" in refusal[0]
    assert gcs.lookup_bucket(names.work_bucket) is None and gcs.lookup_bucket(names.results_bucket) is None


def test_s3_storage_for_aws_deployments(jobs, seqera, aws, airflow_db):
    jobs.set(storage="s3")
    body, names = _job(110)
    seqera.set_course(names.run_name, "succeed", after=1)
    run = run_dag("job_run", **body)
    assert run.state == "success", task_states(run)
    buckets = {b["Name"] for b in aws.s3.list_buckets()["Buckets"]}
    assert names.results_bucket in buckets and names.work_bucket not in buckets
    tags = {t["Key"]: t["Value"] for t in aws.s3.get_bucket_tagging(Bucket=names.results_bucket)["TagSet"]}
    assert tags["hatchway-job"] == names.job_id
    launched = [r for r in seqera.runs() if r["runName"] == names.run_name][0]
    assert launched["workDir"] == f"s3://{names.work_bucket}/work"
