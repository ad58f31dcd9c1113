"""50 job runs and 20 WES runs through the real DAGs (``dag.test``, every task retried once as
deployed) with the Seqera simulator misbehaving on 20% of its API calls: 5xx, 429 with
Retry-After, slow answers, connection resets, cut-off JSON and answers lost after the work was
done.

The simulator's own record is the judge: each run ends as its Seqera run was scripted to end
(four in five succeed), with one Seqera run per job; every job's states go out exactly once
and in order; no work bucket is left, and a results bucket only for a job that succeeded; a WES
run leaves nothing in its run area, and a STAC catalog with every output exactly when it
succeeded. The runs go one after another (``dag.test``
runs one at a time in this process); the same code under a real scheduler, Celery worker and
triggerer, at a smaller count, is in tests/e2e (the Celery leg and the WES e2e).

About 5 minutes of one test process (a job run takes about 4 s: Seqera's poll interval,
Retry-After and its exactly-once status sends), so the jobs go in two halves that the two test
processes can take. ``make chaos`` runs this file alone; ``HATCHWAY_CHAOS_JOBS`` /
``HATCHWAY_CHAOS_WES_RUNS`` set other counts for a quick look.
"""

from __future__ import annotations

import json
import os

import pytest

from hatchway.domain.wes import catalog_prefix
from support import run_dag_retrying, task_states
from test_hooks_under_chaos import _kinds
from test_job_run import _job, gcs, inputs, transfer_source  # noqa: F401 - fixtures
from test_wes_harvest import OUTPUTS, keys, wes, wes_conf  # noqa: F401 - fixture

JOBS = int(os.environ.get("HATCHWAY_CHAOS_JOBS", "50"))
WES_RUNS = int(os.environ.get("HATCHWAY_CHAOS_WES_RUNS", "20"))
HALVES = (range(0, JOBS // 2), range(JOBS // 2, JOBS))
# One call in five goes wrong, as in the e2e chaos steps; seeded, so a failure repeats.
CHAOS = {"rate_5xx": 0.04, "rate_429": 0.04, "rate_slow": 0.03, "rate_reset": 0.03, "rate_malformed": 0.03,
         "rate_lost": 0.03, "slow_seconds": 0.3, "retry_after_seconds": 1, "seed": 20261206}
RETRIES = {"max_attempts": 12, "backoff_base": 0.05, "backoff_max": 0.5, "timeout": 10}
FINAL = {"success": "SUCCEEDED", "failed": "FAILED"}


def _chaos(sim, monkeypatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_SEQERA_DEFAULT", json.dumps(sim.connection(**RETRIES)))
    sim.chaos(**CHAOS)


def _launched(sim) -> dict[str, list[str]]:
    """Each Seqera run name -> the statuses of the runs the simulator holds under it."""
    launched: dict[str, list[str]] = {}
    for run in sim.runs():
        launched.setdefault(run["runName"], []).append(run["status"])
    return launched


@pytest.mark.parametrize("half", [0, 1])
def test_jobs_under_twenty_percent_chaos_end_truly_send_each_state_once_and_clean(
        half, jobs, seqera, gcs, airflow_db, monkeypatch):  # noqa: F811
    planned = {}
    for n in HALVES[half]:
        body, names = _job(6100 + n)
        expected = "failed" if n % 5 == 4 else "success"
        seqera.set_course(names.run_name, "fail" if expected == "failed" else "succeed", after=1,
                          **({"exit_status": 3, "error_report": "Process `SCORE` failed"} if expected == "failed" else {}))
        planned[names.run_name] = (body, names, expected)
    _chaos(seqera, monkeypatch)
    states = {}
    for run_name, (body, _, _) in planned.items():
        run = run_dag_retrying("job_run", **body)
        states[run_name] = (run.state, task_states(run))
    stats = seqera.calm()

    assert {name: states[name][0] for name in planned} == {name: p[2] for name, p in planned.items()}, states
    assert len(_kinds(stats)) >= 5 and stats["counts"]["requests"] > stats["counts"]["passed"], stats["counts"]
    launched = _launched(seqera)
    assert {name: launched.get(name) for name in planned} == {name: [FINAL[p[2]]] for name, p in planned.items()}
    events: dict[str, list[str]] = {}
    for status in jobs.statuses(expect=4 * len(planned)):
        events.setdefault(status["run_name"], []).append(status["event"])
    assert {name: events.get(name) for name in planned} == {
        name: ["Requested", "Created", "Deployed", "Succeeded" if p[2] == "success" else "Failed"]
        for name, p in planned.items()}
    left = {b.name for b in gcs.list_buckets()}
    assert not {p[1].work_bucket for p in planned.values()} & left
    assert {p[1].results_bucket for p in planned.values()} & left == {
        p[1].results_bucket for p in planned.values() if p[2] == "success"}


def test_wes_runs_under_twenty_percent_chaos_end_truly_and_keep_only_outputs(wes, sim, monkeypatch):  # noqa: F811
    planned = []
    for n in range(WES_RUNS):
        conf = wes_conf(executing="alice", calling="bob" if n % 2 else "alice")
        expected = "failed" if n % 5 == 4 else "success"
        sim.set_course(conf.engine_run_name, "fail" if expected == "failed" else "succeed", after=1,
                       **({"exit_status": 1} if expected == "failed" else {"outputs": OUTPUTS}))
        planned.append((conf, expected))
    _chaos(sim, monkeypatch)
    states = {}
    for conf, _ in planned:
        run = run_dag_retrying("wes_run", **conf.model_dump(mode="json"))
        states[conf.run_id] = (run.state, task_states(run))
    stats = sim.calm()

    assert {c.run_id: states[c.run_id][0] for c, _ in planned} == {c.run_id: e for c, e in planned}, states
    assert len(_kinds(stats)) >= 4 and stats["counts"]["requests"] > stats["counts"]["passed"], stats["counts"]
    launched = _launched(sim)
    assert {c.engine_run_name: launched.get(c.engine_run_name) for c, _ in planned} == {
        c.engine_run_name: [FINAL[e]] for c, e in planned}
    for conf, expected in planned:  # nothing left in the run area; a catalog of every output if it succeeded
        assert keys(wes.s3, conf.run_prefix) == [], conf.run_id
        catalog = keys(wes.s3, catalog_prefix(conf.calling, conf.run_id))
        # the catalog, an item and a copy per output, and the RO-Crate; a failed run: its crate alone
        assert len(catalog) == ((2 + 2 * len(OUTPUTS)) if expected == "success" else 1), (conf.run_id, catalog)
        assert catalog_prefix(conf.calling, conf.run_id) + "ro-crate-metadata.json" in catalog, conf.run_id
