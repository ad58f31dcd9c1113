"""Airflow listeners of the Hatchway plugin: count the teardowns that fail.

A teardown that fails (a bucket not deleted, a workflow not aborted) is where leftovers come
from; ``hatchway.teardown.failures.<dag_id>.<task_id>`` lets an operator alert on it. Only
Hatchway's DAGs are counted (tagged ``hatchway``). Listeners run in the task's process.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk._shared.listeners import hookimpl

from hatchway import metrics


class TeardownListener:
    @hookimpl
    def on_task_instance_failed(self, previous_state: Any, task_instance: Any, error: Any) -> None:
        task = getattr(task_instance, "task", None)
        if task is None or not getattr(task, "is_teardown", False):
            return
        dag = getattr(task, "dag", None)
        if dag is not None and "hatchway" not in (getattr(dag, "tags", None) or ()):
            return
        metrics.incr("teardown.failures", dag_id=task_instance.dag_id, task_id=task_instance.task_id)
