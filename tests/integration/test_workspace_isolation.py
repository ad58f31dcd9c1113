"""Tenant isolation with moto's IAM enforcement on: A's key works on A's prefix only.

moto enforces S3 object permissions (tested here for real). It does not enforce the
``s3:prefix`` condition on ListBucket, nor per-queue Batch permissions (it matches Batch
actions on ``*`` only): those statements are checked as documents in
``test_workspace_lifecycle.py::test_user_policy_grants_only_own_prefix_queue_and_role``.
"""

from __future__ import annotations

import json

import boto3
import pytest
from botocore.exceptions import ClientError

from hatchway_dev.endpoints import MotoServer
from support import run_dag, task_states

BUCKET = "hatchway-test-data"
UNCHECKED_CALLS = 3  # create the admin user, give it AdministratorAccess, make its key


@pytest.fixture(scope="module")
def enforcing_moto(tmp_path_factory):
    server = MotoServer(env={"MOTO_IAM_LOAD_MANAGED_POLICIES": "true",
                             "INITIAL_NO_AUTH_ACTION_COUNT": str(UNCHECKED_CALLS)})
    server.start(tmp_path_factory.mktemp("moto-iam"))
    iam = boto3.client("iam", endpoint_url=server.url, region_name="us-east-1",
                       aws_access_key_id="bootstrap", aws_secret_access_key="bootstrap")
    iam.create_user(UserName="hatchway-admin")
    iam.attach_user_policy(UserName="hatchway-admin", PolicyArn="arn:aws:iam::aws:policy/AdministratorAccess")
    key = iam.create_access_key(UserName="hatchway-admin")["AccessKey"]
    server.admin_key = (key["AccessKeyId"], key["SecretAccessKey"])
    yield server
    server.stop()


def _client(server, service, key_id, secret):
    return boto3.client(service, endpoint_url=server.url, region_name="us-east-1",
                        aws_access_key_id=key_id, aws_secret_access_key=secret)


def test_user_key_reaches_own_prefix_and_is_denied_on_others(enforcing_moto, airflow_db, monkeypatch):
    key_id, secret = enforcing_moto.admin_key
    conn = {"conn_type": "aws", "login": key_id, "password": secret,
            "extra": {"endpoint_url": enforcing_moto.url, "region_name": "us-east-1"}}
    monkeypatch.setenv("AIRFLOW_CONN_AWS_ADMIN", json.dumps(conn))
    monkeypatch.setenv("AIRFLOW_VAR_HATCHWAY_CONFIG", json.dumps(
        {"bucket": BUCKET, "aws_conn_id": "aws_admin", "compute_wait_delay": 1}))
    for run in (run_dag("platform_bootstrap"),
                run_dag("workspace_provision", workspace="alice", owner="alice@example.org"),
                run_dag("workspace_provision", workspace="bob", owner="bob@example.org")):
        assert run.state == "success", task_states(run)

    admin_secrets = _client(enforcing_moto, "secretsmanager", key_id, secret)
    alice = json.loads(admin_secrets.get_secret_value(
        SecretId="hatchway/workspaces/alice/aws-access-key")["SecretString"])
    s3 = _client(enforcing_moto, "s3", alice["aws_access_key_id"], alice["aws_secret_access_key"])

    s3.put_object(Bucket=BUCKET, Key="alice/reads.vcf", Body=b"ACGT")
    assert s3.get_object(Bucket=BUCKET, Key="alice/reads.vcf")["Body"].read() == b"ACGT"
    s3.delete_object(Bucket=BUCKET, Key="alice/reads.vcf")

    _client(enforcing_moto, "s3", key_id, secret).put_object(Bucket=BUCKET, Key="bob/private.vcf", Body=b"TTTT")
    for attempt in (lambda: s3.put_object(Bucket=BUCKET, Key="bob/intruder.vcf", Body=b"x"),
                    lambda: s3.get_object(Bucket=BUCKET, Key="bob/private.vcf"),
                    lambda: s3.delete_object(Bucket=BUCKET, Key="bob/private.vcf"),
                    lambda: s3.get_object(Bucket=BUCKET, Key=".hatchway/workspaces/bob.json")):
        with pytest.raises(ClientError) as denied:
            attempt()
        assert denied.value.response["Error"]["Code"] == "AccessDenied"

    # the key cannot read another workspace's stored key either
    with pytest.raises(ClientError) as denied:
        _client(enforcing_moto, "secretsmanager", alice["aws_access_key_id"],
                alice["aws_secret_access_key"]).get_secret_value(SecretId="hatchway/workspaces/bob/aws-access-key")
    assert denied.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
