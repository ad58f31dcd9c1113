"""Status messages of job_run on the Kafka mock cluster: a bad conf is refused by the Params or
ends in one Failed with its reason, and every state goes out once, in order, across task
retries and a lost delivery report."""

from __future__ import annotations

import copy
import json

import pytest
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage

from hatchway.domain.jobs import JobEvent, JobNames, JobPlatformConfig
from support import _dagbag, run_dag, run_dag_retrying, task_states
from support.jobs import EXAMPLE, request
from support.transfer import KEY_HANDLER_TOKEN, SOURCE_TOKEN, InputsStandIn

NS = "hwtest"
OUTAGE_SECONDS = 30
PLAINTEXTS = {"hapnest.psam": b"#IID\tSEX\ns1\t1\n", "hapnest.pvar": b"#CHROM\tPOS\tID\tREF\tALT\n1\t1\trs1\tA\tG\n",
              "hapnest.pgen": bytes(range(256))}


@pytest.fixture(scope="module")
def inputs():
    """The example request's Globus folder with real Crypt4GH files, and its key handler."""
    stand_in = InputsStandIn(EXAMPLE["globus_details"]["dir_path_on_guest_collection"], PLAINTEXTS)
    yield stand_in
    stand_in.close()


@pytest.fixture
def transfer(jobs, inputs, monkeypatch):
    """job_run's inputs come from the stand-in; the credentials from the transfer connection."""
    jobs.set(helm={"seqera_secret_name": "seqera-credentials", "globus_base_url": inputs.collection.url,
                   "key_handler_url": f"{inputs.key_handler.url}/keys"})
    monkeypatch.setenv("AIRFLOW_CONN_HATCHWAY_TRANSFER", json.dumps({"conn_type": "generic", "extra": {
        "source_token": SOURCE_TOKEN, "key_handler_token": KEY_HANDLER_TOKEN}}))


@pytest.fixture
def gcs(gcs_emulator, monkeypatch):
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_emulator.url)
    return storage.Client(project=gcs_emulator.project, credentials=AnonymousCredentials())


def _fail_once_after(monkeypatch, owner, method: str, when=lambda *a, **k: True):
    """``owner.method`` does its real work, then raises the first time ``when`` holds for its arguments."""
    original = getattr(owner, method)
    calls = {"failed": 0}

    def work_then_fail(*args, **kwargs):
        result = original(*args, **kwargs)
        if not calls["failed"] and when(*args, **kwargs):
            calls["failed"] += 1
            raise RuntimeError(f"fault injected after {method}")
        return result

    monkeypatch.setattr(owner, method, work_then_fail)
    return calls


def _events(jobs, run_name: str, expect: int) -> list[dict]:
    return [s for s in jobs.statuses(expect=expect) if s["run_name"] == run_name]


# -- item: the trigger form is the request's JSON schema ------------------------------------------

@pytest.mark.parametrize(("what", "change"), [
    ("filename without .c4gh", lambda b: b["globus_details"]["files"][0].update(filename="hapnest.pgen")),
    ("an unknown field", lambda b: b["pipeline_param"].update(queue="someone-elses")),
    ("a job id that is not INTP", lambda b: b["pipeline_param"].update(id="JOB513")),
    ("a size of 0", lambda b: b["globus_details"]["files"][0].update(size=0)),
    ("a build that is not GRCh37/38", lambda b: b["pipeline_param"]["nxf_params_file"].update(target_build="hg19")),
    ("a secret id that is not a UUID4", lambda b: b["secret_key_details"].update(secret_id="not-a-uuid")),
    ("the reserved sampleset", lambda b: b["pipeline_param"]["target_genomes"][0].update(sampleset="reference")),
    ("no secret key details", lambda b: b.pop("secret_key_details")),
])
def test_job_run_params_refuse_a_bad_conf_before_a_run_exists(what, change, airflow_db):
    from airflow.sdk.exceptions import ParamValidationError

    dag = _dagbag().get_dag("job_run")

    def validate(conf: dict) -> dict:
        # What Airflow does with a trigger's conf before it makes the run.
        params = copy.deepcopy(dag.params)
        for name, value in conf.items():
            params[name] = value
        return params.validate()

    assert validate(copy.deepcopy(EXAMPLE))["pipeline_param"]["id"] == "INTP00000000513"
    bad = copy.deepcopy(EXAMPLE)
    change(bad)
    with pytest.raises(ParamValidationError):
        validate(bad)


def test_bad_conf_with_a_readable_job_id_sends_one_failed_with_the_reason(jobs, gcs, airflow_db):
    body = request(201)
    names = JobNames(NS, body["pipeline_param"]["id"])
    # Right in every field (the Params pass it), wrong across them: the genome is not transferred.
    body["pipeline_param"]["target_genomes"][0].update(geno="other.pgen", pheno="other.psam", variants="other.pvar")
    run = run_dag("job_run", **body)
    assert run.state == "failed"
    assert task_states(run)["resolve"] == "failed"
    events = _events(jobs, names.run_name, 1)
    assert [e["event"] for e in events] == ["Failed"]
    assert events[0]["trace_name"].startswith("resolve failed: invalid request:")
    assert "no matching .c4gh file" in events[0]["trace_name"] and events[0]["trace_exit"] is None
    assert gcs.lookup_bucket(names.work_bucket) is None


# -- item: each state once, in order ---------------------------------------------------------------

def test_a_lost_delivery_report_then_a_retry_sends_each_state_once(jobs, seqera, gcs, inputs, transfer, airflow_db,
                                                                   monkeypatch):
    import hatchway.jobs.status as status

    body = request(202)
    body["globus_details"]["files"] = inputs.files()  # the encrypted sizes of the stand-in's files
    names = JobNames(NS, body["pipeline_param"]["id"])
    seqera.set_course(names.run_name, "succeed", after=1)
    # Requested reaches the broker, but its delivery report is lost: the try fails, the retry
    # finds "sending" and must find the message on the topic instead of sending it again.
    fault = _fail_once_after(monkeypatch, status, "produce_and_flush",
                             when=lambda producer, topic, key, value, *a, **k: b'"Requested"' in value)
    run = run_dag_retrying("job_run", **body)
    assert fault["failed"] == 1
    assert run.state == "success", task_states(run)
    assert [e["event"] for e in _events(jobs, names.run_name, 4)] == ["Requested", "Created", "Deployed",
                                                                      "Succeeded"]


def test_a_task_retry_after_its_sends_sends_nothing_twice(jobs, seqera, gcs, inputs, transfer, airflow_db,
                                                       monkeypatch):
    from hatchway.operators.jobs import JobOperator

    body = request(203)
    body["globus_details"]["files"] = inputs.files()  # the encrypted sizes of the stand-in's files
    names = JobNames(NS, body["pipeline_param"]["id"])
    seqera.set_course(names.run_name, "succeed", after=1)
    # resolve sends Requested and Created, then fails: its retry (a new try, as in a new
    # process) reads the run's record and sends neither again.
    fault = _fail_once_after(monkeypatch, JobOperator, "send", when=lambda self, context, event, *a: event == "Created")
    run = run_dag_retrying("job_run", **body)
    assert fault["failed"] == 1
    assert run.state == "success", task_states(run)
    assert [e["event"] for e in _events(jobs, names.run_name, 4)] == ["Requested", "Created", "Deployed",
                                                                      "Succeeded"]


def test_a_thirty_second_broker_outage_while_a_run_sends_its_states_delays_them_and_doubles_none(
        jobs, seqera, gcs, inputs, transfer, kafka_cluster, airflow_db, monkeypatch):
    import os
    import signal
    import threading
    import time

    from hatchway.jobs.status import StatusSender

    body = request(205)
    body["globus_details"]["files"] = inputs.files()
    names = JobNames(NS, body["pipeline_param"]["id"])
    seqera.set_course(names.run_name, "succeed", after=1)
    # The broker stops answering (its process stopped, connections open) just before Created is
    # sent, and comes back 30 s later: the send waits for it (status_send_timeout_seconds), the
    # task does not fail, and nothing is sent twice.
    original, outage = StatusSender.send, {}

    def send_into_an_outage(self, run_name, event, *args, **kwargs):
        if event is JobEvent.CREATED and not outage:
            os.kill(kafka_cluster.process.pid, signal.SIGSTOP)
            outage["timer"] = threading.Timer(OUTAGE_SECONDS, os.kill, (kafka_cluster.process.pid, signal.SIGCONT))
            outage["timer"].start()
            outage["started"] = time.monotonic()
        return original(self, run_name, event, *args, **kwargs)

    monkeypatch.setattr(StatusSender, "send", send_into_an_outage)
    try:
        run = run_dag("job_run", **body)
    finally:
        if outage:
            outage["timer"].join()
            os.kill(kafka_cluster.process.pid, signal.SIGCONT)
    assert outage, "Created was never sent"
    assert run.state == "success", task_states(run)
    assert time.monotonic() - outage["started"] >= OUTAGE_SECONDS
    assert [e["event"] for e in _events(jobs, names.run_name, 4)] == ["Requested", "Created", "Deployed",
                                                                      "Succeeded"]


class _Record:
    """The record protocol over a dict, for the sender alone (the DAG tests use the Airflow one)."""

    def __init__(self):
        self.value = None

    def load(self):
        return copy.deepcopy(self.value)

    def save(self, record):
        self.value = copy.deepcopy(record)


def test_a_state_out_of_order_is_refused(jobs):
    from confluent_kafka import Producer

    from hatchway.jobs.status import StatusSender

    config = JobPlatformConfig(**jobs.config)
    record = _Record()
    sender = StatusSender(config, Producer({"bootstrap.servers": jobs.bootstrap, "enable.idempotence": True}),
                          record=record)
    assert sender.send("hwtest-intp00000000204", JobEvent.REQUESTED) is not None
    assert sender.send("hwtest-intp00000000204", JobEvent.SUCCEEDED) is not None
    assert sender.send("hwtest-intp00000000204", JobEvent.DEPLOYED) is None  # after Succeeded: refused
    assert sender.send("hwtest-intp00000000204", JobEvent.FAILED, trace_name="late") is None
    assert sender.send("hwtest-intp00000000204", JobEvent.SUCCEEDED) is None  # once only
    assert [s["event"] for s in jobs.statuses(expect=2)] == ["Requested", "Succeeded"]
    assert record.value == {"sent": ["Requested", "Succeeded"], "sending": None}
