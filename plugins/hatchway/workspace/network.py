"""A network for Batch jobs: VPC, private subnets, and a Squid proxy as their only way out.

Used for a workspace's own network and for the shared one that ``platform_bootstrap``
makes; both are found again by their Name tag and the platform tag, never created twice.
"""

from __future__ import annotations

import base64
import ipaddress
from dataclasses import asdict, dataclass
from typing import Any

from botocore.exceptions import ClientError

from hatchway.domain.names import NetworkNames
from hatchway.domain.workspace import DEFAULT_PROXY_DOMAINS, TAG_PLATFORM
from hatchway.workspace.clients import AwsClients, error_code, tag_dict, tag_list
from hatchway.workspace.egress import SQUID_PORT, batch_user_data, squid_user_data

ALIVE = ["pending", "running", "stopping", "stopped"]


@dataclass
class Network:
    vpc_id: str
    private_subnet_ids: list[str]
    batch_security_group_id: str
    squid_instance_id: str | None
    # Where the Batch instances' launch template points their proxy settings.
    squid_private_ip: str | None = None
    # The launch template every compute environment of this network launches its instances from.
    launch_template_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class NetworkEnsurer:
    """Ensures one network; every step looks its resource up by tags before creating it.

    :param clients: AWS clients.
    :param names: the network's names.
    :param tags: tags for every resource (the Name tag is added per resource).
    :param platform: the deployment prefix, part of every lookup filter.
    :param allowed_domains: where Squid lets jobs go (``proxy_allowed_domains``); read at the
        proxy's first boot, so a change reaches a new proxy instance only.
    """

    def __init__(self, clients: AwsClients, names: NetworkNames, tags: dict[str, str], platform: str,
                 cidr: str, squid_instance_type: str, squid_ami: str | None,
                 allowed_domains: list[str] | tuple[str, ...] = DEFAULT_PROXY_DOMAINS):
        self.ec2 = clients.ec2
        self.names = names
        self.tags = tags
        self.platform = platform
        self.cidr = ipaddress.ip_network(cidr)
        self.squid_instance_type = squid_instance_type
        self.squid_ami = squid_ami
        self.allowed_domains = list(allowed_domains)

    # -- lookups ---------------------------------------------------------------
    def _filters(self, name: str, extra: list[dict] | None = None) -> list[dict]:
        return [{"Name": "tag:Name", "Values": [name]},
                {"Name": f"tag:{TAG_PLATFORM}", "Values": [self.platform]}] + (extra or [])

    def _spec(self, kind: str, name: str) -> list[dict]:
        return [{"ResourceType": kind, "Tags": tag_list({**self.tags, "Name": name})}]

    def find_vpc(self) -> str | None:
        vpcs = self.ec2.describe_vpcs(Filters=self._filters(self.names.vpc))["Vpcs"]
        return vpcs[0]["VpcId"] if vpcs else None

    def _converge_tags(self, resource_id: str, current: list[dict] | None, name: str) -> None:
        """Give a found resource the tags it lacks or holds another value of (a new cost center)."""
        have = tag_dict(current)
        missing = {k: v for k, v in {**self.tags, "Name": name}.items() if have.get(k) != v}
        if missing:
            self.ec2.create_tags(Resources=[resource_id], Tags=tag_list(missing))

    # -- ensure ----------------------------------------------------------------
    def ensure(self) -> Network:
        vpc_id = self._ensure_vpc()
        igw_id = self._ensure_gateway(vpc_id)
        zones = [z["ZoneName"] for z in self.ec2.describe_availability_zones()["AvailabilityZones"]][:2]
        blocks = list(self.cidr.subnets(new_prefix=min(self.cidr.prefixlen + 2, 28)))
        private = [self._ensure_subnet(vpc_id, f"{self.names.private_subnet}-{i}", str(blocks[i]), zone)
                   for i, zone in enumerate(zones)]
        proxy_block = next(blocks[-1].subnets(new_prefix=min(blocks[-1].prefixlen + 6, 28)))
        proxy = self._ensure_subnet(vpc_id, self.names.proxy_subnet, str(proxy_block), zones[0])
        squid_sg = self._ensure_security_group(vpc_id, self.names.squid_security_group, squid=True)
        batch_sg = self._ensure_security_group(vpc_id, self.names.batch_security_group, squid=False)
        squid_id, squid_eni, squid_ip = self._ensure_squid(proxy, squid_sg)
        self._ensure_route_table(vpc_id, self.names.public_route_table, [proxy], gateway_id=igw_id)
        private_table = self._ensure_route_table(vpc_id, self.names.private_route_table, private, eni_id=squid_eni)
        self._ensure_s3_endpoint(vpc_id, [private_table])
        template = self.ensure_launch_template(squid_ip) if squid_ip else None
        return Network(vpc_id, private, batch_sg, squid_id, squid_ip, template)

    def _ensure_vpc(self) -> str:
        vpcs = self.ec2.describe_vpcs(Filters=self._filters(self.names.vpc))["Vpcs"]
        if vpcs:
            self._converge_tags(vpcs[0]["VpcId"], vpcs[0].get("Tags"), self.names.vpc)
            return vpcs[0]["VpcId"]
        vpc_id = self.ec2.create_vpc(CidrBlock=str(self.cidr),
                                     TagSpecifications=self._spec("vpc", self.names.vpc))["Vpc"]["VpcId"]
        self.ec2.modify_vpc_attribute(VpcId=vpc_id, EnableDnsHostnames={"Value": True})
        return vpc_id

    def _ensure_gateway(self, vpc_id: str) -> str:
        found = self.ec2.describe_internet_gateways(
            Filters=[{"Name": "attachment.vpc-id", "Values": [vpc_id]}])["InternetGateways"]
        if found:
            self._converge_tags(found[0]["InternetGatewayId"], found[0].get("Tags"), self.names.gateway)
            return found[0]["InternetGatewayId"]
        igw = self.ec2.create_internet_gateway(
            TagSpecifications=self._spec("internet-gateway", self.names.gateway))["InternetGateway"]
        self.ec2.attach_internet_gateway(InternetGatewayId=igw["InternetGatewayId"], VpcId=vpc_id)
        return igw["InternetGatewayId"]

    def _ensure_subnet(self, vpc_id: str, name: str, cidr: str, zone: str) -> str:
        found = self.ec2.describe_subnets(
            Filters=self._filters(name, [{"Name": "vpc-id", "Values": [vpc_id]}]))["Subnets"]
        if found:
            self._converge_tags(found[0]["SubnetId"], found[0].get("Tags"), name)
            return found[0]["SubnetId"]
        return self.ec2.create_subnet(VpcId=vpc_id, CidrBlock=cidr, AvailabilityZone=zone,
                                      TagSpecifications=self._spec("subnet", name))["Subnet"]["SubnetId"]

    def _ensure_security_group(self, vpc_id: str, name: str, squid: bool) -> str:
        found = self.ec2.describe_security_groups(
            Filters=[{"Name": "group-name", "Values": [name]}, {"Name": "vpc-id", "Values": [vpc_id]}]
        )["SecurityGroups"]
        if found:
            self._converge_tags(found[0]["GroupId"], found[0].get("Tags"), name)
            return found[0]["GroupId"]
        group_id = self.ec2.create_security_group(
            GroupName=name, VpcId=vpc_id,
            Description="Squid proxy for Batch jobs" if squid else "Batch jobs (egress through Squid)",
            TagSpecifications=self._spec("security-group", name))["GroupId"]
        if squid:
            self.ec2.authorize_security_group_ingress(GroupId=group_id, IpPermissions=[{
                "IpProtocol": "tcp", "FromPort": SQUID_PORT, "ToPort": SQUID_PORT,
                "IpRanges": [{"CidrIp": str(self.cidr), "Description": "the VPC's own jobs"}]}])
        return group_id

    def _squid_image(self) -> str:
        if self.squid_ami:
            return self.squid_ami
        images = self.ec2.describe_images(Owners=["amazon"], Filters=[
            {"Name": "name", "Values": ["amzn2-ami-ecs-*hvm-*-x86_64-ebs"]}])["Images"]
        if not images:
            raise RuntimeError("no ECS-optimised Amazon Linux 2 image found: set squid_ami in hatchway_config")
        return max(images, key=lambda i: i.get("CreationDate", ""))["ImageId"]

    def find_squid(self) -> dict | None:
        reservations = self.ec2.describe_instances(Filters=self._filters(
            self.names.squid, [{"Name": "instance-state-name", "Values": ALIVE}]))["Reservations"]
        instances = [i for r in reservations for i in r["Instances"]]
        return instances[0] if instances else None

    def _ensure_squid(self, subnet_id: str, group_id: str) -> tuple[str, str, str | None]:
        instance = self.find_squid()
        if instance is None:
            instance = self.ec2.run_instances(
                ImageId=self._squid_image(), InstanceType=self.squid_instance_type, MinCount=1, MaxCount=1,
                NetworkInterfaces=[{"DeviceIndex": 0, "SubnetId": subnet_id, "Groups": [group_id],
                                    "AssociatePublicIpAddress": True}],
                UserData=squid_user_data(self.allowed_domains, str(self.cidr)),
                TagSpecifications=self._spec("instance", self.names.squid) + self._spec("volume", self.names.squid),
            )["Instances"][0]
            # A NAT-like proxy forwards traffic that is not addressed to itself.
            self.ec2.modify_instance_attribute(InstanceId=instance["InstanceId"], SourceDestCheck={"Value": False})
        else:
            self._converge_tags(instance["InstanceId"], instance.get("Tags"), self.names.squid)
            if instance["State"]["Name"] == "stopped":
                self.ec2.start_instances(InstanceIds=[instance["InstanceId"]])
        eni = instance["NetworkInterfaces"][0]
        return (instance["InstanceId"], eni["NetworkInterfaceId"],
                instance.get("PrivateIpAddress") or eni.get("PrivateIpAddress"))

    def _ensure_route_table(self, vpc_id: str, name: str, subnet_ids: list[str], *,
                            gateway_id: str | None = None, eni_id: str | None = None) -> str:
        found = self.ec2.describe_route_tables(
            Filters=self._filters(name, [{"Name": "vpc-id", "Values": [vpc_id]}]))["RouteTables"]
        if found:
            table = found[0]
            self._converge_tags(table["RouteTableId"], table.get("Tags"), name)
        else:
            table = self.ec2.create_route_table(VpcId=vpc_id,
                                                TagSpecifications=self._spec("route-table", name))["RouteTable"]
        table_id = table["RouteTableId"]
        default = [r for r in table.get("Routes", []) if r.get("DestinationCidrBlock") == "0.0.0.0/0"]
        target = {"GatewayId": gateway_id} if gateway_id else {"NetworkInterfaceId": eni_id}
        if not default:
            self.ec2.create_route(RouteTableId=table_id, DestinationCidrBlock="0.0.0.0/0", **target)
        elif any(default[0].get(k) != v for k, v in target.items()):
            # The Squid instance was replaced: point the default route at the new one.
            self.ec2.replace_route(RouteTableId=table_id, DestinationCidrBlock="0.0.0.0/0", **target)
        associated = {a.get("SubnetId") for a in table.get("Associations", [])}
        for subnet_id in subnet_ids:
            if subnet_id not in associated:
                self.ec2.associate_route_table(RouteTableId=table_id, SubnetId=subnet_id)
        return table_id

    def _ensure_s3_endpoint(self, vpc_id: str, route_table_ids: list[str]) -> str:
        """An S3 gateway endpoint on the private route tables: job data goes to S3 directly, not through Squid."""
        service = f"com.amazonaws.{self.ec2.meta.region_name}.s3"
        name = self.names.s3_endpoint
        found = [e for e in self.ec2.describe_vpc_endpoints(Filters=self._filters(name))["VpcEndpoints"]
                 if e["VpcId"] == vpc_id and e["ServiceName"] == service
                 and e.get("State", "").lower() not in ("deleted", "deleting", "failed", "rejected")]
        if not found:
            return self.ec2.create_vpc_endpoint(
                VpcId=vpc_id, ServiceName=service, VpcEndpointType="Gateway", RouteTableIds=route_table_ids,
                TagSpecifications=self._spec("vpc-endpoint", name))["VpcEndpoint"]["VpcEndpointId"]
        endpoint = found[0]
        self._converge_tags(endpoint["VpcEndpointId"], endpoint.get("Tags"), name)
        missing = [t for t in route_table_ids if t not in endpoint.get("RouteTableIds", [])]
        if missing:
            self.ec2.modify_vpc_endpoint(VpcEndpointId=endpoint["VpcEndpointId"], AddRouteTableIds=missing)
        return endpoint["VpcEndpointId"]

    def ensure_launch_template(self, proxy_host: str) -> str:
        """The Batch instances' launch template, its user data pointing them at Squid on ``proxy_host``.

        Found by name; a user data that differs (Squid replaced, another VPC range) becomes a
        new version, which the compute environment (on ``$Latest``) uses from its next
        infrastructure update or replacement. Returns the template's id.
        """
        name = self.names.launch_template
        wanted = batch_user_data(proxy_host, str(self.cidr))
        data = {"UserData": base64.b64encode(wanted.encode()).decode(),
                "TagSpecifications": [{"ResourceType": kind, "Tags": tag_list({**self.tags, "Name": name})}
                                      for kind in ("instance", "volume")]}
        template = self._find_launch_template(name)
        if template is None:
            try:
                return self.ec2.create_launch_template(
                    LaunchTemplateName=name, LaunchTemplateData=data,
                    VersionDescription="Batch instances behind the network's Squid proxy",
                    TagSpecifications=self._spec("launch-template", name))["LaunchTemplate"]["LaunchTemplateId"]
            except ClientError as exc:
                # Two workspaces ensuring the shared network at once: the other one made it.
                if error_code(exc) != "InvalidLaunchTemplateName.AlreadyExistsException":
                    raise
                template = self._find_launch_template(name)
        template_id = template["LaunchTemplateId"]
        self._converge_tags(template_id, template.get("Tags"), name)
        latest = self.ec2.describe_launch_template_versions(
            LaunchTemplateId=template_id, Versions=["$Latest"])["LaunchTemplateVersions"][0]
        if _user_data(latest.get("LaunchTemplateData", {}).get("UserData")) != wanted:
            self.ec2.create_launch_template_version(
                LaunchTemplateId=template_id, LaunchTemplateData=data, SourceVersion=str(latest["VersionNumber"]),
                VersionDescription="proxy settings changed")
        return template_id

    def _find_launch_template(self, name: str) -> dict[str, Any] | None:
        found = self.ec2.describe_launch_templates(
            Filters=[{"Name": "launch-template-name", "Values": [name]}])["LaunchTemplates"]
        return found[0] if found else None

    def stop_squid(self) -> str | None:
        instance = self.find_squid()
        if instance and instance["State"]["Name"] in ("pending", "running"):
            self.ec2.stop_instances(InstanceIds=[instance["InstanceId"]])
            return instance["InstanceId"]
        return None


def _user_data(value: str | None) -> str | None:
    """A launch template's user data as text (EC2 stores it base64-encoded)."""
    if value is None:
        return None
    try:
        return base64.b64decode(value, validate=True).decode()
    except ValueError:
        return value
