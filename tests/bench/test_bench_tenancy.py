"""Tenancy (``make bench``): 1,000 workspaces provisioned in ``shared`` queue mode in one moto
account. The 1,000th must cost no more than 1.2x the AWS calls and the time of the 1st.

Each workspace is provisioned by the steps ``workspace_provision`` runs, in its order, through
:class:`hatchway.workspace.provision.Workspace` in this process (``support.provision_steps``; a DAG
run per workspace would measure Airflow 1,000 times, not the provision). Calls are counted
client-side (botocore's ``before-call`` event), time per workspace by the clock. moto itself slows as its account fills
(its list and describe calls walk every resource it holds): the baseline is a fixed probe
(``GetUser`` of the first user + ``DescribeJobQueues`` of the shared queue + ``HeadObject`` of the
first record) timed before the first and after the last workspace, and the time figure is
reported both raw and net of the probe's growth.

``HATCHWAY_BENCH_WORKSPACES`` changes the count (default 1000).
"""

from __future__ import annotations

import os
import statistics
import time

import pytest

from hatchway.domain.names import PlatformNames, WorkspaceNames
from hatchway.domain.workspace import PlatformConfig, WorkspaceRequest
from hatchway.workspace.provision import Workspace
from support import provision_steps, run_dag

pytestmark = pytest.mark.bench

COUNT = int(os.environ.get("HATCHWAY_BENCH_WORKSPACES", "1000"))
SAMPLE = 10  # workspaces averaged at each end
GOAL = 1.2
RAISED = {"Policies": 5000, "Roles": 5000}
# IAM's published quotas (default, the most Service Quotas grants); active share identifiers per
# Batch job queue (AWS Batch: "no more than 500 share identifiers active in a job queue").
CEILINGS = {"Policies": ("customer managed policies", 1500, 5000), "Roles": ("IAM roles", 1000, 5000),
            "Users": ("IAM users", 5000, 5000)}
ACTIVE_SHARES_PER_QUEUE = 500


class CallCounter:
    def __init__(self, clients):
        self.calls = 0
        for service in ("iam", "s3", "ec2", "batch", "secretsmanager"):
            clients.client(service).meta.events.register("before-call", self._count)

    def _count(self, **_kwargs):
        self.calls += 1


def probe(clients, config: PlatformConfig, first: str) -> float:
    """A fixed set of reads, the baseline for how fast moto answers as its account fills."""
    names = WorkspaceNames(config.prefix, first)
    started = time.perf_counter()
    for _ in range(5):
        clients.iam.get_user(UserName=names.user)
        clients.batch.describe_job_queues(jobQueues=[PlatformNames(config.prefix).shared_job_queue])
        clients.s3.head_object(Bucket=config.bucket, Key=names.record_key)
    return (time.perf_counter() - started) / 5


def test_thousand_workspaces_in_shared_mode(aws, airflow_db, set_config, bench_table):
    from hatchway.workspace.clients import AwsClients

    # AWS's default IAM quotas hold 749 workspaces (two customer managed policies each): this
    # account has had them raised to the maxima, as a deployment of 1,000 must.
    set_config(queue_mode="shared", iam_quotas=RAISED)
    assert run_dag("platform_bootstrap").state == "success"
    config = PlatformConfig.model_validate_json(os.environ["AIRFLOW_VAR_HATCHWAY_CONFIG"])
    clients = AwsClients.from_endpoint(aws.s3.meta.endpoint_url)
    counter = CallCounter(clients)
    iam_before = clients.iam.get_account_summary()["SummaryMap"]
    names = [f"ws-{n:04d}" for n in range(COUNT)]

    costs: list[tuple[int, float]] = []
    probe_first = None
    started_all = time.perf_counter()
    for n, name in enumerate(names):
        before, started = counter.calls, time.perf_counter()
        provision_steps(Workspace(clients, config, WorkspaceRequest(workspace=name, owner=f"{name}@example.org")))
        costs.append((counter.calls - before, time.perf_counter() - started))
        if n == 0:
            probe_first = probe(clients, config, names[0])
        if (n + 1) % 100 == 0:
            print(f"  {n + 1} workspaces, {time.perf_counter() - started_all:.0f}s", flush=True)
    probe_last = probe(clients, config, names[0])

    first, last = costs[:SAMPLE], costs[-SAMPLE:]
    calls_first = statistics.mean(c for c, _ in first)
    calls_last = statistics.mean(c for c, _ in last)
    time_first = statistics.median(t for _, t in first)
    time_last = statistics.median(t for _, t in last)
    calls_ratio = calls_last / calls_first
    time_ratio = time_last / time_first
    emulator_growth = probe_last / probe_first
    print(f"\n{COUNT} workspaces in shared mode, one moto account:")
    print(f"  AWS calls per workspace: first {SAMPLE} {calls_first:.1f}, last {SAMPLE} {calls_last:.1f} "
          f"({calls_ratio:.2f}x)")
    print(f"  time per workspace (median): first {time_first * 1000:.0f} ms, last {time_last * 1000:.0f} ms "
          f"({time_ratio:.2f}x); moto's fixed probe {probe_first * 1000:.1f} -> {probe_last * 1000:.1f} ms "
          f"({emulator_growth:.2f}x); net of it {time_ratio / emulator_growth:.2f}x")
    iam_after = clients.iam.get_account_summary()["SummaryMap"]
    print("  the next AWS ceilings (IAM use per workspace measured here; quotas as AWS publishes them):")
    for kind, (what, default, most) in CEILINGS.items():
        per = (iam_after[kind] - iam_before[kind]) / COUNT
        if per:
            print(f"    {what}: {per:g} per workspace, {iam_before[kind]} for the platform -> "
                  f"{int((default - iam_before[kind]) // per)} workspaces at the default {default}, "
                  f"{int((most - iam_before[kind]) // per)} at {most}")
    print(f"    active share identifiers per Batch job queue: {ACTIVE_SHARES_PER_QUEUE} -> beyond that many "
          "workspaces with jobs at once, a second shared queue (a second deployment)")
    users = sum(len(p["Users"]) for p in clients.iam.get_paginator("list_users").paginate())
    queues = clients.batch.describe_job_queues()["jobQueues"]
    print(f"  account: {users} IAM users, {len(queues)} job queue(s)")
    assert users >= COUNT and len(queues) == 1

    bench_table.add(f"tenancy: AWS calls of workspace #{COUNT} vs #1 (shared mode, means of {SAMPLE})",
                    f"{calls_last:.1f}", f"{calls_first:.1f}", calls_ratio, f"<= {GOAL}x", calls_ratio <= GOAL)
    bench_table.add(f"tenancy: time of workspace #{COUNT} vs #1, raw (medians of {SAMPLE})",
                    f"{time_last * 1000:.0f} ms", f"{time_first * 1000:.0f} ms", time_ratio)
    net = time_ratio / emulator_growth
    bench_table.add(f"tenancy: time of workspace #{COUNT} vs #1, net of moto's own slowdown (its fixed probe "
                    f"{emulator_growth:.2f}x)", f"{time_last * 1000:.0f} ms",
                    f"{time_first * 1000:.0f} ms x {emulator_growth:.2f}", net, f"<= {GOAL}x", net <= GOAL)
