"""Wait for a Seqera Platform run in the triggerer, with one list call per workspace per interval.

hattivatti polled ``GET /workflow?search=<run name>&max=1`` once per job per minute. Here every
:class:`SeqeraRunTrigger` of one triggerer process that waits in the same Seqera workspace,
through the same endpoint and token, subscribes to one shared :class:`WorkspacePoller`. The
poller lists the workspace once per interval (``max``/``offset`` pages, narrowed by the run
names' common prefix as ``search``, stopping once every waited-for name is seen) and hands
each subscriber its run's latest record. All triggers of a process share one event loop
(docs/airflow-behaviour.md, "Triggerer"), so the registry is per loop and guarded by an
``asyncio.Lock``; nothing here blocks the loop.

A waiting trigger costs its coroutine, one subscription and one small dict entry; the HTTP
client (and its TLS context) is one per poller, not one per trigger.
"""

from __future__ import annotations

import asyncio
import os
import time
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from hatchway.domain.jobs import JobEvent, seqera_event
from hatchway.hooks.seqera import (
    DEFAULT_PAGE_SIZE,
    SeqeraAuthError,
    SeqeraEndpoint,
    SeqeraError,
    SeqeraHook,
)
from hatchway.hooks.seqera_settings import poll_page_size

ENDPOINT_TTL = 60.0  # seconds a resolved connection is reused, so a rotated token is picked up soon
NOT_STARTED = "SUBMITTED"  # the one live Seqera status that does not mean "running"
# What a waiting trigger reads of a run; the rest of each record is dropped, as a record
# held for a thousand waiting runs would otherwise be most of their memory.
KEPT_FIELDS = ("id", "runName", "status", "submit", "start", "complete", "dateCreated", "exitStatus",
               "errorReport", "errorMessage")


@dataclass(frozen=True)
class Observation:
    """What one poll round saw of one run.

    :param round: the poller's round number.
    :param at: epoch seconds when the round ended.
    :param workflow: the run's ``workflow`` record, or None when the list did not contain it.
    :param error: the round's failure, if it failed (after the hook's retries).
    """

    round: int
    at: float
    workflow: dict[str, Any] | None
    error: SeqeraError | None = None


class _Subscription:
    __slots__ = ("poller", "run_name", "prefix", "interval", "page_size", "seen")

    def __init__(self, poller: WorkspacePoller, run_name: str, prefix: str | None, interval: float,
                 page_size: int) -> None:
        self.poller = poller
        self.run_name = run_name
        self.prefix = prefix
        self.interval = interval
        self.page_size = page_size
        self.seen = 0

    async def next(self) -> Observation:
        """Wait for the first round, after the last one returned, that asked about this run."""
        poller = self.poller
        while poller.round <= self.seen or self.run_name not in poller.asked:
            await poller.tick.wait()
        self.seen = poller.round
        return Observation(poller.round, poller.finished_at, poller.results.get(self.run_name), poller.error)


class WorkspacePoller:
    """One list loop for one (endpoint, token, workspace) in one event loop.

    Created and removed by :func:`subscribe`; runs while it has subscribers.

    :param key: registry key: base URL, token digest, workspace id.
    :param hook: a hook bound to the resolved endpoint; its async client is shared by all.
    :param workspace_id: the Seqera workspace listed.
    """

    def __init__(self, registry: _Registry, key: tuple, hook: SeqeraHook, workspace_id: int | None) -> None:
        self.registry = registry
        self.key = key
        self.hook = hook
        self.workspace_id = workspace_id
        self.subs: set[_Subscription] = set()
        self.round = 0
        self.finished_at = 0.0
        self.asked: frozenset[str] = frozenset()
        self.results: dict[str, dict[str, Any]] = {}
        self.error: SeqeraError | None = None
        self.tick = asyncio.Event()
        self.wake = asyncio.Event()
        self.list_calls = 0
        self.task: asyncio.Task | None = None

    def start(self) -> None:
        if self.task is None or self.task.done():
            self.task = asyncio.get_running_loop().create_task(self._run(), name=f"seqera-poller-{self.workspace_id}")

    def leave(self, sub: _Subscription) -> None:
        self.subs.discard(sub)
        if not self.subs:
            self.wake.set()  # let the loop notice now rather than after a full interval

    async def _run(self) -> None:
        try:
            while True:
                async with self.registry.lock:
                    if not self.subs:
                        if self.registry.pollers.get(self.key) is self:
                            del self.registry.pollers[self.key]
                        return
                    subs = list(self.subs)
                names = frozenset(s.run_name for s in subs)
                prefixes = [s.prefix for s in subs]
                search = os.path.commonprefix(prefixes) if all(prefixes) else None
                await self._poll(names, search or None, poll_page_size(len(names), max(s.page_size for s in subs)))
                await self._sleep(min(s.interval for s in subs))
        finally:
            await self.hook.aclose()

    async def _sleep(self, interval: float) -> None:
        """Wait one interval after a round, or less when the last subscriber leaves."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + interval
        while self.subs:
            self.wake.clear()
            try:
                async with asyncio.timeout_at(deadline):
                    await self.wake.wait()
            except TimeoutError:
                return

    async def _poll(self, names: frozenset[str], search: str | None, page_size: int) -> None:
        results: dict[str, dict[str, Any]] = {}
        error: SeqeraError | None = None
        try:
            found, calls = await self.hook.afind_workflows(set(names), search=search,
                                                           workspace_id=self.workspace_id, page_size=page_size)
            self.list_calls += calls
            results = {name: {k: wf[k] for k in KEPT_FIELDS if wf.get(k) is not None} for name, wf in found.items()}
        except SeqeraError as exc:
            error = exc
        except Exception as exc:  # noqa: BLE001 - a bug here must not strand every waiting trigger
            self.hook.log.exception("Seqera poll of workspace %s failed", self.workspace_id)
            error = SeqeraError(f"poll failed: {type(exc).__name__}: {exc}")
        # Publish the round in one step (no await in between), then wake the subscribers.
        self.results, self.asked, self.error = results, names, error
        self.round += 1
        self.finished_at = time.time()
        tick, self.tick = self.tick, asyncio.Event()
        tick.set()


@dataclass
class _WaitState:
    """What one trigger has learnt so far; kept when it moves to a poller with a new token."""

    running_since: float | None = None
    last_error: str | None = None
    workflow: dict[str, Any] | None = None
    first: bool = True


@dataclass
class _Registry:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    pollers: dict[tuple, WorkspacePoller] = field(default_factory=dict)
    endpoints: dict[str, tuple[float, SeqeraEndpoint]] = field(default_factory=dict)


# Per event loop: asyncio primitives belong to one loop, and a triggerer process has one.
_REGISTRIES: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Registry] = weakref.WeakKeyDictionary()


def _registry() -> _Registry:
    loop = asyncio.get_running_loop()
    registry = _REGISTRIES.get(loop)
    if registry is None:
        registry = _REGISTRIES[loop] = _Registry()
    return registry


def pollers() -> dict[tuple, WorkspacePoller]:
    """The running loop's pollers, keyed by (base URL, token digest, workspace id): for tests and metrics."""
    return dict(_registry().pollers)


async def resolve_endpoint(conn_id: str, *, refresh: bool = False) -> SeqeraEndpoint:
    """The connection's endpoint, cached per loop for :data:`ENDPOINT_TTL` seconds.

    :param refresh: read the connection again (after a refused token: it may have been rotated).
    """
    cache = _registry().endpoints
    hit = cache.get(conn_id)
    if hit and hit[0] > time.monotonic() and not refresh:
        return hit[1]
    endpoint = await SeqeraHook(conn_id).aget_endpoint()
    cache[conn_id] = (time.monotonic() + ENDPOINT_TTL, endpoint)
    return endpoint


@asynccontextmanager
async def subscribe(endpoint: SeqeraEndpoint, workspace_id: int | None, run_name: str, *,
                    prefix: str | None = None, interval: float = 60.0,
                    page_size: int = DEFAULT_PAGE_SIZE) -> AsyncIterator[_Subscription]:
    """Join (or start) the shared poller of ``endpoint`` + ``workspace_id`` for one run name."""
    registry = _registry()
    key = (*endpoint.identity, workspace_id)
    async with registry.lock:
        poller = registry.pollers.get(key)
        if poller is None:
            poller = registry.pollers[key] = WorkspacePoller(registry, key, SeqeraHook(endpoint=endpoint),
                                                             workspace_id)
        sub = _Subscription(poller, run_name, prefix, interval, page_size)
        poller.subs.add(sub)
        poller.start()
    try:
        yield sub
    finally:
        poller.leave(sub)


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
    ) -> None:
        super().__init__()
        if search_prefix and not run_name.startswith(search_prefix):
            raise ValueError(f"search_prefix {search_prefix!r} is not a prefix of run name {run_name!r}")
        self.run_name = run_name
        self.workspace_id = int(workspace_id) if workspace_id is not None else None
        self.seqera_conn_id = seqera_conn_id
        self.poll_interval = float(poll_interval)
        self.timeout_seconds = float(timeout_seconds)
        self.deployed_timeout_seconds = float(deployed_timeout_seconds)
        self.started_at = float(started_at) if started_at is not None else time.time()
        self.search_prefix = search_prefix or None
        self.page_size = int(page_size)

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
        }

    async def run(self) -> AsyncIterator[TriggerEvent]:
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

    async def _wait(self, sub: _Subscription, workspace_id: int | None, state: _WaitState) -> dict[str, Any] | None:
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
            if obs.workflow is None:
                continue  # not listed yet: Nextflow has not reported to Seqera
            workflow = state.workflow = obs.workflow
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

    async def _token_rotated(self, sub: _Subscription) -> bool:
        """After a 401/403: has the connection a different token or URL now than the one refused?"""
        try:
            fresh = await resolve_endpoint(self.seqera_conn_id, refresh=True)
        except Exception:  # noqa: BLE001 - then the refusal stands
            return False
        return fresh.identity != sub.poller.key[:2]

    async def _with_trace(self, sub: _Subscription, workflow: dict[str, Any], workspace_id: int | None) -> dict:
        """A list record may lack the exit status and error report: then ask for the run itself."""
        if workflow.get("status") != "FAILED" or workflow.get("errorReport") or not workflow.get("id"):
            return workflow
        try:
            described = await sub.poller.hook.aget_workflow(workflow["id"], workspace_id)
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
