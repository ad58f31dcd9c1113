"""Wait for a Seqera Platform run in the triggerer, with one list call per workspace per interval.

hattivatti polled ``GET /workflow?search=<run name>&max=1`` once per job per minute. Here every
:class:`SeqeraRunTrigger` of one triggerer process that waits in the same Seqera workspace,
through the same endpoint and token, subscribes to one shared poller
(:mod:`hatchway.triggers.poller`, the mechanism Cromwell waits share too) whose source,
:class:`SeqeraListing`, lists the workspace once per interval and hands each subscriber its
run's latest record.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from airflow.triggers.base import BaseTrigger, TaskFailedEvent, TaskSuccessEvent, TriggerEvent

from hatchway.domain.jobs import JobEvent, seqera_event
from hatchway.hooks.seqera import (
    DEFAULT_PAGE_SIZE,
    SeqeraAuthError,
    SeqeraEndpoint,
    SeqeraError,
    SeqeraHook,
)
from hatchway.hooks.seqera_settings import SEQERA_EVENT_XCOM, poll_page_size
from hatchway.triggers import poller
from hatchway.triggers.poller import SharedPoller, Subscription

ENDPOINT_TTL = 60.0  # seconds a resolved connection is reused, so a rotated token is picked up soon
NOT_STARTED = "SUBMITTED"  # the one live Seqera status that does not mean "running"
# What a waiting trigger reads of a run; the rest of each record is dropped, as a record
# held for a thousand waiting runs would otherwise be most of their memory.
# Arguments that may arrive as templates (start_from_trigger), rendered in the triggerer.
TEMPLATED = ("run_name", "workspace_id", "started_at", "search_prefix")
KEPT_FIELDS = ("id", "runName", "status", "submit", "start", "complete", "dateCreated", "exitStatus",
               "errorReport", "errorMessage")


class SeqeraListing:
    """The shared poller's source for one Seqera workspace: list it page by page (``max``/``offset``),
    narrowed by the run names' common prefix as ``search``, until every waited-for name is seen.

    :param hook: a hook bound to the resolved endpoint; its async client serves every waiting run.
    :param workspace_id: the Seqera workspace listed.
    """

    def __init__(self, hook: SeqeraHook, workspace_id: int | None) -> None:
        self.hook = hook
        self.workspace_id = workspace_id

    async def observe(self, subs: list[Subscription]) -> tuple[dict[str, dict[str, Any]], int]:
        names = {s.name for s in subs}
        prefixes = [s.options.get("prefix") for s in subs]
        search = os.path.commonprefix(prefixes) if all(prefixes) else None
        page_size = poll_page_size(len(names), max(s.options.get("page_size", DEFAULT_PAGE_SIZE) for s in subs))
        try:
            found, calls = await self.hook.afind_workflows(names, search=search or None,
                                                           workspace_id=self.workspace_id, page_size=page_size)
        except SeqeraError:
            raise
        except Exception as exc:  # noqa: BLE001 - a bug here must not strand every waiting trigger
            self.hook.log.exception("Seqera poll of workspace %s failed", self.workspace_id)
            raise SeqeraError(f"poll failed: {type(exc).__name__}: {exc}") from exc
        return {name: {k: wf[k] for k in KEPT_FIELDS if wf.get(k) is not None} for name, wf in found.items()}, calls

    async def aclose(self) -> None:
        await self.hook.aclose()


@dataclass
class _WaitState:
    """What one trigger has learnt so far; kept when it moves to a poller with a new token."""

    running_since: float | None = None
    last_error: str | None = None
    workflow: dict[str, Any] | None = None
    first: bool = True


def pollers() -> dict[tuple, SharedPoller]:
    """The running loop's Seqera pollers, keyed by ("seqera", base URL, token digest, workspace id)."""
    return poller.pollers("seqera")


async def resolve_endpoint(conn_id: str, *, refresh: bool = False) -> SeqeraEndpoint:
    """The connection's endpoint, cached per loop for :data:`ENDPOINT_TTL` seconds.

    :param refresh: read the connection again (after a refused token: it may have been rotated).
    """
    return await poller.cached(("seqera", conn_id), ENDPOINT_TTL, SeqeraHook(conn_id).aget_endpoint,
                               refresh=refresh)


def subscribe(endpoint: SeqeraEndpoint, workspace_id: int | None, run_name: str, *, prefix: str | None = None,
              interval: float = 60.0, page_size: int = DEFAULT_PAGE_SIZE):
    """Join (or start) the shared poller of ``endpoint`` + ``workspace_id`` for one run name."""
    return poller.subscribe(("seqera", *endpoint.identity, workspace_id),
                            lambda: SeqeraListing(SeqeraHook(endpoint=endpoint), workspace_id), run_name,
                            interval=interval, prefix=prefix, page_size=page_size)


def _epoch(value: Any) -> float | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def first_line(text: str | None) -> str | None:
    """First non-blank line of an error report: Nextflow puts the failing process there."""
    for line in (text or "").splitlines():
        if line.strip():
            return line.strip()
    return None


class SeqeraRunTrigger(BaseTrigger):
    """Wait until a Seqera run ends, or until it is late, without a worker.

    Fires once: ``{"status": "success", "event": "Succeeded", ...}`` when the run succeeds;
    ``{"status": "failed", "event": "Failed", "trace_exit", "trace_name", "reason", "error"}``
    when it fails, is cancelled or unknown (``trace_exit`` = ``exitStatus``, ``trace_name`` =
    first line of ``errorReport``), when it does not start in time or run to the end in time
    (``trace_*`` null), or when the token is refused (401/403, at once).

    :param run_name: the Seqera run name.
    :param workspace_id: Seqera workspace (default: the connection's ``workspace_id``).
    :param seqera_conn_id: Airflow connection of the Seqera API.
    :param poll_interval: seconds between list calls of the workspace.
    :param timeout_seconds: fail when no RUNNING or final state is seen this long after ``started_at``.
    :param deployed_timeout_seconds: fail when the run has not ended this long after it
        started running (Seqera's ``start`` time, else when first seen running).
    :param started_at: epoch seconds the not-started clock counts from (default: now). Keep it
        when re-deferring so a restarted trigger does not restart the clock.
    :param search_prefix: a prefix of the run name shared by runs of this deployment (e.g.
        ``"<namespace>-"``); sent as ``search`` so a busy workspace lists fewer pages.
    :param page_size: ``max`` of each list call.
    :param end_task: end the task instance here (``TaskSuccessEvent`` / ``TaskFailedEvent``, the
        event in XCom as the operator would push it) instead of resuming it on a worker: the
        wait of an operator that starts in the triggerer (``start_from_trigger``) costs no
        worker at all.
    :param settings_from: read the connection, interval, timeouts, search prefix (and, for WES
        runs, the Seqera workspace) from a lifecycle's settings when the wait starts, over the
        arguments, as its operator does on a worker: ``"jobs"`` (``hatchway_jobs_config``) or
        ``"wes"`` (``hatchway_wes_config``), optionally ``":<variable>"`` for another Variable.

    ``run_name``, ``workspace_id``, ``started_at`` and ``search_prefix`` may be templates: when
    the task starts in the triggerer, Airflow renders there the operator's template fields that
    are trigger arguments (with XCom and the run's context) before :meth:`run`; they are
    checked and converted then.
    """

    def __init__(
        self,
        run_name: str,
        workspace_id: int | None = None,
        seqera_conn_id: str = SeqeraHook.default_conn_name,
        poll_interval: float = 60.0,
        timeout_seconds: float = 3600.0,
        deployed_timeout_seconds: float = 172_800.0,
        started_at: float | None = None,
        search_prefix: str | None = None,
        page_size: int = DEFAULT_PAGE_SIZE,
        end_task: bool = False,
        settings_from: str | None = None,
    ) -> None:
        super().__init__()
        self.run_name = run_name
        self.workspace_id = workspace_id
        self.seqera_conn_id = seqera_conn_id
        self.poll_interval = float(poll_interval)
        self.timeout_seconds = float(timeout_seconds)
        self.deployed_timeout_seconds = float(deployed_timeout_seconds)
        self.started_at = started_at
        self.search_prefix = search_prefix
        self.page_size = int(page_size)
        self.end_task = bool(end_task)
        self.settings_from = settings_from
        if not any("{{" in str(getattr(self, f)) for f in TEMPLATED):
            self._settle()  # built on a worker (defer): refuse a bad argument there, at once

    def _settle(self) -> None:
        """Check and convert the template fields (rendered by now, if they were templates)."""
        workspace_id, started_at = self.workspace_id, self.started_at
        self.workspace_id = int(workspace_id) if workspace_id not in (None, "", "None") else None
        self.started_at = float(started_at) if started_at not in (None, "", "None") else time.time()
        self.search_prefix = self.search_prefix or None
        if not self.run_name or "{{" in str(self.run_name):
            raise ValueError(f"run_name {self.run_name!r} is not a Seqera run name")
        if self.search_prefix and not self.run_name.startswith(self.search_prefix):
            raise ValueError(f"search_prefix {self.search_prefix!r} is not a prefix of run name {self.run_name!r}")

    async def _read_settings(self) -> None:
        from airflow.sdk import Variable
        from asgiref.sync import sync_to_async

        kind, _, variable = str(self.settings_from).partition(":")
        if kind == "jobs":
            from hatchway.jobs.settings import JOBS_VARIABLE as default, JobSettings as model
        elif kind == "wes":
            from hatchway.domain.wes import WES_VARIABLE as default, WesSettings as model
        else:
            raise ValueError(f"settings_from {self.settings_from!r} is not 'jobs[:variable]' or 'wes[:variable]'")
        raw = await sync_to_async(Variable.get)(variable or default, default=None)
        config = model.model_validate_json(raw) if raw else model()
        if kind == "jobs":
            self.search_prefix = f"{config.namespace}-"
        else:
            self.workspace_id = config.seqera_workspace_id
        self.seqera_conn_id = config.seqera_conn_id
        self.poll_interval = float(config.poll_interval_seconds)
        self.timeout_seconds = float(config.timeout_seconds)
        self.deployed_timeout_seconds = float(config.deployed_timeout_seconds)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return f"{type(self).__module__}.{type(self).__qualname__}", {
            "run_name": self.run_name,
            "workspace_id": self.workspace_id,
            "seqera_conn_id": self.seqera_conn_id,
            "poll_interval": self.poll_interval,
            "timeout_seconds": self.timeout_seconds,
            "deployed_timeout_seconds": self.deployed_timeout_seconds,
            "started_at": self.started_at,
            "search_prefix": self.search_prefix,
            "page_size": self.page_size,
            "end_task": self.end_task,
            "settings_from": self.settings_from,
        }

    async def run(self) -> AsyncIterator[TriggerEvent]:
        try:
            if self.settings_from:
                await self._read_settings()
            self._settle()
        except Exception as exc:  # noqa: BLE001 - a bad argument or setting is a clear Failed, not a crash
            yield self._end(self._failed(None, f"the wait could not start: {type(exc).__name__}: {exc}", "config",
                                         workspace_id=None))
            return
        async for event in self._run():
            yield self._end(event.payload)

    def _end(self, event: dict[str, Any]) -> TriggerEvent:
        """The event as it leaves: resume the task on a worker, or (``end_task``) end it here."""
        if not self.end_task:
            return TriggerEvent(event)
        if event.get("status") == "success":
            self.log.info("Seqera run %r succeeded (workflow %s)", event.get("run_name"), event.get("workflow_id"))
            return TaskSuccessEvent(xcoms={SEQERA_EVENT_XCOM: event, "return_value": event})
        self.log.error("%s", event.get("reason") or f"Seqera run {self.run_name!r} failed")
        return TaskFailedEvent(xcoms={SEQERA_EVENT_XCOM: event})

    async def _run(self) -> AsyncIterator[TriggerEvent]:
        state = _WaitState()
        while True:
            try:
                endpoint = await resolve_endpoint(self.seqera_conn_id)
            except Exception as exc:  # noqa: BLE001 - a missing or broken connection is a clear Failed, not a crash
                kind = "auth" if isinstance(exc, SeqeraAuthError) else "config"
                reason = str(exc) if isinstance(exc, SeqeraError) else \
                    f"connection {self.seqera_conn_id!r} could not be read: {type(exc).__name__}: {exc}"
                yield TriggerEvent(self._failed(None, reason, kind, workspace_id=self.workspace_id))
                return
            workspace_id = self.workspace_id if self.workspace_id is not None else endpoint.workspace_id
            async with subscribe(endpoint, workspace_id, self.run_name, prefix=self.search_prefix,
                                 interval=self.poll_interval, page_size=self.page_size) as sub:
                event = await self._wait(sub, workspace_id, state)
            if event is not None:
                break
            # The connection's token changed (rotated) since it was read: wait on with the new one.
        # Yielded after leaving the poller, so a finished run is no longer listed for.
        yield TriggerEvent(event)

    async def _wait(self, sub: Subscription, workspace_id: int | None, state: _WaitState) -> dict[str, Any] | None:
        """Wait for this run's end or deadline; None when the connection's token was rotated."""
        while True:
            if state.running_since is None:
                deadline, which, limit = self.started_at + self.timeout_seconds, "not_started", self.timeout_seconds
            else:
                deadline, which, limit = state.running_since + self.deployed_timeout_seconds, "deployed", \
                    self.deployed_timeout_seconds
            remaining = deadline - time.time()
            if remaining <= 0 and not state.first:
                what = "start (no RUNNING or final state seen)" if which == "not_started" else "finish"
                reason = (f"Seqera run {self.run_name!r} in workspace {workspace_id} did not {what} within "
                          f"{limit:g}s" + (f"; last error: {state.last_error}" if state.last_error else ""))
                self.log.warning("%s", reason)
                return self._failed(state.workflow, reason, f"{which}_timeout", workspace_id=workspace_id,
                                    running_since=state.running_since, trace=False)
            # The first answer is awaited even past the deadline: a restarted trigger whose run
            # ended meanwhile reports the real outcome, not a timeout.
            try:
                # asyncio.timeout rather than wait_for: no extra task per wait, per waiting run.
                async with asyncio.timeout(max(remaining, self.poll_interval if state.first else 0)):
                    obs = await sub.next()
            except TimeoutError:
                state.first = False
                continue
            state.first = False
            if obs.error is not None:
                if isinstance(obs.error, SeqeraAuthError):
                    if await self._token_rotated(sub):
                        return None
                    return self._failed(state.workflow, str(obs.error), "auth", workspace_id=workspace_id,
                                        running_since=state.running_since, trace=False)
                state.last_error = str(obs.error)
                self.log.warning("Seqera run %r: poll failed, still waiting: %s", self.run_name, state.last_error)
                continue
            if obs.record is None:
                continue  # not listed yet: Nextflow has not reported to Seqera
            workflow = state.workflow = obs.record
            status = workflow.get("status")
            if state.running_since is None and status and status != NOT_STARTED:
                state.running_since = _epoch(workflow.get("start")) or obs.at
                self.log.info("Seqera run %r is %s (workflow %s)", self.run_name, status, workflow.get("id"))
            event = seqera_event(status)
            if event is JobEvent.SUCCEEDED:
                return {"status": "success", "event": JobEvent.SUCCEEDED.value,
                        **self._fields(workflow, workspace_id, state.running_since)}
            if event is JobEvent.FAILED:
                workflow = await self._with_trace(sub, workflow, workspace_id)
                reason = (f"Seqera run {self.run_name!r} ended {status}"
                          + (f" (exit {workflow.get('exitStatus')})" if workflow.get("exitStatus") is not None else "")
                          + (f": {first_line(workflow.get('errorReport'))}" if workflow.get("errorReport") else ""))
                return self._failed(workflow, reason, "run_" + status.lower(), workspace_id=workspace_id,
                                    running_since=state.running_since)

    async def _token_rotated(self, sub: Subscription) -> bool:
        """After a 401/403: has the connection a different token or URL now than the one refused?"""
        try:
            fresh = await resolve_endpoint(self.seqera_conn_id, refresh=True)
        except Exception:  # noqa: BLE001 - then the refusal stands
            return False
        return fresh.identity != sub.poller.key[1:3]

    async def _with_trace(self, sub: Subscription, workflow: dict[str, Any], workspace_id: int | None) -> dict:
        """A list record may lack the exit status and error report: then ask for the run itself."""
        if workflow.get("status") != "FAILED" or workflow.get("errorReport") or not workflow.get("id"):
            return workflow
        try:
            described = await sub.poller.source.hook.aget_workflow(workflow["id"], workspace_id)
        except SeqeraError as exc:
            self.log.warning("Seqera run %r failed; its error report could not be read: %s", self.run_name, exc)
            return workflow
        return {**workflow, **{k: v for k, v in (described.get("workflow") or {}).items() if v is not None}}

    def _fields(self, workflow: dict[str, Any] | None, workspace_id: int | None,
                running_since: float | None) -> dict[str, Any]:
        workflow = workflow or {}
        return {"run_name": self.run_name, "workspace_id": workspace_id, "workflow_id": workflow.get("id"),
                "seqera_status": workflow.get("status"), "started_at": self.started_at,
                "running_since": running_since}

    def _failed(self, workflow: dict[str, Any] | None, reason: str, error: str, *, workspace_id: int | None,
                running_since: float | None = None, trace: bool = True) -> dict[str, Any]:
        workflow = workflow or {}
        return {"status": "failed", "event": JobEvent.FAILED.value,
                **self._fields(workflow, workspace_id, running_since),
                "trace_exit": workflow.get("exitStatus") if trace else None,
                "trace_name": first_line(workflow.get("errorReport")) if trace else None,
                "reason": reason, "error": error}
