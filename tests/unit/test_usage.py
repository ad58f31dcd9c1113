"""Usage and estimated cost from the engines' own figures (:mod:`hatchway.domain.usage`)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from hatchway.domain.usage import (
    GIB,
    InstancePrice,
    PriceTable,
    TaskUse,
    UnitPrice,
    cromwell_tasks,
    cromwell_wall_seconds,
    memory_gib,
    price,
    seqera_engine_cost,
    seqera_tasks,
)

TABLE = PriceTable(currency="EUR", on_demand=UnitPrice(vcpu_hour=0.04, gib_hour=0.005),
                   spot=UnitPrice(vcpu_hour=0.015, gib_hour=0.002),
                   instance_types={"m5.large": InstancePrice(vcpus=2, memory_gib=8, on_demand=0.1, spot=0.03)},
                   storage_gib_month=0.02)


def test_a_task_on_a_known_instance_pays_its_larger_share_of_the_instance():
    # 1 of 2 vCPUs but 6 of 8 GiB: the memory share (0.75) is what it keeps from others.
    cpu_bound = TaskUse(name="a", status="COMPLETED", cpus=2, memory_gib=1, hours=2, machine_type="m5.large")
    mem_bound = TaskUse(name="b", status="COMPLETED", cpus=1, memory_gib=6, hours=2, machine_type="m5.large",
                        spot=True)
    usage = price("nextflow", [cpu_bound, mem_bound], TABLE, wall_seconds=7200)
    assert usage.estimated_cost == pytest.approx(0.1 * 1.0 * 2 + 0.03 * 0.75 * 2)
    assert usage.priced_by == {"m5.large": 2}
    assert (usage.cpu_hours, usage.memory_gib_hours, usage.task_count) == (6.0, 14.0, 2)
    assert usage.currency == "EUR" and usage.basis == "estimate"


def test_an_unknown_instance_pays_per_vcpu_and_gib_hour_spot_or_not():
    on_demand = TaskUse(name="a", status="COMPLETED", cpus=4, memory_gib=16, hours=0.5, machine_type="c7g.xlarge")
    spot = TaskUse(name="b", status="FAILED", cpus=4, memory_gib=16, hours=0.5, spot=True)
    usage = price("nextflow", [on_demand, spot], TABLE, wall_seconds=1800)
    assert usage.estimated_cost == pytest.approx((4 * 0.04 + 16 * 0.005) * 0.5 + (4 * 0.015 + 16 * 0.002) * 0.5)
    assert usage.priced_by == {"unit": 2} and usage.failed_tasks == 1


def test_storage_is_priced_per_gib_month_for_the_wall_time():
    usage = price("wdl", [], TABLE, wall_seconds=730 * 3600, work_bytes=3 * GIB, results_bytes=GIB)
    assert usage.estimated_cost == pytest.approx(4 * 0.02)
    assert (usage.work_bytes, usage.results_bytes) == (3 * GIB, GIB)


def test_a_bad_price_table_is_refused_with_the_reason():
    with pytest.raises(ValidationError, match="ISO 4217"):
        PriceTable(currency="euro")
    with pytest.raises(ValidationError, match="greater than 0"):
        PriceTable(instance_types={"x": {"vcpus": 0, "memory_gib": 1, "on_demand": 1}})
    with pytest.raises(ValidationError, match="Extra inputs"):
        PriceTable.model_validate({"on_demand": {"vcpu_hour": 1, "gib_hour": 1, "disk_hour": 1}})


def test_seqera_tasks_in_common_units_cached_and_unstarted_left_out():
    tasks = [
        {"taskId": 1, "name": "ALIGN (1)", "status": "COMPLETED", "cpus": 4, "memory": 8 * GIB,
         "realtime": 1_800_000, "machineType": "m5.xlarge", "priceModel": "spot", "cost": 0.02},
        {"taskId": 2, "name": "ALIGN (2)", "status": "CACHED", "cpus": 4, "memory": 8 * GIB, "realtime": 10},
        {"taskId": 3, "name": "CALL (1)", "status": "SUBMITTED", "cpus": 2},
        {"taskId": 4, "process": "CALL", "status": "FAILED", "cpus": 2, "memory": GIB, "duration": 360_000,
         "priceModel": "standard"},
    ]
    used = seqera_tasks(tasks)
    assert [(t.name, t.cpus, t.memory_gib, t.hours, t.spot, t.machine_type) for t in used] == [
        ("ALIGN (1)", 4.0, 8.0, 0.5, True, "m5.xlarge"), ("CALL", 2.0, 1.0, 0.1, False, None)]
    assert seqera_engine_cost({"workflowProgress": {"cost": 0.75}}) == 0.75
    assert seqera_engine_cost({"workflowProgress": {"cost": 0}}) is None  # not computed, not free
    assert seqera_engine_cost(None) is None


@pytest.mark.parametrize("text,gib", [("4 GB", 4e9 / GIB), ("2 GiB", 2.0), ("4096 MB", 4.096e9 / GIB),
                                      ("512MiB", 0.5), (GIB, 1.0), ("1.5 GiB", 1.5), ("1024 B", 1024 / GIB)])
def test_memory_sizes_as_cromwell_reads_them(text, gib):
    assert memory_gib(text) == pytest.approx(gib)


def test_a_memory_size_that_is_not_one_is_an_error():
    with pytest.raises(ValueError, match="not a memory size"):
        memory_gib("lots")


def test_cromwell_calls_with_runtime_attributes_shards_retries_and_subworkflows():
    metadata = {
        "start": "2026-12-01T10:00:00.000Z", "end": "2026-12-01T12:00:00.000Z",
        "calls": {
            "wf.align": [
                {"shardIndex": 0, "attempt": 1, "executionStatus": "Failed", "start": "2026-12-01T10:00:00Z",
                 "end": "2026-12-01T10:30:00Z", "runtimeAttributes": {"cpu": "4", "memory": "8 GiB",
                                                                      "preemptible": "1"}},
                {"shardIndex": 0, "attempt": 2, "executionStatus": "Done", "start": "2026-12-01T10:30:00Z",
                 "end": "2026-12-01T11:30:00Z", "runtimeAttributes": {"cpu": "4", "memory": "8 GiB"}},
                {"shardIndex": 1, "attempt": 1, "executionStatus": "Done", "start": "2026-12-01T10:00:00Z",
                 "end": "2026-12-01T10:06:00Z", "callCaching": {"hit": True},
                 "runtimeAttributes": {"cpu": "4", "memory": "8 GiB"}},
            ],
            "wf.sub": [{"subWorkflowMetadata": {"calls": {"sub.call": [
                {"executionStatus": "Done", "start": "2026-12-01T11:30:00Z", "end": "2026-12-01T12:00:00Z",
                 "runtimeAttributes": {"cpu": 1, "memory": "2 GB"}}]}}}],
            "wf.never": [{"executionStatus": "NotStarted"}],
        },
    }
    used = cromwell_tasks(metadata)
    assert [(t.name, t.cpus, round(t.memory_gib, 3), t.hours, t.spot) for t in used] == [
        ("wf.align[0].1", 4.0, 8.0, 0.5, True), ("wf.align[0].2", 4.0, 8.0, 1.0, False),
        ("sub.call[-1].1", 1.0, round(2e9 / GIB, 3), 0.5, False)]
    assert cromwell_wall_seconds(metadata) == 7200
    usage = price("wdl", used, TABLE, wall_seconds=cromwell_wall_seconds(metadata))
    assert usage.cpu_hours == pytest.approx(4 * 0.5 + 4 * 1 + 0.5) and usage.failed_tasks == 1


# -- budgets
def test_the_budget_month_and_the_next_one_in_utc():
    from datetime import datetime, timedelta, timezone

    from hatchway.domain.usage import month_start, next_month

    late = datetime(2026, 12, 31, 23, 30, tzinfo=timezone(timedelta(hours=-5)))  # already January in UTC
    assert month_start(late) == datetime(2027, 1, 1, tzinfo=timezone.utc)
    assert next_month(datetime(2026, 12, 6, tzinfo=timezone.utc)) == datetime(2027, 1, 1, tzinfo=timezone.utc)


def test_a_spent_budget_refuses_with_the_figures_and_lines_are_crossed_once():
    from datetime import datetime, timezone

    from hatchway.domain.usage import Budget, budget_refusal, crossed

    budget = Budget(amount=100, soft_limit=0.8)
    now = datetime(2026, 12, 6, tzinfo=timezone.utc)
    assert budget_refusal("alice", 99.99, budget, "EUR", now) is None
    assert budget_refusal("alice", 100.5, budget, "EUR", now) == (
        "workspace alice has used an estimated 100.50 EUR of its 100.00 EUR budget for December 2026: new runs "
        "are refused until 2027-01-01T00:00:00Z (or until the budget is raised)")
    assert crossed(70, 79, budget) is None and crossed(79, 81, budget) == "soft_limit"
    assert crossed(81, 90, budget) is None  # already past: said once, by the run that crossed
    assert crossed(79, 120, budget) == "budget" and crossed(100, 130, budget) is None
    with pytest.raises(ValidationError):
        Budget(amount=0)
    with pytest.raises(ValidationError):
        Budget(amount=10, soft_limit=1.5)


def test_budgets_are_keyed_by_valid_workspace_names():
    from hatchway.domain.workspace import PlatformConfig

    config = PlatformConfig(bucket="hatchway-data", budgets={"alice": {"amount": 50}})
    assert config.budgets["alice"].soft_limit == 0.8
    with pytest.raises(ValidationError, match="lowercase"):
        PlatformConfig(bucket="hatchway-data", budgets={"Alice": {"amount": 50}})
