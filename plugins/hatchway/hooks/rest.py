"""The retrying HTTP transport the engine hooks share (Seqera Platform, Cromwell).

One loop per flavour (sync, async): send, let the hook turn the answer into a value or an
error, and retry what is worth retrying (429, 5xx, timeouts, connection errors, a body cut
off before its JSON ends) with the endpoint's exponential, jittered backoff, honouring ``Retry-After``. The hook names the
system in its messages; nothing here logs a header, so a token never reaches a log.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


class Retry(Exception):
    """Raised by a hook's answer reader for an answer worth another try."""

    def __init__(self, reason: str, retry_after: float | None = None):
        super().__init__(reason)
        self.reason, self.retry_after = reason, retry_after


def retry_after(resp: httpx.Response) -> float | None:
    """``Retry-After`` in seconds, if the answer has a numeric one."""
    try:
        return float(resp.headers["Retry-After"])
    except (KeyError, ValueError):
        return None


def raise_for_retry(resp: httpx.Response) -> None:
    """Raise :class:`Retry` for 429/5xx answers."""
    if resp.status_code in RETRY_STATUSES:
        raise Retry(f"HTTP {resp.status_code}", retry_after(resp) if resp.status_code == 429 else None)


@dataclass(frozen=True)
class Backoff:
    """How often and how patiently to retry.

    :param max_attempts: tries per call.
    :param base: first backoff in seconds, doubled on each retry.
    :param cap: longest single backoff.
    """

    max_attempts: int = 5
    base: float = 1.0
    cap: float = 30.0

    def delay(self, attempt: int, retry_after_s: float | None = None) -> float:
        """Seconds to wait after failed try ``attempt`` (1-based): exponential, jittered, capped."""
        ceiling = min(self.cap, self.base * 2 ** (attempt - 1))
        delay = random.uniform(ceiling / 2, ceiling)  # jitter: many triggers must not retry in step
        if retry_after_s is not None:
            delay = max(delay, min(retry_after_s, self.cap))
        return delay


class Caller(Protocol):
    """What the loops need of a hook."""

    def note_retry(self, method: str, path: str, attempt: int, reason: str, delay: float) -> None: ...

    def give_up(self, method: str, path: str, attempts: int, reason: str) -> Exception: ...


Send = Callable[[], httpx.Response]


def call(caller: Caller, backoff: Backoff, method: str, path: str, send: Send,
         answer: Callable[[httpx.Response], Any], attempts: int | None = None) -> Any:
    """Send until an answer that is not retried, or attempts run out (then ``caller.give_up``)."""
    attempts = attempts or backoff.max_attempts
    for attempt in range(1, attempts + 1):
        try:
            return answer(send())
        except Retry as exc:
            reason, after = exc.reason, exc.retry_after
        except (httpx.TimeoutException, httpx.TransportError) as exc:
            reason, after = type(exc).__name__, None
        except json.JSONDecodeError as exc:  # a cut-off body: the answer was lost on the way
            reason, after = f"malformed answer ({exc.msg})", None
        if attempt == attempts:
            raise caller.give_up(method, path, attempts, reason)
        delay = backoff.delay(attempt, after)
        caller.note_retry(method, path, attempt, reason, delay)
        time.sleep(delay)
    raise AssertionError("unreachable")


async def acall(caller: Caller, backoff: Backoff, method: str, path: str, send: Callable[[], Any],
                answer: Callable[[httpx.Response], Any], attempts: int | None = None) -> Any:
    """Async :func:`call`: ``send`` returns an awaitable response."""
    attempts = attempts or backoff.max_attempts
    for attempt in range(1, attempts + 1):
        try:
            return answer(await send())
        except Retry as exc:
            reason, after = exc.reason, exc.retry_after
        except (httpx.TimeoutException, httpx.TransportError) as exc:
            reason, after = type(exc).__name__, None
        except json.JSONDecodeError as exc:  # a cut-off body: the answer was lost on the way
            reason, after = f"malformed answer ({exc.msg})", None
        if attempt == attempts:
            raise caller.give_up(method, path, attempts, reason)
        delay = backoff.delay(attempt, after)
        caller.note_retry(method, path, attempt, reason, delay)
        await asyncio.sleep(delay)
    raise AssertionError("unreachable")


class HttpClients:
    """One sync and one async ``httpx`` client per hook, made on first use from its endpoint.

    A hook mixing this in defines ``endpoint``, ``aget_endpoint()`` and ``_client_kwargs(endpoint)``.
    """

    _client: httpx.Client | None = None
    _aclient: httpx.AsyncClient | None = None

    def get_conn(self) -> httpx.Client:
        """:return: the synchronous HTTP client, authenticated for this connection."""
        if self._client is None:
            self._client = httpx.Client(**self._client_kwargs(self.endpoint))
        return self._client

    async def aget_conn(self) -> httpx.AsyncClient:
        """:return: the asynchronous HTTP client (one per hook: keep the hook, keep the pool)."""
        if self._aclient is None:
            self._aclient = httpx.AsyncClient(**self._client_kwargs(await self.aget_endpoint()))
        return self._aclient

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    async def aclose(self) -> None:
        if self._aclient is not None:
            await self._aclient.aclose()
            self._aclient = None
