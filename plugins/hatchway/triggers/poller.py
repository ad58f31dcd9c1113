"""The shared poller: one list or query call per engine endpoint per interval for every waiting run.

Every deferred wait on an engine (a Seqera run, a Cromwell workflow) subscribes here with a
*key* that names who asks where (base URL, token digest, Seqera workspace...) and a *source*
that knows how to ask that engine about many runs in one call. One :class:`SharedPoller` per
key runs while it has subscribers: each round it collects the names of every subscriber,
asks the source once (a source may page), publishes what it saw, and sleeps the shortest
interval any subscriber wants. Subscribers read rounds, never the engine.

All triggers of a triggerer process share one event loop (docs/airflow-behaviour.md,
"Triggerer"), so the registry is per loop and guarded by an ``asyncio.Lock``; nothing here
blocks the loop. A waiting run costs its coroutine, one subscription and one small dict
entry; the engine's HTTP client is one per poller.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

from hatchway import metrics

log = logging.getLogger(__name__)


class PollSource(Protocol):
    """How one engine endpoint is asked about many runs at once."""

    async def observe(self, subs: list[Subscription]) -> tuple[dict[str, dict[str, Any]], int]:
        """Ask about every subscriber's run; return name -> record (absent: not seen) and calls made."""

    async def aclose(self) -> None:
        """Release the source's client."""


@dataclass(frozen=True)
class Observation:
    """What one round saw of one run.

    :param round: the poller's round number.
    :param at: epoch seconds when the round ended.
    :param record: the run's record, or None when the answer did not contain it.
    :param error: the round's failure, if it failed (after the source's own retries).
    """

    round: int
    at: float
    record: dict[str, Any] | None
    error: Exception | None = None


class Subscription:
    """One waiting run's place at a poller.

    :param name: what the source looks the run up by (a run name, a workflow id).
    :param interval: seconds this run wants between rounds.
    :param options: source-specific hints (a search prefix, a page size).
    """

    __slots__ = ("poller", "name", "interval", "options", "seen")

    def __init__(self, poller: SharedPoller, name: str, interval: float, options: dict[str, Any]) -> None:
        self.poller = poller
        self.name = name
        self.interval = interval
        self.options = options
        self.seen = 0

    async def next(self) -> Observation:
        """Wait for the first round, after the last one returned, that asked about this run."""
        poller = self.poller
        while poller.round <= self.seen or self.name not in poller.asked:
            await poller.tick.wait()
        self.seen = poller.round
        return Observation(poller.round, poller.finished_at, poller.results.get(self.name), poller.error)


class SharedPoller:
    """One polling loop for one key in one event loop; created and removed by :func:`subscribe`."""

    def __init__(self, registry: _Registry, key: tuple, source: PollSource) -> None:
        self.registry = registry
        self.key = key
        self.source = source
        self.subs: set[Subscription] = set()
        self.round = 0
        self.finished_at = 0.0
        self.asked: frozenset[str] = frozenset()
        self.results: dict[str, dict[str, Any]] = {}
        self.error: Exception | None = None
        self.tick = asyncio.Event()
        self.wake = asyncio.Event()
        self.calls = 0
        self.task: asyncio.Task | None = None
        self.endpoint = metrics.endpoint_label(str(key[1])) if len(key) > 1 else "none"

    def start(self) -> None:
        if self.task is None or self.task.done():
            self.task = asyncio.get_running_loop().create_task(self._run(), name=f"poller-{self.key[0]}")

    def leave(self, sub: Subscription) -> None:
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
                await self._poll(subs)
                await self._sleep(min(s.interval for s in subs))
        finally:
            await self.source.aclose()

    async def _sleep(self, interval: float) -> None:
        """Wait one interval after a round, or less when the last subscriber leaves."""
        deadline = asyncio.get_running_loop().time() + interval
        while self.subs:
            self.wake.clear()
            try:
                async with asyncio.timeout_at(deadline):
                    await self.wake.wait()
            except TimeoutError:
                return

    async def _poll(self, subs: list[Subscription]) -> None:
        results: dict[str, dict[str, Any]] = {}
        error: Exception | None = None
        try:
            results, calls = await self.source.observe(subs)
            self.calls += calls
            metrics.incr("poller.calls", calls, engine=self.key[0], endpoint=self.endpoint)
        except Exception as exc:  # noqa: BLE001 - a failed round is published, never a dead loop
            error = exc
            metrics.incr("poller.errors", engine=self.key[0], endpoint=self.endpoint)
        metrics.gauge("runs_waiting", sum(len(p.subs) for k, p in self.registry.pollers.items() if k[0] == self.key[0]),
                      engine=self.key[0])
        # Publish the round in one step (no await in between), then wake the subscribers.
        self.results, self.asked, self.error = results, frozenset(s.name for s in subs), error
        self.round += 1
        self.finished_at = time.time()
        tick, self.tick = self.tick, asyncio.Event()
        tick.set()


@dataclass
class _Registry:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    pollers: dict[tuple, SharedPoller] = field(default_factory=dict)
    cache: dict[Any, tuple[float, Any]] = field(default_factory=dict)


# Per event loop: asyncio primitives belong to one loop, and a triggerer process has one.
_REGISTRIES: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Registry] = weakref.WeakKeyDictionary()


def _registry() -> _Registry:
    loop = asyncio.get_running_loop()
    registry = _REGISTRIES.get(loop)
    if registry is None:
        registry = _REGISTRIES[loop] = _Registry()
    return registry


def pollers(kind: str | None = None) -> dict[tuple, SharedPoller]:
    """The running loop's pollers (of one kind: the key's first element), for tests and metrics."""
    return {k: p for k, p in _registry().pollers.items() if kind is None or k[0] == kind}


async def cached(key: Any, ttl: float, load: Callable[[], Any], *, refresh: bool = False) -> Any:
    """A per-loop cache for what many waits resolve alike (a connection's endpoint)."""
    cache = _registry().cache
    hit = cache.get(key)
    if hit and hit[0] > time.monotonic() and not refresh:
        return hit[1]
    value = await load()
    cache[key] = (time.monotonic() + ttl, value)
    return value


@asynccontextmanager
async def subscribe(key: tuple, make_source: Callable[[], PollSource], name: str, *, interval: float,
                    **options: Any) -> AsyncIterator[Subscription]:
    """Join (or start) the shared poller of ``key`` for the run ``name``.

    :param key: who asks where; its first element is the engine kind (``"seqera"``, ``"cromwell"``).
    :param make_source: builds the source when this key has no poller yet.
    :param interval: seconds this run wants between rounds (the poller uses the shortest).
    :param options: hints for the source.
    """
    registry = _registry()
    async with registry.lock:
        poller = registry.pollers.get(key)
        if poller is None:
            poller = registry.pollers[key] = SharedPoller(registry, key, make_source())
        sub = Subscription(poller, name, interval, options)
        poller.subs.add(sub)
        poller.start()
    try:
        yield sub
    finally:
        poller.leave(sub)
