"""What each lifecycle's end says, as a :class:`~hatchway.domain.notify.Notice`.

The builders ``NoticeNotifier`` calls from a task callback (see the DAG files): each reads the
run's XComs and task states, never a secret, and returns None when the conf names no run.
"""

from __future__ import annotations

from typing import Any

from hatchway.domain.notify import Notice


def _states(context: Any) -> dict[str, str]:
    ti = context["ti"]
    return ti.get_task_states(dag_id=ti.dag_id, run_ids=[ti.run_id]).get(ti.run_id, {})


def _build_failure(context: Any) -> dict[str, Any] | None:
    from hatchway.operators.container import TASK_BUILD, XCOM_FAILURE

    return context["ti"].xcom_pull(task_ids=TASK_BUILD, key=XCOM_FAILURE)


def container_build_notice(context: Any) -> Notice | None:
    """A ``build_container`` task's end: the image and duration, or the reason and the log's last lines."""
    from hatchway.operators.container import TASK_BUILD

    ti, conf = context["ti"], context["dag_run"].conf or {}
    built = ti.xcom_pull(task_ids=TASK_BUILD) if context.get("exception") is None else None
    if built is None and context.get("exception") is None:
        return None  # a run that asked for no container
    failure = _build_failure(context) or {}
    workspace = (built or failure).get("workspace") or conf.get("workspace") or conf.get("executing") or "unknown"
    if built:
        return Notice(kind="container_build", workspace=workspace, run_id=context["dag_run"].run_id, state="DONE",
                      ok=True, details={k: built.get(k) for k in ("image", "duration_seconds", "build_id", "source",
                                                                  "packages", "platform", "name")})
    reason = failure.get("reason") or " ".join(str(context.get("exception")).split())[:500]
    return Notice(kind="container_build", workspace=workspace, run_id=context["dag_run"].run_id, state="FAILED",
                  ok=False, details={"reason": reason, "build_id": failure.get("build_id"),
                                     "duration_seconds": failure.get("duration_seconds"),
                                     "packages": failure.get("packages"), "name": failure.get("name")},
                  log_tail=failure.get("log_tail") or [])


def job_run_notice(context: Any) -> Notice | None:
    """``job_run``'s end, from ``finish``'s outcome: Succeeded, or Failed with its trace."""
    from hatchway.domain.jobs import readable_job_id
    from hatchway.jobs.settings import load_jobs_config
    from hatchway.operators.jobs import OUTCOME_KEY

    conf = context["dag_run"].conf or {}
    job_id = readable_job_id(conf)
    if not job_id:
        return None
    outcome = context["ti"].xcom_pull(task_ids="finish", key=OUTCOME_KEY) or {"event": "Failed"}
    ok = outcome.get("event") == "Succeeded"
    failure = _build_failure(context) or {}
    built = context["ti"].xcom_pull(task_ids="build_container") or {}
    return Notice(kind="job_run", workspace=load_jobs_config().namespace, run_id=job_id,
                  state=outcome.get("event", "Failed"), ok=ok,
                  details={"reason": None if ok else outcome.get("trace_name"), "exit": outcome.get("trace_exit"),
                           "image": built.get("image")},
                  log_tail=[] if ok else failure.get("log_tail") or [])


def wes_run_notice(context: Any) -> Notice | None:
    """``wes_run``'s end: COMPLETE when the outputs were harvested; else how it stopped."""
    from hatchway.domain.wes import TASK_HARVEST, TASK_LAUNCH, TASK_WAIT
    from hatchway.operators.container import TASK_BUILD

    conf = context["dag_run"].conf or {}
    if not isinstance(conf.get("run_id"), str):
        return None
    states = _states(context)
    failure = _build_failure(context) or {}
    if states.get(TASK_HARVEST) == "success":
        state, reason = "COMPLETE", None
    elif states.get(TASK_BUILD) == "failed":
        state, reason = "EXECUTOR_ERROR", f"container build failed: {failure.get('reason')}"
    elif states.get(TASK_WAIT) == "failed":
        state, reason = "EXECUTOR_ERROR", "the workflow failed"
    elif "skipped" in states.values() or not any(s in ("failed", "upstream_failed") for s in states.values()):
        state, reason = "CANCELED", "cancelled"
    else:
        failed = sorted(t for t, s in states.items() if s == "failed")
        state, reason = "SYSTEM_ERROR", f"{failed[0] if failed else TASK_LAUNCH} failed"
    built = context["ti"].xcom_pull(task_ids=TASK_BUILD) or {}
    return Notice(kind="wes_run", workspace=conf.get("calling") or "unknown", run_id=conf["run_id"], state=state,
                  ok=state == "COMPLETE",
                  details={"workflow": (conf.get("workflow") or {}).get("name"), "executing": conf.get("executing"),
                           "reason": reason, "image": built.get("image")},
                  log_tail=failure.get("log_tail") or [] if state != "COMPLETE" else [])


def cromwell_run_notice(context: Any) -> Notice | None:
    """``cromwell_run``'s end, as its Kafka message says it (:func:`hatchway.notifiers.cromwell.end_message`)."""
    from hatchway.notifiers.cromwell import end_message

    message = end_message(context)
    if message is None:
        return None
    return Notice(kind="cromwell_run", workspace=message.get("workspace") or "unknown", run_id=message["run_id"],
                  state=message["state"], ok=message["state"] == "COMPLETE",
                  details={k: message.get(k) for k in ("workflow_id", "commit", "outputs", "reason")})
