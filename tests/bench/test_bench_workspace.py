"""Benchmarks of the workspace lifecycle (``make bench``): printed as ratios against a baseline
measured in the same run, never asserted as timings."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from collections import Counter

import pytest

from support import REPO, recorded_calls, reset_recording, run_dag

pytestmark = pytest.mark.bench

ONE_TASK_DAG = '''
from airflow.sdk import DAG
from airflow.providers.standard.operators.empty import EmptyOperator
with DAG(dag_id="baseline", schedule=None):
    EmptyOperator(task_id="only")
'''

PARSE = '''
import json, sys, time
sys.path.insert(0, {plugins!r})
import airflow.sdk
from airflow.dag_processing.dagbag import DagBag
def parse(folder):
    t = time.perf_counter(); bag = DagBag(dag_folder=folder); dt = time.perf_counter() - t
    assert not bag.import_errors, bag.import_errors
    return dt, len(bag.dag_ids)
base_cold, _ = parse({baseline!r}); ours_cold, n = parse({dags!r})
base_warm, _ = parse({baseline!r}); ours_warm, _ = parse({dags!r})
print("RESULT=" + json.dumps([base_cold, ours_cold, base_warm, ours_warm, n]))
'''


def test_parse_time_of_dags_folder_vs_one_task_dag(tmp_path):
    (tmp_path / "baseline.py").write_text(ONE_TASK_DAG)
    code = PARSE.format(plugins=str(REPO / "plugins"), baseline=str(tmp_path), dags=str(REPO / "dags"))
    rows = []
    for _ in range(5):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        line = next(x for x in out.stdout.splitlines() if x.startswith("RESULT="))
        rows.append(json.loads(line.removeprefix("RESULT=")))
    base_cold, ours_cold, base_warm, ours_warm, n = (statistics.median(c) for c in zip(*rows))
    print(f"\nparse time, median of 5 fresh processes ({int(n)} DAGs in dags/):")
    print(f"  first parse : dags/ {ours_cold * 1000:7.1f} ms  one-task DAG {base_cold * 1000:7.1f} ms"
          f"  ratio {ours_cold / base_cold:5.2f}x  (goal <= 2x)")
    print(f"  re-parse    : dags/ {ours_warm * 1000:7.1f} ms  one-task DAG {base_warm * 1000:7.1f} ms"
          f"  ratio {ours_warm / base_warm:5.2f}x")
    print(f"  per DAG     : first parse {ours_cold / n / base_cold:5.2f}x, re-parse {ours_warm / n / base_warm:5.2f}x"
          " the one-task DAG")


def test_aws_calls_of_first_and_repeat_provision(aws, airflow_db, moto_server):
    assert run_dag("platform_bootstrap").state == "success"
    figures = {}
    for label in ("first provision", "repeat provision"):
        reset_recording(moto_server.url)
        assert run_dag("workspace_provision", workspace="alice", owner="alice@example.org").state == "success"
        calls = recorded_calls(moto_server.recording)
        figures[label] = calls
    print("\nAWS API calls per provision (counted at the moto server):")
    for label, calls in figures.items():
        mutating = [f"{s}:{a}" for s, a, m in calls if m]
        print(f"  {label:17s}: {len(calls):4d} calls, {len(mutating):3d} mutating (goal for repeat: 0)")
    first_mutating = Counter(f"{s}:{a}" for s, a, m in figures["first provision"] if m)
    print("  first provision's mutating calls:", dict(sorted(first_mutating.items())))
    print(f"  repeat/first call ratio: {len(figures['repeat provision']) / len(figures['first provision']):.2f}")
