"""Parse time of every DAG file vs a one-task DAG (``make bench``), parsed as the dag-processor
parses them (:mod:`dag_processor_probe`: a manager that pre-imports the ``airflow.*`` modules a
file names, a forked child per parse). Printed as ratios to the baseline measured in the same
processes; the bench table holds the worst DAG's ratio against the goal. "First" is a parse after
the dag-processor starts (its manager pre-imports what the file names), with the bytecode cache
of Hatchway's modules written, as after any earlier parse; "re-parse" is every parse after that.
Each figure is the least CPU time of its trials (as ``timeit`` reports): what the machine's other
work adds to a measurement only ever adds, and medians of five moved by +-0.3x between runs
(a DAG file with more to do than the baseline came out at 0.73x of it).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from support import REPO

pytestmark = pytest.mark.bench

PROBE = Path(__file__).with_name("dag_processor_probe.py")
TRIALS = int(os.environ.get("HATCHWAY_BENCH_PARSE_TRIALS", "5"))
WARMUP = '''
from airflow.sdk import DAG
with DAG(dag_id="warmup", schedule=None):
    pass
'''
ONE_TASK_DAG = '''
from airflow.sdk import DAG
from airflow.providers.standard.operators.empty import EmptyOperator
with DAG(dag_id="baseline", schedule=None):
    EmptyOperator(task_id="only")
'''
# What Airflow itself costs for a DAG of job_run's shape, beside the same baseline: nine
# EmptyOperators in a chain with Hatchway's default_args (retries, retry delay, backoff).
AIRFLOWS_SHAPE_DAG = '''
from datetime import timedelta
from airflow.sdk import DAG, chain
from airflow.providers.standard.operators.empty import EmptyOperator
with DAG(dag_id="nine_tasks", schedule=None, default_args={"owner": "hatchway", "retries": 2,
         "retry_delay": timedelta(seconds=30), "retry_exponential_backoff": True}):
    chain(*[EmptyOperator(task_id=f"task_{i}") for i in range(9)])
'''
FIRST_GOAL, AGAIN_GOAL = 1.5, 1.2


def _probe(env: dict[str, str], warmup: Path, *files: Path) -> dict[str, list[float]]:
    out = subprocess.run([sys.executable, str(PROBE), str(REPO / "plugins"), str(warmup), *map(str, files)],
                         capture_output=True, text=True, env=env, check=False)
    if out.returncode:
        raise AssertionError(f"probe failed: {out.stderr[-3000:]}")
    line = next(x for x in out.stdout.splitlines() if x.startswith("RESULT="))
    return json.loads(line.removeprefix("RESULT="))


def test_parse_time_per_dag_file_vs_one_task_dag(tmp_path, bench_table):
    (tmp_path / "warmup.py").write_text(WARMUP)
    baseline = tmp_path / "baseline.py"
    baseline.write_text(ONE_TASK_DAG)
    shape = tmp_path / "nine_tasks.py"
    shape.write_text(AIRFLOWS_SHAPE_DAG)
    # Python's own default, as a dag-processor runs: the bytecode cache on (a shell or CI that sets
    # PYTHONDONTWRITEBYTECODE would make every child compile Hatchway's modules again). A first
    # probe of every file writes the cache, as the first parse after a deployment does.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env.update({"AIRFLOW_HOME": str(tmp_path / "airflow"), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__UNIT_TEST_MODE": "False"})
    files = sorted((REPO / "dags").glob("*.py"))
    _probe(env, tmp_path / "warmup.py", baseline, shape, *files)
    ratios: dict[str, tuple[float, float]] = {}  # first parse, re-parse: each over the baseline's
    samples: dict[str, list[list[float]]] = {f.name: [] for f in files}
    base_samples: list[list[float]] = []
    shape_samples: list[list[float]] = []
    # A fresh manager for every file and for the baseline: what one file pre-imports into the
    # manager (a provider its operators come from) must not make another file's parse cheaper.
    for _ in range(TRIALS):
        base_samples.append(_probe(env, tmp_path / "warmup.py", baseline)[str(baseline)])
        shape_samples.append(_probe(env, tmp_path / "warmup.py", shape)[str(shape)])
        for dag_file in files:
            ours = _probe(env, tmp_path / "warmup.py", dag_file)[str(dag_file)]
            assert ours[2] >= 1, f"{dag_file.name}: no DAG parsed"
            samples[dag_file.name].append(ours)
    base_first = min(b[0] for b in base_samples)
    base_again = min(b[1] for b in base_samples)
    for name, rows in samples.items():
        ratios[name] = (min(r[0] for r in rows) / base_first, min(r[1] for r in rows) / base_again)
    print(f"\nparse time per DAG file, as the dag-processor parses it, vs a one-task DAG parsed the same "
          f"way (CPU time, the least of {TRIALS} trials, a fresh manager each):")
    print(f"  {'file':32s} {'first':>7s} {'re-parse':>9s}   (one-task DAG: first, re-parse)")
    for name, (first, again) in ratios.items():
        print(f"  {name:32s} {first:6.2f}x {again:8.2f}x   ({base_first * 1000:.1f} ms, {base_again * 1000:.1f} ms)")
    shape_first = min(r[0] for r in shape_samples) / base_first
    shape_again = min(r[1] for r in shape_samples) / base_again
    print(f"  {'(Airflow: 9 EmptyOperators)':32s} {shape_first:6.2f}x {shape_again:8.2f}x")
    worst_first = max(ratios.items(), key=lambda kv: kv[1][0])
    worst_again = max(ratios.items(), key=lambda kv: kv[1][1])
    bench_table.add(f"parse, first, worst of {len(files)} DAG files ({worst_first[0]})",
                    f"{worst_first[1][0] * base_first * 1000:.1f} ms", f"{base_first * 1000:.1f} ms (one-task DAG)",
                    worst_first[1][0], f"<= {FIRST_GOAL}x", worst_first[1][0] <= FIRST_GOAL)
    bench_table.add(f"parse, re-parse, worst of {len(files)} DAG files ({worst_again[0]})",
                    f"{worst_again[1][1] * base_again * 1000:.1f} ms", f"{base_again * 1000:.1f} ms (one-task DAG)",
                    worst_again[1][1], f"<= {AGAIN_GOAL}x", worst_again[1][1] <= AGAIN_GOAL)
    bench_table.add("parse, re-parse, for reference: 9 EmptyOperators with Hatchway's default_args",
                    f"{shape_again * base_again * 1000:.1f} ms", f"{base_again * 1000:.1f} ms (one-task DAG)",
                    shape_again)
