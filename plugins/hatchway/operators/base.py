"""The base of every Hatchway operator: Airflow's ``BaseOperator``, cheaper to parse and store.

The dag-processor builds and serializes every task of a DAG at every parse. Two things Airflow
3.3 does there cost Hatchway's DAGs most of their parse time, for nothing:

- Every task gets a deep copy of the DAG's Params (``get_merged_defaults``), and the serializer
  writes that copy into the task (``_serialize_node``: ``params``), schema and all. ``job_run``
  carries the request's JSON schemas, 4.5 kB, into each of its 9 tasks: 90% of its serialized
  DAG. Nothing reads a task's copy of a DAG Param: a task's context is built from the DAG's
  Params, then the task's own, then the run's conf (``process_params``), and the DAG parsed on
  the worker has its Params. So a Hatchway task keeps only the Params given to the task itself.
- Before writing ``params`` itself, the serializer takes each name of ``get_serialized_fields()``
  through ``_is_excluded`` and ``serialize``; for ``params`` each resolves every Param with a
  default through jsonschema, and the result is then replaced. Leaving ``params`` out of the
  fields skips that (Airflow's own sensors change these fields the same way).

``tests/unit/test_parse_cost.py`` checks both: every DAG serializes as Airflow's own
serialization would, but for the tasks' copies of the DAG's Params, and a task's context
still has every Param.
"""

from __future__ import annotations

from airflow.sdk import BaseOperator
from airflow.sdk.definitions.param import ParamsDict


class HatchwayOperator(BaseOperator):
    """``BaseOperator`` that keeps only its own Params and serializes them once."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        params = self.params
        if isinstance(params, ParamsDict) and params:
            # The copies of the DAG's Params are marked source="dag" by get_merged_defaults.
            self.params = ParamsDict({key: params.get_param(key) for key in params
                                      if getattr(params.get_param(key), "source", None) != "dag"})

    @classmethod
    def get_serialized_fields(cls):
        return super().get_serialized_fields() - {"params"}
