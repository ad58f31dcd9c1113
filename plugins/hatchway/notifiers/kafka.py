"""A notifier that sends a job's status message to the status topic."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseNotifier


class KafkaStatusNotifier(BaseNotifier):
    """Send ``event`` for the run named in the job's XCom (from ``resolve``) or ``run_name``.

    Usable as a task or DAG callback (``on_failure_callback=KafkaStatusNotifier(event="Failed")``)
    and from tasks (``KafkaStatusNotifier(...).notify(context)``).

    :param event: Requested, Created, Deployed, Succeeded or Failed.
    :param run_name: the run name (templated); default: ``resolve``'s XCom.
    :param trace_name: first line of the failure's report (Failed only; templated).
    :param trace_exit: exit status of the failure (Failed only).
    :param config_variable: Airflow Variable with the job settings.
    """

    template_fields: Sequence[str] = ("event", "run_name", "trace_name")

    def __init__(self, *, event: str, run_name: str | None = None, trace_name: str | None = None,
                 trace_exit: int | None = None, config_variable: str = "hatchway_jobs_config"):
        super().__init__()
        self.event = event
        self.run_name = run_name
        self.trace_name = trace_name
        self.trace_exit = trace_exit
        self.config_variable = config_variable

    def notify(self, context: Any) -> None:
        from hatchway.domain.jobs import JobEvent, JobNames, readable_job_id
        from hatchway.jobs.settings import load_jobs_config
        from hatchway.jobs.status import StatusSender, VariableStatusRecord

        config = load_jobs_config(self.config_variable)
        dag_run = context["dag_run"]
        # resolve names the run in its XCom; when resolve itself failed (a bad conf), the name
        # comes from the conf's job id if that much can be read.
        run_name = self.run_name or context["ti"].xcom_pull(task_ids="resolve", key="run_name")
        if not run_name and (job_id := readable_job_id(dag_run.conf or {})):
            run_name = JobNames(config.namespace, job_id).run_name
        if not run_name:
            self.log.warning("no readable job id in the conf of %s: no %s status sent", dag_run.run_id, self.event)
            return
        trace_name = self.trace_name
        exception = context.get("exception")
        if exception is not None and self.event == JobEvent.FAILED.value:
            # The reason, on one line: trace_name is the first line of the failure's report.
            reason = " ".join(str(exception).split())[:1000]
            trace_name = f"{trace_name}: {reason}" if trace_name else reason
        StatusSender(config, record=VariableStatusRecord(dag_run.dag_id, dag_run.run_id)).send(
            run_name, JobEvent(self.event), trace_name, self.trace_exit)
