"""The parse-time shortcut of :class:`hatchway.operators.base.HatchwayOperator` (``params`` left
out of the serialized fields) changes nothing that the dag-processor writes, and does skip the
Param resolving it is there to skip."""

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
    # Every task still carries its copy of the DAG's Params.
    dag = ours["wes_run"]["dag"]
    assert len(dag["params"]) >= 5
    assert [dict(t["__var"]["params"]).keys() for t in dag["tasks"]] == [dict(dag["params"]).keys()] * len(dag["tasks"])


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
