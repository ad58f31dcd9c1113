"""The parse bench's second baseline (``tests/support/airflow_twin.py``) is each DAG's own shape:
the twin parses into a DAG with the same tasks, trigger rules, dependencies, setups and
teardowns, Params and DAG arguments, in Airflow's own operators only."""

from __future__ import annotations

import json

import pytest

from support import _dagbag
from support.airflow_twin import twin_source


@pytest.fixture(scope="module")
def pairs(tmp_path_factory):
    from airflow.dag_processing.dagbag import DagBag

    folder = tmp_path_factory.mktemp("twins")
    ours = _dagbag().dags
    for dag_id, dag in ours.items():
        (folder / f"{dag_id}__twin.py").write_text(twin_source(dag))
    twins = DagBag(dag_folder=str(folder))
    assert not twins.import_errors, twins.import_errors
    return [(dag, twins.dags[f"{dag_id}__airflow_twin"]) for dag_id, dag in ours.items()]


def _shape(dag) -> dict:
    return {
        "tasks": [(t.task_id, getattr(t.trigger_rule, "value", t.trigger_rule), t.is_setup, t.is_teardown, bool(t.on_failure_fail_dagrun),
                   sorted(t.downstream_task_ids)) for t in dag.tasks],
        "params": {name: (dag.params.get_param(name).value if dag.params.get_param(name).has_value else None,
                          dag.params.get_param(name).description,
                          json.loads(json.dumps(dict(dag.params.get_param(name).schema))))
                   for name in dag.params},
        "args": (dag.catchup, dag.max_active_runs, dag.dagrun_timeout, dict(dag.default_args), sorted(dag.tags),
                 dag.doc_md),
    }


def test_every_dag_has_a_twin_of_its_shape_in_airflows_own_operators(pairs):
    assert len(pairs) >= 12
    for ours, twin in pairs:
        assert _shape(twin) == _shape(ours), ours.dag_id
        assert {type(t).__name__ for t in twin.tasks} == {"EmptyOperator"}, ours.dag_id


def test_the_twins_keep_the_setups_teardowns_and_params_that_cost_parse_time(pairs):
    twins = {ours.dag_id: twin for ours, twin in pairs}
    job = twins["job_run"]
    assert {t.task_id for t in job.tasks if t.is_teardown} >= {"finish", "stop_launch", "record_usage", "write_crate",
                                                                "cleanup_buckets"}
    assert [t.task_id for t in job.tasks if t.is_setup] == ["setup_buckets"]
    assert job.get_task("finish").on_failure_fail_dagrun
    assert len(twins["wes_run"].params) >= 10
    assert "properties" in job.params.get_param("pipeline_param").schema
