"""IAM policy documents of a workspace, built from validated names only.

Batch cannot narrow ``Describe*``/``List*`` calls, so those stay on ``*`` (as Hatchery
does); everything that changes state is narrowed: the user's prefix, their queue, job
definitions named under their workspace, their own jobs (by tag), their share
identifier in ``shared`` queue mode, and only their jobs role to pass.
"""

from __future__ import annotations

from typing import Any

from hatchway.domain.names import WorkspaceNames
from hatchway.domain.workspace import TAG_WORKSPACE, PlatformConfig, QueueMode

Document = dict[str, Any]

ECS_TASKS_TRUST: Document = {
    "Version": "2012-10-17",
    "Statement": [
        {"Effect": "Allow", "Principal": {"Service": "ecs-tasks.amazonaws.com"}, "Action": "sts:AssumeRole"}
    ],
}


def trust_policy(service: str) -> Document:
    return {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}],
    }


def _s3_statements(bucket: str, prefix: str, read_only_buckets: list[str]) -> list[Document]:
    statements: list[Document] = [
        {
            "Sid": "ListOwnPrefix",
            "Effect": "Allow",
            "Action": "s3:ListBucket",
            "Resource": f"arn:aws:s3:::{bucket}",
            "Condition": {"StringLike": {"s3:prefix": [prefix, f"{prefix}*"]}},
        },
        {
            "Sid": "ReadWriteOwnPrefix",
            "Effect": "Allow",
            "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"],
            "Resource": f"arn:aws:s3:::{bucket}/{prefix}*",
        },
    ]
    if read_only_buckets:
        statements.append(
            {
                "Sid": "ReadAllowedBuckets",
                "Effect": "Allow",
                "Action": ["s3:GetObject", "s3:ListBucket"],
                "Resource": [f"arn:aws:s3:::{b}" for b in read_only_buckets]
                + [f"arn:aws:s3:::{b}/*" for b in read_only_buckets],
            }
        )
    return statements


def job_policy(config: PlatformConfig, names: WorkspaceNames) -> Document:
    """What the workspace's Batch jobs may do: their prefix, and read the allowed buckets."""
    return {
        "Version": "2012-10-17",
        "Statement": _s3_statements(config.bucket, names.s3_prefix, config.allowed_buckets),
    }


def user_policy(
    config: PlatformConfig, names: WorkspaceNames, account: str, job_queue_arn: str, job_role_arn: str
) -> Document:
    """What the researcher's key may do."""
    region = config.region
    job_definitions = f"arn:aws:batch:{region}:{account}:job-definition/{names.job_definition_prefix}*"
    submit: Document = {
        "Sid": "SubmitToOwnQueue",
        "Effect": "Allow",
        "Action": "batch:SubmitJob",
        "Resource": [job_queue_arn, job_definitions],
        "Condition": {"StringEquals": {f"aws:RequestTag/{TAG_WORKSPACE}": names.workspace}},
    }
    if config.queue_mode is QueueMode.SHARED:
        submit["Condition"]["StringEquals"]["batch:ShareIdentifier"] = names.share_identifier
    register: Document = {
        "Sid": "RegisterOwnJobDefinitions",
        "Effect": "Allow",
        "Action": ["batch:RegisterJobDefinition", "batch:DeregisterJobDefinition"],
        "Resource": job_definitions,
    }
    if config.allowed_images:
        register["Condition"] = {"StringLike": {"batch:Image": list(config.allowed_images)}}
    statements = _s3_statements(config.bucket, names.s3_prefix, config.allowed_buckets) + [
        submit,
        register,
        {
            "Sid": "TagOwnJobs",
            "Effect": "Allow",
            "Action": "batch:TagResource",
            "Resource": f"arn:aws:batch:{region}:{account}:job/*",
            "Condition": {"StringEquals": {f"aws:RequestTag/{TAG_WORKSPACE}": names.workspace}},
        },
        {
            "Sid": "StopOwnJobs",
            "Effect": "Allow",
            "Action": ["batch:CancelJob", "batch:TerminateJob"],
            "Resource": f"arn:aws:batch:{region}:{account}:job/*",
            "Condition": {"StringEquals": {f"aws:ResourceTag/{TAG_WORKSPACE}": names.workspace}},
        },
        {
            # Batch offers no resource-level narrowing for these reads.
            "Sid": "DescribeBatch",
            "Effect": "Allow",
            "Action": ["batch:DescribeJobs", "batch:ListJobs", "batch:DescribeJobDefinitions",
                       "batch:DescribeJobQueues"],
            "Resource": "*",
        },
        {"Sid": "PassOwnJobRole", "Effect": "Allow", "Action": "iam:PassRole", "Resource": job_role_arn},
    ]
    return {"Version": "2012-10-17", "Statement": statements}
