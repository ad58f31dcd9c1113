"""The engine hooks against simulators in chaos mode: 5xx, 429 with Retry-After, slow answers,
connection resets, cut-off JSON and answers lost after the work was done, at high rates.

Every call ends with the true answer, and no launch, submission or build request is made
twice: what the simulators recorded is the judge, not what the hooks returned.
"""

from __future__ import annotations

import asyncio
import json

import pytest

from hatchway.hooks.seqera import SeqeraHook
from hatchway.hooks.wave import WaveHook
from support.cromwell import cromwell_simulator  # noqa: F401 - fixture
from support.wave import wave_simulator  # noqa: F401 - fixture

# Two calls in five go wrong, in every way at once; seeded, so a failure repeats.
CHAOS = {"rate_5xx": 0.1, "rate_429": 0.05, "rate_reset": 0.08, "rate_malformed": 0.08, "rate_lost": 0.07,
         "rate_slow": 0.02, "slow_seconds": 0.2, "retry_after_seconds": 1, "seed": 20261205}
FAST_RETRIES = {"max_attempts": 12, "backoff_base": 0.01, "backoff_max": 0.1, "timeout": 10}
PIPELINE = "https://github.com/pgscatalog/pgsc_calc"
WDL = """version 1.0
workflow hello {
  input { String name = "ada" }
  output { String greeting = "hello ${name}" }
}
"""


def _kinds(stats: dict) -> dict[str, int]:
    return {k: v for k, v in stats["counts"].items() if k not in ("requests", "passed") and v}


def test_seqera_launches_once_per_run_and_lists_truly_under_chaos(sim, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_SEQERA_DEFAULT", json.dumps(sim.connection(**FAST_RETRIES)))
    names = [f"chaos-intp{n:03d}" for n in range(30)]
    sim.chaos(**CHAOS)
    hook = SeqeraHook()
    try:
        ids = {name: hook.launch(name, PIPELINE, "v2.0.0", {"n": 1}, f"s3://bucket/{name}") for name in names}
        again = {name: hook.launch(name, PIPELINE, "v2.0.0", {"n": 1}, f"s3://bucket/{name}") for name in names}
        found = {name: hook.find_workflow(name)["id"] for name in names}

        async def listed():
            async_hook = SeqeraHook()
            try:
                return await async_hook.afind_workflows(set(names), search="chaos-", page_size=7)
            finally:
                await async_hook.aclose()

        seen, _calls = asyncio.run(listed())
    finally:
        hook.close()
    stats = sim.calm()
    kinds = _kinds(stats)
    assert {"5xx", "429", "reset", "malformed", "lost"} <= set(kinds), stats["counts"]

    runs = [r for r in sim.runs() if r["runName"].startswith("chaos-")]
    assert sorted(r["runName"] for r in runs) == sorted(names)  # one run per name, lost answers included
    truth = {r["runName"]: r["id"] for r in runs}
    assert ids == again == found == truth
    assert {name: record["id"] for name, record in seen.items()} == truth


def test_wave_requests_and_status_reads_come_true_under_chaos(wave_simulator, monkeypatch, airflow_db):
    wave_simulator.reset()
    monkeypatch.setenv("AIRFLOW_CONN_WAVE_DEFAULT", json.dumps(wave_simulator.connection(**FAST_RETRIES)))
    wave_simulator.set_course("succeed", after=1)
    wave_simulator.chaos(**CHAOS)
    hook = WaveHook()
    bodies = [{"packages": {"type": "CONDA", "entries": [f"samtools=1.{n}"], "channels": ["conda-forge"]},
               "containerPlatform": "linux/amd64", "format": "docker", "freeze": False} for n in range(12)]
    answers = [hook.request_container(body) for body in bodies]
    for answer in answers:
        for _ in range(20):
            status = hook.status(answer["requestId"])
            if status["status"] == "DONE":
                break
        assert status["status"] == "DONE" and status["succeeded"] is True
    stats = wave_simulator.calm()
    assert {"5xx", "reset", "malformed"} <= set(_kinds(stats)), stats["counts"]
    # one build per package set, however many times a lost answer made the hook ask again
    builds = wave_simulator.builds()
    assert len({b["buildId"] for b in builds}) == len(bodies)
    assert {a["buildId"] for a in answers} == {b["buildId"] for b in builds}


def test_cromwell_submits_once_per_run_under_chaos(cromwell_simulator, monkeypatch, airflow_db):
    from hatchway.hooks.cromwell import CromwellHook
    from hatchway.wdl.runs import ensure_submitted

    cromwell_simulator.reset()
    conn = {**cromwell_simulator.connection(), "extra": FAST_RETRIES}
    monkeypatch.setenv("AIRFLOW_CONN_CROMWELL_DEFAULT", json.dumps(conn))
    cromwell_simulator.set_course("hang", after=1)
    cromwell_simulator.chaos(**CHAOS)
    hook = CromwellHook()
    run_ids = [f"chaosrun{n:02d}" for n in range(15)]
    try:
        first = {run: ensure_submitted(hook, run_id=run, workspace="alice", workflow_source=WDL,
                                       dependencies_zip=None, wdl_version="1.0", inputs={}, options={},
                                       labels={}, lookup_delay=0.05).workflow_id for run in run_ids}
        second = {run: ensure_submitted(hook, run_id=run, workspace="alice", workflow_source=WDL,
                                        dependencies_zip=None, wdl_version="1.0", inputs={}, options={},
                                        labels={}, lookup_delay=0.05) for run in run_ids}
    finally:
        hook.close()
    stats = cromwell_simulator.calm()
    assert {"5xx", "reset", "malformed", "lost"} <= set(_kinds(stats)), stats["counts"]
    assert all(s.reused for s in second.values())
    assert {run: s.workflow_id for run, s in second.items()} == first
    mine = [w for w in cromwell_simulator.workflows() if w["labels"].get("hatchway-run", "").startswith("chaosrun")]
    assert sorted(w["labels"]["hatchway-run"] for w in mine) == sorted(run_ids)  # one workflow per run
