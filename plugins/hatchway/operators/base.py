"""The base of every Hatchway operator: Airflow's ``BaseOperator``, cheaper to serialize.

The dag-processor serializes every task of a DAG at every parse. Airflow 3.3's serializer
takes each name of ``get_serialized_fields()`` through ``_is_excluded`` and ``serialize``; for
``params`` (the task's copy of the DAG's Params) that compares the copy with ``{}`` and then
stringifies it, and each of the two resolves every Param that has a default through jsonschema,
which checks the schema against its metaschema again every time. ``_serialize_node`` then writes
``params`` itself from the Param objects, replacing what that work made. Leaving ``params``
out of the fields skips the work and changes nothing in the serialized DAG (checked for every
DAG in ``tests/unit/test_parse_cost.py``); it was most of the parse time of the DAGs with Params.
Airflow's own sensors change these fields the same way.
"""

from __future__ import annotations

from airflow.sdk import BaseOperator


class HatchwayOperator(BaseOperator):
    """``BaseOperator`` whose serialization does not resolve its Params twice for nothing."""

    @classmethod
    def get_serialized_fields(cls):
        return super().get_serialized_fields() - {"params"}
