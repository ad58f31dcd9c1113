"""What every lifecycle's ``record_usage`` teardown does once it has measured its run.

Imported inside ``execute`` only (nothing here is read when a DAG file is parsed).
"""

from __future__ import annotations

from typing import Any

# record_usage -> write_crate: what the engine said of the run, so the crate asks it nothing again.
XCOM_ENGINE_RUN = "engine_run"


def record(context: Any, log: Any, usage: Any, seen: dict[str, Any], *, run_id: str, executing: str,
           calling: str | None, cost_center: str | None, budget: Any = None) -> dict[str, Any]:
    """Record the usage in the store, send the budget notice it may bring, hand the engine's
    facts to ``write_crate`` (XCom ``engine_run``), log one line, and return the usage for XCom."""
    from hatchway.usage.runs import record_run_usage, usage_line

    notice = record_run_usage(usage, seen, dag_id=context["dag"].dag_id, dag_run_id=context["run_id"],
                              run_id=run_id, executing=executing, calling=calling, cost_center=cost_center,
                              budget=budget)
    if notice is not None:
        from hatchway.notifiers.channels import dispatch

        dispatch(notice)
    context["ti"].xcom_push(key=XCOM_ENGINE_RUN, value=seen.get("workflow") or {})
    log.info(usage_line(run_id, usage, seen["state"]))
    return usage.model_dump(mode="json")
