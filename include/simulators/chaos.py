"""Chaos mode and one-shot faults, shared by the simulators (Seqera, Cromwell, Wave).

A one-shot fault (:class:`RouteFault`, :func:`take_fault`) makes the next N matching calls
answer a status: a test scripts exactly which call fails. Chaos mode is the opposite: every
API call draws at random (from ``random.Random(seed)``, so a run can be repeated) whether it
goes wrong and how, at rates set at runtime, to show that a client survives a service that
misbehaves now and then. It is a pure ASGI middleware, not Starlette's ``BaseHTTPMiddleware``,
because two of its kinds must drop the TCP connection, which needs the server's transport.

Kinds, each with its rate (a probability 0..1; one draw per request picks at most one kind,
so the rates may sum to 1 at most):

- ``5xx``: 500, 502 or 503 with a JSON error body; the API is not called (no work done).
- ``429``: 429 with ``Retry-After: <retry_after_seconds>`` and a JSON error body; no work done.
- ``slow``: sleep ``slow_seconds``, then the normal answer.
- ``reset``: the connection is aborted (TCP RST) before any answer; no work done.
- ``malformed``: the work is done, the answer is 200 with a truncated (invalid) JSON body.
- ``lost``: the work is done, then the connection is closed (FIN) instead of the answer.

Chaos touches API routes only: never the ``/_sim/`` control routes, never the routes given as
``exempt`` (each simulator exempts the readiness route its ``Service`` polls), never a path no
route serves. :func:`install_chaos` mounts the middleware and ``/_sim/chaos`` on an app.

The module imports no web framework when loaded (FastAPI and Starlette only inside the
functions that mount chaos), so the simulators' framework-free state modules can share its faults.

Dropping a connection needs the server's transport, which ASGI does not expose: under uvicorn
the ``receive`` callable is a bound method of the request cycle, which holds it. Raising
instead would not do: uvicorn answers an exception raised before the response with a 500.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import socket
import struct
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping
from dataclasses import asdict, dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, TypeVar

if TYPE_CHECKING:
    from fastapi import APIRouter, FastAPI

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
ErrorBody = Callable[[int, str], Any]

KINDS = ("5xx", "429", "slow", "reset", "malformed", "lost")
STATUSES_5XX = (500, 502, 503)
CONTROL_PREFIX = "/_sim"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
MAX_SLOW_SECONDS = 600.0
DISCONNECT_WAIT = 5.0


# -- one-shot faults -----------------------------------------------------------------------------
class _Countdown(Protocol):
    count: int


F = TypeVar("F", bound=_Countdown)


def take_fault(faults: list[F], matches: Callable[[F], bool]) -> F | None:
    """The first fault still due that ``matches`` the call, counted down (and removed once spent)."""
    for fault in faults:
        if fault.count > 0 and matches(fault):
            fault.count -= 1
            if fault.count == 0:
                faults.remove(fault)
            return fault
    return None


@dataclass
class RouteFault:
    """The next ``count`` calls of ``routes`` (names of :attr:`KNOWN_ROUTES`; ``None``: all) answer ``status``.

    A simulator subclasses it to name its routes.
    """

    KNOWN_ROUTES: ClassVar[tuple[str, ...]] = ()

    status: int
    count: int = 1
    routes: list[str] | None = None

    def __post_init__(self) -> None:
        if not 400 <= self.status <= 599:
            raise ValueError("status must be an HTTP error code (400-599)")
        if self.count < 1:
            raise ValueError("count must be >= 1")
        unknown = set(self.routes or ()) - set(self.KNOWN_ROUTES)
        if unknown:
            raise ValueError(f"unknown routes {sorted(unknown)}; known: {list(self.KNOWN_ROUTES)}")

    def matches(self, route: str) -> bool:
        return self.routes is None or route in self.routes


# -- chaos configuration and state -----------------------------------------------------------------
@dataclass(frozen=True)
class ChaosConfig:
    """What chaos does; see the module docstring for the kinds.

    :param routes: limit chaos to these: ``"/prefix"`` (any method), ``"METHOD /prefix"``, or a
        route key as the counters show it (``"GET /workflow/{workflowId}"``, or its template
        alone for any method). A prefix matches whole path segments: ``/workflow`` covers
        ``/workflow/abc``, not ``/workflows``. ``None``: every API route.
    :param seed: seed of the random draws (``None``: one is picked, and reported).
    """

    enabled: bool = True
    seed: int | None = None
    rate_5xx: float = 0.0
    rate_429: float = 0.0
    rate_slow: float = 0.0
    rate_reset: float = 0.0
    rate_malformed: float = 0.0
    rate_lost: float = 0.0
    slow_seconds: float = 2.0
    retry_after_seconds: int = 1
    routes: tuple[str, ...] | None = None

    @classmethod
    def parse(cls, data: Any) -> ChaosConfig:
        """A config from a JSON object, every field checked.

        :raises ValueError: naming the field and what is wrong with it.
        """
        if not isinstance(data, Mapping):
            raise ValueError("the chaos config must be a JSON object")
        known = [f.name for f in fields(cls)]
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise ValueError(f"unknown chaos settings {unknown}; known: {known}")
        values: dict[str, Any] = {}
        for name, value in data.items():
            if name == "enabled":
                if not isinstance(value, bool):
                    raise ValueError(f"enabled must be true or false, got {value!r}")
            elif name == "seed":
                if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                    raise ValueError(f"seed must be an integer or null, got {value!r}")
            elif name.startswith("rate_"):
                value = _number(name, value)
                if not 0.0 <= value <= 1.0:
                    raise ValueError(f"{name} must be a probability between 0 and 1, got {value!r}")
            elif name == "slow_seconds":
                value = _number(name, value)
                if not 0.0 <= value <= MAX_SLOW_SECONDS:
                    raise ValueError(f"slow_seconds must be between 0 and {MAX_SLOW_SECONDS:g}, got {value!r}")
            elif name == "retry_after_seconds":
                if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                    raise ValueError(f"retry_after_seconds must be an integer >= 0, got {value!r}")
            elif name == "routes" and value is not None:
                value = tuple(_route_filter(entry) for entry in _list(value))
            values[name] = value
        config = cls(**values)
        total = sum(config.rates.values())
        if total > 1.0 + 1e-9:
            raise ValueError(f"the rates sum to {total:g}, more than 1: one draw per request picks at most one kind")
        return config

    @property
    def rates(self) -> dict[str, float]:
        return {kind: getattr(self, f"rate_{kind}") for kind in KINDS}

    def covers(self, method: str, path: str, key: str) -> bool:
        """Whether the ``routes`` filter lets chaos touch this call (``key``: ``"GET /template"``)."""
        if self.routes is None:
            return True
        template = key.partition(" ")[2]
        for entry in self.routes:
            if entry in (key, template):
                return True
            verb, _, prefix = entry.rpartition(" ")
            if verb and verb != method:
                continue
            if path == prefix or path.startswith(prefix.rstrip("/") + "/"):
                return True
        return False


OFF = ChaosConfig(enabled=False)


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name} must be a number, got {value!r}")
    return float(value)


def _list(value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise ValueError(f"routes must be a list of strings or null, got {value!r}")
    return value


def _route_filter(entry: Any) -> str:
    if not isinstance(entry, str) or not entry.strip():
        raise ValueError(f"routes entries must be non-empty strings, got {entry!r}")
    verb, _, path = entry.strip().rpartition(" ")
    if verb and verb not in METHODS:
        raise ValueError(f"route {entry!r}: {verb!r} is not an HTTP method (one of {sorted(METHODS)})")
    if not path.startswith("/"):
        raise ValueError(f"route {entry!r}: the path must start with '/' (e.g. '/workflow' or 'GET /workflow')")
    return f"{verb} {path}" if verb else path


@dataclass
class Chaos:
    """Chaos of one simulator: its config, its random draws and what it did.

    ``POST /_sim/chaos`` (:meth:`configure`) restarts the draws from the seed and zeroes the
    counters; ``DELETE`` (:meth:`off`) stops chaos and keeps the counters to be read;
    the simulator's reset (:meth:`reset`) does both.

    :param exempt: route keys (``"GET /service-info"``) chaos never touches.
    """

    exempt: frozenset[str] = frozenset()
    config: ChaosConfig = OFF
    seed: int | None = None
    counts: Counter[str] = field(default_factory=Counter)
    by_route: defaultdict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    _rng: random.Random = field(default_factory=random.Random, init=False, repr=False)

    def configure(self, data: Any) -> ChaosConfig:
        """Replace the config (:meth:`ChaosConfig.parse` checks it), reseed, zero the counters."""
        config = ChaosConfig.parse(data)
        self.seed = config.seed if config.seed is not None else random.SystemRandom().randrange(2**32)
        self._rng = random.Random(self.seed)
        self.config = config
        self.counts.clear()
        self.by_route.clear()
        return config

    def off(self) -> None:
        self.config = replace(self.config, enabled=False)

    def reset(self) -> None:
        self.config, self.seed = OFF, None
        self._rng = random.Random()
        self.counts.clear()
        self.by_route.clear()

    def draw(self, method: str, path: str, key: str) -> str | None:
        """The kind this API call gets (``None``: the normal answer), counted in total and under ``key``."""
        if not self.config.enabled or key in self.exempt or not self.config.covers(method, path, key):
            return None
        roll = self._rng.random()
        picked, edge = None, 0.0
        for kind, rate in self.config.rates.items():
            edge += rate
            if roll < edge:
                picked = kind
                break
        outcome = picked or "passed"
        for counter in (self.counts, self.by_route[key]):
            counter["requests"] += 1
            counter[outcome] += 1
        return picked

    def status_5xx(self) -> int:
        return self._rng.choice(STATUSES_5XX)

    def snapshot(self) -> dict[str, Any]:
        """The config (with the seed in use) and the counters: totals and per route key, each
        ``requests`` (calls chaos drew for), ``passed`` (left alone) and one count per kind."""
        config = asdict(self.config) | {"seed": self.seed}
        config["routes"] = list(self.config.routes) if self.config.routes is not None else None
        return {"config": config,
                "counts": _counts(self.counts),
                "by_route": {key: _counts(c) for key, c in sorted(self.by_route.items())}}


def _counts(counter: Counter[str]) -> dict[str, int]:
    return {name: counter[name] for name in ("requests", "passed", *KINDS)}


# -- the middleware ------------------------------------------------------------------------------
class ChaosMiddleware:
    """Pure ASGI middleware applying :class:`Chaos` to the API calls of ``router_app``.

    :param app: the next ASGI app.
    :param chaos: the state it draws from and counts into.
    :param router_app: the FastAPI app whose routes tell API calls apart and name them.
    :param error_body: the JSON body of a ``5xx`` / ``429`` answer, from ``(status, message)``.
    """

    def __init__(self, app: ASGIApp, chaos: Chaos, router_app: FastAPI, error_body: ErrorBody) -> None:
        from starlette.routing import Match

        self.app, self.chaos, self.router_app, self.error_body = app, chaos, router_app, error_body
        self._full = Match.FULL

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.chaos.config.enabled:
            await self.app(scope, receive, send)
            return
        key = self._route_key(scope)
        kind = self.chaos.draw(scope["method"], scope["path"], key) if key else None
        if kind is None:
            await self.app(scope, receive, send)
        elif kind == "5xx":
            status = self.chaos.status_5xx()
            await _drain(receive)
            await self._answer(send, status, f"Simulated chaos: HTTP {status} on {key}")
        elif kind == "429":
            seconds = self.chaos.config.retry_after_seconds
            await _drain(receive)
            await self._answer(send, 429, f"Simulated chaos: too many requests on {key}",
                               [(b"retry-after", str(seconds).encode())])
        elif kind == "slow":
            await asyncio.sleep(self.chaos.config.slow_seconds)
            await self.app(scope, receive, send)
        elif kind == "reset":
            await _drain(receive)  # else the RST can hit the client mid-write, and it reads a plain EOF
            await _drop(receive, abort=True)
        elif kind == "malformed":
            start, body = await _run_captured(self.app, scope, receive)
            await _send_malformed(send, start, body)
        else:  # lost
            await _run_captured(self.app, scope, receive)
            await _drop(receive, abort=False)

    def _route_key(self, scope: Scope) -> str | None:
        """``"METHOD /template"`` of the route serving this API call; ``None`` for control routes
        and for paths no route serves (404, 405)."""
        path = scope["path"]
        if path == CONTROL_PREFIX or path.startswith(CONTROL_PREFIX + "/"):
            return None
        for route in self.router_app.router.routes:
            match, _ = route.matches(scope)
            if match is self._full:
                template = getattr(route, "path", None)
                return f"{scope['method']} {template}" if template else None
        return None

    async def _answer(self, send: Send, status: int, message: str,
                      headers: list[tuple[bytes, bytes]] | None = None) -> None:
        body = json.dumps(self.error_body(status, message)).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                *(headers or [])]})
        await send({"type": "http.response.body", "body": body})


async def _drain(receive: Receive) -> None:
    """Read the request body to its end (unused), so the connection stays good for the next call."""
    while True:
        message = await receive()
        if message["type"] != "http.request" or not message.get("more_body", False):
            return


async def _run_captured(app: ASGIApp, scope: Scope, receive: Receive) -> tuple[Message | None, bytes]:
    """Run the app to completion, keeping its answer from the client: ``(start message, body)``."""
    start: Message | None = None
    chunks: list[bytes] = []

    async def capture(message: Message) -> None:
        nonlocal start
        if message["type"] == "http.response.start":
            start = message
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive, capture)
    return start, b"".join(chunks)


def truncated_json(body: bytes) -> bytes:
    """The first half of ``body`` if that is not valid JSON (no proper prefix of an object or an
    array is); else, and for an empty answer (a 204), a broken object of its own."""
    cut = body[: len(body) // 2]
    if cut.strip():
        try:
            json.loads(cut)
        except ValueError:
            return cut
    return b'{"simulator": "malformed answ'


async def _send_malformed(send: Send, start: Message | None, body: bytes) -> None:
    broken = truncated_json(body)
    kept = [(k, v) for k, v in (start or {}).get("headers", [])
            if k.lower() not in (b"content-length", b"content-type")]
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(broken)).encode()),
                            *kept]})
    await send({"type": "http.response.body", "body": broken})


class ChaosDropUnsupported(RuntimeError):
    """The server gives no way to drop a connection (chaos ``reset`` / ``lost`` need uvicorn)."""


def _transport(receive: Receive) -> asyncio.Transport:
    """The connection's transport, duck-typed: uvloop's transports do not derive from asyncio's."""
    transport = getattr(getattr(receive, "__self__", None), "transport", None)
    if not all(callable(getattr(transport, name, None)) for name in ("abort", "close", "get_extra_info")):
        raise ChaosDropUnsupported(
            "chaos cannot drop this connection: the ASGI server's receive() does not lead to its transport "
            "(run the simulator under uvicorn, as include.simulators.serve does)")
    return transport


async def _drop(receive: Receive, *, abort: bool) -> None:
    """Drop the connection without an answer: an abort sends RST, a close FIN.

    Returns once the server has seen the connection go (``http.disconnect``), so it does not
    try an answer of its own ("returned without starting response": a 500).
    """
    transport = _transport(receive)
    if abort:
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()
    else:
        transport.close()
    try:
        async with asyncio.timeout(DISCONNECT_WAIT):
            while (await receive())["type"] != "http.disconnect":
                pass
    except TimeoutError:
        pass


# -- mounting --------------------------------------------------------------------------------------
def default_error_body(status: int, message: str) -> dict[str, str]:
    return {"message": message}


def install_chaos(app: FastAPI, *, exempt: Iterable[str] = (),
                  error_body: ErrorBody = default_error_body) -> Chaos:
    """Mount chaos on a simulator app: the middleware and ``POST|GET|DELETE /_sim/chaos``.

    Call it once the app's other middleware is added, so chaos is the outermost (a dropped
    connection then drops everything); the state is also kept in ``app.state.chaos``.

    :param exempt: route keys chaos never touches (``"GET /service-info"``: readiness).
    :param error_body: the JSON body of chaos's ``5xx`` / ``429`` answers, in the API's error shape.
    """
    chaos = Chaos(exempt=frozenset(exempt))
    app.state.chaos = chaos
    app.add_middleware(ChaosMiddleware, chaos=chaos, router_app=app, error_body=error_body)
    app.include_router(chaos_routes(chaos))
    return chaos


def chaos_routes(chaos: Chaos) -> APIRouter:
    """``POST /_sim/chaos`` (set: 400 on a bad value), ``GET`` (config and counters), ``DELETE`` (off).

    A plain Starlette route: its ``request`` needs no annotation, which FastAPI could not
    resolve here (the framework is imported lazily, see the module docstring).
    """
    from fastapi import APIRouter, HTTPException
    from fastapi.responses import JSONResponse

    async def endpoint(request: Any) -> JSONResponse:
        if request.method == "POST":
            try:
                data = json.loads(await request.body() or b"{}")
            except ValueError as exc:
                raise HTTPException(400, f"the chaos config is not valid JSON: {exc}") from None
            try:
                chaos.configure(data)
            except ValueError as exc:
                raise HTTPException(400, str(exc)) from None
        elif request.method == "DELETE":
            chaos.off()
        return JSONResponse(chaos.snapshot())

    sim = APIRouter()
    sim.add_route(f"{CONTROL_PREFIX}/chaos", endpoint, methods=["GET", "POST", "DELETE"], include_in_schema=False)
    return sim
