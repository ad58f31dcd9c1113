"""Cromwell as Hatchway sees it: states, labels, the tenancy rules and the run's conf.

Cromwell has no users. Hatchway gives it tenants the way CromIAM does
(broadinstitute/cromwell ``CromIAM``, docs in tests/contracts/README.md): every submission
carries a *reserved label* naming the workspace, a caller may not set that label, every
query is narrowed to it (a caller's ``labelor`` would widen the query, so it is refused),
and a per-workflow call answers 404 unless the workflow's root carries the caller's
workspace. ``hogGroup`` = workspace keeps one tenant from starving the rest.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Mapping
from enum import Enum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from hatchway.domain.cromwell_server import CromwellServerSettings
from hatchway.domain.names import check_workspace_name
from hatchway.domain.wdl import GitSourceSettings, WorkflowSourceRequest

WORKSPACE_LABEL = "hatchway-workspace"  # the reserved label: a caller may never set it
RUN_LABEL = "hatchway-run"  # the Hatchway run a workflow belongs to: a retried submit finds it
COMMIT_LABEL = "hatchway-commit"  # the commit SHA the workflow was fetched at
RESERVED_LABELS = frozenset({WORKSPACE_LABEL, RUN_LABEL, COMMIT_LABEL})
LABEL_MAX = 255  # Cromwell: keys and values of 1-255 characters (docs/cromwell_features/Labels.md)
_LABEL_KEY = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
# Options a caller may not set: they would move or share what Hatchway owns (the run's place,
# the tenant's fairness group, the backend with its job role).
FORBIDDEN_OPTIONS = frozenset({"hogGroup", "backend", "jes_gcs_root", "final_workflow_outputs_dir",
                               "final_workflow_log_dir", "final_call_logs_dir", "call_cache_hit_path_prefixes",
                               "workflow_callback_uri", "google_project", "user_service_account_json"})
_RUN_IDS = uuid.UUID("6d1f3c8e-7a1b-4f3e-9c44-68617463687a")  # namespace of the submissions' workflow ids


class CromwellState(str, Enum):
    ON_HOLD = "On Hold"
    SUBMITTED = "Submitted"
    RUNNING = "Running"
    ABORTING = "Aborting"
    ABORTED = "Aborted"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


TERMINAL = frozenset({CromwellState.ABORTED, CromwellState.SUCCEEDED, CromwellState.FAILED})
NOT_STARTED = frozenset({CromwellState.ON_HOLD, CromwellState.SUBMITTED})
# Cromwell's own WES mapping (WesState.fromCromwellStatus).
WES_STATES = {CromwellState.ON_HOLD: "PAUSED", CromwellState.SUBMITTED: "QUEUED", CromwellState.RUNNING: "RUNNING",
              CromwellState.ABORTING: "CANCELING", CromwellState.ABORTED: "CANCELED",
              CromwellState.SUCCEEDED: "COMPLETE", CromwellState.FAILED: "EXECUTOR_ERROR"}


SERVER_VARIABLE_PREFIX = "hatchway_cromwell_server__"  # + workspace: {"endpoint": ...} in per_workspace mode


def server_variable(workspace: str) -> str:
    """The Airflow Variable that names a workspace's own Cromwell server (``per_workspace`` mode).

    Written by ``cromwell_server_provision`` and removed by its teardown, it is how every
    reader finds the server: the front door, which has no AWS access, and the workers.
    """
    return SERVER_VARIABLE_PREFIX + check_workspace_name(workspace)


def state(value: str | None) -> CromwellState | None:
    """The state named by a Cromwell status string, None for an unknown one."""
    try:
        return CromwellState(value)
    except ValueError:
        return None


class TenancyError(ValueError):
    """A caller asked for something the tenancy rules forbid; the message says which rule."""


def check_label(key: str, value: str) -> None:
    """Cromwell's label rules: non-empty key and value of at most 255 characters, keys lowercase."""
    if not key or len(key) > LABEL_MAX or not _LABEL_KEY.fullmatch(key):
        raise TenancyError(f"label key {key!r} must be 1-{LABEL_MAX} lowercase letters, digits and '-', "
                           "starting with a letter")
    if not isinstance(value, str) or not value or len(value) > LABEL_MAX:
        raise TenancyError(f"label {key!r} must have a value of 1-{LABEL_MAX} characters")


def user_labels(labels: Mapping[str, Any] | None) -> dict[str, str]:
    """A caller's labels, checked: Cromwell's rules, and none of Hatchway's reserved keys."""
    labels = dict(labels or {})
    taken = sorted(RESERVED_LABELS & labels.keys())
    if taken:
        raise TenancyError(f"labels may not contain the key {taken[0]!r}: Hatchway sets it (it names the "
                           "workspace or run a workflow belongs to)")
    for key, value in labels.items():
        check_label(key, value)
    return labels


def submission_labels(workspace: str, labels: Mapping[str, Any] | None = None, run_id: str | None = None,
                      commit: str | None = None) -> dict:
    """A submission's labels: the caller's, the reserved workspace label, the run's and the commit's."""
    out = {**user_labels(labels), WORKSPACE_LABEL: check_workspace_name(workspace)}
    for key, value in ((RUN_LABEL, run_id), (COMMIT_LABEL, commit)):
        if value:
            check_label(key, value)
            out[key] = value
    return out


def caller_options(options: Mapping[str, Any] | None) -> dict[str, Any]:
    """A caller's workflow options, checked: none that Hatchway owns."""
    options = dict(options or {})
    owned = sorted(FORBIDDEN_OPTIONS & options.keys())
    if owned:
        raise TenancyError(f"workflow option {owned[0]!r} is set by Hatchway and may not be given")
    return options


def submission_options(workspace: str, options: Mapping[str, Any] | None = None,
                       defaults: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A submission's workflow options: the caller's (none that Hatchway owns), then Hatchway's."""
    return {**caller_options(options), **(defaults or {}), "hogGroup": workspace}


def tenant_query(workspace: str, params: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """A caller's ``/query`` parameters narrowed to its workspace.

    ``label`` terms are ANDed by Cromwell, so adding the workspace label can only narrow;
    ``labelor`` (and the ``excludeLabel*`` terms, which could name the reserved label) are
    refused, as CromIAM refuses ``labelor``.
    """
    out = []
    for key, value in params:
        if key in {"labelor", "excludeLabelOr", "excludeLabelAnd"}:
            raise TenancyError(f"query parameter {key!r} is not allowed here: it could widen the query beyond "
                               "your workspace")
        if key == "label" and value.split(":", 1)[0] in RESERVED_LABELS:
            raise TenancyError(f"query label {value.split(':', 1)[0]!r} is reserved")
        out.append((key, value))
    return [*out, ("label", f"{WORKSPACE_LABEL}:{workspace}")]


def owned_by(labels: Mapping[str, Any] | None, workspace: str) -> bool:
    """Does a (root) workflow with these labels belong to ``workspace``?"""
    return (labels or {}).get(WORKSPACE_LABEL) == workspace


def workflow_id(run_id: str, attempt: int = 1) -> str:
    """The workflow id Hatchway asks for (``requestedWorkflowId``) on a run's n-th submission.

    Deterministic, so a submit whose answer was lost is found by id, without waiting for
    Cromwell's query summary to catch up.
    """
    return str(uuid.uuid5(_RUN_IDS, f"{run_id}#{attempt}"))


def first_failure(failures: list[dict[str, Any]] | None) -> str | None:
    """The first failure of a workflow's metadata, with its innermost first cause."""
    if not failures:
        return None
    failure, chain = failures[0], []
    while failure:
        if failure.get("message"):
            chain.append(str(failure["message"]).strip())
        causes = failure.get("causedBy") or []
        failure = causes[0] if causes else None
    return ": ".join(dict.fromkeys(chain)) or None


class CromwellSettings(BaseModel):
    """The deployment's Cromwell settings (Variable ``hatchway_cromwell_config``).

    :param mode: ``shared``: one Cromwell for every workspace, isolated by the reserved label;
        ``per_workspace``: a server per workspace (``cromwell_server_provision``).
    :param cromwell_conn_id: the shared server's connection (an ``http`` connection: host,
        schema, port; password = bearer token if the server wants one).
    :param aws_conn_id: AWS connection for placing outputs.
    :param source: where workflows may be fetched from (hosts, schemes, size limit).
    :param workflow_options: options every submission gets (a caller may not override them).
    :param notify_topic: a Kafka topic that hears how each run ended (none: no message).
    :param kafka_conn_id: the apache-kafka connection for ``notify_topic``.
    :param poll_interval_seconds: seconds between ``/query`` rounds of the shared poller.
    :param not_started_timeout_seconds: fail when a workflow is not seen running this long.
    :param run_timeout_seconds: fail when it has not ended this long after it started.
    :param server: how ``per_workspace`` servers are made (image, database, network).
    """

    model_config = ConfigDict(extra="forbid")

    mode: Literal["shared", "per_workspace"] = "shared"
    cromwell_conn_id: str = "cromwell_default"
    aws_conn_id: str = "aws_default"
    source: GitSourceSettings = Field(default_factory=GitSourceSettings)
    workflow_options: dict[str, Any] = Field(default_factory=dict)
    notify_topic: str | None = None
    kafka_conn_id: str = "kafka_default"
    poll_interval_seconds: float = Field(30.0, gt=0)
    not_started_timeout_seconds: float = Field(3600.0, gt=0)
    run_timeout_seconds: float = Field(172_800.0, gt=0)
    server: CromwellServerSettings = Field(default_factory=CromwellServerSettings)


class CromwellRunConf(BaseModel):
    """What one ``cromwell_run`` is asked to do (the DAG run's conf).

    :param run_id: the Hatchway run (32 hex digits or a slug); labels the workflow.
    :param workspace: the workspace it runs for (the reserved label, ``hogGroup``, the outputs' place).
    :param source: the repository, ref and main WDL.
    :param inputs: the workflow's inputs (``workflowInputs``).
    :param options: workflow options (none that Hatchway owns).
    :param labels: the caller's labels (none of the reserved keys).
    :param destination: where outputs go (default ``s3://<bucket>/<workspace>/cromwell/<run_id>/``).
    """

    model_config = ConfigDict(extra="forbid")

    run_id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")
    workspace: str
    source: WorkflowSourceRequest
    inputs: dict[str, Any] = Field(default_factory=dict)
    options: dict[str, Any] = Field(default_factory=dict)
    labels: dict[str, str] = Field(default_factory=dict)
    destination: str | None = Field(None, pattern=r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/.*)?$")

    @field_validator("workspace")
    @classmethod
    def _workspace(cls, value: str) -> str:
        return check_workspace_name(value)

    @field_validator("labels")
    @classmethod
    def _labels(cls, value: dict[str, str]) -> dict[str, str]:
        return user_labels(value)

    @field_validator("options")
    @classmethod
    def _options(cls, value: dict[str, Any]) -> dict[str, Any]:
        return caller_options(value)

    def destination_url(self, bucket: str) -> str:
        """Where the outputs go, ending with ``/``."""
        return (self.destination or f"s3://{bucket}/{self.workspace}/cromwell/{self.run_id}").rstrip("/") + "/"
