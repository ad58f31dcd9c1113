"""Workspace requests, the platform configuration and the tags every resource carries.

Plain pydantic: no Airflow, no cloud SDK. The same models validate the trigger form
(through the DAG Params' JSON schema, generated from them) and every task's input.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from enum import Enum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from hatchway.domain import names
from hatchway.domain.names import OWNER_SCHEMA, WORKSPACE_HELP, WORKSPACE_SCHEMA
from hatchway.domain.usage import Budget, PriceTable

TAG_WORKSPACE = "hatchway:workspace"
TAG_OWNER = "hatchway:owner"
TAG_COMPONENT = "hatchway:component"
TAG_PLATFORM = "hatchway:platform"

# Where Nextflow/WDL jobs usually need to go: AWS APIs, container registries, package
# and code hosts. S3 data goes through the VPC endpoint, not through Squid.
DEFAULT_PROXY_DOMAINS = (
    ".amazonaws.com", ".docker.io", ".docker.com", "ghcr.io", ".quay.io", "quay.io", ".seqera.io",
    ".nextflow.io", ".github.com", "github.com", ".githubusercontent.com", ".conda.io", ".anaconda.org",
    ".pypi.org", ".pythonhosted.org",
)
_DOMAIN = re.compile(r"^\.?[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$")


class QueueMode(str, Enum):
    """How Batch job queues are given out.

    ``per_user`` is Hatchery's way (one queue each, at most ``job_queue_limit`` per
    account); ``shared`` is one fair-share queue with a share identifier per workspace.
    """

    PER_USER = "per_user"
    SHARED = "shared"


class PlatformConfig(BaseModel):
    """Deployment-wide settings, read from the Airflow Variable ``hatchway_config`` (JSON).

    These are the fields of Hatchery's ``nextflow`` block, plus Hatchway's own.
    """

    model_config = ConfigDict(extra="forbid")

    aws_conn_id: str = "aws_default"
    region: str = "us-east-1"
    prefix: str = "hatchway"
    bucket: str
    queue_mode: QueueMode = QueueMode.PER_USER
    job_queue_limit: int = Field(50, ge=1, description="Batch job queues allowed per account (AWS: 50)")
    compute_type: Literal["EC2", "SPOT"] = "EC2"
    instance_types: list[str] = Field(default_factory=lambda: ["m5.large"], min_length=1)
    min_vcpus: int = Field(0, ge=0)
    max_vcpus: int = Field(16, ge=1)
    ami: str | None = None
    squid_instance_type: str = "t3.micro"
    squid_ami: str | None = None
    vpc_cidr: str = "192.168.0.0/16"
    shared_network: bool = False
    allowed_images: list[str] = Field(default_factory=list)
    allowed_buckets: list[str] = Field(default_factory=list)
    expiry_days: int = Field(30, ge=1)
    idle_ttl_hours: int = Field(72, ge=1)
    orphan_grace_hours: float = Field(
        1, ge=0, description="a tagged resource younger than this is never an orphan (a provision in flight)")
    cost_tag_key: str = "hatchway:cost-center"
    price_table: PriceTable = Field(default_factory=PriceTable,
                                    description="prices of the usage estimates (hatchway.domain.usage)")
    budgets: dict[str, Budget] = Field(
        default_factory=dict, description="monthly budget per workspace (workspace name -> amount, soft_limit)")
    iam_quotas: dict[Literal["Policies", "Roles", "Users"], int] = Field(
        default_factory=dict, description="IAM quotas the account was granted (Service Quotas) where IAM's "
                                          "GetAccountSummary still reports the default, e.g. {\"Policies\": 5000}")
    kubernetes_conn_id: str | None = None
    compute_wait_delay: int = Field(30, ge=1, description="seconds between CE status polls (deferred)")
    # One lifecycle run of a workspace at a time (provision, teardown, purge).
    lock_lease_seconds: int = Field(7200, ge=1, description="a lock older than this is free: its run crashed")
    lock_poll_seconds: int = Field(15, ge=1, description="seconds between tries for a busy lock (deferred)")
    lock_wait_seconds: int = Field(3600, ge=1, description="give up waiting for a busy lock after this")
    proxy_allowed_domains: list[str] = Field(
        default_factory=lambda: list(DEFAULT_PROXY_DOMAINS), min_length=1,
        description="destinations Squid lets jobs reach (Squid dstdomain: '.example.org' is the domain and "
                    "its subdomains)")

    @field_validator("proxy_allowed_domains")
    @classmethod
    def _domains_rule(cls, v: list[str]) -> list[str]:
        # Rendered into squid.conf: a space or newline would add a directive of its own.
        for domain in v:
            if not _DOMAIN.fullmatch(domain):
                raise ValueError(f"proxy_allowed_domains: {domain!r} is not a domain name ('.example.org' or "
                                 "'example.org')")
        return v

    @field_validator("budgets")
    @classmethod
    def _budget_names(cls, v: dict[str, Budget]) -> dict[str, Budget]:
        for workspace in v:
            names.check_workspace_name(workspace)
        return v

    _prefix_rule = field_validator("prefix")(lambda cls, v: names.check_prefix(v))
    _bucket_rule = field_validator("bucket")(lambda cls, v: names.check_s3_bucket(v))

    @model_validator(mode="after")
    def _vcpus_ordered(self) -> PlatformConfig:
        if self.min_vcpus > self.max_vcpus:
            raise ValueError(f"min_vcpus ({self.min_vcpus}) is above max_vcpus ({self.max_vcpus})")
        return self

    @classmethod
    def from_json(cls, raw: str | dict[str, Any]) -> PlatformConfig:
        return cls.model_validate(json.loads(raw) if isinstance(raw, str) else raw)


class WorkspaceRequest(BaseModel):
    """What a person types to provision a workspace."""

    model_config = ConfigDict(extra="forbid")

    workspace: str = Field(description=WORKSPACE_HELP, json_schema_extra=WORKSPACE_SCHEMA)
    owner: str = Field(description="the researcher's user name or e-mail, lowercase", json_schema_extra=OWNER_SCHEMA)
    cost_center: str | None = Field(None, description="cost-allocation tag value (default: the workspace)")

    _workspace_rule = field_validator("workspace")(lambda cls, v: names.check_workspace_name(v))
    _owner_rule = field_validator("owner")(lambda cls, v: names.check_owner(v))

    @field_validator("cost_center")
    @classmethod
    def _cost_rule(cls, v: str | None) -> str | None:
        return None if v in (None, "") else names.check_tag_value(v, "cost_center")


class TeardownRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    workspace: str = Field(description=WORKSPACE_HELP, json_schema_extra=WORKSPACE_SCHEMA)
    purge: bool = Field(False, description="delete every resource of the workspace, data included")

    _workspace_rule = field_validator("workspace")(lambda cls, v: names.check_workspace_name(v))


class WorkspaceState(str, Enum):
    ACTIVE = "active"
    TORN_DOWN = "torn_down"


class WorkspaceRecord(BaseModel):
    """Hatchway's record of a workspace, kept beside the data (``.hatchway/`` in the bucket)."""

    workspace: str
    owner: str
    cost_center: str
    queue_mode: QueueMode
    state: WorkspaceState = WorkspaceState.ACTIVE
    created_at: datetime
    last_active_at: datetime
    torn_down_at: datetime | None = None

    def same_as(self, other: WorkspaceRecord) -> bool:
        """Equal in everything a provision decides (timestamps of activity aside)."""
        skip = {"created_at", "last_active_at", "torn_down_at"}
        return self.model_dump(exclude=skip) == other.model_dump(exclude=skip)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def workspace_tags(config: PlatformConfig, request: WorkspaceRequest) -> dict[str, str]:
    """The tags every resource of a workspace carries."""
    return {
        TAG_WORKSPACE: request.workspace,
        TAG_OWNER: request.owner,
        config.cost_tag_key: request.cost_center or request.workspace,
        TAG_PLATFORM: config.prefix,
    }


def platform_tags(config: PlatformConfig, component: str) -> dict[str, str]:
    """Tags of account-wide resources: no workspace tag, so the reaper never takes them for orphans."""
    return {TAG_PLATFORM: config.prefix, TAG_COMPONENT: component}
