"""Jobs' way out on real AWS: a launch template with the proxy settings on the compute environment, S3 direct.

Against a moto server over HTTP, through the real DAGs.
"""

from __future__ import annotations

import base64
import email

import pytest

from hatchway.domain.workspace import TAG_OWNER, TAG_WORKSPACE
from hatchway.workspace.clients import tag_dict
from hatchway.workspace.egress import SQUID_PORT
from hatchway.workspace.inventory import inventory
from support import recorded_calls, reset_recording, run_dag, task_states

ALICE = {"workspace": "alice", "owner": "alice@example.org"}
TEMPLATE = "hatchway-alice-batch-lt"


@pytest.fixture
def provisioned(aws, airflow_db):
    assert run_dag("platform_bootstrap").state == "success"
    run = run_dag("workspace_provision", **ALICE)
    assert run.state == "success", task_states(run)
    return aws


def _squid(aws) -> dict:
    reservations = aws.ec2.describe_instances(Filters=[{"Name": "tag:Name", "Values": ["hatchway-alice-squid"]},
                                                       {"Name": "instance-state-name", "Values": ["running"]}])
    return [i for r in reservations["Reservations"] for i in r["Instances"]][0]


def _template(aws) -> dict:
    return aws.ec2.describe_launch_templates(
        Filters=[{"Name": "launch-template-name", "Values": [TEMPLATE]}])["LaunchTemplates"][0]


def _script(aws, version: str = "$Latest") -> str:
    """The shell part of the template's MIME user data."""
    data = aws.ec2.describe_launch_template_versions(
        LaunchTemplateName=TEMPLATE, Versions=[version])["LaunchTemplateVersions"][0]["LaunchTemplateData"]
    message = email.message_from_string(base64.b64decode(data["UserData"]).decode())
    assert message.is_multipart()
    parts = [p for p in message.walk() if p.get_content_type() == "text/x-shellscript"]
    assert len(parts) == 1
    return parts[0].get_payload(decode=True).decode()


def _s3_endpoints(aws, vpc_id: str) -> list[dict]:
    return [e for e in aws.ec2.describe_vpc_endpoints(
        Filters=[{"Name": "tag:Name", "Values": ["hatchway-alice-s3"]}])["VpcEndpoints"]
        if e["VpcId"] == vpc_id and e["State"].lower() != "deleted"]


def test_compute_environment_launches_instances_from_the_proxy_template(provisioned):
    aws = provisioned
    template = _template(aws)
    ce = aws.batch.describe_compute_environments(computeEnvironments=["hatchway-alice-ce"])["computeEnvironments"][0]
    assert ce["computeResources"]["launchTemplate"] == {"launchTemplateId": template["LaunchTemplateId"],
                                                       "version": "$Latest"}
    tags = tag_dict(template["Tags"])
    assert tags[TAG_WORKSPACE] == "alice" and tags[TAG_OWNER] == "alice@example.org"


def test_template_user_data_points_agent_docker_and_host_at_squid(provisioned):
    aws = provisioned
    proxy = f"http://{_squid(aws)['PrivateIpAddress']}:{SQUID_PORT}"
    script = _script(aws)
    assert f"HTTPS_PROXY={proxy}' >> /etc/ecs/ecs.config" in script
    assert f'Environment="HTTP_PROXY={proxy}" "HTTPS_PROXY={proxy}"' in script
    assert f"https_proxy={proxy}\n" in script
    assert "169.254.169.254" in script and "192.168.0.0/16" in script


def test_s3_gateway_endpoint_serves_the_private_route_table(provisioned):
    aws = provisioned
    vpc_id = aws.ec2.describe_vpcs(Filters=[{"Name": "tag:Name", "Values": ["hatchway-alice-vpc"]}])["Vpcs"][0]["VpcId"]
    private = aws.ec2.describe_route_tables(
        Filters=[{"Name": "tag:Name", "Values": ["hatchway-alice-private-rt"]}])["RouteTables"][0]["RouteTableId"]
    endpoints = _s3_endpoints(aws, vpc_id)
    assert len(endpoints) == 1
    endpoint = endpoints[0]
    assert endpoint["ServiceName"] == "com.amazonaws.us-east-1.s3"
    assert endpoint["VpcEndpointType"] == "Gateway"
    assert endpoint["RouteTableIds"] == [private]
    tags = tag_dict(endpoint["Tags"])
    assert tags[TAG_WORKSPACE] == "alice" and tags[TAG_OWNER] == "alice@example.org"


def test_a_replaced_squid_gives_the_template_a_new_version_and_nothing_else(provisioned, moto_server):
    aws = provisioned
    old = _squid(aws)
    aws.ec2.terminate_instances(InstanceIds=[old["InstanceId"]])
    run = run_dag("workspace_provision", **ALICE)
    assert run.state == "success", task_states(run)
    new = _squid(aws)
    assert new["PrivateIpAddress"] != old["PrivateIpAddress"]
    assert _template(aws)["LatestVersionNumber"] == 2
    assert f"http://{new['PrivateIpAddress']}:{SQUID_PORT}" in _script(aws, "2")
    assert f"http://{old['PrivateIpAddress']}:{SQUID_PORT}" in _script(aws, "1")
    # and a repeat with nothing changed makes no new version, nor any mutating call
    reset_recording(moto_server.url)
    assert run_dag("workspace_provision", **ALICE).state == "success"
    assert [a for s, a, m in recorded_calls(moto_server.recording) if m and s == "ec2"] == []
    assert _template(aws)["LatestVersionNumber"] == 2


def test_purge_removes_template_and_endpoint(provisioned):
    aws = provisioned
    kinds = {r.kind for r in inventory(aws, "alice")}
    assert {"launch_template", "vpc_endpoint"} <= kinds
    run = run_dag("workspace_teardown", workspace="alice", purge=True)
    assert run.state == "success", task_states(run)
    assert inventory(aws, "alice") == []
    assert aws.ec2.describe_launch_templates(
        Filters=[{"Name": "launch-template-name", "Values": [TEMPLATE]}])["LaunchTemplates"] == []
    assert [e for e in aws.ec2.describe_vpc_endpoints()["VpcEndpoints"] if e["State"].lower() != "deleted"] == []


@pytest.mark.parametrize("mode", [{"shared_network": True}, {"queue_mode": "shared"}])
def test_compute_environments_in_the_shared_network_use_its_template(aws, airflow_db, set_config, mode):
    set_config(**mode)
    assert run_dag("platform_bootstrap").state == "success"
    run = run_dag("workspace_provision", **ALICE)
    assert run.state == "success", task_states(run)
    assert aws.ec2.describe_launch_templates(
        Filters=[{"Name": "launch-template-name", "Values": [TEMPLATE]}])["LaunchTemplates"] == []
    [shared] = aws.ec2.describe_launch_templates()["LaunchTemplates"]
    squid = [i for r in aws.ec2.describe_instances(Filters=[{"Name": "instance-state-name", "Values": ["running"]}])
             ["Reservations"] for i in r["Instances"]]
    assert len(squid) == 1  # the shared network's Squid only
    data = aws.ec2.describe_launch_template_versions(
        LaunchTemplateId=shared["LaunchTemplateId"], Versions=["$Latest"])["LaunchTemplateVersions"][0]
    assert f"http://{squid[0]['PrivateIpAddress']}:{SQUID_PORT}" in base64.b64decode(
        data["LaunchTemplateData"]["UserData"]).decode()
    ces = aws.batch.describe_compute_environments()["computeEnvironments"]
    assert ces and all(ce["computeResources"]["launchTemplate"] == {
        "launchTemplateId": shared["LaunchTemplateId"], "version": "$Latest"} for ce in ces)
