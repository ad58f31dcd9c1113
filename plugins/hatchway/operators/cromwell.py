"""Thin operators of the ``cromwell_run`` lifecycle: a WDL workflow from git, run on Cromwell.

The conf is a :class:`hatchway.domain.cromwell.CromwellRunConf`; the settings come from the
Variable ``hatchway_cromwell_config`` (:class:`hatchway.domain.cromwell.CromwellSettings`)
when a task runs, never when the DAG file is parsed. The work lives in
:mod:`hatchway.wdl.source` (fetch and check), :mod:`hatchway.wdl.runs` (submit, place,
abort) and :class:`hatchway.triggers.cromwell.CromwellWorkflowTrigger` (the wait).
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowFailException

from hatchway.operators.base import HatchwayOperator

if TYPE_CHECKING:
    from hatchway.domain.cromwell import CromwellRunConf, CromwellSettings
    from hatchway.hooks.cromwell import CromwellHook
    from hatchway.wdl.source import FetchedSource

TASK_FETCH, TASK_SUBMIT, TASK_WAIT, TASK_PLACE = "fetch_source", "submit", "wait", "place_outputs"
XCOM_EVENT = "cromwell_event"


class CromwellRunFailed(AirflowFailException):
    """The workflow failed, was aborted or timed out: retrying the task would see the same end."""


class CromwellOperator(HatchwayOperator):
    """Base: the run's conf, the settings, the hook."""

    ui_color = "#fdf0e0"

    @cached_property
    def settings(self) -> CromwellSettings:
        # Imported here: the workspace operators' module is not needed to parse cromwell_run.
        from hatchway.operators.workspace import load_cromwell_settings

        return load_cromwell_settings()

    def conf(self, context: Any) -> CromwellRunConf:
        from pydantic import ValidationError

        from hatchway.domain.cromwell import CromwellRunConf

        try:
            return CromwellRunConf.model_validate(context["dag_run"].conf or {})
        except ValidationError as exc:
            raise AirflowFailException(f"the run's conf is not a valid cromwell_run request: {exc}") from None

    def server(self, context: Any, conf: CromwellRunConf) -> str | None:
        """The run's server: the one its workflow was submitted to, else the workspace's now
        (None: the shared server). No server of the workspace's own fails the task for good."""
        from airflow.sdk import Variable

        from hatchway.wdl.servers import NoServer, server_url

        answer = context["ti"].xcom_pull(task_ids=TASK_SUBMIT)
        if answer and "server" in answer:
            return answer["server"]
        try:
            return server_url(self.settings, conf.workspace, lambda key: Variable.get(key, default=None))
        except NoServer as exc:
            raise AirflowFailException(str(exc)) from None

    def hook(self, context: Any, conf: CromwellRunConf) -> CromwellHook:
        from hatchway.wdl.servers import hook_at

        return hook_at(self.settings, self.server(context, conf))

    def fetch(self, context: Any, conf: CromwellRunConf, ref: str | None = None) -> FetchedSource:
        """Fetch and check the workflow (at ``ref``, default the conf's).

        A refusal fails the task for good and leaves its reason in XCom (key ``refused``) for
        the front doors: file:line:column of each WDL error, or why the source was refused.
        """
        from hatchway.domain.wdl import SourceRefused, shown_url
        from hatchway.wdl.source import fetch

        request = conf.source if ref is None else conf.source.model_copy(update={"ref": ref})
        with tempfile.TemporaryDirectory(prefix="hatchway-wdl-") as workdir:
            try:
                return fetch(request, workdir, self.settings.source)
            except SourceRefused as exc:
                reason = (f"workflow {request.path} from {shown_url(request.repo)} at {request.ref} was refused before "
                          f"anything was submitted:\n{exc}")
                context["ti"].xcom_push(key="refused", value=reason)
                raise AirflowFailException(reason) from None

    def submitted(self, context: Any) -> str | None:
        answer = context["ti"].xcom_pull(task_ids=TASK_SUBMIT)
        return answer.get("workflow_id") if answer else None


class FetchSourceOperator(CromwellOperator):
    """Clone the workflow's repository at the ref, pin the commit, check the WDL (a setup task).

    Returns what a later reader needs to know what ran: repository, ref, commit SHA, path,
    workflow name, WDL version and imports. ``submit`` fetches that commit again, not the ref.
    """

    def execute(self, context: Any) -> dict[str, Any]:
        conf = self.conf(context)
        fetched = self.fetch(context, conf)
        self.log.info("workflow %s (WDL %s) from %s at %s = commit %s; imports: %s", fetched.workflow_name,
                      fetched.wdl_version, fetched.repo, fetched.ref, fetched.commit, fetched.imports or "none")
        return {"repo": fetched.repo, "ref": fetched.ref, "commit": fetched.commit, "path": fetched.path,
                "workflow_name": fetched.workflow_name, "wdl_version": fetched.wdl_version,
                "imports": list(fetched.imports)}


class SubmitWorkflowOperator(CromwellOperator):
    """Submit the pinned workflow to Cromwell (an ensure: a retry finds the run's workflow by its labels)."""

    def execute(self, context: Any) -> dict[str, Any]:
        from hatchway.wdl.runs import ensure_submitted

        conf = self.conf(context)
        pinned = context["ti"].xcom_pull(task_ids=TASK_FETCH)
        fetched = self.fetch(context, conf, ref=pinned["commit"])
        server = self.server(context, conf)
        hook = self.hook(context, conf)
        try:
            submission = ensure_submitted(
                hook, run_id=conf.run_id, workspace=conf.workspace, workflow_source=fetched.workflow_source,
                dependencies_zip=fetched.dependencies_zip, wdl_version=fetched.wdl_version, inputs=conf.inputs,
                options=conf.options, labels=conf.labels, default_options=self.settings.workflow_options,
                commit=fetched.commit)
        finally:
            hook.close()
        self.log.info("run %s: Cromwell workflow %s (%s%s)", conf.run_id, submission.workflow_id, submission.status,
                      ", submitted before" if submission.reused else "")
        return {"workflow_id": submission.workflow_id, "status": submission.status, "reused": submission.reused,
                "submitted_at": time.time(), "server": server}


class WaitForWorkflowOperator(CromwellOperator):
    """Wait in the triggerer, one ``/query`` per Cromwell server per interval for every waiting run."""

    def __init__(self, *, deferrable: bool = True, **kwargs: Any):
        super().__init__(**kwargs)
        self.deferrable = deferrable

    def execute(self, context: Any) -> dict[str, Any]:
        from hatchway.triggers.cromwell import CromwellWorkflowTrigger

        answer = context["ti"].xcom_pull(task_ids=TASK_SUBMIT)
        settings = self.settings
        trigger = CromwellWorkflowTrigger(
            workflow_id=answer["workflow_id"], cromwell_conn_id=settings.cromwell_conn_id,
            poll_interval=settings.poll_interval_seconds, timeout_seconds=settings.not_started_timeout_seconds,
            run_timeout_seconds=settings.run_timeout_seconds, started_at=answer.get("submitted_at"),
            base_url=answer.get("server"))
        if self.deferrable:
            self.defer(trigger=trigger, method_name="execute_complete")
        return self.execute_complete(context, asyncio.run(_first_event(trigger)))

    def execute_complete(self, context: Any, event: dict[str, Any] | None = None) -> dict[str, Any]:
        if not event or "status" not in event:
            raise AirflowFailException(f"Cromwell wait resumed without an event: {event!r}")
        context["ti"].xcom_push(key=XCOM_EVENT, value=event)
        if event["status"] != "success":
            raise CromwellRunFailed(event.get("reason") or f"Cromwell workflow {event.get('workflow_id')} "
                                                          f"ended {event.get('cromwell_status')}")
        self.log.info("Cromwell workflow %s succeeded", event["workflow_id"])
        return event


async def _first_event(trigger: Any) -> dict[str, Any]:
    async for event in trigger.run():
        return event.payload
    raise AirflowFailException("Cromwell trigger ended without an event")


class PlaceOutputsOperator(CromwellOperator):
    """Copy each output file to the destination, check it, then remove the intermediate files.

    Nothing is deleted before every output is copied and checked; on a failure everything is
    kept and the error names where (:func:`hatchway.wdl.runs.place_outputs`).
    """

    def execute(self, context: Any) -> dict[str, Any]:
        from hatchway.operators.workspace import load_config
        from hatchway.wdl.runs import PlacementError, place_outputs
        from hatchway.workspace.clients import AwsClients

        conf = self.conf(context)
        workflow = self.submitted(context)
        config = load_config()
        hook = self.hook(context, conf)
        try:
            outputs = hook.outputs(workflow)
            root = hook.metadata(workflow, include=["workflowRoot"]).get("workflowRoot")
        finally:
            hook.close()
        destination = conf.destination_url(config.bucket)
        s3 = AwsClients.from_connection(self.settings.aws_conn_id, config.region).s3
        try:
            placement = place_outputs(s3, workflow_id_=workflow, workflow_root=root or "", outputs=outputs,
                                      destination=destination)
        except PlacementError as exc:
            raise AirflowFailException(str(exc)) from None
        return {"destination": destination, "outputs": placement.outputs, "placed": len(placement.placed),
                "removed": placement.removed, "manifest": destination + "outputs.json"}


class AbortWorkflowOperator(CromwellOperator):
    """Teardown: abort the run's workflow if it is still live (after a failure or a cancel).

    Aborts what ``submit`` returned and anything Cromwell lists for the run's label (a submit
    whose answer was lost), so no workflow outlives its run.
    """

    def execute(self, context: Any) -> list[dict[str, Any]]:
        from hatchway.wdl.runs import abort_if_live, run_workflows

        conf = self.conf(context)
        try:
            hook = self.hook(context, conf)
        except AirflowFailException as exc:  # no server of the workspace's own: nothing can run there
            self.log.info("nothing to abort: %s", exc)
            return []
        try:
            ids = {self.submitted(context)} | {r["id"] for r in run_workflows(hook, conf.workspace, conf.run_id)}
            return [abort_if_live(hook, i) for i in sorted(i for i in ids if i)]
        finally:
            hook.close()


class RecordUsageOperator(CromwellOperator):
    """Teardown: record what the workflow used (its calls' runtime attributes and times, from
    Cromwell's metadata) and its estimated cost in Hatchway's store, against the run's
    workspace and its cost centre. Runs on success, failure and cancel; a retry replaces the
    recording. Bytes: the outputs at the destination, and what the workflow root still holds
    (on success the intermediates were already removed)."""

    def execute(self, context: Any) -> dict[str, Any]:
        from hatchway.operators.usage import record
        from hatchway.operators.workspace import load_config
        from hatchway.s3 import split_s3
        from hatchway.usage.runs import area_bytes, cromwell_run_usage
        from hatchway.workspace.clients import AwsClients
        from hatchway.workspace.provision import read_record

        conf = self.conf(context)
        config = load_config()
        clients = AwsClients.from_connection(self.settings.aws_conn_id, config.region)
        workflow = self.submitted(context)
        metadata = None
        if workflow:  # one read: the calls, and the workflow root whose bytes count
            hook = self.hook(context, conf)
            try:
                metadata = hook.metadata(workflow, expand_subworkflows=True)
            finally:
                hook.close()
        root = (metadata or {}).get("workflowRoot") or ""
        work = area_bytes(clients.s3, *split_s3(root.rstrip("/") + "/"))[0] if root.startswith("s3://") else 0
        results = area_bytes(clients.s3, *split_s3(conf.destination_url(config.bucket)))[0]
        usage, seen = cromwell_run_usage(metadata, config.price_table, work_bytes=work, results_bytes=results)
        workspace = read_record(clients, config, conf.workspace)
        return record(context, self.log, usage, seen, run_id=conf.run_id, executing=conf.workspace, calling=None,
                      cost_center=workspace.cost_center if workspace else None,
                      budget=config.budgets.get(conf.workspace))


class WriteCrateOperator(CromwellOperator):
    """Teardown: write the run's Workflow Run RO-Crate beside its outputs (the destination), on
    any end, and keep it in Hatchway's store. The outputs are the placed copies, each read for
    its size and sha256 (up to 64 MiB); the workflow is the repository at the commit that ran.
    What Cromwell said of the workflow comes from ``record_usage`` (asked again only if it has
    nothing)."""

    def execute(self, context: Any) -> dict[str, Any]:
        from hatchway.domain.wave import parse_time
        from hatchway.domain.workspace import utcnow
        from hatchway.operators.usage import XCOM_ENGINE_RUN
        from hatchway.operators.workspace import load_config
        from hatchway.outputs.crate import RunFacts, build_crate, keep_crate, s3_inputs, write_crate
        from hatchway.s3 import split_s3
        from hatchway.workspace.clients import AwsClients

        ti = context["ti"]
        conf = self.conf(context)
        config = load_config()
        s3 = AwsClients.from_connection(self.settings.aws_conn_id, config.region).s3
        workflow = self.submitted(context)
        facts_seen = ti.xcom_pull(task_ids="record_usage", key=XCOM_ENGINE_RUN)
        version = None
        if workflow:
            from hatchway.usage.runs import cromwell_run_usage

            hook = self.hook(context, conf)
            try:
                if not facts_seen:  # record_usage did not get that far
                    facts_seen = cromwell_run_usage(hook.metadata(workflow, include=[
                        "workflowName", "status", "start", "end", "failures"]), config.price_table)[1]["workflow"]
                version = hook.engine_version()
            finally:
                hook.close()
        facts_seen = facts_seen or {}
        event = ti.xcom_pull(task_ids=TASK_WAIT, key=XCOM_EVENT) or {}
        placed = ti.xcom_pull(task_ids=TASK_PLACE) or {}
        ok = event.get("status") == "success" and bool(placed)
        error = None if ok else (event.get("reason") or facts_seen.get("error")
                                 or "the run was cancelled or failed before the workflow ended")
        fetched = ti.xcom_pull(task_ids=TASK_FETCH) or {}
        outputs = {name: url for name, url in (placed.get("outputs") or {}).items()
                   if isinstance(url, str) and url.startswith("s3://")}
        facts = RunFacts(
            run_id=conf.run_id, workflow_name=facts_seen.get("name") or conf.source.path,
            workflow_version=conf.source.ref, engine="wdl", engine_version=version, source_url=conf.source.repo,
            source_ref=conf.source.ref, commit=fetched.get("commit"), main_path=conf.source.path,
            executing=conf.workspace, calling=conf.workspace, deploying=None,
            started=parse_time(facts_seen.get("start")), ended=parse_time(facts_seen.get("end")) or utcnow(),
            state=facts_seen.get("status") or ("NotSubmitted" if not workflow else "Unknown"),
            ok=ok, error=error, parameters=conf.inputs, inputs=s3_inputs(s3, conf.inputs),
            outputs=s3_inputs(s3, outputs), usage=ti.xcom_pull(task_ids="record_usage"))
        crate = build_crate(facts)
        location = write_crate(s3, *split_s3(conf.destination_url(config.bucket)), crate)
        keep_crate(context["dag"].dag_id, context["run_id"], conf.run_id, location, crate)
        self.log.info("RO-Crate of run %s (%s) written to %s", conf.run_id, facts.state, location)
        return {"location": location, "state": facts.state, "outputs": len(facts.outputs)}


class FinishRunOperator(CromwellOperator):
    """The leaf: succeed only when the workflow succeeded and its outputs were placed.

    A teardown that fails the DAG run otherwise, so a cancelled run (marked failed while it
    waited, then its teardowns succeeding) never reads success.
    """

    def execute(self, context: Any) -> dict[str, Any]:
        ti = context["ti"]
        event = ti.xcom_pull(task_ids=TASK_WAIT, key=XCOM_EVENT) or {}
        placed = ti.xcom_pull(task_ids=TASK_PLACE)
        if event.get("status") == "success" and placed:
            return {"workflow_id": event.get("workflow_id"), **placed}
        reason = event.get("reason") or ("the workflow ended but its outputs were not placed" if event
                                         else "the run was cancelled or failed before the workflow ended")
        raise CromwellRunFailed(f"cromwell_run {self.conf(context).run_id} did not succeed: {reason}")
