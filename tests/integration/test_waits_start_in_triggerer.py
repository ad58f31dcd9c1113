"""A Seqera wait that starts and ends in the triggerer (``start_from_trigger``): what the
scheduler and the triggerer read of it survives serialization (the scheduler works from the
serialized DAG). The DAG is the bench's (``make bench`` runs it on Celery and counts the worker
time); the trigger's own behaviour is in ``test_seqera_trigger.py``."""

from __future__ import annotations

import importlib

import pytest

from support import REPO


def test_a_wait_started_in_the_triggerer_is_handed_over_by_the_scheduler(airflow_db):
    from airflow.dag_processing.dagbag import DagBag
    from airflow.serialization.serialized_objects import BaseSerialization, DagSerialization

    bag = DagBag(dag_folder=str(REPO / "tests" / "bench" / "dags"))
    assert not bag.import_errors, bag.import_errors
    scheduled = DagSerialization.from_dict(DagSerialization.to_dict(bag.get_dag("bench_wait_from_trigger")))
    wait = scheduled.get_task("wait")
    assert wait.start_from_trigger is True and wait.retries == 0
    args = wait.start_trigger_args
    assert args.next_method == "execute_complete"
    module, _, name = args.trigger_cls.rpartition(".")
    trigger_class = getattr(importlib.import_module(module), name)
    kwargs = BaseSerialization.deserialize(args.trigger_kwargs)  # stored encoded, as the Trigger row gets them
    # The triggerer renders the operator's template fields that are trigger arguments.
    assert kwargs["run_name"] == "{{ run_id }}" and "run_name" in wait.template_fields
    assert kwargs["end_task"] is True
    trigger = trigger_class(**kwargs)  # not rendered yet: must not refuse its templates
    assert trigger.end_task is True and trigger.run_name == "{{ run_id }}"

    deferred = DagSerialization.from_dict(DagSerialization.to_dict(bag.get_dag("bench_wait_deferred")))
    assert not deferred.get_task("wait").start_from_trigger  # today's operator: start and resume on a worker


def _triggerer_context(dag, task_id: str, conf: dict):
    """The context the triggerer builds for a task that starts there (TriggerRunner.create_runtime_ti,
    then get_template_context): from the serialized DAG and the run's data, as the scheduler sends them."""
    import datetime
    import uuid

    from airflow.executors.workloads.task import TaskInstanceDTO
    from airflow.jobs.triggerer_job_runner import TriggerRunner
    from airflow.serialization.serialized_objects import DagSerialization

    ti = TaskInstanceDTO(id=uuid.uuid4(), dag_version_id=uuid.uuid4(), task_id=task_id, dag_id=dag.dag_id,
                         run_id="manual__1", try_number=1, map_index=-1, pool_slots=1, priority_weight=1,
                         queue="default")
    now = datetime.datetime.now(datetime.timezone.utc)
    run = {"dag_id": dag.dag_id, "run_id": "manual__1", "logical_date": now, "data_interval_start": now,
           "data_interval_end": now, "run_after": now, "start_date": now, "end_date": None,
           "run_type": "manual", "state": "running", "conf": conf, "consumed_asset_events": [],
           "partition_key": None}
    runtime = TriggerRunner.create_runtime_ti(ti, DagSerialization.to_dict(dag), run)
    return runtime.get_template_context()


class _TriggererComms:
    """The triggerer's supervisor channel as a task's template render meets it: each request is
    decoded with the triggerer's own message union (``ToTriggerSupervisor``), so a request the
    triggerer cannot decode fails here instead of hanging there; XCom reads are answered from
    ``xcoms``."""

    def __init__(self, xcoms: dict[tuple[str, str], object]):
        self.xcoms = xcoms
        self.sent: list[str] = []

    def send(self, msg):
        from airflow.jobs.triggerer_job_runner import ToTriggerSupervisor
        from airflow.sdk.execution_time.comms import GetXCom, XComResult
        from airflow.sdk.serde import serialize
        from pydantic import TypeAdapter

        decoded = TypeAdapter(ToTriggerSupervisor).validate_python(msg.model_dump())
        self.sent.append(type(decoded).__name__)
        assert isinstance(decoded, GetXCom), decoded
        value = self.xcoms.get((decoded.task_id, decoded.key))
        return XComResult(key=decoded.key, value=serialize(value))


def _job_conf() -> dict:
    from support.jobs import request

    return request(7001)


def _wes_conf() -> dict:
    return {"run_id": "0" * 32, "calling": "alice", "deploying": "alice", "executing": "alice",
            "bucket": "hatchway-platform", "workflow": {"name": "hello", "version": "1.0", "engine": "nextflow"}}


@pytest.mark.parametrize("dag_id, task_id, settings_from, required, conf", [
    ("job_run", "wait_for_seqera", "jobs:hatchway_jobs_config", "globus_details", _job_conf),
    ("wes_run", "wait_for_workflow", "wes", "executing", _wes_conf),
])
def test_a_lifecycles_wait_starts_in_the_triggerer_and_its_context_builds_there(
        airflow_db, monkeypatch, dag_id, task_id, settings_from, required, conf):
    """job_run's and wes_run's waits take no worker: the scheduler hands them to the triggerer.
    Building the context there validates the DAG's required Params against the run's conf (on
    3.3.2 with per-task Param copies this raised and took the triggerer's runner down); a conf
    the DAG refuses never gets that far (the first task fails), so a valid one must build."""
    from airflow.dag_processing.dagbag import DagBag
    from airflow.sdk.definitions.param import ParamValidationError
    from airflow.serialization.serialized_objects import BaseSerialization, DagSerialization

    bag = DagBag(dag_folder=str(REPO / "dags" / f"{dag_id}.py"))
    assert not bag.import_errors, bag.import_errors
    dag = bag.get_dag(dag_id)
    wait = DagSerialization.from_dict(DagSerialization.to_dict(dag)).get_task(task_id)
    assert wait.start_from_trigger is True and wait.retries == 0
    kwargs = BaseSerialization.deserialize(wait.start_trigger_args.trigger_kwargs)
    assert kwargs["end_task"] is True and kwargs["settings_from"] == settings_from
    assert "launched_at" in kwargs["started_at"] and "{{" in kwargs["run_name"]
    assert {"run_name", "started_at"} <= set(wait.template_fields)

    good = conf()
    context = _triggerer_context(dag, task_id, good)
    assert context["params"][required] == good[required] and context["dag_run"].conf == good
    # The triggerer renders the trigger's templates with that context; XCom comes over its channel.
    module, _, name = wait.start_trigger_args.trigger_cls.rpartition(".")
    trigger = getattr(importlib.import_module(module), name)(**kwargs)
    trigger.task_instance = context["ti"]
    comms = _TriggererComms({("resolve", "run_name"): "ns-intp7001", ("launch", "launched_at"): 1765000000.5})
    monkeypatch.setattr("airflow.sdk.execution_time.task_runner.SUPERVISOR_COMMS", comms, raising=False)
    trigger.render_template_fields(context=context)
    trigger._settle()
    expected = "ns-intp7001" if dag_id == "job_run" else f"wes-{good['run_id']}"
    assert trigger.run_name == expected and trigger.started_at == 1765000000.5, comms.sent
    assert set(comms.sent) == {"GetXCom"}
    with pytest.raises(ParamValidationError, match=required):
        _triggerer_context(dag, task_id, {k: v for k, v in good.items() if k != required})


def test_an_event_the_triggerer_ended_the_wait_with_reads_back_as_the_event():
    """The scheduler pushes a TaskSuccessEvent's/TaskFailedEvent's xcoms with the core XCom model,
    which stores them JSON-encoded; a worker's pull then gets the JSON text (3.3.2). Both ways in,
    the finish task reads the event itself."""
    from airflow.models.xcom import XComModel
    from airflow.sdk.bases.xcom import BaseXCom
    from airflow.sdk.execution_time.comms import XComResult

    from hatchway.operators.seqera import wait_event

    event = {"status": "failed", "run_name": "ns-intp7002", "trace_name": "Process `SCORE` failed", "trace_exit": 12}
    from_scheduler = BaseXCom.deserialize_value(XComResult(key="seqera_event", value=XComModel.serialize_value(event)))
    from_worker = BaseXCom.deserialize_value(XComResult(key="seqera_event", value=BaseXCom.serialize_value(event)))

    class _Ti:  # what xcom_pull returns in each case
        def __init__(self, value):
            self.value = value

        def xcom_pull(self, task_ids, key):
            assert (task_ids, key) == ("wait_for_seqera", "seqera_event")
            return self.value

    assert isinstance(from_scheduler, str) and from_worker == event  # Airflow's own behaviour, as found
    assert wait_event(_Ti(from_scheduler), "wait_for_seqera") == event
    assert wait_event(_Ti(from_worker), "wait_for_seqera") == event
    assert wait_event(_Ti(None), "wait_for_seqera") == {}
