"""job_run through the real DAG (dag.test), against the GCS emulator, the Kafka mock cluster and
the Seqera simulator: every outcome sends its status messages and leaves no bucket behind."""

from __future__ import annotations

import hashlib
import json
import time

import pytest
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage

from hatchway.domain.jobs import JobNames
from support import run_dag, task_states, xcom_values
from support.jobs import EXAMPLE, request
from support.transfer import KEY_HANDLER_TOKEN, SOURCE_TOKEN, InputsStandIn
from support.wave import submitted, wave, wave_simulator  # noqa: F401 - fixtures

NS = "hwtest"
PLAINTEXTS = {"hapnest.psam": b"#IID\tSEX\n" + b"".join(b"s%05d\t1\n" % i for i in range(300)),
              "hapnest.pvar": b"#CHROM\tPOS\tID\tREF\tALT\n" + b"".join(b"1\t%d\trs%d\tA\tG\n" % (i, i)
                                                                       for i in range(5000)),
              "hapnest.pgen": bytes(range(256)) * 2048}
_STAND_IN: list[InputsStandIn] = []


@pytest.fixture(scope="module")
def inputs():
    """The example request's Globus folder with real Crypt4GH files, and its key handler."""
    stand_in = InputsStandIn(EXAMPLE["globus_details"]["dir_path_on_guest_collection"], PLAINTEXTS)
    _STAND_IN[:] = [stand_in]
    yield stand_in
    stand_in.close()


def _helm(**changes) -> dict:
    stand_in = _STAND_IN[0]
    return {"seqera_secret_name": "seqera-credentials", "globus_base_url": stand_in.collection.url,
            "key_handler_url": f"{stand_in.key_handler.url}/keys", **changes}


@pytest.fixture(autouse=True)
def transfer_source(jobs, inputs, monkeypatch):
    """Every job's inputs come from the stand-in; the credentials from the transfer connection."""
    jobs.set(helm=_helm())
    monkeypatch.setenv("AIRFLOW_CONN_HATCHWAY_TRANSFER", json.dumps({"conn_type": "generic", "extra": {
        "source_token": SOURCE_TOKEN, "key_handler_token": KEY_HANDLER_TOKEN}}))


@pytest.fixture
def gcs(gcs_emulator, monkeypatch):
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_emulator.url)
    return storage.Client(project=gcs_emulator.project, credentials=AnonymousCredentials())


def _job(number: int):
    body = request(number)
    body["globus_details"]["files"] = _STAND_IN[0].files()  # the encrypted sizes of the stand-in's files
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


def test_a_job_records_its_usage_against_the_namespace_and_its_cost_centre(jobs, seqera, gcs, airflow_db,
                                                                           usage_store):
    jobs.set(cost_center="intervene-42")
    body, names = _job(131)
    seqera.set_course(names.run_name, "succeed", after=1, tasks=[
        {"process": "PGSC_CALC:SCORE", "cpus": 2, "memory_gib": 4.0, "minutes": 90.0, "machine_type": "m5.large",
         "price_model": "standard"}] * 3)
    run = run_dag("job_run", **body)
    assert run.state == "success", task_states(run)
    [record] = usage_store.usage_of(NS)
    assert (record.run_id, record.cost_center, record.state) == (names.job_id, "intervene-42", "SUCCEEDED")
    usage = record.usage
    assert (usage.task_count, usage.cpu_hours, usage.memory_gib_hours) == (3, 9.0, 18.0)
    # Each task: all of an m5.large's vCPUs (2 of 2) for 1.5 h at the default on-demand price.
    assert usage.estimated_cost == pytest.approx(3 * 0.096 * 1.5, rel=1e-3)
    assert usage.work_bytes == sum(len(data) for data in PLAINTEXTS.values())  # counted before the cleanup
    assert gcs.lookup_bucket(names.work_bucket) is None


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
    jobs.set(launcher="helm", helm=_helm(seqera_secret_name="Not A Valid Name!"))
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
    jobs.set(launcher="helm", timeout_seconds=3600, helm=_helm())
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


JOB_OUTPUTS = {"score/aggregated_scores.txt.gz": "sampleset\tIID\tPGS000001_SUM\nhapnest\ts00001\t0.42\n",
               "score/report.html": "<html><body>pgsc_calc report</body></html>\n"}


def test_a_succeeded_job_writes_its_crate_into_the_results_bucket_with_every_input_and_result_checksummed(
        jobs, seqera, aws, moto_server, airflow_db, usage_store):
    from support.crate import COMPLETED, ids, properties, read_checked

    jobs.set(storage="s3")
    body, names = _job(140)
    seqera.configure(outputs_endpoint_url=moto_server.url)  # the run publishes its results under outdir
    seqera.set_course(names.run_name, "succeed", after=1, outputs=JOB_OUTPUTS, tasks=[
        {"process": "PGSC_CALC:SCORE", "cpus": 2, "memory_gib": 4.0, "minutes": 30.0}])
    try:
        run = run_dag("job_run", **body)
    finally:
        seqera.configure(outputs_endpoint_url="")
    assert run.state == "success", task_states(run)
    assert task_states(run)["write_crate"] == "success"

    written = json.loads(aws.s3.get_object(Bucket=names.results_bucket, Key="ro-crate-metadata.json")["Body"].read())
    location, kept = usage_store.get_crate("job_run", run.run_id)
    assert location == f"s3://{names.results_bucket}/ro-crate-metadata.json" and kept == written
    crate, workflow, action = read_checked(written)
    assert workflow.get("codeRepository") == "https://github.com/pgscatalog/pgsc_calc"
    assert workflow.get("version") == "v2.0.0"
    assert ids(action.get("actionStatus")) == [COMPLETED]
    # every input as the pipeline read it: the plaintext's size and sha256, and the file it came from
    files = {e.id.rsplit("/", 1)[-1]: e for e in action.get("object") if e.type == "File"}
    assert sorted(files) == sorted(PLAINTEXTS)
    for name, data in PLAINTEXTS.items():
        assert files[name].id == f"s3://{names.work_bucket}/data/{name}"
        assert files[name].get("sha256") == hashlib.sha256(data).hexdigest()
        assert int(files[name].get("contentSize")) == len(data)
        assert f"{name}.c4gh" in files[name].get("description")
    results = {e.id: e for e in action.get("result")}
    assert sorted(results) == sorted(f"s3://{names.results_bucket}/results/{path}" for path in JOB_OUTPUTS)
    for path, text in JOB_OUTPUTS.items():
        entity = results[f"s3://{names.results_bucket}/results/{path}"]
        assert entity.get("sha256") == hashlib.sha256(text.encode()).hexdigest()
        assert int(entity.get("contentSize")) == len(text.encode())
    values = {e.get("name"): e.get("value") for e in action.get("object") if e.type == "PropertyValue"}
    assert values["outdir"] == f"s3://{names.results_bucket}/results"
    facts = properties(crate, action)
    assert (facts["executing_workspace"], facts["end_state"]) == (NS, "SUCCEEDED")
    assert facts["usage.task_count"] == 1 and facts["usage.cpu_hours"] == 1.0


def test_a_failed_job_keeps_a_crate_that_says_what_failed_though_its_buckets_are_gone(jobs, seqera, gcs, airflow_db,
                                                                                       usage_store):
    from support.crate import FAILED, ids, properties, read_checked

    body, names = _job(141)
    seqera.set_course(names.run_name, "fail", after=1, exit_status=3, error_report="Process `SCORE` failed")
    run = run_dag("job_run", **body)
    assert run.state == "failed"
    assert task_states(run)["write_crate"] == "success"
    location, kept = usage_store.get_crate("job_run", run.run_id)
    assert location == f"hatchway-store://job_run/{run.run_id}"
    crate, _, action = read_checked(kept)
    assert ids(action.get("actionStatus")) == [FAILED]
    assert "exit status 3" in action.get("error")
    assert action.get("result") in (None, [])
    assert len([e for e in action.get("object") if e.type == "File"]) == len(PLAINTEXTS)  # what it was given
    assert properties(crate, action)["end_state"] == "FAILED"
    assert gcs.lookup_bucket(names.work_bucket) is None and gcs.lookup_bucket(names.results_bucket) is None


def test_a_job_past_the_namespaces_budget_is_refused_with_the_figures_before_anything_is_made(
        jobs, seqera, gcs, airflow_db, usage_store):
    from datetime import timedelta

    from hatchway.domain.workspace import utcnow
    from support.usage import spend

    jobs.set(budget={"amount": 5.0})
    usage_store.migrate()
    now = utcnow()
    # an earlier job this month, as its record_usage recorded it
    spend(usage_store, NS, "INTP00000000001", 5.25, now - timedelta(minutes=1), dag_id="job_run")
    body, names = _job(142)
    seqera.set_course(names.run_name, "succeed", after=1)
    run = run_dag("job_run", **body)
    assert run.state == "failed" and task_states(run)["resolve"] == "failed"
    [failed] = _events(jobs, names, 1)
    assert failed["event"] == "Failed"
    assert f"workspace {NS} has used an estimated 5.25 USD of its 5.00 USD budget" in failed["trace_name"]
    assert [r for r in seqera.runs() if r["runName"] == names.run_name] == []
    assert gcs.lookup_bucket(names.work_bucket) is None and gcs.lookup_bucket(names.results_bucket) is None

    jobs.set(budget={"amount": 6.0})  # raised: the next job goes ahead
    body, names = _job(143)
    seqera.set_course(names.run_name, "succeed", after=1)
    assert run_dag("job_run", **body).state == "success"


def test_inputs_are_decrypted_into_the_work_bucket_before_the_seqera_launch(jobs, seqera, gcs, airflow_db, inputs,
                                                                            monkeypatch):
    from hatchway.domain.jobs import JobRequest
    from hatchway.hooks.seqera import SeqeraHook
    from hatchway.jobs.inputs import transfer_inputs
    from hatchway.jobs.settings import load_jobs_config

    body, names = _job(111)
    seqera.set_course(names.run_name, "succeed", after=1)
    at_launch = {}
    real_launch = SeqeraHook.launch

    def launch_seeing_the_bucket(self, **kwargs):
        # What the work bucket holds when the launch request goes out, and a retry of the
        # transfer at that moment (it must find everything done and fetch nothing).
        at_launch["objects"] = {b.name: hashlib.sha256(b.download_as_bytes()).hexdigest()
                                for b in gcs.list_blobs(names.work_bucket)}
        at_launch["input"] = kwargs["params"]["input"]
        gets, keys = inputs.gets, inputs.key_fetches
        at_launch["retry"] = transfer_inputs(load_jobs_config(), JobRequest.model_validate(body))
        at_launch["fetched"] = (inputs.gets - gets, inputs.key_fetches - keys)
        return real_launch(self, **kwargs)

    monkeypatch.setattr(SeqeraHook, "launch", launch_seeing_the_bucket)
    run = run_dag("job_run", **body)

    assert run.state == "success", task_states(run)
    assert at_launch["objects"] == {f"data/{name}": inputs.sha256(name) for name in PLAINTEXTS}
    sheet = at_launch["input"][0]
    assert {sheet["geno"], sheet["pheno"], sheet["variants"]} == {
        f"gs://{names.work_bucket}/data/{name}" for name in PLAINTEXTS}
    assert all(r["skipped"] for r in at_launch["retry"]) and at_launch["fetched"] == (0, 0)
    assert [r["runName"] for r in seqera.runs()].count(names.run_name) == 1
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        tis = {ti.task_id: ti for ti in session.query(TaskInstance).filter(
            TaskInstance.dag_id == "job_run", TaskInstance.run_id == run.run_id)}
    assert tis["transfer_inputs"].state == "success"
    assert tis["setup_buckets"].end_date <= tis["transfer_inputs"].start_date
    assert tis["transfer_inputs"].end_date <= tis["launch"].start_date


def test_a_failed_transfer_fails_the_job_before_launch_and_cleans(jobs, seqera, gcs, airflow_db, inputs):
    body, names = _job(112)
    body["globus_details"]["files"][0]["size"] += 1  # not the file the request names
    run = run_dag("job_run", **body)

    assert run.state == "failed"
    states = task_states(run)
    assert states["transfer_inputs"] == "failed" and states["launch"] == "upstream_failed", states
    events = _events(jobs, names, 3)
    assert [e["event"] for e in events] == ["Requested", "Created", "Failed"]
    assert events[-1]["trace_name"]
    assert not [r for r in seqera.runs() if r["runName"] == names.run_name]
    assert gcs.lookup_bucket(names.work_bucket) is None and gcs.lookup_bucket(names.results_bucket) is None


# --- a job with a container block: the build on Wave comes first ------------------------------

def _launch_config(seqera, run_name: str) -> str | None:
    """The configText of the Seqera launch request of ``run_name`` (None: no launch went out)."""
    launches = [json.loads(r["body"])["launch"] for r in seqera.requests() if r["route"] == "POST /workflow/launch"]
    mine = [launch for launch in launches if launch["runName"] == run_name]
    assert len(mine) <= 1
    return mine[0].get("configText", "") if mine else None


def test_a_job_with_packages_launches_with_the_image_wave_built(jobs, seqera, gcs, airflow_db, wave):
    body, names = _job(113)
    body["container"] = {"packages": ["samtools=1.19", "bcftools=1.19"]}
    seqera.set_course(names.run_name, "succeed", after=1)
    wave.set_course("succeed", after=2)
    run = run_dag("job_run", **body)

    assert run.state == "success", task_states(run)
    [received] = submitted(wave)
    assert received["body"]["packages"]["entries"] == ["bcftools=1.19", "samtools=1.19"]
    [build] = wave.builds()
    image = xcom_values(run)["build_container:return_value"]["image"]
    assert image.endswith(build["targetImage"].split("/", 1)[1])
    assert _launch_config(seqera, names.run_name) == f'process.container = "{image}"\n'
    assert [e["event"] for e in _events(jobs, names, 4)] == ["Requested", "Created", "Deployed", "Succeeded"]


def test_a_job_naming_an_image_launches_with_it_and_calls_no_wave(jobs, seqera, gcs, airflow_db, wave):
    body, names = _job(114)
    body["container"] = {"image": "quay.io/biocontainers/samtools:1.19--h50ea8bc_0"}
    seqera.set_course(names.run_name, "succeed", after=1)
    run = run_dag("job_run", **body)

    assert run.state == "success", task_states(run)
    assert wave.requests() == []
    assert _launch_config(seqera, names.run_name) == 'process.container = "quay.io/biocontainers/samtools:1.19--h50ea8bc_0"\n'


def test_a_failed_build_fails_the_job_with_its_reason_launches_nothing_and_cleans(jobs, seqera, gcs, airflow_db,
                                                                                  wave):
    body, names = _job(115)
    body["container"] = {"packages": ["samtools=9.99"]}
    wave.set_course("fail", after=1, log="error libmamba Could not solve for environment specs\n"
                                          "critical libmamba nothing provides samtools 9.99")
    run = run_dag("job_run", **body)

    assert run.state == "failed"
    states = task_states(run)
    assert states["build_container"] == "failed" and states["launch"] == "upstream_failed", states
    events = _events(jobs, names, 3)
    assert [e["event"] for e in events] == ["Requested", "Created", "Failed"]
    assert events[-1]["trace_name"].startswith("container build failed: ")
    # Wave's own reason for the build (its status answer), not "launch upstream_failed"
    assert events[-1]["trace_name"] == "container build failed: Container build did not complete successfully"
    assert _launch_config(seqera, names.run_name) is None
    assert gcs.lookup_bucket(names.work_bucket) is None and gcs.lookup_bucket(names.results_bucket) is None


def test_an_invalid_container_block_fails_the_job_before_any_wave_call(jobs, seqera, gcs, airflow_db, wave):
    body, names = _job(116)
    body["container"] = {"packages": ["samtools 1.19; rm -rf /"]}
    run = run_dag("job_run", **body)

    assert run.state == "failed"
    assert wave.requests() == [] and _launch_config(seqera, names.run_name) is None
    events = _events(jobs, names, 1)
    assert [e["event"] for e in events] == ["Failed"]
    assert events[-1]["trace_name"].startswith("resolve failed: invalid request: container")
    assert "samtools 1.19; rm -rf /" in events[-1]["trace_name"]
    assert gcs.lookup_bucket(names.work_bucket) is None and gcs.lookup_bucket(names.results_bucket) is None
