"""Wait for a Cromwell workflow in the triggerer, with one ``/query`` per server per interval.

Every :class:`CromwellWorkflowTrigger` of a triggerer process that waits on the same server
(base URL and token) subscribes to one shared poller (:mod:`hatchway.triggers.poller`, the
mechanism Seqera waits use too). Its source, :class:`CromwellQuery`, asks ``POST /query``
for all waited-for workflow ids in one body. A workflow missing from the answer is waiting
to be seen (Cromwell's summary table lags a submit by a refresh interval, issue #2671), not
failed; only the not-started timeout ends that wait. A failed workflow costs one more call,
``/metadata?includeKey=failures``, for the first failure message.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from hatchway.domain.cromwell import NOT_STARTED, CromwellState, first_failure, state
from hatchway.hooks.cromwell import CROMWELL_CONN_ID, CromwellEndpoint, CromwellError, CromwellHook
from hatchway.triggers import poller
from hatchway.triggers.poller import SharedPoller, Subscription

ENDPOINT_TTL = 60.0
KEPT_FIELDS = ("id", "name", "status", "submission", "start", "end")


class CromwellQuery:
    """The shared poller's source for one Cromwell server."""

    def __init__(self, hook: CromwellHook) -> None:
        self.hook = hook

    async def observe(self, subs: list[Subscription]) -> tuple[dict[str, dict[str, Any]], int]:
        results, calls = await self.hook.aquery_ids(sorted({s.name for s in subs}))
        return {r["id"]: {k: r[k] for k in KEPT_FIELDS if r.get(k) is not None} for r in results if r.get("id")}, calls

    async def aclose(self) -> None:
        await self.hook.aclose()


def pollers() -> dict[tuple, SharedPoller]:
    """The running loop's Cromwell pollers, keyed by ("cromwell", base URL, token digest)."""
    return poller.pollers("cromwell")


async def resolve_endpoint(conn_id: str) -> CromwellEndpoint:
    return await poller.cached(("cromwell", conn_id), ENDPOINT_TTL, CromwellHook(conn_id).aget_endpoint)


def _epoch(value: Any) -> float | None:
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp() if value else None
    except ValueError:
        return None


class CromwellWorkflowTrigger(BaseTrigger):
    """Wait until a Cromwell workflow ends, or is late, without a worker.

    Fires once with ``status``: ``success`` (Succeeded), ``failed`` (Failed, with ``reason`` =
    the first failure of its metadata; or a timeout), or ``aborted`` (Aborted).

    :param workflow_id: the workflow.
    :param cromwell_conn_id: the server's connection.
    :param poll_interval: seconds between query rounds.
    :param timeout_seconds: fail when the workflow is not seen running (or ended) this long after ``started_at``.
    :param run_timeout_seconds: fail when it has not ended this long after it started running.
    :param started_at: epoch seconds the not-started clock counts from (kept across re-deferrals).
    :param base_url: a workspace's own server (``per_workspace`` mode); then no connection is read.
    """

    def __init__(self, workflow_id: str, cromwell_conn_id: str = CROMWELL_CONN_ID, poll_interval: float = 30.0,
                 timeout_seconds: float = 3600.0, run_timeout_seconds: float = 172_800.0,
                 started_at: float | None = None, base_url: str | None = None) -> None:
        super().__init__()
        self.workflow_id = workflow_id
        self.cromwell_conn_id = cromwell_conn_id
        self.poll_interval = float(poll_interval)
        self.timeout_seconds = float(timeout_seconds)
        self.run_timeout_seconds = float(run_timeout_seconds)
        self.started_at = float(started_at) if started_at is not None else time.time()
        self.base_url = base_url or None

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return f"{type(self).__module__}.{type(self).__qualname__}", {
            "workflow_id": self.workflow_id, "cromwell_conn_id": self.cromwell_conn_id,
            "poll_interval": self.poll_interval, "timeout_seconds": self.timeout_seconds,
            "run_timeout_seconds": self.run_timeout_seconds, "started_at": self.started_at,
            "base_url": self.base_url}

    async def run(self) -> AsyncIterator[TriggerEvent]:
        try:
            endpoint = (CromwellEndpoint(conn_id=f"workspace server {self.base_url}", base_url=self.base_url)
                        if self.base_url else await resolve_endpoint(self.cromwell_conn_id))
        except Exception as exc:  # noqa: BLE001 - a missing connection is a clear failure, not a crash
            yield TriggerEvent(self._event("failed", None, f"connection {self.cromwell_conn_id!r} could not be "
                                                           f"read: {type(exc).__name__}: {exc}", "config"))
            return
        async with poller.subscribe(("cromwell", *endpoint.identity),
                                    lambda: CromwellQuery(CromwellHook(endpoint=endpoint)), self.workflow_id,
                                    interval=self.poll_interval) as sub:
            event = await self._wait(sub)
        yield TriggerEvent(event)  # after leaving: a finished workflow is no longer asked about

    async def _wait(self, sub: Subscription) -> dict[str, Any]:
        running_since: float | None = None
        record: dict[str, Any] | None = None
        last_error: str | None = None
        first = True
        while True:
            limit = self.timeout_seconds if running_since is None else self.run_timeout_seconds
            deadline = (self.started_at if running_since is None else running_since) + limit
            remaining = deadline - time.time()
            if remaining <= 0 and not first:
                what = "start (not seen running)" if running_since is None else "finish"
                reason = (f"Cromwell workflow {self.workflow_id} did not {what} within {limit:g}s"
                          + (f"; last error: {last_error}" if last_error else ""))
                return self._event("failed", record, reason, "not_started_timeout" if running_since is None
                                   else "run_timeout")
            try:
                async with asyncio.timeout(max(remaining, self.poll_interval if first else 0)):
                    obs = await sub.next()
            except TimeoutError:
                first = False
                continue
            first = False
            if obs.error is not None:
                last_error = str(obs.error)
                self.log.warning("Cromwell workflow %s: query failed, still waiting: %s", self.workflow_id, last_error)
                continue
            if obs.record is None:
                continue  # not in the summary yet (a fresh submit), or gone: the timeout decides
            record = obs.record
            current = state(record.get("status"))
            if running_since is None and current is not None and current not in NOT_STARTED:
                running_since = _epoch(record.get("start")) or obs.at
                self.log.info("Cromwell workflow %s is %s", self.workflow_id, current.value)
            if current is CromwellState.SUCCEEDED:
                return self._event("success", record, None, None)
            if current is CromwellState.ABORTED:
                return self._event("aborted", record, f"Cromwell workflow {self.workflow_id} was aborted", "aborted")
            if current is CromwellState.FAILED:
                failure = await self._failure(sub)
                return self._event("failed", record, f"Cromwell workflow {self.workflow_id} failed"
                                   + (f": {failure}" if failure else ""), "run_failed")

    async def _failure(self, sub: Subscription) -> str | None:
        try:
            meta = await sub.poller.source.hook.ametadata(self.workflow_id, ["failures", "status"])
        except CromwellError as exc:
            self.log.warning("Cromwell workflow %s failed; its failures could not be read: %s", self.workflow_id, exc)
            return None
        return first_failure(meta.get("failures"))

    def _event(self, status: str, record: dict[str, Any] | None, reason: str | None, error: str | None) -> dict:
        record = record or {}
        return {"status": status, "workflow_id": self.workflow_id, "cromwell_status": record.get("status"),
                "started_at": self.started_at, "start": record.get("start"), "end": record.get("end"),
                "reason": reason, "error": error}
