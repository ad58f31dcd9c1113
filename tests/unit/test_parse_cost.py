"""The parse-time shortcuts of :class:`hatchway.operators.base.HatchwayOperator` (``params`` left
out of the serialized fields; a task keeps no copy of the DAG's Params) and of
:func:`hatchway.dag_defaults.shared_schema_param` change nothing that a run sees and nothing the
dag-processor writes but the tasks' copies of the DAG's Params, and do skip the work they are
there to skip."""

from __future__ import annotations

import pytest

from support import _dagbag


@pytest.fixture(scope="module")
def dags():
    return _dagbag().dags


def _serialized(dag) -> dict:
    from airflow.serialization.serialized_objects import DagSerialization

    return DagSerialization.to_dict(dag)  # what the dag-processor stores (processor._serialize_dags)


def test_every_task_of_every_dag_is_a_hatchway_operator_or_airflows_own(dags):
    from hatchway.operators.base import HatchwayOperator

    ours = [t for d in dags.values() for t in d.tasks if type(t).__module__.startswith("hatchway")]
    assert ours, "no Hatchway operator in the DAGs"
    assert [t.task_id for t in ours if not isinstance(t, HatchwayOperator)] == []


def test_the_serialized_dags_are_what_airflows_own_serialization_makes(dags, monkeypatch):
    from airflow.sdk import BaseOperator

    from hatchway.operators.base import HatchwayOperator

    ours = {dag_id: _serialized(dag) for dag_id, dag in dags.items()}
    monkeypatch.setattr(HatchwayOperator, "get_serialized_fields",
                        classmethod(lambda cls: BaseOperator.get_serialized_fields.__func__(cls)))
    stock = {dag_id: _serialized(dag) for dag_id, dag in dags.items()}
    assert ours.keys() == stock.keys() and len(ours) >= 12
    for dag_id in ours:
        assert ours[dag_id] == stock[dag_id], dag_id
    # The DAG keeps its Params; its tasks keep no copy of them.
    dag = ours["wes_run"]["dag"]
    assert len(dag["params"]) >= 5
    assert [t["__var"].get("params") for t in dag["tasks"]] == [None] * len(dag["tasks"])


def test_a_tasks_context_still_has_every_param_of_the_dag(dags):
    import copy

    from airflow.sdk.definitions.param import process_params

    from support.jobs import request

    conf = request(7)
    # process_params resolves the DAG's own Param objects (a task keeps no copy): on copies, so
    # that the DAGs other tests of this process read keep no value of this conf.
    copies = {dag_id: copy.deepcopy(dags[dag_id]) for dag_id in ("job_run", "wes_run", "workspace_provision")}
    for dag_id, dag in copies.items():
        assert dag.params, dag_id
        for task in dag.tasks:
            assert not set(task.params) & set(dag.params), (dag_id, task.task_id)
            if dag_id == "job_run":  # the context a run's task gets: DAG Params, task Params, conf
                params = process_params(dag, task, conf, suppress_exception=False)
                assert set(params) == set(dag.params) | set(conf), task.task_id
                assert params["pipeline_param"] == conf["pipeline_param"]
    bad = {**conf, "pipeline_param": {**conf["pipeline_param"], "id": "not an id"}}
    with pytest.raises(Exception, match="does not match|is not valid"):
        process_params(copies["job_run"], copies["job_run"].tasks[0], bad, suppress_exception=False)
    assert not dags["job_run"].params.get_param("secret_key_details").has_value  # the shared DAG untouched


def test_job_runs_request_schemas_are_shared_by_every_copy_read_only_and_serialize_as_plain_params(dags):
    import copy

    from airflow.sdk import Param
    from airflow.serialization.serialized_objects import DagSerialization

    dag = dags["job_run"]
    param = dag.params.get_param("pipeline_param")
    copied = copy.deepcopy(dag.params).get_param("pipeline_param")
    assert copied is not param and copied.schema is param.schema
    with pytest.raises(TypeError, match="read-only"):
        param.schema["properties"]["id"] = {}
    plain = Param(param.value, description=param.description, **copy.deepcopy(dict(param.schema)))
    assert type(plain.schema) is dict
    assert DagSerialization._serialize_param(param) == DagSerialization._serialize_param(plain)


def test_serializing_a_dag_resolves_no_param(dags, monkeypatch):
    from airflow.sdk.definitions.param import Param

    resolved = []
    original = Param.resolve

    def counting(self, *args, **kwargs):
        resolved.append(self)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Param, "resolve", counting)
    for dag_id in ("job_run", "wes_run", "cromwell_run", "workspace_provision"):
        _serialized(dags[dag_id])
    assert resolved == []
