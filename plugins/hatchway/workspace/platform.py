"""Prepare an AWS account once for Hatchway (``platform_bootstrap``), idempotently.

After this, a deployment needs no hand-made resource beyond Hatchway's own IAM identity.
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from hatchway.domain import policies
from hatchway.domain.names import PlatformNames
from hatchway.domain.workspace import PlatformConfig, QueueMode, platform_tags
from hatchway.workspace import iam
from hatchway.workspace.clients import AwsClients, error_code, is_not_found, tag_dict, tag_list
from hatchway.workspace.provision import launch_template_ref, network_ensurer

BATCH_SERVICE_POLICY = "arn:aws:iam::aws:policy/service-role/AWSBatchServiceRole"
ECS_INSTANCE_POLICY = "arn:aws:iam::aws:policy/service-role/AmazonEC2ContainerServiceforEC2Role"
PUBLIC_ACCESS_BLOCK = {"BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True,
                       "RestrictPublicBuckets": True}


class Platform:
    """Account-wide resources: service roles, the shared bucket, shared network and queue.

    :param clients: AWS clients.
    :param config: the deployment's configuration.
    """

    def __init__(self, clients: AwsClients, config: PlatformConfig):
        self.clients = clients
        self.config = config
        self.names = PlatformNames(config.prefix)

    def ensure_roles(self) -> dict[str, Any]:
        client = self.clients.iam
        tags = platform_tags(self.config, "batch")
        service = iam.ensure_role(client, self.names.batch_service_role,
                                  policies.trust_policy("batch.amazonaws.com"), tags, [BATCH_SERVICE_POLICY])
        instance = iam.ensure_role(client, self.names.instance_role, policies.trust_policy("ec2.amazonaws.com"),
                                   tags, [ECS_INSTANCE_POLICY])
        profile = iam.ensure_instance_profile(client, self.names.instance_profile, self.names.instance_role, tags)
        return {"batch_service_role": service, "instance_role": instance, "instance_profile": profile}

    def ensure_bucket(self) -> dict[str, Any]:
        s3, bucket = self.clients.s3, self.config.bucket
        tags = platform_tags(self.config, "storage")
        try:
            s3.head_bucket(Bucket=bucket)
        except ClientError as exc:
            if error_code(exc) not in {"404", "NoSuchBucket", "NotFound"}:
                raise
            extra = {} if self.config.region == "us-east-1" else {
                "CreateBucketConfiguration": {"LocationConstraint": self.config.region}}
            s3.create_bucket(Bucket=bucket, **extra)
        try:
            current = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
        except ClientError as exc:
            if not is_not_found(exc) and error_code(exc) != "NoSuchPublicAccessBlockConfiguration":
                raise
            current = {}
        if current != PUBLIC_ACCESS_BLOCK:
            s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration=PUBLIC_ACCESS_BLOCK)
        try:
            current_tags = tag_dict(s3.get_bucket_tagging(Bucket=bucket)["TagSet"])
        except ClientError as exc:
            if error_code(exc) != "NoSuchTagSet":
                raise
            current_tags = {}
        if any(current_tags.get(k) != v for k, v in tags.items()):
            s3.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": tag_list({**current_tags, **tags})})
        return {"bucket": bucket}

    def ensure_shared_network(self) -> dict[str, Any] | None:
        if not (self.config.shared_network or self.config.queue_mode is QueueMode.SHARED):
            return None
        ensurer = network_ensurer(self.clients, self.config, self.names.shared_network,
                                  platform_tags(self.config, "network"))
        return ensurer.ensure().to_dict()

    def ensure_shared_queue(self, network: dict[str, Any] | None) -> dict[str, Any] | None:
        """In ``shared`` queue mode: one fair-share queue on one compute environment for all."""
        if self.config.queue_mode is not QueueMode.SHARED:
            return None
        assert network is not None
        batch = self.clients.batch
        tags = platform_tags(self.config, "batch")
        policies_found = [p for p in batch.list_scheduling_policies()["schedulingPolicies"]
                          if p["arn"].endswith(f"/{self.names.scheduling_policy}")]
        if policies_found:
            policy_arn = policies_found[0]["arn"]
        else:
            policy_arn = batch.create_scheduling_policy(
                name=self.names.scheduling_policy, tags=tags,
                fairsharePolicy={"shareDecaySeconds": 3600, "computeReservation": 10})["arn"]
        found = batch.describe_compute_environments(
            computeEnvironments=[self.names.shared_compute_environment])["computeEnvironments"]
        if found:
            ce_arn = found[0]["computeEnvironmentArn"]
        else:
            roles = self.ensure_roles()
            resources = {
                "type": self.config.compute_type, "minvCpus": self.config.min_vcpus,
                "maxvCpus": self.config.max_vcpus, "instanceTypes": self.config.instance_types,
                "subnets": network["private_subnet_ids"],
                "securityGroupIds": [network["batch_security_group_id"]],
                "instanceRole": roles["instance_profile"], "tags": tags,
            }
            if network.get("launch_template_id"):
                resources["launchTemplate"] = launch_template_ref(network["launch_template_id"])
            ce_arn = batch.create_compute_environment(
                computeEnvironmentName=self.names.shared_compute_environment, type="MANAGED", state="ENABLED",
                serviceRole=roles["batch_service_role"], tags=tags,
                computeResources=resources)["computeEnvironmentArn"]
        queues = batch.describe_job_queues(jobQueues=[self.names.shared_job_queue])["jobQueues"]
        if queues:
            queue_arn = queues[0]["jobQueueArn"]
        else:
            queue_arn = batch.create_job_queue(
                jobQueueName=self.names.shared_job_queue, state="ENABLED", priority=1,
                schedulingPolicyArn=policy_arn, tags=tags,
                computeEnvironmentOrder=[{"order": 1, "computeEnvironment": ce_arn}])["jobQueueArn"]
        return {"scheduling_policy": policy_arn, "compute_environment": ce_arn, "job_queue": queue_arn}
