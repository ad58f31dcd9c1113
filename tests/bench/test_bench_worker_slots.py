"""Benchmark of worker slots held while runs wait on Seqera (``make bench``): printed beside a
baseline measured in the same run, never asserted as timings.

A real Airflow (PostgreSQL + Redis + scheduler + triggerer + one Celery worker with
:data:`SLOTS` slots) runs the bench-only DAGs of ``tests/bench/dags/bench_seqera_wait.py``
against the Seqera simulator. At N = 100 and 1,000 concurrent runs, each waiting for its own
Seqera run (created first and kept RUNNING):

- ``bench_wait_deferred``: ``WaitForSeqeraOperator(deferrable=True)``, the wait in the
  triggerer. Goal: 0 worker slots held while N runs wait (no task instance ``running`` or
  ``queued``, no active Celery task), every task instance ``deferred``;
- ``bench_wait_from_trigger``: the same operator with ``start_from_trigger=True``: the
  scheduler hands the wait to the triggerer without a worker, and the trigger ends the task.
  Goal: 0 worker slots held and <= 1 s of worker time per run (today's deferred wait, measured
  in the same run, is the baseline of that figure);
- ``bench_wait_blocking``, the baseline: the same operator with ``deferrable=False`` (the same
  trigger, run inside the task). Each waiting run holds a slot: min(N, slots) are held and the
  other runs sit ``queued`` behind them, not even waiting on Seqera yet.

Slots held = task instances ``running`` (REST API), checked against Celery's own count of
active tasks (``inspect active``), sampled over a few poll intervals once every run has
reached its wait (or, for the baseline, once the worker is full and the rest queued). Then the
Seqera runs are released (SUCCEEDED) and every DAG run must end ``success``. The Celery
worker's log gives each execution's time in its slot: the deferred wait costs two short
executions per run (start, resume) however long it lasts; a blocking one holds its slot
throughout.

About 23 minutes on a busy 2-core machine: every run goes through the worker (two executions
a deferred run, one a blocking run), about two executions a second here.
``HATCHWAY_BENCH_SLOTS_SIZES=10`` (a comma list) and ``HATCHWAY_BENCH_SLOTS=16`` change N and
the worker's slots for a quick look.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from hatchway_dev.airflow import Airflow
from hatchway_dev.client import AirflowClient
from hatchway_dev.endpoints import SeqeraSimulator

pytestmark = pytest.mark.bench

DAG_FILE = Path(__file__).resolve().parent / "dags" / "bench_seqera_wait.py"
DEFERRED, FROM_TRIGGER, BLOCKING = "bench_wait_deferred", "bench_wait_from_trigger", "bench_wait_blocking"
RUN_PREFIX = "bench-wait-"  # as in the DAG file: the DAG run id is the Seqera run name
WORKSPACE = 1001  # the simulator connection's workspace
SLOTS = int(os.environ.get("HATCHWAY_BENCH_SLOTS", "8"))  # a bounded Celery worker, as in a deployment
POLL = 5.0  # Seqera poll interval of the waits (seconds)
SAMPLES = 3  # samples of the slots held, one poll interval apart
SIZES = tuple(int(n) for n in os.environ.get("HATCHWAY_BENCH_SLOTS_SIZES", "100,1000").split(","))
CELERY_DONE = re.compile(r"Task execute_workload\[[^\]]+\] succeeded in ([0-9.]+)s")
TOOLS = {
    "redis-server": "run `make system-deps` (apt-get install -y redis-server)",
    "initdb": "install the PostgreSQL 15 server binaries (postgresql-15)",
}
# Nothing but the worker may limit how many runs wait at once: 1,000 runs active per DAG,
# 1,000 task instances queued or deferred, 1,000 triggers in one triggerer. The scheduler
# moves more runs and task instances per loop than its defaults (20 runs, 16 task instances),
# and the baseline's queued tail must not hit the queued timeout (600 s) while it drains.
SCALE_ENV = {
    "AIRFLOW__CORE__PARALLELISM": "4096",
    "AIRFLOW__CORE__MAX_ACTIVE_RUNS_PER_DAG": "4096",
    "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": "4096",
    "AIRFLOW__CORE__DEFAULT_POOL_TASK_SLOT_COUNT": "4096",  # read by `airflow db migrate`
    "AIRFLOW__TRIGGERER__CAPACITY": "2000",
    "AIRFLOW__SCHEDULER__MAX_TIS_PER_QUERY": "512",
    "AIRFLOW__SCHEDULER__MAX_DAGRUNS_PER_LOOP_TO_SCHEDULE": "256",
    "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT": "7200",
    "HATCHWAY_BENCH_POLL_INTERVAL": str(POLL),
}


@dataclass
class Bench:
    airflow: Airflow
    client: AirflowClient
    seqera: SeqeraSimulator

    def alive(self) -> None:
        self.seqera.check()
        self.airflow.check()

    def celery_active(self) -> int | None:
        """:return: tasks the Celery worker is executing now (its own count), None if it did not answer."""
        from celery import Celery

        redis = next(s for s in self.airflow.services if s.name == "redis")
        app = Celery("hatchway-bench-inspect", broker=redis.url)
        try:
            replies = app.control.inspect(timeout=5).active()
        finally:
            app.close()
        return None if not replies else sum(len(tasks) for tasks in replies.values())

    @property
    def worker_log(self) -> Path:
        return self.airflow.logs / "celery-worker.log"

    def worker_log_size(self) -> int:
        return self.worker_log.stat().st_size

    def executions_since(self, offset: int) -> list[float]:
        """:return: seconds each Celery task execution took (its slot held), for those that ended
        since ``offset`` in the worker log."""
        with open(self.worker_log, "rb") as log:
            log.seek(offset)
            text = log.read().decode(errors="replace")
        return [float(s) for s in CELERY_DONE.findall(text)]

    def ti_counts(self, dag_id: str) -> dict[str, int]:
        count = self.client.count_task_instances
        return {"running": count(dag_id, "running"), "queued": count(dag_id, "queued"),
                "deferred": count(dag_id, "deferred"), "pending": count(dag_id, "none", "scheduled"),
                "failed": count(dag_id, "failed", "upstream_failed", "up_for_retry")}


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    for tool, hint in TOOLS.items():
        if not (shutil.which(tool) or shutil.which(tool, path="/usr/lib/postgresql/15/bin")):
            pytest.fail(f"{tool} is not installed: {hint}")
    work = tmp_path_factory.mktemp("worker-slots")
    dags = work / "dags"
    dags.mkdir()
    shutil.copy(DAG_FILE, dags)  # only the bench DAGs: Hatchway's own are not parsed or scheduled
    seqera = SeqeraSimulator(conn_extra={"timeout": 30, "max_attempts": 3, "backoff_base": 0.2})
    seqera.start(work / "seqera")
    airflow = Airflow(work / "airflow", mode="celery", dags_folder=dags, env={**seqera.airflow_env(), **SCALE_ENV},
                      worker_concurrency=SLOTS, start_timeout=480)
    try:
        airflow.start()
        client = AirflowClient(airflow.url, airflow.username, airflow.password, timeout=120).login()
        bench = Bench(airflow, client, seqera)
        for dag_id in (DEFERRED, FROM_TRIGGER, BLOCKING):
            client.wait_for_dag(dag_id, timeout=300, on_poll=bench.alive)
            client.unpause(dag_id)
        yield bench
    finally:
        airflow.stop()
        seqera.stop()


def _wait(what: str, done: Callable[[], bool], bench: Bench, timeout: float, poll: float = 2.0) -> float:
    """:return: seconds until ``done()``; raises with the component logs after ``timeout``."""
    t0 = time.monotonic()
    while not done():
        bench.alive()
        if time.monotonic() - t0 > timeout:
            raise TimeoutError(f"{what}: not after {timeout:.0f}s{bench.airflow.log_tails(15)}")
        time.sleep(poll)
    return time.monotonic() - t0


@dataclass
class Phase:
    """One DAG's N runs: from trigger to all waiting, the slots held then, release to the end."""

    dag_id: str
    n: int
    triggered_in: float = 0.0
    to_waiting: float = 0.0
    handoff_active: int | None = None  # Celery tasks active at the moment all runs were waiting
    samples: list[dict] = field(default_factory=list)
    drained_in: float = 0.0
    succeeded: int = 0
    failed: int = 0
    executions: list[float] = field(default_factory=list)  # seconds of each Celery execution (start, resume ...)

    @property
    def slot_seconds(self) -> float:
        return sum(self.executions)

    def most(self, key: str) -> int:
        values = [s[key] for s in self.samples if s[key] is not None]
        return max(values) if values else -1

    def least(self, key: str) -> int:
        values = [s[key] for s in self.samples if s[key] is not None]
        return min(values) if values else -1


def _phase(bench: Bench, dag_id: str, n: int, tag: str) -> Phase:
    client, phase = bench.client, Phase(dag_id, n)
    names = [f"{RUN_PREFIX}{tag}-n{n}-{i:05d}" for i in range(n)]
    bench.seqera.create_runs([{"run_name": name, "workspace_id": WORKSPACE, "course": {"kind": "running"}}
                              for name in names])
    done_before, failed_before = client.count_runs(dag_id, "success", "failed"), client.count_runs(dag_id, "failed")
    blocking = dag_id == BLOCKING
    in_slots = min(n, SLOTS) if blocking else 0

    def all_waiting() -> bool:
        counts = bench.ti_counts(dag_id)
        assert counts["failed"] == 0, f"{dag_id}: task instances failed while waiting: {counts}"
        if blocking:  # the worker full, every other run queued behind it
            return counts["running"] == in_slots and counts["running"] + counts["queued"] == n
        return counts["deferred"] == n

    log_offset = bench.worker_log_size()
    t0 = time.monotonic()
    with ThreadPoolExecutor(4) as pool:  # the api-server has one uvicorn worker: a few at a time
        list(pool.map(lambda name: client.trigger(dag_id, name), names))
    phase.triggered_in = time.monotonic() - t0
    _wait(f"{n} runs of {dag_id} waiting", all_waiting, bench, timeout=1200)
    phase.to_waiting = time.monotonic() - t0
    phase.handoff_active = bench.celery_active()
    time.sleep(POLL)  # the steady wait, after the last hand-offs to the triggerer
    for i in range(SAMPLES):
        phase.samples.append({**bench.ti_counts(dag_id), "celery_active": bench.celery_active()})
        if i < SAMPLES - 1:
            time.sleep(POLL)

    t1 = time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda name: bench.seqera.set_course(name, "succeed", after=0), names))
    _wait(f"{n} runs of {dag_id} ending", lambda: client.count_runs(dag_id, "success", "failed") - done_before >= n,
          bench, timeout=1800, poll=3.0)
    phase.drained_in = time.monotonic() - t1
    # The last Celery tasks end just after their runs do: then every execution is in the log.
    _wait("the Celery worker idle", lambda: bench.celery_active() == 0, bench, timeout=120, poll=1.0)
    phase.executions = bench.executions_since(log_offset)
    phase.failed = client.count_runs(dag_id, "failed") - failed_before
    phase.succeeded = client.count_runs(dag_id, "success", "failed") - done_before - phase.failed
    return phase


@pytest.mark.timeout(3600)
@pytest.mark.parametrize("n", SIZES)
def test_worker_slots_held_while_runs_wait_on_seqera(bench, n, bench_table):
    deferred = _phase(bench, DEFERRED, n, "def")
    from_trigger = _phase(bench, FROM_TRIGGER, n, "sft")
    blocking = _phase(bench, BLOCKING, n, "blk")

    held_d, held_b = deferred.most("running"), blocking.most("running")
    celery_d, celery_b = deferred.most("celery_active"), blocking.most("celery_active")
    queued_b = blocking.least("queued")
    print(f"\n--- Worker slots while N={n} runs wait on Seqera: Celery worker with {SLOTS} slots, "
          f"poll interval {POLL:g}s, {SAMPLES} samples {POLL:g}s apart, "
          f"from {POLL:g}s after all runs reached their wait")
    print(f"deferred (WaitForSeqeraOperator, deferrable=True): all {n} runs waiting (TIs deferred: "
          f"{deferred.least('deferred')}) {deferred.to_waiting:.0f}s after the first trigger "
          f"({deferred.triggered_in:.0f}s to trigger); WORKER SLOTS HELD {held_d} "
          f"(TIs running {held_d}, queued {deferred.most('queued')}; Celery active {celery_d}) (goal 0); "
          f"Celery active at the moment the last run deferred: {deferred.handoff_active} (hand-offs finishing)")
    print(f"blocking baseline (same operator, deferrable=False): worker full after {blocking.to_waiting:.0f}s; "
          f"WORKER SLOTS HELD {held_b}/{SLOTS} (TIs running {held_b}; Celery active {celery_b}), "
          f"{queued_b} of {n} runs queued behind them, not waiting on Seqera at all")
    print(f"slots held per waiting run: deferred {held_d / n:.2f} vs blocking {held_b / min(n, SLOTS):.2f}; "
          f"runs actually waiting: {deferred.least('deferred')}/{n} vs {blocking.least('running')}/{n}; "
          f"a blocking worker would need {n} slots to wait as the triggerer does with none")
    print(f"after release (Seqera runs SUCCEEDED): deferred {deferred.succeeded}/{n} success in "
          f"{deferred.drained_in:.0f}s; blocking {blocking.succeeded}/{n} success in {blocking.drained_in:.0f}s "
          f"(the queued runs start only as slots free up)")
    waited = sorted(blocking.executions)[-min(n, SLOTS):]  # the longest: the runs that held a slot while waiting
    print(f"worker slot time per run: deferred {len(deferred.executions) / n:.2f} executions (start, resume), "
          f"{deferred.slot_seconds / n:.1f}s in all, however long the wait; blocking {len(blocking.executions) / n:.2f} "
          f"execution holding its slot for the whole wait ({sum(waited) / len(waited):.0f}s each for the "
          f"{len(waited)} that waited here, hours for a real pipeline; {blocking.slot_seconds / n:.1f}s per run on "
          f"average here); a wait longer than {deferred.slot_seconds / n:.0f}s costs a blocking run more slot time "
          f"than a whole deferred run")
    held_t, per_run_t = from_trigger.most("running"), from_trigger.slot_seconds / n
    print(f"started in the triggerer (start_from_trigger=True): all {n} runs waiting after {from_trigger.to_waiting:.0f}s; "
          f"WORKER SLOTS HELD {held_t} (Celery active {from_trigger.most('celery_active')}); "
          f"{len(from_trigger.executions) / n:.2f} worker executions and {per_run_t:.2f}s of worker time per run "
          f"(deferred: {len(deferred.executions) / n:.2f} and {deferred.slot_seconds / n:.2f}s); "
          f"{from_trigger.succeeded}/{n} success in {from_trigger.drained_in:.0f}s after release")
    bench_table.add(f"worker slots held while N={n} runs wait (start_from_trigger)", str(held_t),
                    f"{held_b} (blocking, {SLOTS} slots)", None, "0", held_t == 0)
    per_run_d = deferred.slot_seconds / n
    bench_table.add(f"worker time per waited run, N={n} (start_from_trigger)", f"{per_run_t:.2f} s",
                    f"{per_run_d:.2f} s (deferred, today's operator)", per_run_t / max(per_run_d, 1e-9), "<= 1 s",
                    per_run_t <= 1.0)
    # Structure, not timing: the deferred wait holds no slot, every run ends success.
    assert held_d == 0 and deferred.most("queued") == 0 and celery_d in (0, -1)
    assert deferred.least("deferred") == n
    assert held_t == 0 and from_trigger.least("deferred") == n and (from_trigger.succeeded, from_trigger.failed) == (n, 0)
    assert held_b == min(n, SLOTS)
    assert (deferred.succeeded, deferred.failed, blocking.succeeded, blocking.failed) == (n, 0, n, 0)
