"""Find every resource Hatchway tagged for a workspace, and delete such resources in order.

One listing serves the purge, the reaper's orphan sweep, the demo's table and the tests'
"nothing left behind" checks, so they cannot disagree about what exists.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from hatchway.domain.workspace import TAG_OWNER, TAG_PLATFORM, TAG_WORKSPACE
from hatchway.workspace import iam
from hatchway.workspace.clients import AwsClients, is_not_found, tag_dict
from hatchway.workspace.iam import IAM_PATH

log = logging.getLogger(__name__)

# Deletion order: what depends on a resource goes before it.
KINDS = (
    "secret", "iam_user", "iam_role", "iam_policy", "job_queue", "compute_environment", "launch_template",
    "ec2_instance", "vpc_endpoint", "route_table", "security_group", "subnet", "internet_gateway", "vpc",
)


@dataclass(frozen=True)
class Resource:
    kind: str
    id: str
    name: str
    workspace: str
    owner: str
    state: str
    #: the deployment (``hatchway:platform``, its prefix) that made it
    platform: str = ""
    #: when AWS says it was made (ISO 8601), where the API tells; not part of its identity
    created: str = field(default="", compare=False)

    def to_dict(self) -> dict[str, str]:
        return asdict(self)

    def age_seconds(self, now: datetime) -> float | None:
        return (now - datetime.fromisoformat(self.created)).total_seconds() if self.created else None


def _resource(kind: str, rid: str, name: str, tags: dict[str, str], state: str,
              created: datetime | None = None) -> Resource:
    return Resource(kind, rid, name, tags.get(TAG_WORKSPACE, ""), tags.get(TAG_OWNER, ""), state,
                    tags.get(TAG_PLATFORM, ""), created.isoformat() if created else "")


def inventory(clients: AwsClients, workspace: str | None = None, *, platform: str | None = None) -> list[Resource]:
    """Every live resource carrying ``hatchway:workspace`` (equal to ``workspace`` when given).

    :param platform: only the resources of this deployment (its ``hatchway:platform`` tag, the
        config's ``prefix``): purges and sweeps pass it, so two deployments in one account never
        touch each other's resources.
    """
    found = [r for r in _all(clients) if r.workspace and (workspace is None or r.workspace == workspace)
             and (platform is None or r.platform == platform)]
    return sorted(found, key=lambda r: (r.workspace, KINDS.index(r.kind), r.name))


def _all(clients: AwsClients) -> Iterator[Resource]:
    yield from _secrets(clients)
    yield from _iam(clients)
    yield from _batch(clients)
    yield from _ec2(clients)


def _secrets(clients: AwsClients) -> Iterator[Resource]:
    for page in clients.secrets.get_paginator("list_secrets").paginate(
            Filters=[{"Key": "tag-key", "Values": [TAG_WORKSPACE]}]):
        for secret in page["SecretList"]:
            if secret.get("DeletedDate"):
                continue
            yield _resource("secret", secret["ARN"], secret["Name"], tag_dict(secret.get("Tags")), "stored",
                            secret.get("CreatedDate"))


def _iam(clients: AwsClients) -> Iterator[Resource]:
    client = clients.iam
    for page in client.get_paginator("list_users").paginate(PathPrefix=IAM_PATH):
        for user in page["Users"]:
            tags = tag_dict(client.list_user_tags(UserName=user["UserName"])["Tags"])
            keys = client.list_access_keys(UserName=user["UserName"])["AccessKeyMetadata"]
            yield _resource("iam_user", user["Arn"], user["UserName"], tags, f"{len(keys)} key(s)",
                            user.get("CreateDate"))
    for page in client.get_paginator("list_roles").paginate(PathPrefix=IAM_PATH):
        for role in page["Roles"]:
            tags = tag_dict(client.list_role_tags(RoleName=role["RoleName"])["Tags"])
            yield _resource("iam_role", role["Arn"], role["RoleName"], tags, "present", role.get("CreateDate"))
    for page in client.get_paginator("list_policies").paginate(Scope="Local", PathPrefix=IAM_PATH):
        for policy in page["Policies"]:
            tags = tag_dict(client.list_policy_tags(PolicyArn=policy["Arn"])["Tags"])
            yield _resource("iam_policy", policy["Arn"], policy["PolicyName"], tags,
                            f"{policy.get('AttachmentCount', 0)} attachment(s)", policy.get("CreateDate"))


def _batch(clients: AwsClients) -> Iterator[Resource]:
    batch = clients.batch
    for page in batch.get_paginator("describe_job_queues").paginate():
        for queue in page["jobQueues"]:
            if queue.get("status") == "DELETED":
                continue
            yield _resource("job_queue", queue["jobQueueArn"], queue["jobQueueName"], queue.get("tags", {}),
                            queue["state"])
    for page in batch.get_paginator("describe_compute_environments").paginate():
        for ce in page["computeEnvironments"]:
            if ce.get("status") == "DELETED":
                continue
            yield _resource("compute_environment", ce["computeEnvironmentArn"], ce["computeEnvironmentName"],
                            ce.get("tags", {}), f"{ce['state']}/{ce.get('status')}")


def _ec2(clients: AwsClients) -> Iterator[Resource]:
    ec2 = clients.ec2
    tagged = [{"Name": "tag-key", "Values": [TAG_WORKSPACE]}]
    for reservation in ec2.describe_instances(Filters=tagged + [{
            "Name": "instance-state-name", "Values": ["pending", "running", "stopping", "stopped"]}])["Reservations"]:
        for inst in reservation["Instances"]:
            tags = tag_dict(inst.get("Tags"))
            yield _resource("ec2_instance", inst["InstanceId"], tags.get("Name", ""), tags, inst["State"]["Name"],
                            inst.get("LaunchTime"))
    for template in ec2.describe_launch_templates(Filters=tagged)["LaunchTemplates"]:
        tags = tag_dict(template.get("Tags"))
        yield _resource("launch_template", template["LaunchTemplateId"], template["LaunchTemplateName"], tags,
                        f"version {template.get('LatestVersionNumber')}")
    for endpoint in ec2.describe_vpc_endpoints(Filters=tagged)["VpcEndpoints"]:
        if endpoint.get("State", "").lower() in ("deleted", "deleting"):
            continue
        tags = tag_dict(endpoint.get("Tags"))
        yield _resource("vpc_endpoint", endpoint["VpcEndpointId"], tags.get("Name", endpoint["VpcEndpointId"]),
                        tags, endpoint.get("State", "present"))
    listings = (
        ("route_table", "describe_route_tables", "RouteTables", "RouteTableId"),
        ("security_group", "describe_security_groups", "SecurityGroups", "GroupId"),
        ("subnet", "describe_subnets", "Subnets", "SubnetId"),
        ("internet_gateway", "describe_internet_gateways", "InternetGateways", "InternetGatewayId"),
        ("vpc", "describe_vpcs", "Vpcs", "VpcId"),
    )
    for kind, call, key, id_key in listings:
        for item in getattr(ec2, call)(Filters=tagged)[key]:
            tags = tag_dict(item.get("Tags"))
            yield _resource(kind, item[id_key], tags.get("Name", item[id_key]), tags, item.get("State", "present"))


def delete_resources(clients: AwsClients, resources: Iterable[Resource], wait_seconds: float = 300) -> list[str]:
    """Delete ``resources`` in dependency order; a resource already gone counts as deleted.

    Returns the ids deleted. Batch and EC2 deletions are asynchronous on AWS: each step
    waits (bounded) for what the next one depends on.
    """
    by_kind: dict[str, list[Resource]] = {}
    for resource in resources:
        by_kind.setdefault(resource.kind, []).append(resource)
    deleted = []
    for kind in KINDS:
        for resource in by_kind.get(kind, []):
            try:
                _DELETE[kind](clients, resource, wait_seconds)
            except ClientError as exc:
                if not is_not_found(exc):
                    raise
            log.info("deleted %s %s", kind, resource.name)
            deleted.append(resource.id)
    return deleted


def _wait(what: str, done: Any, wait_seconds: float, every: float = 2.0) -> None:
    deadline = time.monotonic() + wait_seconds
    while not done():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not finish within {wait_seconds:.0f}s")
        time.sleep(every)


def _delete_queue(clients: AwsClients, r: Resource, wait: float) -> None:
    batch = clients.batch

    def queue() -> dict | None:
        found = batch.describe_job_queues(jobQueues=[r.id])["jobQueues"]
        return found[0] if found and found[0].get("status") != "DELETED" else None

    current = queue()
    if current is None:
        return
    if current["state"] != "DISABLED":
        batch.update_job_queue(jobQueue=r.id, state="DISABLED")
    _wait(f"disabling job queue {r.name}", lambda: (queue() or {}).get("status") != "UPDATING", wait)
    batch.delete_job_queue(jobQueue=r.id)
    _wait(f"deleting job queue {r.name}", lambda: queue() is None, wait)


def _delete_ce(clients: AwsClients, r: Resource, wait: float) -> None:
    batch = clients.batch

    def ce() -> dict | None:
        found = batch.describe_compute_environments(computeEnvironments=[r.id])["computeEnvironments"]
        return found[0] if found and found[0].get("status") != "DELETED" else None

    current = ce()
    if current is None:
        return
    if current["state"] != "DISABLED":
        batch.update_compute_environment(computeEnvironment=r.id, state="DISABLED")
    _wait(f"disabling compute environment {r.name}", lambda: (ce() or {}).get("status") != "UPDATING", wait)
    batch.delete_compute_environment(computeEnvironment=r.id)
    _wait(f"deleting compute environment {r.name}", lambda: ce() is None, wait)


def _delete_instance(clients: AwsClients, r: Resource, wait: float) -> None:
    ec2 = clients.ec2
    ec2.terminate_instances(InstanceIds=[r.id])
    ec2.get_waiter("instance_terminated").wait(
        InstanceIds=[r.id], WaiterConfig={"Delay": 5, "MaxAttempts": max(1, int(wait // 5))})


def _delete_route_table(clients: AwsClients, r: Resource, wait: float) -> None:
    ec2 = clients.ec2
    for table in ec2.describe_route_tables(RouteTableIds=[r.id])["RouteTables"]:
        for assoc in table.get("Associations", []):
            if not assoc.get("Main"):
                ec2.disassociate_route_table(AssociationId=assoc["RouteTableAssociationId"])
    ec2.delete_route_table(RouteTableId=r.id)


def _delete_gateway(clients: AwsClients, r: Resource, wait: float) -> None:
    ec2 = clients.ec2
    for gw in ec2.describe_internet_gateways(InternetGatewayIds=[r.id])["InternetGateways"]:
        for attachment in gw.get("Attachments", []):
            ec2.detach_internet_gateway(InternetGatewayId=r.id, VpcId=attachment["VpcId"])
    ec2.delete_internet_gateway(InternetGatewayId=r.id)


_DELETE = {
    "secret": lambda c, r, w: c.secrets.delete_secret(SecretId=r.id, ForceDeleteWithoutRecovery=True),
    "iam_user": lambda c, r, w: iam.delete_user(c.iam, r.name),
    "iam_role": lambda c, r, w: iam.delete_role(c.iam, r.name),
    "iam_policy": lambda c, r, w: iam.delete_policy(c.iam, r.id),
    "job_queue": _delete_queue,
    "compute_environment": _delete_ce,
    "launch_template": lambda c, r, w: c.ec2.delete_launch_template(LaunchTemplateId=r.id),
    "ec2_instance": _delete_instance,
    "vpc_endpoint": lambda c, r, w: c.ec2.delete_vpc_endpoints(VpcEndpointIds=[r.id]),
    "route_table": _delete_route_table,
    "security_group": lambda c, r, w: c.ec2.delete_security_group(GroupId=r.id),
    "subnet": lambda c, r, w: c.ec2.delete_subnet(SubnetId=r.id),
    "internet_gateway": _delete_gateway,
    "vpc": lambda c, r, w: c.ec2.delete_vpc(VpcId=r.id),
}


def summary(resources: Iterable[Resource]) -> list[dict[str, Any]]:
    return [r.to_dict() for r in resources]
