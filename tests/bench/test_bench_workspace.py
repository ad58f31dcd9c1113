"""Benchmarks of the workspace lifecycle (``make bench``): printed as ratios against a baseline
measured in the same run, never asserted as timings."""

from __future__ import annotations

from collections import Counter

import pytest

from support import recorded_calls, reset_recording, run_dag

pytestmark = pytest.mark.bench


def test_aws_calls_of_first_and_repeat_provision(aws, airflow_db, moto_server, bench_table):
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
    # The run's own lock object is written and deleted by every run: coordination, not a resource.
    repeat_mutating = sum(1 for _s, a, m in figures["repeat provision"] if m and "/.hatchway/locks/" not in a)
    first_resources = sum(n for call, n in first_mutating.items() if "/.hatchway/locks/" not in call)
    bench_table.add("provision, repeat: mutating AWS calls (the run's lock aside)", str(repeat_mutating),
                    f"{first_resources} (first provision)", None, "0", repeat_mutating == 0)
