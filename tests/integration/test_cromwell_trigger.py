"""CromwellWorkflowTrigger against the Cromwell simulator: many waits share one ``/query`` per
server per interval; a fresh workflow's 404s and 5xx answers are waited through; failures carry
Cromwell's first failure message."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from hatchway_dev.endpoints import CromwellSimulator
from hatchway.triggers.cromwell import CromwellWorkflowTrigger, pollers

HELLO = "version 1.0\nworkflow hello { output { Int n = 1 } }\n"


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    """Two Cromwell servers (a deployment with per-workspace servers has many)."""
    started = []
    for i in range(2):
        sim = CromwellSimulator()
        sim.start(tmp_path_factory.mktemp(f"cromwell{i}"))
        started.append(sim)
    yield started
    for sim in started:
        sim.stop()


@pytest.fixture
def sims(servers, monkeypatch):
    for i, sim in enumerate(servers):
        sim.reset()
        monkeypatch.setenv(f"AIRFLOW_CONN_CROMWELL_{i}", sim.airflow_env()["AIRFLOW_CONN_CROMWELL_DEFAULT"])
    return servers


def _submit(sim: CromwellSimulator, n: int, labels: dict | None = None) -> list[str]:
    import json

    ids = []
    with httpx.Client(timeout=10) as client:
        for _ in range(n):
            files = {"workflowSource": ("hello.wdl", HELLO), "labels": ("labels.json", json.dumps(labels or {}))}
            answer = client.post(sim.api_url, files=files, data={"workflowType": "WDL", "workflowTypeVersion": "1.0"})
            assert answer.status_code == 201, answer.text
            ids.append(answer.json()["id"])
    return ids


async def _event(trigger: CromwellWorkflowTrigger) -> dict:
    async for event in trigger.run():
        return event.payload
    raise AssertionError("no event")


def _queries(sim: CromwellSimulator, since: float) -> list[float]:
    return [c["t"] for c in sim.call_log() if c["route"] == "query" and c["t"] >= since]


def test_forty_waits_on_two_servers_make_one_query_per_server_per_interval(sims):
    interval = 0.5
    for sim in sims:
        sim.set_course("succeed", after=2)
    waits = [(i, wid) for i, sim in enumerate(sims) for wid in _submit(sim, 20)]

    async def wait_all():
        tasks = [asyncio.ensure_future(_event(CromwellWorkflowTrigger(wid, f"cromwell_{i}", poll_interval=interval)))
                 for i, wid in waits]
        async with asyncio.timeout(20):
            while sum(len(p.subs) for p in pollers().values()) < len(waits):
                await asyncio.sleep(0.01)
        live = len(pollers())
        events = await asyncio.wait_for(asyncio.gather(*tasks), 30)
        await asyncio.sleep(0.05)
        return events, live, len(pollers())

    t0 = time.time()
    events, live, left = asyncio.run(wait_all())
    elapsed = time.time() - t0
    assert [e["status"] for e in events] == ["success"] * len(waits)
    assert (live, left) == (2, 0)  # one poller per server, gone when nobody waits
    for sim in sims:
        times = _queries(sim, t0)
        gaps = [b - a for a, b in zip(times, times[1:])]
        assert times and min(gaps) >= 0.9 * interval, gaps  # one query per interval, for all 20 waits
        assert len(times) <= elapsed / interval + 1
        assert sim.calls().get("status", 0) == 0  # nobody asked one workflow at a time


def test_a_fresh_workflow_unknown_for_a_while_and_5xx_answers_are_waited_through(sims):
    sim = sims[0]
    sim.set_course("succeed", after=1)
    sim.unknown_after_submit(3)
    [wid] = _submit(sim, 1)
    sim.fault(503, count=2, routes=["query"])
    event = asyncio.run(_event(CromwellWorkflowTrigger(wid, "cromwell_0", poll_interval=0.1, timeout_seconds=20)))
    assert event["status"] == "success" and event["cromwell_status"] == "Succeeded"


def test_a_failure_carries_cromwells_first_failure_and_an_abort_reads_aborted(sims):
    sim = sims[0]
    sim.set_course("fail", after=1, match={"label": "course:fail"}, failure="Job hello.t:NA:1 exited with code 7")
    sim.set_course("hang", after=1, match={"label": "course:hang"})
    [failing] = _submit(sim, 1, {"course": "fail"})
    [hanging] = _submit(sim, 1, {"course": "hang"})

    async def both():
        failed = asyncio.ensure_future(_event(CromwellWorkflowTrigger(failing, "cromwell_0", poll_interval=0.1)))
        aborted = asyncio.ensure_future(_event(CromwellWorkflowTrigger(hanging, "cromwell_0", poll_interval=0.1)))
        await asyncio.sleep(0.5)
        async with httpx.AsyncClient() as client:
            assert (await client.post(f"{sim.api_url}/{hanging}/abort")).json()["status"] in ("Aborting", "Aborted")
        return await asyncio.wait_for(asyncio.gather(failed, aborted), 20)

    failed, aborted = asyncio.run(both())
    assert failed["status"] == "failed" and "exited with code 7" in failed["reason"]
    assert aborted["status"] == "aborted" and aborted["cromwell_status"] == "Aborted"


def test_a_workflow_never_seen_times_out_with_a_reason(sims):
    event = asyncio.run(_event(CromwellWorkflowTrigger("00000000-0000-4000-8000-000000000000", "cromwell_0",
                                                       poll_interval=0.1, timeout_seconds=0.5)))
    assert event["status"] == "failed" and event["error"] == "not_started_timeout"
    assert "did not start" in event["reason"]
