"""Stuck runs: the run timeout, and the sweep of what a crashed or timed-out run left behind.

``job_run`` and ``wes_run`` clean up in teardowns, but a run failed by ``dagrun_timeout``
never runs them: Airflow 3.3's scheduler marks the run failed and every unfinished task,
teardowns included, ``skipped`` (``SchedulerJobRunner._schedule_dag_run``). A killed
scheduler or a purged run leaves the same. The sweep finds those leftovers by their names:

- Seqera runs named ``<namespace>-intp...`` (``job_run``) or ``wes-<32 hex>`` (``wes_run``)
  that are still live while their Airflow run is finished or gone: cancelled;
- GCS job buckets ``<namespace>-intp...-work|-results`` carrying the run label, whose run is
  failed or gone (or, for a work bucket, succeeded: ``cleanup_buckets`` should have removed
  it), older than a grace period: deleted. A succeeded job's results bucket is kept on
  purpose by ``cleanup_buckets`` and expires by its lifecycle rule: the sweep leaves it.

A run's state comes from a callable ``(dag_id, run_id) -> "running" | "success" | None``
(None: failed or missing), so the sweep is the same in a task (Task SDK calls) and in a test.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta, timezone
from typing import Any

from hatchway import metrics
from hatchway.domain.jobs import seqera_event
from hatchway.domain.limits import run_timeout  # noqa: F401  (re-exported: the sweep's backstop)
from hatchway.domain.wes import WES_DAG_ID, dag_run_id as wes_dag_run_id
from hatchway.jobs.buckets import RUN_LABEL

log = logging.getLogger(__name__)

JOB_DAG_ID = "job_run"
_WES_NAME = re.compile(r"^wes-([0-9a-f]{32})$")
_JOB_TAIL = re.compile(r"^(intp\d{1,20})$")
_BUCKET_TAIL = re.compile(r"^(intp\d{1,20})-(work|results)$")

RUNNING, SUCCESS = "running", "success"
RunState = Callable[[str, str], str | None]


def airflow_run_of(run_name: str, namespace: str) -> tuple[str, str] | None:
    """The ``(dag_id, run_id)`` a Seqera run name belongs to; None: not this deployment's."""
    wes = _WES_NAME.match(run_name)
    if wes:
        return WES_DAG_ID, wes_dag_run_id(wes.group(1))
    if run_name.startswith(f"{namespace}-"):
        tail = _JOB_TAIL.match(run_name[len(namespace) + 1:])
        if tail:
            return JOB_DAG_ID, f"job__{tail.group(1)}"
    return None


def sweep_seqera(hook: Any, *, namespace: str, workspace_ids: Iterable[int | None], run_state: RunState,
                 cancel: bool = True) -> dict[str, Any]:
    """Cancel live Seqera runs of this deployment whose Airflow run is finished or missing.

    :param hook: a :class:`hatchway.hooks.seqera.SeqeraHook`.
    :param namespace: the jobs' namespace (prefix of ``job_run``'s Seqera run names).
    :param workspace_ids: Seqera workspaces to look in (None: the connection's).
    :param run_state: an Airflow run's state (``running``: queued or running).
    :param cancel: False: only report.
    :return: ``{"live": n, "cancelled": [...], "orphaned": [...], "kept": [...]}`` (run names).
    """
    report: dict[str, Any] = {"live": 0, "cancelled": [], "orphaned": [], "kept": []}
    seen: set[tuple[int | None, str]] = set()
    for workspace_id in dict.fromkeys(workspace_ids):
        for search in ("wes-", f"{namespace}-"):
            for element in hook.iter_workflows(search, workspace_id):
                wf = (element or {}).get("workflow") or {}
                name, wf_id = wf.get("runName") or "", wf.get("id")
                event = seqera_event(wf.get("status"))
                owner = airflow_run_of(name, namespace)
                if owner is None or not wf_id or (workspace_id, wf_id) in seen or (event and event.terminal):
                    continue
                seen.add((workspace_id, wf_id))
                report["live"] += 1
                if run_state(*owner) == RUNNING:
                    report["kept"].append(name)
                    continue
                log.warning("Seqera run %r (%s) is live but Airflow run %s/%s is finished or missing",
                            name, wf_id, *owner)
                report["orphaned"].append(name)
                if cancel:
                    hook.cancel(wf_id, workspace_id)
                    report["cancelled"].append(name)
    log.info("Seqera: %d live run(s), %d orphaned, %d cancelled", report["live"], len(report["orphaned"]),
             len(report["cancelled"]))
    metrics.incr("reaper.seqera_runs_cancelled", len(report["cancelled"]))
    return report


def sweep_job_buckets(client: Any, *, namespace: str, run_state: RunState, grace: timedelta,
                      now: datetime | None = None, delete: bool = True) -> dict[str, Any]:
    """Delete GCS job buckets of this deployment whose run is finished or missing, past ``grace``.

    Only buckets named ``<namespace>-intp<digits>-work|-results`` *and* carrying the run label
    (``hatchway-run``, set by ``setup_buckets``) are considered: a bucket someone else made is
    never touched. The run is the one the label names (intake's run ids, ``job__intp...``,
    are their own label); a bucket whose run is live is kept at any age, and so is the
    results bucket of a succeeded run.

    :param client: a ``google.cloud.storage.Client`` (the google provider's ``GCSHook``).
    :param grace: minimum age of a bucket before it may be deleted.
    :param now: the current time (tests).
    :param delete: False: only report.
    :return: ``{"found": n, "deleted": [...], "orphaned": [...], "kept": [...]}`` (bucket names).
    """
    now = now or datetime.now(timezone.utc)
    report: dict[str, Any] = {"found": 0, "deleted": [], "orphaned": [], "kept": []}
    for bucket in client.list_buckets(prefix=f"{namespace}-"):
        label = (bucket.labels or {}).get(RUN_LABEL)
        tail = _BUCKET_TAIL.match(bucket.name[len(namespace) + 1:])
        if not label or not tail:
            continue
        report["found"] += 1
        created = bucket.time_created
        young = created is not None and now - created < grace
        state = None if young else run_state(JOB_DAG_ID, label)
        if young or state == RUNNING or (state == SUCCESS and tail.group(2) == "results"):
            report["kept"].append(bucket.name)
            continue
        log.warning("job bucket %s (run %s, made %s) has no live run", bucket.name, label, created)
        report["orphaned"].append(bucket.name)
        if delete:
            bucket.delete(force=True)
            report["deleted"].append(bucket.name)
    log.info("job buckets: %d found, %d orphaned, %d deleted", report["found"], len(report["orphaned"]),
             len(report["deleted"]))
    metrics.incr("reaper.job_buckets_deleted", len(report["deleted"]))
    return report
