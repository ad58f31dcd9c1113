"""Ensure a workspace, step by step, and take it down again.

Each public method is one task of ``workspace_provision`` / ``workspace_teardown``: it
looks its resources up by name and tags first, so a second run or a retried task
converges and makes no mutating call when nothing changed. No method returns a secret.
"""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from typing import Any, TypeVar
from urllib.parse import urlencode

from botocore.exceptions import ClientError
from pydantic import BaseModel

from hatchway import s3 as s3_objects
from hatchway.domain import policies
from hatchway.domain.names import NetworkNames, PlatformNames, WorkspaceNames
from hatchway.domain.workspace import (
    PlatformConfig,
    QueueMode,
    WorkspaceRecord,
    WorkspaceRequest,
    WorkspaceState,
    utcnow,
    workspace_tags,
)
from hatchway.workspace import activity, expiry, iam
from hatchway.workspace.clients import AwsClients, error_code, is_not_found, tag_dict, tag_list
from hatchway.workspace.network import NetworkEnsurer

log = logging.getLogger(__name__)


# What one new workspace adds to the account's IAM usage, by GetAccountSummary's key: the job
# policy and the user policy (customer managed), the job role, the user.
IAM_PER_WORKSPACE = {"Policies": 2, "Roles": 1, "Users": 1}
IAM_QUOTAS = {
    "Policies": "customer managed policies per account (AWS default 1,500, can be raised to 5,000)",
    "Roles": "IAM roles per account (AWS default 1,000, can be raised to 5,000)",
    "Users": "IAM users per account (5,000, cannot be raised)",
}


class WorkspaceError(RuntimeError):
    """A workspace cannot be provisioned as asked; the message says why and what to do."""


def network_ensurer(clients: AwsClients, config: PlatformConfig, base: str, tags: dict[str, str]) -> NetworkEnsurer:
    return NetworkEnsurer(clients, NetworkNames(base), tags, config.prefix, config.vpc_cidr,
                          config.squid_instance_type, config.squid_ami, config.proxy_allowed_domains)


def launch_template_ref(template_id: str) -> dict[str, str]:
    """A compute environment's reference to its network's launch template.

    ``$Latest``: a later version (a replaced Squid's new address) reaches the instances
    with the environment's next infrastructure update.
    """
    return {"launchTemplateId": template_id, "version": "$Latest"}


M = TypeVar("M", bound=BaseModel)


def read_model(clients: AwsClients, config: PlatformConfig, key: str, model: type[M]) -> M | None:
    """A JSON record (a pydantic ``model``) kept in the platform bucket at ``key``, or None."""
    try:
        body = clients.s3.get_object(Bucket=config.bucket, Key=key)["Body"].read()
    except ClientError as exc:
        if is_not_found(exc):
            return None
        raise
    return model.model_validate_json(body)


def write_model(clients: AwsClients, config: PlatformConfig, key: str, record: BaseModel, tags: dict[str, str]) -> None:
    """Keep a JSON record in the platform bucket at ``key``, tagged."""
    clients.s3.put_object(Bucket=config.bucket, Key=key, Body=record.model_dump_json(indent=2).encode(),
                          ContentType="application/json", Tagging=urlencode(tags))


def read_record(clients: AwsClients, config: PlatformConfig, workspace: str) -> WorkspaceRecord | None:
    return read_model(clients, config, WorkspaceNames(config.prefix, workspace).record_key, WorkspaceRecord)


def write_record(clients: AwsClients, config: PlatformConfig, record: WorkspaceRecord, tags: dict[str, str]) -> None:
    write_model(clients, config, WorkspaceNames(config.prefix, record.workspace).record_key, record, tags)


def list_records(clients: AwsClients, config: PlatformConfig) -> list[WorkspaceRecord]:
    records = []
    paginator = clients.s3.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=config.bucket, Prefix=".hatchway/workspaces/"):
        for obj in page.get("Contents", []):
            body = clients.s3.get_object(Bucket=config.bucket, Key=obj["Key"])["Body"].read()
            records.append(WorkspaceRecord.model_validate_json(body))
    return records


class Workspace:
    """The AWS resources of one workspace.

    :param clients: AWS clients (from the Airflow connection).
    :param config: the deployment's configuration.
    :param request: the validated workspace request.
    """

    def __init__(self, clients: AwsClients, config: PlatformConfig, request: WorkspaceRequest):
        self.clients = clients
        self.config = config
        self.request = request
        self.names = WorkspaceNames(config.prefix, request.workspace)
        self.platform = PlatformNames(config.prefix)
        self.tags = workspace_tags(config, request)

    @property
    def shared(self) -> bool:
        return self.config.queue_mode is QueueMode.SHARED

    # -- plan: fail fast, before anything is made ------------------------------
    def plan(self) -> dict[str, Any]:
        """Check what the provision needs from the account before creating anything."""
        s3 = self.clients.s3
        try:
            s3.head_bucket(Bucket=self.config.bucket)
        except ClientError as exc:
            raise WorkspaceError(
                f"bucket {self.config.bucket!r} is not reachable ({error_code(exc)}): run platform_bootstrap first"
            ) from exc
        for role in (self.platform.batch_service_role, self.platform.instance_role):
            try:
                self.clients.iam.get_role(RoleName=role)
            except ClientError as exc:
                raise WorkspaceError(f"IAM role {role!r} is missing: run platform_bootstrap first") from exc
        record = read_record(self.clients, self.config, self.request.workspace)
        if record and record.owner != self.request.owner:
            raise WorkspaceError(
                f"workspace {self.request.workspace!r} belongs to {record.owner!r}, not {self.request.owner!r}")
        if not self.shared:
            self._check_queue_quota()
        if record is None:
            self._check_iam_quotas()
        return {"workspace": self.request.workspace, "queue_mode": self.config.queue_mode.value,
                "exists": record is not None}

    def _check_iam_quotas(self) -> None:
        """Fail before anything is made when the account's IAM quotas cannot take one more workspace
        (moto and AWS both answer ``GetAccountSummary`` with the usage and the quota)."""
        summary = self.clients.iam.get_account_summary()["SummaryMap"]
        quotas = {kind: self.config.iam_quotas.get(kind, summary.get(f"{kind}Quota")) for kind in IAM_PER_WORKSPACE}
        short = [f"{IAM_QUOTAS[kind]}: {summary.get(kind, 0)} of {quotas[kind]} used, a workspace adds {need}"
                 for kind, need in IAM_PER_WORKSPACE.items()
                 if quotas[kind] is not None and summary.get(kind, 0) + need > quotas[kind]]
        if short:
            raise WorkspaceError(
                f"the AWS account cannot take workspace {self.request.workspace!r}: {'; '.join(short)}. Raise the "
                "quota (Service Quotas, IAM; then tell Hatchway with \"iam_quotas\" in hatchway_config if IAM still "
                "reports the default), or give the next workspaces a second deployment in another account "
                "(README: Tenancy).")

    def _check_queue_quota(self) -> None:
        batch = self.clients.batch
        if batch.describe_job_queues(jobQueues=[self.names.job_queue])["jobQueues"]:
            return
        count = sum(len(page["jobQueues"]) for page in batch.get_paginator("describe_job_queues").paginate())
        if count >= self.config.job_queue_limit:
            raise WorkspaceError(
                f"the account already has {count} Batch job queues (limit {self.config.job_queue_limit}): "
                f"queue_mode 'per_user' needs one queue per workspace. Set \"queue_mode\": \"shared\" in the "
                "hatchway_config Variable to give every workspace a share of one fair-share queue instead."
            )

    # -- network -----------------------------------------------------------------
    @property
    def uses_shared_network(self) -> bool:
        # In shared queue mode the jobs run on the shared compute environment, inside the
        # shared network: a network of the workspace's own would serve nothing.
        return self.config.shared_network or self.shared

    def ensure_network(self) -> dict[str, Any]:
        if self.uses_shared_network:
            shared = network_ensurer(self.clients, self.config, self.platform.shared_network, {})
            vpc_id = shared.find_vpc()
            if not vpc_id:
                raise WorkspaceError("shared_network is on but the shared VPC is missing: run platform_bootstrap")
            return shared.ensure().to_dict()
        return network_ensurer(self.clients, self.config, self.names.base, self.tags).ensure().to_dict()

    # -- storage -------------------------------------------------------------------
    def ensure_storage(self) -> dict[str, Any]:
        """The user's prefix in the shared bucket; a re-provision lifts a teardown's expiry."""
        s3 = self.clients.s3
        key = self.names.s3_prefix
        try:
            s3.head_object(Bucket=self.config.bucket, Key=key)
        except ClientError as exc:
            if not is_not_found(exc):
                raise
            s3.put_object(Bucket=self.config.bucket, Key=key, Body=b"", Tagging=urlencode(self.tags))
        expiry.clear(self.clients, self.config, self.request.workspace)
        return {"bucket": self.config.bucket, "prefix": key, "url": f"s3://{self.config.bucket}/{key}"}

    # -- IAM for jobs --------------------------------------------------------------
    def ensure_job_role(self) -> dict[str, Any]:
        iam_client = self.clients.iam
        policy_arn = iam.ensure_policy(iam_client, self.clients.account, self.names.job_policy,
                                       policies.job_policy(self.config, self.names), self.tags)
        role_arn = iam.ensure_role(iam_client, self.names.job_role, policies.ECS_TASKS_TRUST, self.tags,
                                   [policy_arn])
        return {"job_role_arn": role_arn, "job_policy_arn": policy_arn}

    # -- Batch ------------------------------------------------------------------
    def ensure_compute_environment(self, network: dict[str, Any]) -> dict[str, Any]:
        """Create the workspace's compute environment, or converge the one found; returns its ARN and status.

        A found environment gets the wanted tags, state and vCPU bounds in place. What
        AWS Batch cannot change in place on an environment with a service role of our own
        (instance types, purchase type) fails with a message that says how to replace it.
        """
        if self.shared:
            return self._shared_batch("computeEnvironment")
        batch = self.clients.batch
        template = network.get("launch_template_id")
        found = batch.describe_compute_environments(computeEnvironments=[self.names.compute_environment])
        if found["computeEnvironments"]:
            ce = found["computeEnvironments"][0]
            self._warn_without_template(ce, template)
            return {"arn": ce["computeEnvironmentArn"], "status": self._converge_compute_environment(ce)}
        iam_client = self.clients.iam
        instance_profile = iam_client.get_instance_profile(InstanceProfileName=self.platform.instance_profile)
        service_role = iam_client.get_role(RoleName=self.platform.batch_service_role)["Role"]["Arn"]
        resources: dict[str, Any] = {
            "type": self.config.compute_type,
            "allocationStrategy": "BEST_FIT_PROGRESSIVE" if self.config.compute_type == "EC2"
            else "SPOT_CAPACITY_OPTIMIZED",
            "minvCpus": self.config.min_vcpus,
            "maxvCpus": self.config.max_vcpus,
            "instanceTypes": self.config.instance_types,
            "subnets": network["private_subnet_ids"],
            "securityGroupIds": [network["batch_security_group_id"]],
            "instanceRole": instance_profile["InstanceProfile"]["Arn"],
            "tags": self.tags,
        }
        if self.config.ami:
            resources["ec2Configuration"] = [{"imageType": "ECS_AL2", "imageIdOverride": self.config.ami}]
        if template:
            resources["launchTemplate"] = launch_template_ref(template)
        ce = batch.create_compute_environment(
            computeEnvironmentName=self.names.compute_environment, type="MANAGED", state="ENABLED",
            computeResources=resources, serviceRole=service_role, tags=self.tags)
        return {"arn": ce["computeEnvironmentArn"], "status": "CREATING"}

    def _warn_without_template(self, ce: dict[str, Any], template: str | None) -> None:
        current = (ce.get("computeResources") or {}).get("launchTemplate") or {}
        if template and template != current.get("launchTemplateId"):
            # Batch cannot add a launch template in place to an environment with our own service role.
            log.warning("compute environment %s does not use launch template %s, so its instances have no "
                        "proxy settings: replace it (see the drift message of instance types) to attach it",
                        ce["computeEnvironmentName"], template)

    def _converge_compute_environment(self, ce: dict[str, Any]) -> str | None:
        batch, arn = self.clients.batch, ce["computeEnvironmentArn"]
        current = ce.get("computeResources", {})
        missing = iam.tags_to_set(ce.get("tags") or {}, self.tags)
        if missing:
            batch.tag_resource(resourceArn=arn, tags=missing)
        update: dict[str, Any] = {}
        if ce["state"] == "DISABLED":
            update["state"] = "ENABLED"
        # Scaling settings are the ones Batch updates in place for every environment.
        scaling = {k: v for k, v in (("minvCpus", self.config.min_vcpus), ("maxvCpus", self.config.max_vcpus))
                   if current.get(k) != v}
        if scaling:
            update["computeResources"] = scaling
        if update:
            batch.update_compute_environment(computeEnvironment=arn, **update)
        fixed = self._fixed_settings_drift(current)
        if fixed:
            raise WorkspaceError(
                f"compute environment {self.names.compute_environment!r} differs from hatchway_config in "
                f"{'; '.join(fixed)}. AWS Batch cannot change these in place on an environment with Hatchway's "
                f"service role. To replace it: once its jobs are done, disable and delete job queue "
                f"{self.names.job_queue!r}, then compute environment {self.names.compute_environment!r}, and run "
                "workspace_provision again (data, keys and roles stay); or set the old values back."
            )
        return "UPDATING" if update else ce.get("status")

    def _fixed_settings_drift(self, current: dict[str, Any]) -> list[str]:
        """Settings of a found compute environment that differ and cannot be updated in place."""
        drift = []
        if sorted(current.get("instanceTypes", [])) != sorted(self.config.instance_types):
            drift.append(f"instance types (has {sorted(current.get('instanceTypes', []))}, "
                         f"wants {sorted(self.config.instance_types)})")
        if current.get("type") not in (None, self.config.compute_type):
            drift.append(f"type (has {current.get('type')}, wants {self.config.compute_type})")
        return drift

    def ensure_job_queue(self, compute_environment_arn: str) -> dict[str, Any]:
        """Create the workspace's queue, or converge the one found (tags, state, its compute environment)."""
        if self.shared:
            return self._shared_batch("jobQueue") | {"share_identifier": self.names.share_identifier}
        batch = self.clients.batch
        order = [{"order": 1, "computeEnvironment": compute_environment_arn}]
        found = batch.describe_job_queues(jobQueues=[self.names.job_queue])["jobQueues"]
        if found:
            queue = found[0]
            missing = iam.tags_to_set(queue.get("tags") or {}, self.tags)
            if missing:
                batch.tag_resource(resourceArn=queue["jobQueueArn"], tags=missing)
            update: dict[str, Any] = {}
            if queue["state"] == "DISABLED":
                update["state"] = "ENABLED"
            current_order = [{"order": int(o["order"]), "computeEnvironment": o["computeEnvironment"]}
                             for o in queue.get("computeEnvironmentOrder", [])]
            if current_order != order:  # the environment was replaced
                update["computeEnvironmentOrder"] = order
            if update:
                batch.update_job_queue(jobQueue=queue["jobQueueArn"], **update)
            return {"arn": queue["jobQueueArn"]}
        self._check_queue_quota()
        queue = batch.create_job_queue(
            jobQueueName=self.names.job_queue, state="ENABLED", priority=1,
            computeEnvironmentOrder=order, tags=self.tags)
        return {"arn": queue["jobQueueArn"]}

    def _shared_batch(self, kind: str) -> dict[str, Any]:
        batch = self.clients.batch
        if kind == "jobQueue":
            found = batch.describe_job_queues(jobQueues=[self.platform.shared_job_queue])["jobQueues"]
        else:
            found = batch.describe_compute_environments(
                computeEnvironments=[self.platform.shared_compute_environment])["computeEnvironments"]
        if not found:
            raise WorkspaceError(f"queue_mode is 'shared' but the shared {kind} is missing: run platform_bootstrap")
        arn_key = "jobQueueArn" if kind == "jobQueue" else "computeEnvironmentArn"
        return {"arn": found[0][arn_key], "status": found[0].get("status"), "shared": True}

    # -- the researcher's identity ------------------------------------------------
    def ensure_user(self, job_queue_arn: str, job_role_arn: str) -> dict[str, Any]:
        iam_client = self.clients.iam
        document = policies.user_policy(self.config, self.names, self.clients.account, job_queue_arn, job_role_arn)
        policy_arn = iam.ensure_policy(iam_client, self.clients.account, self.names.user_policy, document, self.tags)
        user_arn = iam.ensure_user(iam_client, self.names.user, self.tags, [policy_arn])
        return {"user_arn": user_arn, "user_policy_arn": policy_arn}

    def ensure_access_key(self, job_queue_arn: str) -> dict[str, Any]:
        """Keep exactly one live key for the user, stored only in Secrets Manager.

        A stored key that IAM still has is kept; otherwise a new key is made and stored,
        and any other key of the user is deleted. Returns where the key is, never the key.
        """
        iam_client, secrets = self.clients.iam, self.clients.secrets
        name = self.names.access_key_secret
        keys = {k["AccessKeyId"]: k for k in
                iam_client.list_access_keys(UserName=self.names.user)["AccessKeyMetadata"]}
        stored_id, secret_exists = None, True
        try:
            stored_id = json.loads(secrets.get_secret_value(SecretId=name)["SecretString"]).get("aws_access_key_id")
        except ClientError as exc:
            if not is_not_found(exc):
                raise
            secret_exists = False
        if secret_exists:
            self._converge_secret_tags(name)
        if stored_id in keys and keys[stored_id]["Status"] == "Active":
            return {"secret_name": name, "rotated": False}
        for key_id in keys:
            iam_client.delete_access_key(UserName=self.names.user, AccessKeyId=key_id)
        key = iam_client.create_access_key(UserName=self.names.user)["AccessKey"]
        value = json.dumps({
            "aws_access_key_id": key["AccessKeyId"],
            "aws_secret_access_key": key["SecretAccessKey"],
            "region": self.config.region,
            "bucket_url": f"s3://{self.config.bucket}/{self.names.s3_prefix}",
            "job_queue": job_queue_arn,
        })
        if secret_exists:
            secrets.put_secret_value(SecretId=name, SecretString=value)
        else:
            secrets.create_secret(Name=name, SecretString=value, Tags=tag_list(self.tags),
                                  Description=f"AWS access key of Hatchway workspace {self.request.workspace}")
        if self.config.kubernetes_conn_id:
            from hatchway.workspace.kube import put_secret

            put_secret(self.config.kubernetes_conn_id, self.names, json.loads(value), self.tags)
        return {"secret_name": name, "rotated": True}

    def _converge_secret_tags(self, name: str) -> None:
        secrets = self.clients.secrets
        current = tag_dict(secrets.describe_secret(SecretId=name).get("Tags"))
        missing = iam.tags_to_set(current, self.tags)
        if missing:
            secrets.tag_resource(SecretId=name, Tags=tag_list(missing))

    # -- the record --------------------------------------------------------------
    def record(self) -> dict[str, Any]:
        now = utcnow()
        current = read_record(self.clients, self.config, self.request.workspace)
        wanted = WorkspaceRecord(
            workspace=self.request.workspace, owner=self.request.owner,
            cost_center=self.tags[self.config.cost_tag_key], queue_mode=self.config.queue_mode,
            state=WorkspaceState.ACTIVE,
            created_at=current.created_at if current else now,
            last_active_at=current.last_active_at if current and current.state is WorkspaceState.ACTIVE else now,
        )
        if current is None or not current.same_as(wanted) or current.torn_down_at is not None:
            write_record(self.clients, self.config, wanted, self.tags)
        return {"workspace": wanted.workspace, "state": wanted.state.value}

    # -- teardown -------------------------------------------------------------------
    def revoke_access(self) -> dict[str, Any]:
        """Delete every access key of the user and the stored copy."""
        iam_client, revoked = self.clients.iam, 0
        try:
            keys = iam_client.list_access_keys(UserName=self.names.user)["AccessKeyMetadata"]
        except ClientError as exc:
            if not is_not_found(exc):
                raise
            keys = []
        for key in keys:
            iam_client.delete_access_key(UserName=self.names.user, AccessKeyId=key["AccessKeyId"])
            revoked += 1
        try:
            self.clients.secrets.delete_secret(SecretId=self.names.access_key_secret, ForceDeleteWithoutRecovery=True)
        except ClientError as exc:
            if not is_not_found(exc):
                raise
        if self.config.kubernetes_conn_id:
            from hatchway.workspace.kube import delete_secret

            delete_secret(self.config.kubernetes_conn_id, self.names)
        return {"revoked_keys": revoked}

    def stop_compute(self) -> dict[str, Any]:
        """Stop the Squid proxy and disable the user's queue (jobs cannot start; data stays)."""
        stopped = None
        if not self.uses_shared_network:
            stopped = network_ensurer(self.clients, self.config, self.names.base, self.tags).stop_squid()
        disabled = False
        if not self.shared:
            found = self.clients.batch.describe_job_queues(jobQueues=[self.names.job_queue])["jobQueues"]
            if found and found[0]["state"] == "ENABLED":
                self.clients.batch.update_job_queue(jobQueue=found[0]["jobQueueArn"], state="DISABLED")
                disabled = True
        return {"stopped_instance": stopped, "disabled_queue": disabled}

    def expire_data(self) -> dict[str, Any]:
        """Keep the data; the reaper deletes the user's prefix ``expiry_days`` from now.

        The expiry is an object of the workspace's own (:mod:`hatchway.workspace.expiry`),
        not a rule in the bucket's one shared lifecycle configuration. A repeated teardown
        keeps the first one's date.
        """
        now = utcnow()
        current = expiry.read(self.clients, self.config, self.request.workspace)
        expires_at = current.expires_at if current else now + timedelta(days=self.config.expiry_days)
        if current is None:
            expiry.mark(self.clients, self.config, self.request.workspace, self.names.s3_prefix, expires_at)
        record = read_record(self.clients, self.config, self.request.workspace)
        if record and record.state is not WorkspaceState.TORN_DOWN:
            record.state, record.torn_down_at = WorkspaceState.TORN_DOWN, now
            write_record(self.clients, self.config, record, self.tags)
        return {"expiry_days": self.config.expiry_days, "expires_at": expires_at.isoformat()}

    def purge_data(self) -> dict[str, Any]:
        """Delete the user's objects (every version, if the bucket keeps them), the record, the expiry and the activity."""
        client, bucket = self.clients.s3, self.config.bucket
        with_versions = s3_objects.versioned(client, bucket)
        deleted = sum(s3_objects.empty(client, bucket, prefix, with_versions=with_versions)
                      for prefix in (self.names.s3_prefix, self.names.record_key,
                                     expiry.marker_key(self.request.workspace),
                                     activity.marker_key(self.request.workspace)))
        return {"deleted_objects": deleted}
