"""Benchmark of waiting on Cromwell (``make bench``): printed as ratios against a baseline
measured in the same run, never asserted as timings.

200 waiting workflows on 2 Cromwell simulators (100 each), in one event loop like one
triggerer process, poll interval 0.5 s:
- ours: one :class:`CromwellWorkflowTrigger` per workflow; they share one poller per server,
  which asks ``POST /query`` for all its ids in one body each interval;
- baseline: the naive per-run wait, one ``GET /{id}/status`` per workflow per interval
  (hattivatti's way), written here with ``httpx.AsyncClient``.

Calls are counted at the simulators (``call_log()``), every API route but ``submit`` (setup).

Why a fixed window and not calls-to-done: the simulator moves a workflow one step per
observation, but a status answer shows the state *after* the step and a query answer the
state *before* it (Cromwell's summary table lags). With ``after=A`` (A observations
``Submitted``, A ``Running``, then ``Succeeded``) the baseline sees the end at its
(2A+1)-th call and ours at its (2A+2)-th round; no single ``after`` gives both the same
number of intervals (odd against even). So both are counted over the same window: the first
2A intervals from the mode's first call, where every workflow is still waiting in both modes
(a workflow's k-th call comes at least (k-1) intervals after the first call). Wall time to
all-done is printed beside it, with that one interval of difference in it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
import time

import httpx
import pytest

from hatchway_dev.endpoints import CromwellSimulator
from hatchway.hooks.cromwell import CromwellHook
from hatchway.triggers.cromwell import CromwellWorkflowTrigger

pytestmark = pytest.mark.bench

SERVERS = 2
PER_SERVER = 100
INTERVAL = 0.5
AFTER = 4  # observations Submitted, then as many Running, then Succeeded
WINDOW = 2 * AFTER  # intervals counted: nobody has ended yet, in either mode
HELLO = "version 1.0\nworkflow hello { output { Int n = 1 } }\n"
ENDED = ("Succeeded", "Failed", "Aborted")


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    started = []
    try:
        for i in range(SERVERS):
            sim = CromwellSimulator()
            sim.start(tmp_path_factory.mktemp(f"cromwell{i}"))
            started.append(sim)
        yield started
    finally:
        for sim in started:
            sim.stop()


@pytest.fixture
def sims(servers, monkeypatch):
    for i, sim in enumerate(servers):
        monkeypatch.setenv(f"AIRFLOW_CONN_CROMWELL_{i}", sim.airflow_env()["AIRFLOW_CONN_CROMWELL_DEFAULT"])
    # 200 "is Running" and 1,000s of "HTTP Request" lines would drown the figures. Airflow's
    # structlog reads per-logger levels from this table when a logger is made.
    import importlib

    for module in ("airflow._shared.logging.structlog", "airflow.sdk._shared.logging.structlog"):
        try:
            levels = importlib.import_module(module).PER_LOGGER_LEVELS
        except (ImportError, AttributeError):
            continue
        monkeypatch.setitem(levels, "hatchway.triggers.cromwell", logging.WARNING)
    monkeypatch.setattr(logging.getLogger("httpx"), "level", logging.WARNING)
    return servers


@pytest.fixture
def query_bodies(monkeypatch) -> list[tuple[str, int, int]]:
    """``(base URL, ids, bytes)`` of every ``/query`` body the triggers' hooks send (the
    simulator logs no bodies), read off the wire by an httpx request hook."""
    bodies: list[tuple[str, int, int]] = []
    original = CromwellHook._client_kwargs

    def client_kwargs(self, endpoint):
        async def note(request: httpx.Request) -> None:
            if request.method == "POST" and request.url.path.endswith("/query"):
                terms = json.loads(request.content)
                bodies.append((endpoint.base_url, sum("id" in t for t in terms), len(request.content)))

        return {**original(self, endpoint), "event_hooks": {"request": [note]}}

    monkeypatch.setattr(CromwellHook, "_client_kwargs", client_kwargs)
    return bodies


def _start(sims: list[CromwellSimulator]) -> list[tuple[int, str]]:
    """Fresh simulators with PER_SERVER workflows each on the bench course: ``(server, id)``."""
    waits = []
    with httpx.Client(timeout=30) as client:
        for i, sim in enumerate(sims):
            sim.reset()
            sim.set_course("succeed", after=AFTER)
            for _ in range(PER_SERVER):
                answer = client.post(sim.api_url, files={"workflowSource": ("hello.wdl", HELLO)},
                                     data={"workflowType": "WDL", "workflowTypeVersion": "1.0"})
                assert answer.status_code == 201, answer.text
                waits.append((i, answer.json()["id"]))
    return waits


def _calls_per_interval(sims: list[CromwellSimulator]) -> list[float]:
    """API calls (not ``submit``) per interval of each server over WINDOW intervals from the first one."""
    logs = [[c["t"] for c in sim.call_log() if c["route"] != "submit"] for sim in sims]
    t0 = min(t for log in logs for t in log)
    return [sum(1 for t in log if t < t0 + WINDOW * INTERVAL) / WINDOW for log in logs]


async def _ours(waits: list[tuple[int, str]]) -> list[str]:
    async def one(server: int, workflow_id: str) -> str:
        trigger = CromwellWorkflowTrigger(workflow_id, f"cromwell_{server}", poll_interval=INTERVAL)
        async for event in trigger.run():
            return event.payload["status"]
        return "no event"

    return await asyncio.wait_for(asyncio.gather(*(one(i, wid) for i, wid in waits)), 60)


async def _baseline(sims: list[CromwellSimulator], waits: list[tuple[int, str]]) -> list[str]:
    """One status call per workflow per interval, until it ends.

    Each wait has its own client, as each per-run wait (a sensor, a hook per task) would. One
    client for all would not make the baseline's calls: in one loop, 100 waits queue for
    httpcore's pool for seconds each round and the server sees a fraction of them. The
    clients share one SSL context, so making 200 of them is not 200 CA-bundle loads.
    """
    tls = ssl.create_default_context()

    async def one(server: int, workflow_id: str) -> str:
        async with httpx.AsyncClient(base_url=sims[server].api_url, timeout=30, verify=tls) as client:
            while True:
                answer = await client.get(f"/{workflow_id}/status")
                answer.raise_for_status()
                status = answer.json()["status"]
                if status in ENDED:
                    return status
                await asyncio.sleep(INTERVAL)

    return await asyncio.wait_for(asyncio.gather(*(one(i, wid) for i, wid in waits)), 60)


def test_two_hundred_waits_on_two_servers_calls_per_interval_vs_one_status_call_each(sims, query_bodies, bench_table):
    waits = _start(sims)
    t = time.monotonic()
    ours = asyncio.run(_ours(waits))
    ours_wall = time.monotonic() - t
    ours_rate = _calls_per_interval(sims)

    waits = _start(sims)
    t = time.monotonic()
    base = asyncio.run(_baseline(sims, waits))
    base_wall = time.monotonic() - t
    base_rate = _calls_per_interval(sims)

    n = len(waits)
    ratio = sum(base_rate) / sum(ours_rate)
    ids, size = max((ids, size) for _, ids, size in query_bodies)
    print(f"\n--- Cromwell wait: {n} waiting workflows on {SERVERS} servers ({PER_SERVER} each), poll interval "
          f"{INTERVAL:g}s; course {AFTER} observations Submitted, {AFTER} Running, then Succeeded; "
          f"calls counted over the first {WINDOW} intervals")
    print(f"{'':28}{'shared poller':>15}{'status per wf':>15}{'ratio':>9}")
    for i in range(SERVERS):
        print(f"{f'calls/interval, server {i}':28}{ours_rate[i]:>15.2f}{base_rate[i]:>15.1f}"
              f"{base_rate[i] / ours_rate[i]:>8.0f}x")
    print(f"{'calls/interval, total':28}{sum(ours_rate):>15.2f}{sum(base_rate):>15.1f}{ratio:>8.0f}x"
          f"   (baseline asked {n}: one call per workflow every {INTERVAL:g}s; served every "
          f"{n * INTERVAL / sum(base_rate):.2f}s)")
    print(f"{'wall time to all done':28}{ours_wall:>14.1f}s{base_wall:>14.1f}s"
          f"   (ends seen at round {2 * AFTER + 2} vs call {2 * AFTER + 1})")
    print(f"{'largest /query body':28}{f'{ids} ids, {size / 1024:.1f} KiB':>15}{'-':>15}"
          f"   ({len(query_bodies)} queries in all)")
    bench_table.add(f"Cromwell calls per interval, {n} waits on {SERVERS} servers", f"{sum(ours_rate):.2f}",
                    f"{sum(base_rate):.1f} (status per workflow)", ratio, "<= 1 call per server",
                    all(r <= 1.05 for r in ours_rate))
    assert ours == ["success"] * n
    assert base == ["Succeeded"] * n
    assert ratio > 10
