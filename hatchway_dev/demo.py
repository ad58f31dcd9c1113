"""``python -m hatchway_dev.demo [--keep] [--executor standalone|celery]``

Starts the local dev stack (moto) and Airflow, runs the lifecycles in :data:`LIFECYCLE` one
after the other through the REST API, and prints what was made. Without ``--keep`` it stops
everything and exits 0 when every run succeeded; with ``--keep`` the UI stays up until Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Callable

from hatchway_dev.airflow import DEFAULT_HOME, MODES, REPO, Airflow
from hatchway_dev.client import AirflowClient
from hatchway_dev.endpoints import DevStack, GcsEmulator, KafkaMockCluster, MotoServer, SeqeraSimulator
from hatchway_dev.process import StackError, tail
from hatchway_dev.settings import HATCHWAY_CONFIG, REGION
from hatchway_dev.wes_demo import door_env, show_door



@dataclass(frozen=True)
class Step:
    """One DAG run of the demo: which DAG, with which conf."""

    dag_id: str
    conf: dict = field(default_factory=dict)


# The demo and tests/e2e/test_celery_leg.py run these, in this order, each to `success`.
LIFECYCLE: tuple[Step, ...] = (
    Step("platform_bootstrap"),
    Step("workspace_provision", {"workspace": "alice-demo", "owner": "alice@example.org"}),
    Step("workspace_provision", {"workspace": "bob-demo", "owner": "bob@example.org"}),
    Step("workspace_teardown", {"workspace": "bob-demo", "purge": False}),
    Step("workspace_reaper"),
)


@dataclass
class RunResult:
    step: Step
    run_id: str
    state: str
    seconds: float
    tasks: list[dict] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.state == "success"


def dev_stack(workdir: Path) -> DevStack:
    """:return: the (not yet started) local endpoints the DAGs talk to."""
    from hatchway_dev.inputs import InputsSource
    from hatchway_dev.jobs_demo import INPUTS_FOLDER

    return DevStack([MotoServer(region=REGION), GcsEmulator(), KafkaMockCluster(), SeqeraSimulator(),
                     InputsSource(INPUTS_FOLDER)], workdir)


def airflow_env(stack: DevStack) -> dict[str, str]:
    """:return: connections and variables that point Airflow's DAGs at ``stack`` (started)."""
    from hatchway_dev.jobs_demo import jobs_config

    return {**stack.airflow_env(), "AIRFLOW_VAR_HATCHWAY_CONFIG": json.dumps(HATCHWAY_CONFIG),
            "AIRFLOW_VAR_HATCHWAY_JOBS_CONFIG": json.dumps(jobs_config(stack))}


def run_lifecycle(
    client: AirflowClient,
    steps: tuple[Step, ...] = LIFECYCLE,
    *,
    on_poll: Callable[[], None] | None = None,
    run_timeout: float = 600,
    out: Callable[[str], None] = print,
) -> list[RunResult]:
    """Trigger each step and wait for it; stop at the first run that does not succeed.

    Later steps build on earlier ones (no teardown without a provision), so going on after a
    failure would only bury the first error under others.

    :param client: a logged-in client.
    :param on_poll: called while waiting; let it raise when the stack died.
    :param run_timeout: seconds allowed for one run; past that its state is ``timeout``.
    :param out: where the one-line summaries go.
    :return: one result per run that was started.
    """
    stamp = datetime.now().strftime("%H%M%S")
    ready: set[str] = set()
    results: list[RunResult] = []
    for n, step in enumerate(steps, 1):
        if step.dag_id not in ready:
            client.wait_for_dag(step.dag_id, on_poll=on_poll)
            client.unpause(step.dag_id)
            ready.add(step.dag_id)
        run_id = "-".join(filter(None, ["demo", f"{n:02d}", step.conf.get("workspace"), stamp]))
        t0 = time.monotonic()
        client.trigger(step.dag_id, run_id, step.conf)
        try:
            state = client.wait_for_run(step.dag_id, run_id, timeout=run_timeout, on_poll=on_poll)["state"]
        except TimeoutError:
            state = "timeout"  # reported like a failure: with the task states, which show where it hangs
        result = RunResult(step, run_id, state, time.monotonic() - t0)
        out(f"{step.dag_id:<22} {run_id:<30} {result.state:<8} {result.seconds:6.1f}s")
        if not result.ok:
            result.tasks = client.task_instances(step.dag_id, run_id)
            results.append(result)
            break
        results.append(result)
    return results


def describe_failure(result: RunResult, home: Path) -> str:
    """:return: the task states of a failed run, and the errors in each failed task's last log."""
    lines = [f"tasks of {result.step.dag_id}/{result.run_id}:"]
    for ti in sorted(result.tasks, key=lambda t: (t["task_id"], t.get("map_index", -1))):
        index = f"[{ti['map_index']}]" if ti.get("map_index", -1) >= 0 else ""
        lines.append(f"  {ti['task_id'] + index:<40} {ti['state']}")
    for ti in (t for t in result.tasks if t["state"] == "failed"):
        lines += task_log_errors(home, result.step.dag_id, result.run_id, ti["task_id"])
    return "\n".join(lines)


def task_log_errors(home: Path, dag_id: str, run_id: str, task_id: str) -> list[str]:
    """:return: the path of a task's last attempt log and the errors in it (nothing if it wrote none)."""
    folder = home / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}" / f"task_id={task_id}"
    def attempt(path: Path) -> int:  # attempt=N.log, and attempt=N.log.trigger.M.log for its trigger
        return int(path.name.split("=")[1].split(".")[0])

    logs = sorted(folder.rglob("attempt=*.log"), key=lambda p: (attempt(p), p.name))
    if not logs:
        return []
    last = attempt(logs[-1])
    return [line for path in logs if attempt(path) == last for line in (f"--- {path}", *_log_errors(path))]


def _log_errors(path: Path) -> list[str]:
    # Airflow 3 task logs are JSON lines: keep the errors and their exceptions, not the noise.
    found = []
    for line in tail(path, 400).splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if event.get("level") in ("error", "critical"):
            found.append(f"  {event.get('event')}")
            found += [f"    {e['exc_type']}: {e['exc_value']}" for e in event.get("error_detail") or []]
    return found or [tail(path, 25)]


def inventory_rows(endpoint_url: str, region: str = REGION) -> list:
    """:return: every Hatchway resource found on the endpoint (``hatchway.workspace.inventory``)."""
    # Imported here: the demo's stack code must not depend on the workspace code to load.
    from hatchway.workspace.clients import AwsClients
    from hatchway.workspace.inventory import inventory

    return inventory(AwsClients.from_endpoint(endpoint_url, region), workspace=None)


def format_table(resources: list) -> str:
    """:return: resources as an aligned text table (kind, name, workspace, state)."""
    header = ("KIND", "NAME", "WORKSPACE", "STATE")
    # In the inventory's own order (workspace, then dependency order of kinds).
    rows = [(str(r.kind), str(r.name), r.workspace or "-", str(r.state)) for r in resources]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(4)]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in [header, *rows])


def show_jobs(client: AirflowClient, stack: DevStack, alive: Callable[[], None]) -> int:
    """Run the job part of the demo and print its runs, status messages and buckets."""
    from hatchway_dev.jobs_demo import bucket_rows, run_jobs, status_messages

    print("\nJobs (Kafka -> job_intake -> job_run -> Seqera simulator):", flush=True)
    outcomes = run_jobs(client, stack, on_poll=alive, out=lambda s: print(s, flush=True))
    print("\nStatus messages on pipeline-status:")
    for message in status_messages(stack):
        trace = f"  trace: {message['trace_name']} (exit {message['trace_exit']})" if "trace_name" in message else ""
        print(f"  {message['utc_time']}  {message['run_name']:<32} {message['event']}{trace}")
    buckets = bucket_rows(stack)
    print("\nGCS buckets left:" + ("".join(f"\n  {name} ({note})" for name, note in buckets) or " none"))
    return 0 if all(o.ok for o in outcomes) else 1


class _StopOnce:
    """SIGINT/SIGTERM handler: the first signal unwinds like Ctrl-C, through every ``finally``
    and ``with``; later ones are ignored, so an impatient second Ctrl-C cannot cut the
    cleanup short and leave servers running in their own sessions."""

    stopping = False

    def __call__(self, signum, frame) -> None:
        if self.stopping:
            print("still stopping ...", file=sys.stderr, flush=True)
            return
        self.stopping = True
        print("stopping ...", file=sys.stderr, flush=True)
        raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hatchway_dev.demo",
                                     description="Run Hatchway's lifecycles on a local Airflow and dev stack.")
    parser.add_argument("--keep", action="store_true", help="keep everything running until Ctrl-C")
    parser.add_argument("--executor", choices=MODES, default="standalone")
    parser.add_argument("--dags-folder", type=Path, default=REPO / "dags")
    args = parser.parse_args(argv)
    stop_once = _StopOnce()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, stop_once)

    home = DEFAULT_HOME if args.executor == "standalone" else DEFAULT_HOME.with_name("airflow-celery")
    stack = dev_stack(DEFAULT_HOME.with_name("endpoints"))
    airflow: Airflow | None = None
    code = 130
    try:
        with stack:
            moto = stack["moto"]
            print(f"moto ready at {moto.url} in {moto.started_in:.1f}s", flush=True)
            print(f"starting Airflow ({args.executor}) in {home} ...", flush=True)
            door, door_settings = door_env(home, HATCHWAY_CONFIG["bucket"])
            airflow = Airflow(home, mode=args.executor, dags_folder=args.dags_folder,
                              env={**airflow_env(stack), **door})
            with airflow:
                print(f"Airflow healthy at {airflow.url} in {airflow.healthy_in:.1f}s", flush=True)
                client = AirflowClient(airflow.url, airflow.username, airflow.password).login()

                def alive() -> None:
                    stack.check()
                    airflow.check()

                results = run_lifecycle(client, on_poll=alive, out=lambda s: print(s, flush=True))
                failed = [r for r in results if not r.ok]
                for result in failed:
                    print(describe_failure(result, home), file=sys.stderr)
                code = 1 if failed else 0
                if not failed:
                    try:
                        print("\nWhat was made:\n" + format_table(inventory_rows(moto.url)))
                    except Exception as exc:  # noqa: BLE001 - still show the UI and stop cleanly
                        print(f"error: listing the inventory failed: {exc!r}", file=sys.stderr)
                        code = 1
                if not failed:
                    code = max(code, show_jobs(client, stack, alive))
                if not failed:
                    code = max(code, show_door(client, stack, airflow.url, door_settings,
                                               home.parent / "door.env", alive))
                print(f"\nUI: {airflow.url}  login: {airflow.username} / {airflow.password}", flush=True)
                if not args.keep:
                    print("(stopping now; --keep, or `make demo KEEP=1`, keeps it up)", flush=True)
                else:
                    print("running until Ctrl-C ...", flush=True)
                    while True:
                        time.sleep(2)
                        alive()
    except KeyboardInterrupt:
        return code if args.keep else 130
    except StackError as exc:  # carries the log tails of the process(es) concerned
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except TimeoutError as exc:  # a DAG not parsed or a run too slow: show every component
        print(f"error: {exc}", file=sys.stderr)
        if airflow is not None:
            print(airflow.log_tails(), file=sys.stderr)
        return 1
    finally:
        print("stopped.", flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
