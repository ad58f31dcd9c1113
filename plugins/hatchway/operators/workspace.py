"""Thin operators of the workspace lifecycle: read params and config, call one ensure.

The work lives in :mod:`hatchway.workspace`; these only wire Airflow to it.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator, Variable
from airflow.sdk.exceptions import AirflowSkipException

from hatchway.operators.base import HatchwayOperator

if TYPE_CHECKING:
    # Imported where used: DAG files import this module, and parse time is a tracked figure.
    from hatchway.domain.cromwell import CromwellSettings
    from hatchway.domain.workspace import PlatformConfig, WorkspaceRequest

CONFIG_VARIABLE = "hatchway_config"
CROMWELL_VARIABLE = "hatchway_cromwell_config"


def load_config(variable: str = CONFIG_VARIABLE) -> PlatformConfig:
    """The deployment's configuration from an Airflow Variable (JSON), validated."""
    from hatchway.domain.workspace import PlatformConfig

    raw = Variable.get(variable, default=None)
    if raw is None:
        raise ValueError(f"Airflow Variable {variable!r} is not set: it holds the platform configuration (README)")
    return PlatformConfig.from_json(raw)


def load_cromwell_settings(variable: str = CROMWELL_VARIABLE) -> CromwellSettings:
    """The deployment's Cromwell settings (JSON Variable; defaults when it is not set)."""
    from hatchway.domain.cromwell import CromwellSettings

    raw = Variable.get(variable, default=None)
    return CromwellSettings.model_validate_json(raw) if raw else CromwellSettings()


def publish_server(workspace: str, endpoint: str) -> None:
    """Name the workspace's server where the door and the workers look (:func:`hatchway.domain.cromwell.server_variable`)."""
    import json

    from airflow.sdk import Variable

    from hatchway.domain.cromwell import server_variable

    Variable.set(server_variable(workspace), json.dumps({"endpoint": endpoint}),
                 description=f"Cromwell server of workspace {workspace} (written by cromwell_server_provision)")


def unpublish_server(workspace: str) -> None:
    """Forget the workspace's server: its runs are refused until it is provisioned again."""
    from airflow.sdk import Variable

    from hatchway.domain.cromwell import server_variable

    Variable.delete(server_variable(workspace))


class HatchwayAwsOperator(HatchwayOperator):
    """Base of the workspace operators: configuration, clients, and the fault hook.

    :param config_variable: Airflow Variable holding the platform configuration.
    """

    ui_color = "#e8f4ea"

    def __init__(self, *, config_variable: str = CONFIG_VARIABLE, **kwargs: Any):
        super().__init__(**kwargs)
        self.config_variable = config_variable

    @cached_property
    def config(self) -> PlatformConfig:
        return load_config(self.config_variable)

    @cached_property
    def clients(self):
        from hatchway.workspace.clients import AwsClients

        return AwsClients.from_connection(self.config.aws_conn_id, self.config.region)

    def run_step(self, target: Any, step: str, **inputs: Any) -> Any:
        return getattr(target, step)(**inputs)


class WorkspaceStepOperator(HatchwayAwsOperator):
    """Run one ensure step of :class:`hatchway.workspace.provision.Workspace`.

    :param step: the method to call (``plan``, ``ensure_network``, ``ensure_storage``, ...).
    :param workspace: the workspace name (templated).
    :param workspace_owner: the researcher who owns it (templated; ``owner`` is the task's Airflow owner).
    :param cost_center: cost-allocation tag value (templated, optional).
    :param inputs: keyword arguments of the step, usually upstream XComs (templated).
    """

    template_fields: Sequence[str] = ("workspace", "workspace_owner", "cost_center", "inputs")
    template_fields_renderers = {"inputs": "json"}
    STEPS = ("plan", "ensure_network", "ensure_storage", "ensure_job_role", "ensure_compute_environment",
             "ensure_job_queue", "ensure_user", "ensure_access_key", "record")

    def __init__(self, *, step: str, workspace: str, workspace_owner: str, cost_center: str | None = None,
                 inputs: dict[str, Any] | None = None, **kwargs: Any):
        if step not in self.STEPS:
            raise ValueError(f"unknown workspace step {step!r}; one of {self.STEPS}")
        super().__init__(**kwargs)
        self.step = step
        self.workspace = workspace
        self.workspace_owner = workspace_owner
        self.cost_center = cost_center
        self.inputs = inputs or {}

    def request(self) -> WorkspaceRequest:
        from hatchway.domain.workspace import WorkspaceRequest

        return WorkspaceRequest(workspace=self.workspace, owner=self.workspace_owner, cost_center=self.cost_center)

    def execute(self, context: Any) -> Any:
        from hatchway.workspace.provision import Workspace

        return self.run_step(Workspace(self.clients, self.config, self.request()), self.step, **self.inputs)


class EnsureComputeEnvironmentOperator(WorkspaceStepOperator):
    """Ensure the compute environment, then wait for VALID in the triggerer.

    The wait is the amazon provider's ``BatchCreateComputeEnvironmentTrigger``: no worker
    slot is held while AWS brings the environment up.

    :param waiter_max_attempts: polls before giving up (``compute_wait_delay`` apart).
    """

    def __init__(self, *, waiter_max_attempts: int = 60, **kwargs: Any):
        super().__init__(step="ensure_compute_environment", **kwargs)
        self.waiter_max_attempts = waiter_max_attempts

    def execute(self, context: Any) -> Any:
        from airflow.providers.amazon.aws.triggers.batch import BatchCreateComputeEnvironmentTrigger

        result = super().execute(context)
        if result.get("status") == "VALID":
            return result["arn"]
        self.defer(
            trigger=BatchCreateComputeEnvironmentTrigger(
                compute_env_arn=result["arn"], waiter_delay=self.config.compute_wait_delay,
                waiter_max_attempts=self.waiter_max_attempts, aws_conn_id=self.config.aws_conn_id,
                region_name=self.config.region),
            method_name="execute_complete",
        )

    def execute_complete(self, context: Any, event: dict[str, Any] | None = None) -> str:
        if not event or event.get("status") != "success":
            raise RuntimeError(f"compute environment for {self.workspace!r} did not become VALID: {event}")
        return event["value"]


def lock_holder(context: Any) -> str:
    """Who holds a workspace lock: the DAG run, so a retried task finds its own lock."""
    run = context["dag_run"]
    return f"{run.dag_id}/{run.run_id}"


class AcquireWorkspaceLockOperator(HatchwayAwsOperator):
    """Take the workspace's lifecycle lock (:mod:`hatchway.workspace.lock`), waiting deferred.

    A busy lock is tried again every ``lock_poll_seconds`` from the triggerer (no worker
    slot is held), for up to ``lock_wait_seconds``; then the task fails and says who holds it.

    :param workspace: the workspace name (templated).
    """

    template_fields: Sequence[str] = ("workspace",)

    def __init__(self, *, workspace: str, **kwargs: Any):
        super().__init__(**kwargs)
        self.workspace = workspace

    def execute(self, context: Any) -> dict[str, str]:
        return self._try(context, started=None)

    def execute_complete(self, context: Any, event: dict[str, Any] | None = None) -> dict[str, str]:
        return self._try(context, started=(event or {}).get("started"))

    def _try(self, context: Any, started: str | None) -> dict[str, str]:
        from datetime import datetime

        from hatchway.domain.workspace import utcnow
        from hatchway.triggers.lock import LockRetryTrigger
        from hatchway.workspace.lock import WorkspaceLock

        holder, now = lock_holder(context), utcnow()
        result = self.run_step(WorkspaceLock(self.clients, self.config, self.workspace), "acquire", holder=holder)
        if result["acquired"]:
            return {"workspace": self.workspace, "holder": holder}
        started = started or now.isoformat()
        waited = (now - datetime.fromisoformat(started)).total_seconds()
        if waited >= self.config.lock_wait_seconds:
            raise RuntimeError(f"workspace {self.workspace!r} is busy with {result['holder']} after waiting "
                               f"{waited:.0f}s (lock_wait_seconds): run this again once that run ended")
        self.log.info("workspace %s is busy with %s; trying again in %ss", self.workspace, result["holder"],
                      self.config.lock_poll_seconds)
        self.defer(trigger=LockRetryTrigger(self.config.lock_poll_seconds, started), method_name="execute_complete")


class ReleaseWorkspaceLockOperator(HatchwayAwsOperator):
    """Give the workspace's lock back (a teardown task: it runs on success, failure and cancel).

    Only this run's lock is deleted: a run that never got the lock leaves the holder's alone.

    :param workspace: the workspace name (templated).
    """

    template_fields: Sequence[str] = ("workspace",)

    def __init__(self, *, workspace: str, **kwargs: Any):
        super().__init__(**kwargs)
        self.workspace = workspace

    def execute(self, context: Any) -> dict[str, Any]:
        from hatchway.workspace.lock import WorkspaceLock

        lock = WorkspaceLock(self.clients, self.config, self.workspace)
        return {"released": self.run_step(lock, "release", holder=lock_holder(context))}


def hold_workspace_lock(dag: Any, workspace: str) -> tuple[BaseOperator, BaseOperator]:
    """Run every task of ``dag`` inside the workspace's lock; call it last in the DAG file.

    ``acquire_lock`` goes before every first task and ``release_lock`` after every last one,
    as a teardown without a setup: it runs whatever happened, even when taking the lock
    failed half-way (it deletes only this run's lock). The run's state stays that of the
    work (a failed release leaves the lock to its lease: it does not hide a failed ensure).
    """
    tasks = list(dag.tasks)
    acquire = AcquireWorkspaceLockOperator(task_id="acquire_lock", workspace=workspace, dag=dag)
    release = ReleaseWorkspaceLockOperator(task_id="release_lock", workspace=workspace, dag=dag)
    release.as_teardown()
    for task in tasks:
        if not task.upstream_task_ids:
            acquire >> task
        if not task.downstream_task_ids:
            task >> release
    acquire >> release  # also when the DAG had no task, and the release waits on the acquire
    return acquire, release


class TeardownStepOperator(HatchwayAwsOperator):
    """Run one teardown step for a workspace; purge steps skip unless ``purge`` is true.

    :param step: ``revoke_access``, ``stop_compute``, ``expire_data``, ``purge_resources``, ``purge_data``.
    :param workspace: the workspace name (templated).
    :param purge: delete everything, data included (templated).
    """

    template_fields: Sequence[str] = ("workspace", "purge")
    STEPS = ("revoke_access", "stop_compute", "expire_data", "purge_resources", "purge_data")
    # Steps missing here run either way.
    ONLY_WHEN_PURGE = {"expire_data": False, "purge_resources": True, "purge_data": True}

    def __init__(self, *, step: str, workspace: str, purge: bool | str = False, **kwargs: Any):
        if step not in self.STEPS:
            raise ValueError(f"unknown teardown step {step!r}; one of {self.STEPS}")
        super().__init__(**kwargs)
        self.step = step
        self.workspace = workspace
        self.purge = purge

    def execute(self, context: Any) -> Any:
        from hatchway.domain.workspace import TeardownRequest, WorkspaceRequest
        from hatchway.workspace.inventory import delete_resources, inventory
        from hatchway.workspace.provision import Workspace, read_record

        request = TeardownRequest(workspace=self.workspace, purge=self.purge)
        if self.ONLY_WHEN_PURGE.get(self.step, request.purge) != request.purge:
            raise AirflowSkipException(f"{self.step} runs only with purge={not request.purge}")
        if self.step == "purge_resources":
            from hatchway.workspace.cromwell_server import purge_server

            # The server first: its service runs in the workspace's network and submits to its queue.
            purge_server(self.clients, self.config, request.workspace, load_cromwell_settings().server)
            unpublish_server(request.workspace)
            found = inventory(self.clients, request.workspace, platform=self.config.prefix)
            deleted = delete_resources(self.clients, found)
            return {"deleted": len(deleted), "kinds": sorted({r.kind for r in found})}
        record = read_record(self.clients, self.config, request.workspace)
        owner = record.owner if record else "unknown"
        ws = Workspace(self.clients, self.config, WorkspaceRequest(
            workspace=request.workspace, owner=owner, cost_center=record.cost_center if record else None))
        result = self.run_step(ws, self.step)
        if self.step == "stop_compute":
            from hatchway.workspace.cromwell_server import teardown_server

            # The workspace's own Cromwell server, if it has one, stops with its compute.
            stopped = teardown_server(self.clients, self.config, request.workspace)
            unpublish_server(request.workspace)
            result["stopped_cromwell"] = stopped["stopped_service"]
        return result


class PlatformStepOperator(HatchwayAwsOperator):
    """Run one step of :class:`hatchway.workspace.platform.Platform` (``platform_bootstrap``).

    :param step: ``ensure_roles``, ``ensure_bucket``, ``ensure_shared_network``, ``ensure_shared_queue``.
    :param inputs: keyword arguments of the step (templated).
    """

    template_fields: Sequence[str] = ("inputs",)
    STEPS = ("ensure_roles", "ensure_bucket", "ensure_shared_network", "ensure_shared_queue")

    def __init__(self, *, step: str, inputs: dict[str, Any] | None = None, **kwargs: Any):
        if step not in self.STEPS:
            raise ValueError(f"unknown platform step {step!r}; one of {self.STEPS}")
        super().__init__(**kwargs)
        self.step = step
        self.inputs = inputs or {}

    def execute(self, context: Any) -> Any:
        from hatchway.workspace.platform import Platform

        return self.run_step(Platform(self.clients, self.config), self.step, **self.inputs)


class ReaperOperator(HatchwayAwsOperator):
    """One pass of the workspace reaper.

    :param action: ``find_idle`` (confs for ``workspace_teardown``), ``sweep_expired`` (delete the data
        of torn-down workspaces past their expiry), ``sweep_orphans`` or ``queue_quota``.
    :param idle_ttl_hours: override of the configured TTL (templated, optional).
    :param delete_orphans: delete tagged resources of no known workspace (templated).
    """

    template_fields: Sequence[str] = ("idle_ttl_hours", "delete_orphans")
    ACTIONS = ("find_idle", "sweep_expired", "sweep_orphans", "queue_quota")

    def __init__(self, *, action: str, idle_ttl_hours: int | str | None = None,
                 delete_orphans: bool | str = False, **kwargs: Any):
        if action not in self.ACTIONS:
            raise ValueError(f"unknown reaper action {action!r}; one of {self.ACTIONS}")
        super().__init__(**kwargs)
        self.action = action
        self.idle_ttl_hours = idle_ttl_hours
        self.delete_orphans = delete_orphans

    def execute(self, context: Any) -> Any:
        from hatchway.workspace import reaper

        if self.action == "find_idle":
            ttl = int(self.idle_ttl_hours) if self.idle_ttl_hours not in (None, "", "None") else None
            return [{"workspace": w, "purge": False}
                    for w in reaper.find_idle(self.clients, self.config, ttl_hours=ttl)]
        if self.action == "sweep_expired":
            return reaper.sweep_expired(self.clients, self.config, holder=lock_holder(context))
        if self.action == "sweep_orphans":
            delete = self.delete_orphans in (True, "True", "true")
            return reaper.sweep_orphans(self.clients, self.config, delete=delete)
        return reaper.queue_quota(self.clients, self.config)
