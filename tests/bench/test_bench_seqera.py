"""Benchmark of waiting on Seqera (``make bench``): printed as ratios against baselines measured
in the same run, never asserted as timings.

At N = 100 and 1,000 concurrent waiting runs, in one event loop like one triggerer process,
against the Seqera simulator:
- memory per waiting run (tracemalloc, after a warm-up; Python allocations only, so a TLS
  context's OpenSSL memory is not in it) of :class:`SeqeraRunTrigger` beside a bare
  ``DateTimeTrigger`` (docs/airflow-behaviour.md: about 9 KiB inside a triggerer; the goal is
  <= 32 KiB). Both include their shares of everything they hold: subscriptions, the shared
  poller and its client, the last record of each run;
- Seqera calls per poll interval of the shared poller (goal <= number of workspaces) beside
  one call per job per interval (hattivatti's polling), both measured at the simulator.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
import tracemalloc
from datetime import datetime, timedelta, timezone

import pytest

from hatchway_dev.endpoints import SeqeraSimulator
from hatchway.hooks.seqera import SeqeraHook, newest_by_name
from hatchway.hooks.seqera_settings import poll_page_size
from hatchway.triggers.seqera import SeqeraRunTrigger, pollers

pytestmark = pytest.mark.bench

WORKSPACES = (1001, 2002)
INTERVALS = 3  # poll intervals counted per measurement


@pytest.fixture(scope="module")
def seqera(tmp_path_factory):
    server = SeqeraSimulator(conn_extra={"timeout": 30, "max_attempts": 3, "backoff_base": 0.2})
    server.start(tmp_path_factory.mktemp("seqera"))
    yield server
    server.stop()


@pytest.fixture
def sim(seqera, monkeypatch):
    for key, value in seqera.airflow_env().items():
        monkeypatch.setenv(key, value)
    # Thousands of "sleeping" / "is RUNNING" lines would drown the figures. Airflow's structlog
    # reads per-logger levels from this table when a logger is made (each trigger makes its own).
    import importlib

    for module in ("airflow._shared.logging.structlog", "airflow.sdk._shared.logging.structlog"):
        try:
            levels = importlib.import_module(module).PER_LOGGER_LEVELS
        except (ImportError, AttributeError):
            continue
        for name in ("airflow.providers.standard.triggers.temporal", "hatchway.triggers.seqera"):
            monkeypatch.setitem(levels, name, logging.WARNING)
    monkeypatch.setattr(logging.getLogger("httpx"), "level", logging.WARNING)
    return seqera


async def _drain(trigger) -> None:
    async for _ in trigger.run():
        return


def _runs(n: int) -> list[dict]:
    return [{"run_name": f"bn-intp{i:06d}", "workspace_id": WORKSPACES[i % len(WORKSPACES)],
             "course": {"kind": "running"}} for i in range(n)]


def _traced() -> int:
    gc.collect()
    return tracemalloc.get_traced_memory()[0]


async def _memory_per_datetime_trigger(n: int) -> float:
    from airflow.providers.standard.triggers.temporal import DateTimeTrigger

    moment = datetime.now(timezone.utc) + timedelta(days=1)
    before = _traced()
    tasks = [asyncio.ensure_future(_drain(DateTimeTrigger(moment=moment))) for _ in range(n)]
    await asyncio.sleep(0.5)  # every one reaches its sleep
    per_run = (_traced() - before) / n
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return per_run


async def _seqera_waiting(sim: SeqeraSimulator, runs: list[dict], page_size: int, measure_memory: bool,
                          interval: float, count_calls: bool = True):
    """Start one trigger per run; memory once every run was polled; then calls over INTERVALS."""
    before = _traced() if measure_memory else 0
    tasks = [asyncio.ensure_future(_drain(SeqeraRunTrigger(
        r["run_name"], workspace_id=r["workspace_id"], poll_interval=interval, search_prefix="bn-",
        page_size=page_size))) for r in runs]
    deadline = time.monotonic() + 120
    while sum(len(p.asked) for p in pollers().values() if p.round) < len(runs):
        assert time.monotonic() < deadline, "the pollers never asked about every run"
        await asyncio.sleep(0.05)
    per_run = (_traced() - before) / len(runs) if measure_memory else None
    if measure_memory:
        tracemalloc.stop()  # it slows the loop; the call counts below must not pay for it
    live_pollers = len(pollers())
    if not count_calls:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        return per_run, None, live_pollers
    t0 = time.time()
    await asyncio.sleep(interval * INTERVALS)
    calls = await asyncio.to_thread(sim.calls, t0)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    list_calls = sum(1 for t, route, *_ in calls["log"] if route == "GET /workflow" and t < t0 + interval * INTERVALS)
    return per_run, list_calls / INTERVALS, live_pollers


async def _per_job(sim: SeqeraSimulator, runs: list[dict], interval: float) -> tuple[float, float]:
    """hattivatti's polling: every job lists ``search=<its run name>&max=1`` once per interval.

    :return: calls per interval as served, and the mean seconds between two calls of one job
        (longer than ``interval`` when the server cannot keep up with one call per job).
    """
    hook = SeqeraHook()
    cycles = [0] * len(runs)

    async def one(i: int, name: str, workspace_id: int) -> None:
        while True:
            page = await hook.alist_workflows(name, workspace_id, max=1)
            newest_by_name(page.get("workflows") or [], {name})
            cycles[i] += 1
            await asyncio.sleep(interval)

    tasks = [asyncio.ensure_future(one(i, r["run_name"], r["workspace_id"])) for i, r in enumerate(runs)]
    await asyncio.sleep(interval)  # every job has made its first call
    t0, done0 = time.time(), sum(cycles)
    await asyncio.sleep(interval * INTERVALS)
    t1, done1 = time.time(), sum(cycles)
    calls = await asyncio.to_thread(sim.calls, t0)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await hook.aclose()
    served = sum(1 for t, route, *_ in calls["log"] if route == "GET /workflow" and t < t1)
    cycle = (t1 - t0) * len(runs) / max(1, done1 - done0)
    return served / INTERVALS, cycle


@pytest.mark.parametrize(("n", "interval"), [(100, 3.0), (1000, 5.0)])
def test_waiting_runs_memory_and_calls_per_interval(sim, n, interval, bench_table):
    sim.reset()
    runs = _runs(n)
    sim.create_runs(runs)

    # Warm up first: modules imported lazily on a first run are a one-off of the process
    # (a triggerer has them loaded), not a cost of each waiting run.
    asyncio.run(_memory_per_datetime_trigger(2))
    asyncio.run(_seqera_waiting(sim, runs[:2], 100, False, interval, count_calls=False))
    tracemalloc.start()
    datetime_kib = asyncio.run(_memory_per_datetime_trigger(n)) / 1024
    tracemalloc.stop()
    tracemalloc.start()
    seqera_bytes, batched, live_pollers = asyncio.run(_seqera_waiting(sim, runs, 100, True, interval))
    seqera_kib = seqera_bytes / 1024
    _, batched_big_pages, _ = asyncio.run(_seqera_waiting(sim, runs, 1000, False, interval))
    per_job, per_job_cycle = asyncio.run(_per_job(sim, runs, interval))

    w = len(WORKSPACES)
    pages = -(-(n // w) // poll_page_size(n // w, 100))
    print(f"\n--- Seqera wait: N={n} waiting runs in {w} workspaces, poll interval {interval:g}s, "
          f"counted over {INTERVALS} intervals")
    print(f"memory per waiting run: SeqeraRunTrigger {seqera_kib:.1f} KiB vs DateTimeTrigger {datetime_kib:.1f} KiB "
          f"-> ratio {seqera_kib / datetime_kib:.1f} (goal <= 32 KiB)")
    print(f"Seqera calls per interval, shared poller: {batched_big_pages:.1f} with max=1000 "
          f"(goal <= {w} workspaces); {batched:.1f} with max=100 ({n // w} runs per workspace; the poller asks for "
          f"max={poll_page_size(n // w, 100)}, i.e. {pages} page(s) a round)")
    print(f"Seqera calls per interval, one call per job: {per_job:.1f} served; one call per job every "
          f"{per_job_cycle:.1f}s (asked: every {interval:g}s, i.e. {n} per interval)")
    print(f"ratio one-call-per-job / shared poller: {per_job / batched_big_pages:.0f}x (max=1000), "
          f"{per_job / batched:.0f}x (max=100); pollers while waiting: {live_pollers}")
    economy = n / batched_big_pages  # asked: one call per run per interval
    bench_table.add(f"Seqera calls per interval, N={n} on {w} workspaces", f"{batched_big_pages:.2f}",
                    f"{n} (one per run; {per_job:.1f} served)", f"{economy:.0f}x",
                    ">= 500x at N=1000" if n >= 1000 else "-", economy >= 500 if n >= 1000 else None)
    bench_table.add(f"triggerer memory per waiting run, N={n}", f"{seqera_kib:.1f} KiB",
                    f"{datetime_kib:.1f} KiB (DateTimeTrigger)", seqera_kib / datetime_kib, "<= 3x",
                    seqera_kib / datetime_kib <= 3)
    assert live_pollers == w  # structure, not timing: one poller per workspace
