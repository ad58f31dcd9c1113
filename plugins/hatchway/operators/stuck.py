"""Thin operators of ``run_reaper``: sweep what stuck or crashed runs left (``hatchway.jobs.stuck``)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from hatchway.operators.base import HatchwayOperator


def run_state_from(context: Any):
    """``(dag_id, run_id) -> "running" | "success" | None`` through the Task SDK (no DB access
    from the worker): None when the run failed or does not exist."""
    from hatchway.jobs.stuck import RUNNING, SUCCESS

    ti = context["ti"]

    def state(dag_id: str, run_id: str) -> str | None:
        for name, states in ((RUNNING, ["queued", "running"]), (SUCCESS, ["success"])):
            if ti.get_dr_count(dag_id=dag_id, run_ids=[run_id], states=states):
                return name
        return None

    return state


class SweepSeqeraRunsOperator(HatchwayOperator):
    """Cancel live Seqera runs of ``job_run``/``wes_run`` whose Airflow run is finished or missing.

    :param cancel: templated; false: only report.
    """

    template_fields: Sequence[str] = ("cancel",)

    def __init__(self, *, cancel: Any = True, **kwargs: Any):
        super().__init__(**kwargs)
        self.cancel = cancel

    def execute(self, context: Any) -> dict[str, Any]:
        from hatchway.hooks.seqera import SeqeraHook
        from hatchway.jobs.settings import load_jobs_config
        from hatchway.jobs.stuck import sweep_seqera
        from hatchway.operators.wes import load_wes_settings

        jobs, wes = load_jobs_config(), load_wes_settings()
        state = run_state_from(context)
        report: dict[str, Any] = {}
        # One sweep per connection: the jobs' and the front door's Seqera may differ.
        for conn_id, workspace_id in dict.fromkeys(((jobs.seqera_conn_id, None),
                                                    (wes.seqera_conn_id, wes.seqera_workspace_id))):
            hook = SeqeraHook(conn_id)
            try:
                found = sweep_seqera(hook, namespace=jobs.namespace, workspace_ids=[workspace_id], run_state=state,
                                     cancel=bool(self.cancel))
            finally:
                hook.close()
            for key, value in found.items():
                report[key] = report.get(key, 0 if isinstance(value, int) else []) + value
        return report


class SweepJobBucketsOperator(HatchwayOperator):
    """Delete GCS job buckets whose run is finished or missing, older than the grace period.

    :param grace_hours: templated; default: the run timeout plus one hour, so that no bucket of a
        run that could still be running is ever old enough.
    :param delete: templated; false: only report.
    """

    template_fields: Sequence[str] = ("grace_hours", "delete")

    def __init__(self, *, grace_hours: Any = None, delete: Any = True, **kwargs: Any):
        super().__init__(**kwargs)
        self.grace_hours, self.delete = grace_hours, delete

    def execute(self, context: Any) -> dict[str, Any]:
        from hatchway.jobs.settings import load_jobs_config
        from hatchway.jobs.stuck import run_timeout, sweep_job_buckets

        config = load_jobs_config()
        if config.storage != "gcs":
            self.log.info("job storage is %s: the bucket sweep covers GCS only", config.storage)
            return {"found": 0, "deleted": [], "orphaned": [], "kept": [], "skipped": config.storage}
        from airflow.providers.google.cloud.hooks.gcs import GCSHook

        grace = (timedelta(hours=float(self.grace_hours)) if self.grace_hours not in (None, "", "None")
                 else run_timeout() + timedelta(hours=1))
        return sweep_job_buckets(GCSHook(gcp_conn_id=config.gcp_conn_id).get_conn(), namespace=config.namespace,
                                 run_state=run_state_from(context), grace=grace, delete=bool(self.delete))
