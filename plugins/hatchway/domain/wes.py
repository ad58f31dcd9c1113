"""GA4GH WES 1.1 as Hatchway speaks it: the run request, the run's conf, and the state mapping.

Plain pydantic: no Airflow, no web framework. The front door (``hatchway.api``) parses forms
into :class:`RunForm`, resolves the workspaces (``hatchway.domain.access``) and hands a
:class:`WesRunConf` to the ``wes_run`` DAG; :func:`wes_state` turns what Airflow knows of that
run back into one WES state, the same way on every route.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping
from enum import Enum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from hatchway.domain.wes_tasks import (  # noqa: F401  (the DAG file imports them alone: parse time)
    TASK_CLEAN,
    TASK_HARVEST,
    TASK_LAUNCH,
    TASK_STOP,
    TASK_WAIT,
    TEARDOWNS,
    WES_DAG_ID,
)

MAX_PARAMS_BYTES = 256 * 1024  # workflow_params is a parameter file, not a data channel
MAX_TAGS = 50
_TAG_KEY = re.compile(r"^[A-Za-z0-9_.:/-]{1,128}$")
_RUN_ID = re.compile(r"^[0-9a-f]{32}$")


class WesState(str, Enum):
    UNKNOWN = "UNKNOWN"
    QUEUED = "QUEUED"
    INITIALIZING = "INITIALIZING"
    RUNNING = "RUNNING"
    PAUSED = "PAUSED"
    COMPLETE = "COMPLETE"
    EXECUTOR_ERROR = "EXECUTOR_ERROR"
    SYSTEM_ERROR = "SYSTEM_ERROR"
    CANCELED = "CANCELED"
    CANCELING = "CANCELING"
    PREEMPTED = "PREEMPTED"

    @property
    def terminal(self) -> bool:
        return self in _TERMINAL


_TERMINAL = {WesState.COMPLETE, WesState.EXECUTOR_ERROR, WesState.SYSTEM_ERROR, WesState.CANCELED}
_TI_DONE = {"success", "failed", "skipped", "upstream_failed", "removed"}
_TI_ACTIVE = {"scheduled", "queued", "running", "deferred", "up_for_retry", "up_for_reschedule", "restarting"}


def wes_state(*, dag_run_state: str | None, tasks: Mapping[str, str | None], cancel_requested: bool) -> WesState:
    """One WES state from a DAG run's state, its task states and whether a cancel was asked.

    A cancel wins over everything the run reports afterwards: Airflow can end a run that was
    marked failed as ``success`` once its teardowns pass (docs/airflow-behaviour.md), and a cancelled run
    must never read COMPLETE. It is CANCELING until the run and its teardowns have ended.

    :param dag_run_state: ``queued``, ``running``, ``success``, ``failed``, or None (no run yet).
    :param tasks: task id -> task-instance state (None: not scheduled yet).
    :param cancel_requested: a user asked to cancel this run.
    """
    ended = dag_run_state in ("success", "failed")
    if cancel_requested:
        teardowns_done = all((tasks.get(t) or "") in _TI_DONE for t in TEARDOWNS if t in tasks)
        return WesState.CANCELED if ended and teardowns_done else WesState.CANCELING
    if dag_run_state is None or dag_run_state == "queued":
        return WesState.QUEUED
    launch, wait, harvest = (tasks.get(t) for t in (TASK_LAUNCH, TASK_WAIT, TASK_HARVEST))
    if wait == "failed":
        return WesState.EXECUTOR_ERROR  # the workflow itself failed (Seqera said FAILED, or a timeout)
    if "failed" in (launch, harvest) or "upstream_failed" in (wait, harvest):
        return WesState.SYSTEM_ERROR
    if dag_run_state == "success":
        return WesState.COMPLETE if harvest == "success" else WesState.SYSTEM_ERROR
    if dag_run_state == "failed":
        return WesState.SYSTEM_ERROR
    if launch != "success":
        return WesState.INITIALIZING
    return WesState.RUNNING


def run_prefix(executing: str, run_id: str) -> str:
    """A run's own area in the executing workspace (work dir and raw outputs); removed after the run."""
    return f"{executing}/runs/{run_id}/"


def outputs_prefix(executing: str, run_id: str) -> str:
    """Where a run writes its outputs, under the executing workspace's prefix."""
    return f"{run_prefix(executing, run_id)}outputs/"


def harvest_marker_key(executing: str, run_id: str) -> str:
    """A key in the run's area that exists while its harvest has not finished: written before
    the harvest starts, removed once the Items are written. The clean-up keeps the area while
    it exists, so a failed or killed harvest never loses the only copy of the outputs."""
    return f"{run_prefix(executing, run_id)}.harvest-pending"


def catalog_prefix(calling: str, run_id: str) -> str:
    """Where a run's STAC catalog and copied outputs go, under the calling workspace's prefix."""
    return f"{calling}/processing-results/{run_id}/"


def catalog_url(bucket: str, calling: str, run_id: str) -> str:
    return f"s3://{bucket}/{catalog_prefix(calling, run_id)}catalog.json"


class ExecutingContext(BaseModel):
    """What the executing workspace decides for a run: where it runs, as whom, tagged how.

    :param namespace: Kubernetes namespace of the workspace (k8s executors).
    :param job_role: IAM role the workflow's jobs assume (the workspace's job role).
    :param job_queue: Batch queue the jobs go to (the workspace's, or the shared fair-share one).
    :param share_identifier: fair-share identifier in the shared queue (shared mode only).
    :param tags: the workspace's cost and ownership tags, plus the run's.
    """

    model_config = ConfigDict(extra="forbid")

    namespace: str
    job_role: str
    job_queue: str
    share_identifier: str | None = None
    tags: dict[str, str] = Field(default_factory=dict)


class WorkflowRef(BaseModel):
    """The deployed workflow a run executes, as the door resolved it."""

    model_config = ConfigDict(extra="forbid")

    name: str
    version: str
    engine: str
    git_url: str | None = None
    git_ref: str | None = None
    pipeline: str | None = None

    @property
    def launch_source(self) -> tuple[str, str | None]:
        """(pipeline, revision) for the engine's launch call."""
        if self.git_url:
            return self.git_url, self.git_ref
        return str(self.pipeline), None


class WesRunConf(BaseModel):
    """The conf of one ``wes_run`` DAG run: everything it needs, resolved by the door."""

    model_config = ConfigDict(extra="forbid")

    run_id: str
    calling: str
    deploying: str
    executing: str
    bucket: str
    workflow: WorkflowRef
    params: dict[str, Any] = Field(default_factory=dict)
    engine_parameters: dict[str, str] = Field(default_factory=dict)
    tags: dict[str, str] = Field(default_factory=dict)
    context: ExecutingContext
    # A container block (hatchway.domain.wave.ContainerBlock), from workflow_engine_parameters["container"].
    container: dict[str, Any] | None = None

    _run_id_rule = field_validator("run_id")(lambda cls, v: check_run_id(v))

    @property
    def dag_run_id(self) -> str:
        return dag_run_id(self.run_id)

    @property
    def engine_run_name(self) -> str:
        """The run's name in Seqera: unique, and searchable by the shared ``wes-`` prefix."""
        return f"wes-{self.run_id}"

    @property
    def run_prefix(self) -> str:
        return run_prefix(self.executing, self.run_id)

    @property
    def outdir(self) -> str:
        return f"s3://{self.bucket}/{outputs_prefix(self.executing, self.run_id).rstrip('/')}"

    @property
    def work_dir(self) -> str:
        return f"s3://{self.bucket}/{self.run_prefix}work"

    def launch_params(self) -> dict[str, Any]:
        """The workflow's params, with ``outdir`` pinned inside the executing workspace."""
        return {**self.params, "outdir": self.outdir}


def new_run_id() -> str:
    return uuid.uuid4().hex


def check_run_id(value: str) -> str:
    if not _RUN_ID.match(value or ""):
        raise ValueError("run id must be 32 lowercase hex digits")
    return value


def dag_run_id(run_id: str) -> str:
    return f"wes__{run_id}"


class RunForm(BaseModel):
    """A ``POST /runs`` multipart form, fields as WES clients send them (JSON as strings).

    ``workflow_type_version`` and ``workflow_engine*`` are optional here although the spec's
    RunRequest calls the first required: the deployed workflow already pins its engine, so a
    client that leaves them out loses nothing.
    """

    model_config = ConfigDict(extra="ignore")

    workflow_url: str
    workflow_type: str
    workflow_type_version: str | None = None
    workflow_params: dict[str, Any] = Field(default_factory=dict)
    workflow_engine: str | None = None
    workflow_engine_version: str | None = None
    workflow_engine_parameters: dict[str, str] = Field(default_factory=dict)
    tags: dict[str, str] = Field(default_factory=dict)

    @classmethod
    def from_form(cls, fields: Mapping[str, str]) -> RunForm:
        """Parse the string fields: JSON objects decoded, sizes checked before decoding."""
        values: dict[str, Any] = {}
        for key in ("workflow_url", "workflow_type", "workflow_type_version", "workflow_engine",
                    "workflow_engine_version"):
            if fields.get(key) not in (None, ""):
                values[key] = fields[key]
        for key in ("workflow_params", "workflow_engine_parameters", "tags"):
            raw = fields.get(key)
            if raw in (None, ""):
                continue
            if len(raw.encode()) > MAX_PARAMS_BYTES:
                raise ValueError(f"{key} is {len(raw.encode())} bytes; at most {MAX_PARAMS_BYTES} are accepted")
            try:
                decoded = json.loads(raw)
            except ValueError as exc:
                raise ValueError(f"{key} is not valid JSON: {exc.msg} at position {exc.pos}") from None
            if not isinstance(decoded, dict):
                raise ValueError(f"{key} must be a JSON object")
            if key != "workflow_params":
                decoded = {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in decoded.items()}
            values[key] = decoded
        return cls.model_validate(values)

    @field_validator("tags")
    @classmethod
    def _tags_rule(cls, tags: dict[str, str]) -> dict[str, str]:
        if len(tags) > MAX_TAGS:
            raise ValueError(f"at most {MAX_TAGS} tags")
        for key, value in tags.items():
            if not _TAG_KEY.match(key):
                raise ValueError(f"tag key {key[:40]!r} must be 1-128 of letters, digits and _.:/-")
            if len(value) > 256:
                raise ValueError(f"tag {key!r} is longer than 256 characters")
        return tags


WES_VARIABLE = "hatchway_wes_config"  # the Airflow Variable that holds WesSettings


class WesSettings(BaseModel):
    """Settings of the ``wes_run`` lifecycle, from the Airflow Variable ``hatchway_wes_config``.

    :param seqera_conn_id: Airflow connection of Seqera Platform (runs Nextflow workflows).
    :param seqera_workspace_id: Seqera workspace (default: the connection's).
    :param aws_conn_id: connection of the platform bucket (harvest, clean-up).
    :param poll_interval_seconds: one shared list call per Seqera workspace per interval.
    :param timeout_seconds: a run not started by then fails.
    :param deployed_timeout_seconds: a run not ended this long after it started fails.
    """

    model_config = ConfigDict(extra="forbid")

    seqera_conn_id: str = "seqera_default"
    seqera_workspace_id: int | None = None
    aws_conn_id: str = "aws_default"
    poll_interval_seconds: float = Field(30.0, gt=0)
    timeout_seconds: float = Field(3600.0, gt=0)
    deployed_timeout_seconds: float = Field(172_800.0, gt=0)


def executing_context(*, prefix: str, queue_mode: str, cost_tag_key: str, executing: str, owner: str,
                      run_id: str, calling: str, cost_center: str | None = None) -> ExecutingContext:
    """The executing workspace's namespace, job role, queue and tags for one run.

    The names are the workspace lifecycle's own (:class:`WorkspaceNames`), so a run lands in
    what ``workspace_provision`` made for that workspace. The cost tag is the executing
    workspace's provisioned cost centre (:func:`with_cost_center`), never its name: the
    door does not know it, the launch reads it from the workspace record.

    :param cost_center: the executing workspace's provisioned cost centre; None: no cost tag.
    """
    from hatchway.domain.names import PlatformNames, WorkspaceNames
    from hatchway.domain.workspace import TAG_OWNER, TAG_PLATFORM, TAG_WORKSPACE

    names = WorkspaceNames(prefix, executing)
    shared = queue_mode == "shared"
    tags = {TAG_WORKSPACE: executing, TAG_OWNER: owner[:256], TAG_PLATFORM: prefix,
            "hatchway:wes-run": run_id, "hatchway:calling-workspace": calling}
    context = ExecutingContext(namespace=names.namespace, job_role=names.job_role,
                               job_queue=PlatformNames(prefix).shared_job_queue if shared else names.job_queue,
                               share_identifier=names.share_identifier if shared else None, tags=tags)
    return with_cost_center(context, cost_tag_key, cost_center)


def with_cost_center(context: ExecutingContext, cost_tag_key: str, cost_center: str | None) -> ExecutingContext:
    """The context with its cost tag set to ``cost_center``, or without one when None.

    The executing workspace pays: the run's jobs use its compute, role and queue, so they carry
    the cost centre that workspace was provisioned with (the same tag as its other resources).
    The calling workspace is on every job as ``hatchway:calling-workspace`` for chargeback.
    A workspace with no record (never provisioned) gets no cost tag rather than a made-up one.

    :param cost_tag_key: the platform's cost-allocation tag key (``cost_tag_key``).
    :param cost_center: the executing workspace record's ``cost_center``; None: no record.
    """
    tags = {k: v for k, v in context.tags.items() if k != cost_tag_key}
    if cost_center:
        tags[cost_tag_key] = cost_center
    return context.model_copy(update={"tags": tags})


def nextflow_config(context: ExecutingContext, role_arn: str) -> str:
    """Nextflow config text that pins a run to its executing workspace.

    Sent as the launch's ``configText``: AWS Batch jobs take the workspace's job role and
    queue and carry its tags (``process.resourceLabels``), Kubernetes pods its namespace, so
    a workflow's steps see only that workspace's data and are billed to it.
    """
    def quote(value: str) -> str:
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"

    labels = ", ".join(f"{quote(k)}: {quote(v)}" for k, v in sorted(context.tags.items()))
    lines = [
        f"aws.batch.jobRole = {quote(role_arn)}",
        f"process.queue = {quote(context.job_queue)}",
        f"process.resourceLabels = [{labels}]",
        f"k8s.namespace = {quote(context.namespace)}",
    ]
    if context.share_identifier:
        lines.append(f"aws.batch.shareIdentifier = {quote(context.share_identifier)}")
    return "\n".join(lines) + "\n"
