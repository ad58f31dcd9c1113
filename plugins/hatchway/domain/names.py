"""Name rules: what each system accepts, and the names Hatchway derives from a workspace.

One place per rule. Every derived name is checked against the rule of the system that
will hold it, so a workspace name that passes validation can never produce a name that
S3, IAM, Batch or Kubernetes refuses later, half-way through a provision.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from hatchway.domain.name_forms import (  # noqa: F401 (the forms' home; re-exported)
    OWNER_SCHEMA,
    PREFIX_MAX,
    PREFIX_MIN,
    WORKSPACE_HELP,
    WORKSPACE_MAX,
    WORKSPACE_MIN,
    WORKSPACE_SCHEMA,
)

_LOWER_DNS = re.compile(r"^[a-z0-9-]+$")
_S3_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_IAM_NAME = re.compile(r"^[\w+=,.@-]{1,64}$")
_BATCH_NAME = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_OWNER = re.compile(r"^[a-z0-9][a-z0-9._@+-]*$")
_TAG_VALUE = re.compile(r"^[\w .:/=+@-]{0,256}$")
_LAUNCH_TEMPLATE = re.compile(r"^[A-Za-z0-9().\-/_]{3,128}$")
_ECS_NAME = re.compile(r"^[A-Za-z0-9_-]{1,255}$")
_RDS_IDENTIFIER = re.compile(r"^[A-Za-z][A-Za-z0-9-]{0,62}$")
_MYSQL_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")


class NameError_(ValueError):
    """A name breaks a rule; the message names the rule."""


def _dns_style(value: str, what: str, lo: int, hi: int) -> str:
    if not lo <= len(value) <= hi:
        raise NameError_(f"{what} must be {lo}-{hi} characters long (got {len(value)})")
    if value != value.lower():
        raise NameError_(f"{what} must be lowercase")
    if ".." in value or "." in value:
        raise NameError_(f"{what} may not contain '.' (it becomes part of S3, IAM and DNS names)")
    if not _LOWER_DNS.fullmatch(value):
        raise NameError_(f"{what} may contain only lowercase letters, digits and '-'")
    if not value[0].isalpha():
        raise NameError_(f"{what} must start with a letter")
    if value.endswith("-"):
        raise NameError_(f"{what} must end with a letter or digit")
    if "--" in value:
        raise NameError_(f"{what} may not contain '--'")
    return value


def check_workspace_name(value: str) -> str:
    """Workspace names: 3-32 lowercase letters, digits and single hyphens, starting with a letter."""
    return _dns_style(value, "workspace name", WORKSPACE_MIN, WORKSPACE_MAX)


def check_prefix(value: str) -> str:
    """Deployment prefix: 2-16 characters under the workspace-name rules."""
    return _dns_style(value, "deployment prefix", PREFIX_MIN, PREFIX_MAX)


def check_owner(value: str) -> str:
    """Owner: a lowercase user name or e-mail address, legal as an AWS tag value."""
    if not 1 <= len(value) <= 128:
        raise NameError_(f"owner must be 1-128 characters long (got {len(value)})")
    if value != value.lower():
        raise NameError_("owner must be lowercase")
    if not _OWNER.fullmatch(value):
        raise NameError_("owner may contain only lowercase letters, digits and . _ @ + -")
    return value


def check_tag_value(value: str, what: str = "tag value") -> str:
    if not _TAG_VALUE.fullmatch(value):
        raise NameError_(f"{what} must be at most 256 characters of letters, digits, spaces and _ . : / = + - @")
    return value


def check_s3_bucket(value: str) -> str:
    """S3 (and GCS) bucket rules: 3-63 characters, lowercase, digits, '.', '-', no '..', not an IP."""
    if not _S3_BUCKET.fullmatch(value) or ".." in value or re.match(r"^\d+\.\d+\.\d+\.\d+$", value):
        raise NameError_(
            f"bucket name {value!r} breaks the S3 rules: 3-63 characters of lowercase letters, digits, "
            "'.' and '-', starting and ending with a letter or digit, no '..'"
        )
    return value


def check_iam_name(value: str) -> str:
    if not _IAM_NAME.fullmatch(value):
        raise NameError_(f"IAM name {value!r} breaks the IAM rules: 1-64 characters of letters, digits and +=,.@_-")
    return value


def check_batch_name(value: str) -> str:
    if not _BATCH_NAME.fullmatch(value):
        raise NameError_(f"Batch name {value!r} must be 1-128 letters, digits, '-' or '_'")
    return value


def check_launch_template_name(value: str) -> str:
    if not _LAUNCH_TEMPLATE.fullmatch(value):
        raise NameError_(f"launch template name {value!r} must be 3-128 letters, digits or ( ) . - / _")
    return value


def check_ecs_name(value: str) -> str:
    """ECS cluster, service and task definition family names."""
    if not _ECS_NAME.fullmatch(value):
        raise NameError_(f"ECS name {value!r} must be 1-255 letters, digits, '-' or '_'")
    return value


def check_rds_identifier(value: str) -> str:
    """RDS instance identifiers: 1-63 letters, digits and '-', a letter first, no '--', no '-' last."""
    if not _RDS_IDENTIFIER.fullmatch(value) or "--" in value or value.endswith("-"):
        raise NameError_(f"RDS identifier {value!r} must be 1-63 letters, digits and single '-', starting with "
                         "a letter and not ending with '-'")
    return value


def check_mysql_name(value: str) -> str:
    """RDS MySQL database names (1-64) and master user names (1-16 letters and digits)."""
    if not _MYSQL_NAME.fullmatch(value):
        raise NameError_(f"MySQL name {value!r} must be 1-64 letters, digits and '_', starting with a letter")
    return value


def check_dns1123_label(value: str) -> str:
    if len(value) > 63 or not _DNS1123_LABEL.fullmatch(value):
        raise NameError_(f"{value!r} is not a DNS-1123 label (Kubernetes names): at most 63 of a-z 0-9 '-'")
    return value


@dataclass(frozen=True)
class WorkspaceNames:
    """Every name a workspace's resources carry, derived once from the prefix and workspace name."""

    prefix: str
    workspace: str

    def __post_init__(self) -> None:
        check_prefix(self.prefix)
        check_workspace_name(self.workspace)
        for name in (self.job_role, self.job_policy, self.user, self.user_policy):
            check_iam_name(name)
        for name in (self.compute_environment, self.job_queue):
            check_batch_name(name)
        check_dns1123_label(self.namespace)
        for name in (self.cromwell_service, self.cromwell_task_family):
            check_ecs_name(name)
        check_rds_identifier(self.cromwell_db_instance)
        for name in (self.cromwell_database, self.cromwell_db_user):
            check_mysql_name(name)

    @property
    def base(self) -> str:
        return f"{self.prefix}-{self.workspace}"

    compute_environment = property(lambda self: f"{self.base}-ce")
    job_queue = property(lambda self: f"{self.base}-queue")
    job_role = property(lambda self: f"{self.base}-jobs")
    job_policy = property(lambda self: f"{self.base}-jobs")
    user = property(lambda self: f"{self.base}-user")
    user_policy = property(lambda self: f"{self.base}-user")
    job_definition_prefix = property(lambda self: f"{self.base}-")
    namespace = property(lambda self: self.base)
    s3_prefix = property(lambda self: f"{self.workspace}/")
    access_key_secret = property(lambda self: f"{self.prefix}/workspaces/{self.workspace}/aws-access-key")
    kubernetes_secret = property(lambda self: "hatchway-aws-access-key")
    record_key = property(lambda self: f".hatchway/workspaces/{self.workspace}.json")
    lock_key = property(lambda self: f".hatchway/locks/{self.workspace}.json")
    # The workspace's own Cromwell server (``mode: per_workspace``).
    cromwell_service = property(lambda self: f"{self.base}-cromwell")
    cromwell_task_family = property(lambda self: f"{self.base}-cromwell")
    cromwell_db_instance = property(lambda self: f"{self.base}-cromwell")
    cromwell_db_secret = property(lambda self: f"{self.prefix}/workspaces/{self.workspace}/cromwell-db")
    cromwell_record_key = property(lambda self: f".hatchway/cromwell-servers/{self.workspace}.json")

    @property
    def cromwell_database(self) -> str:
        # '_' for '-', and '__' between prefix and workspace (neither holds '--'): one database
        # per deployment and workspace, also on a shared instance.
        return f"cromwell_{self.prefix.replace('-', '_')}__{self.workspace.replace('-', '_')}"

    @property
    def cromwell_db_user(self) -> str:
        # RDS MySQL user names are at most 16 letters and digits: a digest keeps them apart.
        return "cw" + hashlib.sha256(self.base.encode()).hexdigest()[:14]

    @property
    def share_identifier(self) -> str:
        # Batch share identifiers are alphanumeric only: dropping '-' alone would let
        # "a-b" and "ab" share a fair-share slot, so a short digest keeps them apart.
        digest = hashlib.sha256(self.workspace.encode()).hexdigest()[:8]
        return f"{self.workspace.replace('-', '')}{digest}"


@dataclass(frozen=True)
class PlatformNames:
    """Names of the account-wide resources that `platform_bootstrap` prepares."""

    prefix: str

    batch_service_role = property(lambda self: f"{self.prefix}-batch-service")
    instance_role = property(lambda self: f"{self.prefix}-batch-instance")
    instance_profile = property(lambda self: f"{self.prefix}-batch-instance")
    shared_network = property(lambda self: f"{self.prefix}-shared")
    shared_compute_environment = property(lambda self: f"{self.prefix}-shared-ce")
    shared_job_queue = property(lambda self: f"{self.prefix}-shared-queue")
    scheduling_policy = property(lambda self: f"{self.prefix}-fair-share")
    # One ECS cluster per deployment holds the workspaces' Cromwell servers.
    cromwell_cluster = property(lambda self: f"{self.prefix}-cromwell")


@dataclass(frozen=True)
class NetworkNames:
    """Names of one network (a workspace's own, or the shared one): all from one base."""

    base: str

    def __post_init__(self) -> None:
        check_launch_template_name(self.launch_template)

    vpc = property(lambda self: f"{self.base}-vpc")
    private_subnet = property(lambda self: f"{self.base}-private")
    proxy_subnet = property(lambda self: f"{self.base}-proxy")
    gateway = property(lambda self: f"{self.base}-igw")
    public_route_table = property(lambda self: f"{self.base}-public-rt")
    private_route_table = property(lambda self: f"{self.base}-private-rt")
    squid = property(lambda self: f"{self.base}-squid")
    squid_security_group = property(lambda self: f"{self.base}-squid-sg")
    batch_security_group = property(lambda self: f"{self.base}-batch-sg")
    # The Batch instances' launch template (their proxy settings) and the S3 gateway endpoint.
    launch_template = property(lambda self: f"{self.base}-batch-lt")
    s3_endpoint = property(lambda self: f"{self.base}-s3")
