"""What a run used and what it is estimated to have cost: engine figures in, priced usage out.

Plain Python. The engines report per task what it asked for and how long it ran (Seqera's
``Task``: ``cpus``, ``memory`` in bytes, ``realtime`` in ms, ``machineType``, ``priceModel``;
Cromwell's call metadata: ``runtimeAttributes`` and ``start``/``end``). :func:`price` turns
those into CPU-hours, memory-hours and an **estimated** cost from the deployment's
:class:`PriceTable`: a task on a known instance type pays its share of the instance's hourly
price (the larger of its CPU and memory share), any other task pays per vCPU-hour and
GiB-hour. Storage is reported in bytes (the run's work and results areas) and priced per
GiB-month for the run's wall time. Seqera's own ``cost``, where it gives one, is kept beside
ours (``engine_cost``) and never replaces it: the two are priced from different lists.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Iterable, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from hatchway.domain.wave import parse_time

GIB = 2**30
HOURS_PER_MONTH = 730.0  # AWS's storage month
_MEMORY = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*([A-Za-z]*)\s*$")
_UNIT_BYTES = {"": 1, "B": 1, "K": 1000, "KB": 1000, "KI": 1024, "KIB": 1024, "M": 1000**2, "MB": 1000**2,
               "MI": 1024**2, "MIB": 1024**2, "G": 1000**3, "GB": 1000**3, "GI": GIB, "GIB": GIB,
               "T": 1000**4, "TB": 1000**4, "TI": 1024**4, "TIB": 1024**4}


class UnitPrice(BaseModel):
    """Price of a vCPU-hour and of a GiB-hour of memory."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    vcpu_hour: float = Field(ge=0)
    gib_hour: float = Field(ge=0)


class InstancePrice(BaseModel):
    """An instance type's size and hourly prices (on-demand, and spot where it is offered)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    vcpus: int = Field(gt=0)
    memory_gib: float = Field(gt=0)
    on_demand: float = Field(ge=0)
    spot: float | None = Field(None, ge=0)


class PriceTable(BaseModel):
    """The deployment's prices (``price_table`` in the platform config; defaults: us-east-1 list
    prices of m5 instances, late 2026, for an estimate and nothing more)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    currency: str = Field("USD", description="ISO 4217 code")
    on_demand: UnitPrice = UnitPrice(vcpu_hour=0.0336, gib_hour=0.0045)
    spot: UnitPrice | None = Field(UnitPrice(vcpu_hour=0.0125, gib_hour=0.0017),
                                   description="per unit on spot capacity (None: as on-demand)")
    instance_types: dict[str, InstancePrice] = Field(default_factory=lambda: {
        "m5.large": InstancePrice(vcpus=2, memory_gib=8, on_demand=0.096, spot=0.035),
        "m5.xlarge": InstancePrice(vcpus=4, memory_gib=16, on_demand=0.192, spot=0.07),
        "m5.2xlarge": InstancePrice(vcpus=8, memory_gib=32, on_demand=0.384, spot=0.14),
    })
    storage_gib_month: float = Field(0.023, ge=0, description="S3 Standard, per GiB-month")

    @field_validator("currency")
    @classmethod
    def _currency(cls, v: str) -> str:
        if not re.fullmatch(r"[A-Z]{3}", v):
            raise ValueError(f"currency must be an ISO 4217 code such as USD or EUR, got {v!r}")
        return v


class TaskUse(BaseModel):
    """One task (attempt) as the engine reported it, in common units."""

    model_config = ConfigDict(frozen=True)
    name: str
    status: str
    cpus: float = Field(ge=0)
    memory_gib: float = Field(ge=0)
    hours: float = Field(ge=0)
    machine_type: str | None = None
    spot: bool = False
    engine_cost: float | None = None


class Usage(BaseModel):
    """What one run used and its estimated cost (``basis`` says it is an estimate)."""

    model_config = ConfigDict(extra="forbid")
    engine: Literal["nextflow", "wdl"]
    cpu_hours: float
    memory_gib_hours: float
    wall_seconds: float
    task_count: int
    failed_tasks: int
    work_bytes: int = 0
    results_bytes: int = 0
    estimated_cost: float
    currency: str
    basis: Literal["estimate"] = "estimate"
    engine_cost: float | None = Field(None, description="the engine's own figure (Seqera's), if it gave one")
    priced_by: dict[str, int] = Field(default_factory=dict,
                                      description="tasks priced per instance type and per vCPU/GiB-hour")


def task_cost(task: TaskUse, table: PriceTable) -> tuple[float, str]:
    """A task's estimated cost, and how it was priced (the instance type, or ``unit``)."""
    instance = table.instance_types.get(task.machine_type or "")
    if instance is not None:
        hourly = instance.spot if task.spot and instance.spot is not None else instance.on_demand
        share = min(1.0, max(task.cpus / instance.vcpus, task.memory_gib / instance.memory_gib))
        return hourly * share * task.hours, task.machine_type or ""
    unit = table.spot if task.spot and table.spot is not None else table.on_demand
    return (task.cpus * unit.vcpu_hour + task.memory_gib * unit.gib_hour) * task.hours, "unit"


def price(engine: Literal["nextflow", "wdl"], tasks: Iterable[TaskUse], table: PriceTable, *,
          wall_seconds: float, work_bytes: int = 0, results_bytes: int = 0,
          engine_cost: float | None = None) -> Usage:
    """Sum and price a run's tasks, and its storage for its wall time."""
    tasks = list(tasks)
    cost = 0.0
    priced_by: dict[str, int] = {}
    for task in tasks:
        amount, how = task_cost(task, table)
        cost += amount
        priced_by[how] = priced_by.get(how, 0) + 1
    stored_gib = (work_bytes + results_bytes) / GIB
    cost += stored_gib * table.storage_gib_month * (wall_seconds / 3600) / HOURS_PER_MONTH
    return Usage(engine=engine, cpu_hours=round(sum(t.cpus * t.hours for t in tasks), 6),
                 memory_gib_hours=round(sum(t.memory_gib * t.hours for t in tasks), 6),
                 wall_seconds=round(wall_seconds, 3), task_count=len(tasks),
                 failed_tasks=sum(1 for t in tasks if t.status.upper() in ("FAILED", "ABORTED")),
                 work_bytes=work_bytes, results_bytes=results_bytes, estimated_cost=round(cost, 6),
                 currency=table.currency, engine_cost=engine_cost, priced_by=priced_by)


# -- Seqera
def seqera_tasks(tasks: Iterable[dict[str, Any]]) -> list[TaskUse]:
    """Seqera ``Task`` objects (``GET /workflow/{id}/tasks``) that ran: cached and never-started tasks
    cost nothing and are left out."""
    out = []
    for task in tasks:
        realtime = task.get("realtime")
        if realtime is None:
            realtime = task.get("duration")
        if task.get("status") in ("NEW", "SUBMITTED", "CACHED") or not realtime:
            continue
        out.append(TaskUse(name=str(task.get("name") or task.get("process") or task.get("taskId")),
                           status=str(task.get("status") or "UNKNOWN"), cpus=float(task.get("cpus") or 1),
                           memory_gib=float(task.get("memory") or 0) / GIB, hours=float(realtime) / 3_600_000,
                           machine_type=task.get("machineType") or None, spot=task.get("priceModel") == "spot",
                           engine_cost=task.get("cost")))
    return out


def seqera_engine_cost(progress: dict[str, Any] | None) -> float | None:
    """The run's own cost as Seqera's progress load gives it (None when absent or zero: not computed)."""
    load = (progress or {}).get("workflowProgress") or {}
    cost = load.get("cost")
    return float(cost) if cost else None


# -- Cromwell
def memory_gib(text: Any) -> float:
    """A WDL/Cromwell memory attribute (``"4 GB"``, ``"2 GiB"``, ``"4096 MB"``, bytes) in GiB.

    As Cromwell's ``MemorySize``: ``GB`` is 1000^3 bytes, ``GiB`` 1024^3."""
    if isinstance(text, (int, float)):
        return float(text) / GIB
    match = _MEMORY.match(str(text or ""))
    factor = _UNIT_BYTES.get((match.group(2) or "").upper()) if match else None
    if factor is None:
        raise ValueError(f"not a memory size: {text!r}")
    return float(match.group(1)) * factor / GIB


def _seconds(start: str | None, end: str | None) -> float:
    started, ended = parse_time(start), parse_time(end)
    if started is None or ended is None:
        return 0.0
    return max(0.0, (ended - started).total_seconds())


def cromwell_tasks(metadata: dict[str, Any]) -> list[TaskUse]:
    """Every call attempt of Cromwell metadata that ran (sub-workflows included), with its
    ``runtimeAttributes`` (``cpu``, ``memory``; ``preemptible`` > 0 is spot capacity)."""
    out: list[TaskUse] = []
    for fqn, attempts in (metadata.get("calls") or {}).items():
        for call in attempts or []:
            if call.get("subWorkflowMetadata"):
                out.extend(cromwell_tasks(call["subWorkflowMetadata"]))
                continue
            hours = _seconds(call.get("start"), call.get("end")) / 3600
            if not hours or call.get("executionStatus") in ("NotStarted", "QueuedInCromwell", "Starting"):
                continue
            if (call.get("callCaching") or {}).get("hit"):
                continue
            attributes = call.get("runtimeAttributes") or {}
            out.append(TaskUse(name=f"{fqn}[{call.get('shardIndex', -1)}].{call.get('attempt', 1)}",
                               status=str(call.get("executionStatus") or "Unknown"),
                               cpus=float(attributes.get("cpu") or 1),
                               memory_gib=memory_gib(attributes["memory"]) if attributes.get("memory") else 2.0,
                               hours=hours, spot=int(attributes.get("preemptible") or 0) > 0))
    return out


def cromwell_wall_seconds(metadata: dict[str, Any]) -> float:
    return _seconds(metadata.get("start"), metadata.get("end"))


# -- budgets
class Budget(BaseModel):
    """A workspace's budget per calendar month (UTC), in the price table's currency.

    A run that would start once the month's estimated cost has reached ``amount`` is refused
    with the figures; the recording that first takes the month past ``soft_limit`` of it sends
    a notice.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    amount: float = Field(gt=0)
    soft_limit: float = Field(0.8, gt=0, le=1, description="fraction of amount that sends a notice")


def month_start(now: datetime) -> datetime:
    """The first instant of ``now``'s calendar month (UTC): the budget period's start."""
    from datetime import timezone

    now = now.astimezone(timezone.utc)
    return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def next_month(now: datetime) -> datetime:
    start = month_start(now)
    return start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(month=start.month + 1)


def budget_refusal(workspace: str, spent: float, budget: Budget, currency: str, now: datetime) -> str | None:
    """Why a new run of ``workspace`` is refused (None: it may start)."""
    if spent < budget.amount:
        return None
    return (f"workspace {workspace} has used an estimated {spent:.2f} {currency} of its {budget.amount:.2f} "
            f"{currency} budget for {month_start(now):%B %Y}: new runs are refused until "
            f"{next_month(now):%Y-%m-%dT%H:%M:%SZ} (or until the budget is raised)")


def crossed(before: float, after: float, budget: Budget) -> Literal["soft_limit", "budget"] | None:
    """Which line the month's total crossed with one more run: the budget, its soft limit, or none."""
    if before < budget.amount <= after:
        return "budget"
    if before < budget.amount * budget.soft_limit <= after:
        return "soft_limit"
    return None
