"""Wait for a Seqera Platform run (deferrable), and cancel one for teardown.

Thin on purpose: the waiting lives in :class:`hatchway.triggers.seqera.SeqeraRunTrigger`,
the API in :class:`hatchway.hooks.seqera.SeqeraHook`.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import conf
from airflow.sdk.exceptions import AirflowFailException

from hatchway.hooks.seqera_settings import DEFAULT_PAGE_SIZE, SEQERA_CONN_ID, SEQERA_EVENT_XCOM
from hatchway.operators.base import HatchwayOperator

if TYPE_CHECKING:
    from airflow.sdk import Context

    from hatchway.triggers.seqera import SeqeraRunTrigger

# The hook and trigger (httpx, the poller) load when a task runs, not when a DAG file is
# parsed: parse time is a tracked figure.

XCOM_KEY = SEQERA_EVENT_XCOM
TRIGGER_CLASSPATH = "hatchway.triggers.seqera.SeqeraRunTrigger"
LAUNCHED_AT_XCOM = "launched_at"


def mark_launched(context: Any) -> None:
    """Record when the launch task put the run in (XCom ``launched_at``): the wait's not-started
    clock counts from it, so a wait that starts again (a restarted triggerer) keeps its clock."""
    context["ti"].xcom_push(key=LAUNCHED_AT_XCOM, value=time.time())


def wait_event(ti: Any, task_id: str) -> dict[str, Any]:
    """The Seqera wait's event from XCom (``seqera_event``); ``{}`` when there is none.

    A wait that ended in the triggerer (``start_from_trigger``) had its event pushed by the
    scheduler, which on Airflow 3.3.2 stores it JSON-encoded (``XComModel.set`` dumps it; a
    worker's push stores the value itself), so it comes back as its JSON text: decoded here.
    """
    value = ti.xcom_pull(task_ids=task_id, key=XCOM_KEY)
    if isinstance(value, str):
        value = json.loads(value)
    return value or {}


def xcom_template(task_id: str, key: str) -> str:
    """A template that pulls one XCom, also where the triggerer renders it (``start_from_trigger``).

    ``map_indexes=-1`` makes the pull one ``GetXCom``; without it Airflow 3.3 asks for every map
    index (``GetXComSequenceSlice``), which the triggerer's supervisor cannot decode: the render
    then waits for an answer that never comes and the wait never starts.
    """
    return f"{{{{ ti.xcom_pull(task_ids='{task_id}', key='{key}', map_indexes=-1) }}}}"


def launched_at_template(launch_task_id: str) -> str:
    """``started_at`` for a wait: the launch task's ``launched_at`` (rendered "None" if missing: now)."""
    return xcom_template(launch_task_id, LAUNCHED_AT_XCOM)


class SeqeraRunFailed(AirflowFailException):
    """The run failed, was cancelled, timed out, or Seqera refused the token.

    A fail exception: retrying the wait would only see the same end. ``event`` is the
    trigger's event (also in XCom under ``seqera_event``) for notify and teardown tasks.
    """

    def __init__(self, event: dict[str, Any]):
        super().__init__(event.get("reason") or f"Seqera run {event.get('run_name')!r} failed")
        self.event = event


class WaitForSeqeraOperator(HatchwayOperator):
    """Wait until a Seqera run succeeds (return its event) or fails (raise :class:`SeqeraRunFailed`).

    The event goes to XCom under ``seqera_event`` either way, before the task ends, so a
    downstream notifier reads ``trace_exit`` / ``trace_name`` even when this task failed.

    :param run_name: the Seqera run name (templated).
    :param workspace_id: Seqera workspace (templated; default: the connection's).
    :param seqera_conn_id: Airflow connection of the Seqera API.
    :param poll_interval: seconds between list calls (shared by every run in the workspace).
    :param timeout_seconds: fail when the run has not started this long after ``started_at``.
    :param deployed_timeout_seconds: fail when the run has not ended this long after it started.
    :param started_at: epoch seconds the not-started clock counts from (templated; default:
        when this task first executes), e.g. the launch task's time.
    :param search_prefix: shared prefix of this deployment's run names (templated), sent as
        Seqera's ``search`` to list fewer pages.
    :param page_size: ``max`` of each list call.
    :param deferrable: wait in the triggerer (default from ``[operators] default_deferrable``);
        otherwise the same trigger runs inside this worker.
    :param start_from_trigger: start in the triggerer and end there (Airflow 3's
        ``start_from_trigger``): the scheduler hands the wait straight to the triggerer, which
        renders the template fields, waits, pushes the event to XCom and ends the task, so the
        wait takes no worker slot and no worker time at all. The wait's settings are fixed when
        the DAG is parsed (or read by the trigger: ``settings_from``); retries are off
        (a failed run is final, see :class:`SeqeraRunFailed`). Where Airflow runs ``execute``
        anyway (``dag.test``), the task defers as with ``deferrable``.
    :param settings_from: with ``start_from_trigger``: the trigger reads the connection,
        interval, timeouts and search prefix from a lifecycle's settings when it starts
        (``"jobs"``, ``"wes"``, see :class:`~hatchway.triggers.seqera.SeqeraRunTrigger`).
    """

    template_fields: Sequence[str] = ("run_name", "workspace_id", "started_at", "search_prefix")
    ui_color = "#e6f0ff"

    def __init__(
        self,
        *,
        run_name: str,
        workspace_id: int | str | None = None,
        seqera_conn_id: str = SEQERA_CONN_ID,
        poll_interval: float = 60.0,
        timeout_seconds: float = 3600.0,
        deployed_timeout_seconds: float = 172_800.0,
        started_at: float | str | None = None,
        search_prefix: str | None = None,
        page_size: int = DEFAULT_PAGE_SIZE,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        start_from_trigger: bool = False,
        settings_from: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.run_name = run_name
        self.workspace_id = workspace_id
        self.seqera_conn_id = seqera_conn_id
        self.poll_interval = poll_interval
        self.timeout_seconds = timeout_seconds
        self.deployed_timeout_seconds = deployed_timeout_seconds
        self.started_at = started_at
        self.search_prefix = search_prefix
        self.page_size = page_size
        self.deferrable = deferrable or start_from_trigger
        self.settings_from = settings_from
        if start_from_trigger:
            from airflow.triggers.base import StartTriggerArgs

            self.start_from_trigger = True
            self.retries = 0
            self.start_trigger_args = StartTriggerArgs(
                trigger_cls=TRIGGER_CLASSPATH, next_method="execute_complete", next_kwargs=None, timeout=None,
                trigger_kwargs={
                    "run_name": run_name, "workspace_id": workspace_id, "seqera_conn_id": seqera_conn_id,
                    "poll_interval": poll_interval, "timeout_seconds": timeout_seconds,
                    "deployed_timeout_seconds": deployed_timeout_seconds, "started_at": started_at,
                    "search_prefix": search_prefix, "page_size": page_size, "end_task": True,
                    "settings_from": settings_from,
                })

    def use_settings(self, settings: Any) -> None:
        """Take the connection, interval and timeouts from a lifecycle's settings (read when the
        task runs, not when the DAG is parsed): any object with ``seqera_conn_id``,
        ``poll_interval_seconds``, ``timeout_seconds`` and ``deployed_timeout_seconds``."""
        self.seqera_conn_id = settings.seqera_conn_id
        self.poll_interval = settings.poll_interval_seconds
        self.timeout_seconds = settings.timeout_seconds
        self.deployed_timeout_seconds = settings.deployed_timeout_seconds

    def _trigger(self) -> SeqeraRunTrigger:
        from hatchway.triggers.seqera import SeqeraRunTrigger

        return SeqeraRunTrigger(
            run_name=self.run_name,
            workspace_id=int(self.workspace_id) if self.workspace_id not in (None, "", "None") else None,
            seqera_conn_id=self.seqera_conn_id,
            poll_interval=self.poll_interval,
            timeout_seconds=self.timeout_seconds,
            deployed_timeout_seconds=self.deployed_timeout_seconds,
            started_at=float(self.started_at) if self.started_at not in (None, "", "None") else time.time(),
            search_prefix=self.search_prefix or None,
            page_size=self.page_size,
        )

    def execute(self, context: Context) -> dict[str, Any]:
        trigger = self._trigger()
        if self.deferrable:
            self.defer(trigger=trigger, method_name="execute_complete")
        event = asyncio.run(_first_event(trigger))
        return self.execute_complete(context, event)

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> dict[str, Any]:
        if not event or "status" not in event:
            raise AirflowFailException(f"Seqera wait for {self.run_name!r} resumed without an event: {event!r}")
        context["ti"].xcom_push(key=XCOM_KEY, value=event)
        if event["status"] != "success":
            raise SeqeraRunFailed(event)
        self.log.info("Seqera run %r succeeded (workflow %s)", event.get("run_name"), event.get("workflow_id"))
        return event


async def _first_event(trigger: SeqeraRunTrigger) -> dict[str, Any]:
    async for event in trigger.run():
        return event.payload
    raise AirflowFailException(f"Seqera trigger for {trigger.run_name!r} ended without an event")


def cancel_seqera_run(run_name: str, *, workspace_id: int | None = None,
                      seqera_conn_id: str = SEQERA_CONN_ID) -> dict[str, Any]:
    """Teardown helper: cancel the newest run named ``run_name`` unless it already ended.

    Safe to call whatever happened before: no run, or a finished one, is left as it is.

    :param run_name: the Seqera run name.
    :param workspace_id: Seqera workspace (default: the connection's).
    :param seqera_conn_id: Airflow connection of the Seqera API.
    :return: ``{"run_name", "workflow_id", "status", "cancelled"}`` (status before cancelling).
    """
    from hatchway.domain.jobs import seqera_event

    from hatchway.hooks.seqera import SeqeraApiError, SeqeraHook

    hook = SeqeraHook(seqera_conn_id)
    try:
        workflow = hook.find_workflow(run_name, workspace_id)
        result = {"run_name": run_name, "workflow_id": workflow.get("id") if workflow else None,
                  "status": workflow.get("status") if workflow else None, "cancelled": False}
        event = seqera_event(result["status"])
        if workflow and workflow.get("id") and not (event and event.terminal):
            try:
                hook.cancel(workflow["id"], workspace_id)
            except SeqeraApiError as exc:
                # It may have ended between the look-up and the cancel: then there is nothing to do.
                now = hook.find_workflow(run_name, workspace_id) or {}
                ended = seqera_event(now.get("status"))
                if exc.status != 400 or not (ended and ended.terminal):
                    raise
                result["status"] = now.get("status")
                return result
            result["cancelled"] = True
            hook.log.info("Seqera run %r (workflow %s) cancelled", run_name, workflow["id"])
        return result
    finally:
        hook.close()
