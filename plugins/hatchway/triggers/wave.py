"""Wait for a Wave container build in the triggerer, one status call per build per interval.

Wave has no call that reports many builds at once, so the shared poller
(:mod:`hatchway.triggers.poller`, the mechanism of the Seqera and Cromwell waits) asks
``GET /v1alpha2/container/{requestId}/status`` once per distinct request each round, for
every run waiting on it: two runs that wait on the same build cost one call. A request Wave
does not know (404) is not seen, not failed: only the timeout ends that wait.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from hatchway.hooks.wave import WAVE_CONN_ID, WaveEndpoint, WaveHook, WaveNotFound
from hatchway.triggers import poller
from hatchway.triggers.poller import Subscription

ENDPOINT_TTL = 60.0
CONCURRENT_CALLS = 16  # status calls in flight per Wave server
KEPT_FIELDS = ("id", "status", "buildId", "scanId", "succeeded", "reason", "duration", "creationTime",
               "detailsUri", "vulnerabilities")


class WaveStatuses:
    """The shared poller's source for one Wave server."""

    def __init__(self, hook: WaveHook) -> None:
        self.hook = hook

    async def observe(self, subs: list[Subscription]) -> tuple[dict[str, dict[str, Any]], int]:
        ids = sorted({s.name for s in subs})
        limit = asyncio.Semaphore(CONCURRENT_CALLS)

        async def one(request_id: str) -> dict[str, Any] | None:
            async with limit:
                try:
                    return await self.hook.astatus(request_id)
                except WaveNotFound:
                    return None

        answers = await asyncio.gather(*(one(i) for i in ids), return_exceptions=True)
        errors = [a for a in answers if isinstance(a, BaseException)]
        if errors and len(errors) == len(ids):
            raise errors[0]
        results = {i: {k: a[k] for k in KEPT_FIELDS if a.get(k) is not None}
                   for i, a in zip(ids, answers) if isinstance(a, dict)}
        return results, len(ids)

    async def aclose(self) -> None:
        await self.hook.aclose()


async def resolve_endpoint(conn_id: str) -> WaveEndpoint:
    return await poller.cached(("wave", conn_id), ENDPOINT_TTL, WaveHook(conn_id).aget_endpoint)


class WaveBuildTrigger(BaseTrigger):
    """Wait until a Wave build is DONE, or late, without a worker.

    Fires once with ``status``: ``success`` (DONE and succeeded) or ``failed`` (DONE and not
    succeeded, with Wave's ``reason``; or a timeout).

    :param request_id: Wave's ``requestId``.
    :param wave_conn_id: the Wave connection.
    :param poll_interval: seconds between status rounds.
    :param timeout_seconds: fail when the build is not DONE this long after ``started_at``.
    :param started_at: epoch seconds the clock counts from (kept across re-deferrals).
    :param carry: JSON the task needs back, returned in the event as ``carry`` (no secrets).
    """

    def __init__(self, request_id: str, wave_conn_id: str = WAVE_CONN_ID, poll_interval: float = 10.0,
                 timeout_seconds: float = 3600.0, started_at: float | None = None,
                 carry: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.request_id = request_id
        self.wave_conn_id = wave_conn_id
        self.poll_interval = float(poll_interval)
        self.timeout_seconds = float(timeout_seconds)
        self.started_at = float(started_at) if started_at is not None else time.time()
        self.carry = carry or {}

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return f"{type(self).__module__}.{type(self).__qualname__}", {
            "request_id": self.request_id, "wave_conn_id": self.wave_conn_id, "poll_interval": self.poll_interval,
            "timeout_seconds": self.timeout_seconds, "started_at": self.started_at, "carry": self.carry}

    async def run(self) -> AsyncIterator[TriggerEvent]:
        try:
            endpoint = await resolve_endpoint(self.wave_conn_id)
        except Exception as exc:  # noqa: BLE001 - a missing connection is a clear failure, not a crash
            yield TriggerEvent(self._event("failed", None, f"connection {self.wave_conn_id!r} could not be read: "
                                                           f"{type(exc).__name__}: {exc}"))
            return
        async with poller.subscribe(("wave", *endpoint.identity), lambda: WaveStatuses(WaveHook(endpoint=endpoint)),
                                    self.request_id, interval=self.poll_interval) as sub:
            event = await self._wait(sub)
        yield TriggerEvent(event)

    async def _wait(self, sub: Subscription) -> dict[str, Any]:
        record: dict[str, Any] | None = None
        last_error: str | None = None
        first = True
        while True:
            remaining = self.started_at + self.timeout_seconds - time.time()
            if remaining <= 0 and not first:
                return self._event("failed", record, f"Wave build {self.request_id} was not done within "
                                   f"{self.timeout_seconds:g}s (last status {(record or {}).get('status')})"
                                   + (f"; last error: {last_error}" if last_error else ""))
            try:
                async with asyncio.timeout(max(remaining, self.poll_interval if first else 0)):
                    obs = await sub.next()
            except TimeoutError:
                first = False
                continue
            first = False
            if obs.error is not None:
                last_error = str(obs.error)
                self.log.warning("Wave build %s: status failed, still waiting: %s", self.request_id, last_error)
                continue
            if obs.record is None:
                continue
            record = obs.record
            if record.get("status") != "DONE":
                continue
            if record.get("succeeded"):
                return self._event("success", record, None)
            return self._event("failed", record, record.get("reason") or "Wave build did not succeed")

    def _event(self, status: str, record: dict[str, Any] | None, reason: str | None) -> dict[str, Any]:
        record = record or {}
        return {"status": status, "request_id": self.request_id, "build_id": record.get("buildId"),
                "wave_status": record.get("status"), "succeeded": record.get("succeeded"),
                "duration": record.get("duration"), "reason": reason, "started_at": self.started_at,
                "carry": self.carry}
