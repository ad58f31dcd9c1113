"""A Seqera wait that starts and ends in the triggerer (``start_from_trigger``): what the
scheduler and the triggerer read of it survives serialization (the scheduler works from the
serialized DAG). The DAG is the bench's (``make bench`` runs it on Celery and counts the worker
time); the trigger's own behaviour is in ``test_seqera_trigger.py``."""

from __future__ import annotations

import importlib

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
