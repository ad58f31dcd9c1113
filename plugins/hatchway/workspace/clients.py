"""boto3 clients for the workspace lifecycle, made through the amazon provider's hook.

The connection (credentials, endpoint_url, retries) comes from the Airflow connection,
never from call sites; tests and the dev stack build the same object against a moto
server with :meth:`AwsClients.from_endpoint`.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cached_property
from typing import Any

from botocore.exceptions import ClientError

SERVICES = ("iam", "s3", "ec2", "batch", "secretsmanager", "sts", "ecs", "rds")


class AwsClients:
    """One lazily built client per service, all from one source of credentials.

    :param factory: returns a boto3 client for a service name.
    """

    def __init__(self, factory: Callable[[str], Any]):
        self._factory = factory
        self._clients: dict[str, Any] = {}

    def client(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = self._factory(service)
        return self._clients[service]

    iam = property(lambda self: self.client("iam"))
    s3 = property(lambda self: self.client("s3"))
    ec2 = property(lambda self: self.client("ec2"))
    batch = property(lambda self: self.client("batch"))
    secrets = property(lambda self: self.client("secretsmanager"))
    ecs = property(lambda self: self.client("ecs"))
    rds = property(lambda self: self.client("rds"))

    @cached_property
    def account(self) -> str:
        return self.client("sts").get_caller_identity()["Account"]

    @classmethod
    def from_connection(cls, aws_conn_id: str, region: str) -> AwsClients:
        """Clients from an Airflow AWS connection (the provider's ``AwsBaseHook``)."""
        from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook

        return cls(lambda service: AwsBaseHook(aws_conn_id=aws_conn_id, client_type=service,
                                               region_name=region).conn)

    @classmethod
    def from_endpoint(cls, endpoint_url: str, region: str = "us-east-1",
                      access_key: str = "testing", secret_key: str = "testing") -> AwsClients:
        """Clients against one endpoint (a moto server), for tests and the dev stack."""
        import boto3

        session = boto3.Session(aws_access_key_id=access_key, aws_secret_access_key=secret_key,
                                region_name=region)
        return cls(lambda service: session.client(service, endpoint_url=endpoint_url))


def error_code(exc: ClientError) -> str:
    return exc.response.get("Error", {}).get("Code", "")


def is_not_found(exc: ClientError) -> bool:
    code = error_code(exc)
    return code in {"NoSuchEntity", "ResourceNotFoundException", "NoSuchKey", "404", "NotFound",
                    "NoSuchBucket", "NoSuchLifecycleConfiguration", "DBInstanceNotFound", "DBInstanceNotFoundFault",
                    "ClusterNotFoundException", "ServiceNotFoundException"} or code.endswith(".NotFound")


def tag_list(tags: dict[str, str], key: str = "Key", value: str = "Value") -> list[dict[str, str]]:
    return [{key: k, value: v} for k, v in sorted(tags.items())]


def tag_dict(tags: list[dict[str, str]] | None, key: str = "Key", value: str = "Value") -> dict[str, str]:
    return {t[key]: t[value] for t in tags or []}
