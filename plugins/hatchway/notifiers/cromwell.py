"""A notifier that tells a backend how a ``cromwell_run`` ended, on a Kafka topic.

Set ``notify_topic`` (and ``kafka_conn_id``) in ``hatchway_cromwell_config``; without a topic
it does nothing. The message, keyed by run id, is JSON::

    {"run_id", "workspace", "state": "COMPLETE"|"EXECUTOR_ERROR"|"SYSTEM_ERROR"|"CANCELED",
     "workflow_id", "commit", "outputs", "reason"}

A retried task can send its message again: consumers take the last one per key.
"""

from __future__ import annotations

import json
from typing import Any

from airflow.sdk import BaseNotifier


class CromwellRunNotifier(BaseNotifier):
    """Send the run's end as a task callback (``on_success_callback``/``on_failure_callback``)."""

    def notify(self, context: Any) -> None:
        from hatchway.jobs.status import make_producer, produce_and_flush
        from hatchway.operators.workspace import load_cromwell_settings

        settings = load_cromwell_settings()
        if not settings.notify_topic:
            return
        message = end_message(context)
        if message is None:
            self.log.warning("the conf of %s names no run: nothing sent", context["dag_run"].run_id)
            return
        producer = make_producer(settings.kafka_conn_id)
        produce_and_flush(producer, settings.notify_topic, message["run_id"].encode(),
                          json.dumps(message, sort_keys=True).encode())
        self.log.info("run %s: %s sent to %s", message["run_id"], message["state"], settings.notify_topic)


def end_message(context: Any) -> dict[str, Any] | None:
    """What the run's tasks say of its end (None when the conf names no run)."""
    from hatchway.domain.cromwell import state as cromwell_state

    conf = context["dag_run"].conf or {}
    if not isinstance(conf.get("run_id"), str):
        return None
    ti = context["ti"]
    fetched = ti.xcom_pull(task_ids="fetch_source") or {}
    submitted = ti.xcom_pull(task_ids="submit") or {}
    event = ti.xcom_pull(task_ids="wait", key="cromwell_event") or {}
    placed = ti.xcom_pull(task_ids="place_outputs") or {}
    refused = ti.xcom_pull(task_ids="fetch_source", key="refused")
    exception = context.get("exception")
    ended = cromwell_state(event.get("cromwell_status"))
    if placed and event.get("status") == "success":
        state = "COMPLETE"
    elif event.get("status") == "aborted" or (ended is not None and ended.value in ("Aborted", "Aborting")):
        state = "CANCELED"
    elif refused or event.get("status") == "failed":
        state = "EXECUTOR_ERROR"
    elif not event and not exception and not refused:
        state = "CANCELED"  # ended before the workflow did, and nothing failed: a cancel
    else:
        state = "SYSTEM_ERROR"
    reason = refused or event.get("reason") or (" ".join(str(exception).split())[:1000] if exception else None)
    return {"run_id": conf["run_id"], "workspace": conf.get("workspace"), "state": state,
            "workflow_id": submitted.get("workflow_id"), "commit": fetched.get("commit"),
            "outputs": placed.get("outputs") or {}, "reason": None if state == "COMPLETE" else reason}
