"""A Cromwell server of a workspace's own (``mode: per_workspace``, AWE's design): settings,
its record, and the pure renderings of its configuration and ECS task definition.

Plain Python: :mod:`hatchway.workspace.cromwell_server` makes the AWS resources from these.
No secret passes through here: the database password reaches the container through ECS
``secrets`` (the secret's ARN), and the rendered configuration reads it from the environment.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

CROMWELL_PORT = 8000
MYSQL_PORT = 3306
PASSWORD_ENV = "CROMWELL_DB_PASSWORD"
CONFIG_ENV = "CROMWELL_CONFIG"
CONTAINER = "cromwell"
# Cromwell reads its configuration from a file: the container writes the rendered text (an
# environment variable, so the definition stays one self-contained revision) and starts.
_START = (f'printf "%s" "${CONFIG_ENV}" > /tmp/cromwell.conf && '
          "exec java ${JAVA_OPTS} -Dconfig.file=/tmp/cromwell.conf -jar /app/cromwell.jar server")


class CromwellServerSettings(BaseModel):
    """How per-workspace servers are made (``server`` in ``hatchway_cromwell_config``).

    :param image: the Cromwell container image.
    :param cpu: Fargate task CPU units; ``memory``: MiB (a valid Fargate pair).
    :param db_instance_class: RDS class of a workspace's own MySQL instance.
    :param db_allocated_storage: GiB of that instance.
    :param db_engine_version: MySQL version (None: RDS's default).
    :param shared_db_instance: identifier of an existing RDS MySQL instance: each workspace gets a
        database and user of its own on it instead of an instance (the SQL runs outside AWS APIs).
    :param shared_db_admin_secret_arn: secret with that instance's admin credentials.
    :param skip_final_snapshot: a purge deletes the workspace's instance without a final snapshot.
    :param subnets: subnets for servers of workspaces without a network of their own (awsvpc).
    :param security_groups: security groups for those servers.
    :param execution_role_arn: ECS task execution role (pulls the image, reads the secret; AWS
        needs one when a definition has ``secrets``).
    :param task_role_arn: the role Cromwell runs as (submits to Batch, reads and writes S3).
    :param dns_namespace: private DNS namespace the endpoint names live in.
    :param hog_factor: Cromwell's ``system.hog-safety.hog-factor`` (one tenant per server).
    """

    model_config = ConfigDict(extra="forbid")

    image: str = "broadinstitute/cromwell:87"
    cpu: str = "1024"
    memory: str = "4096"
    db_instance_class: str = "db.t3.micro"
    db_allocated_storage: int = Field(20, ge=20, le=16384)
    db_engine_version: str | None = None
    shared_db_instance: str | None = None
    shared_db_admin_secret_arn: str | None = None
    skip_final_snapshot: bool = False
    subnets: list[str] = Field(default_factory=list)
    security_groups: list[str] = Field(default_factory=list)
    execution_role_arn: str | None = None
    task_role_arn: str | None = None
    dns_namespace: str = "cromwell.internal"
    hog_factor: int = Field(1, ge=1)


class ServerRecord(BaseModel):
    """Hatchway's record of a workspace's Cromwell server: the workspace -> endpoint map.

    Holds the secret's ARN only, never its value.
    """

    workspace: str
    endpoint: str
    cluster: str
    service: str
    task_definition_arn: str
    db_identifier: str
    database: str
    shared_db: bool = False
    secret_arn: str
    state: Literal["running", "stopped"] = "running"
    created_at: datetime

    def same_as(self, other: ServerRecord) -> bool:
        return self.model_dump(exclude={"created_at"}) == other.model_dump(exclude={"created_at"})


def _q(value: str) -> str:
    # A JSON string is a HOCON quoted string: no value can break out of its place.
    return json.dumps(value)


def render_config(*, region: str, job_queue_arn: str, job_role_arn: str, bucket: str, root: str, db_host: str,
                  db_port: int, database: str, db_user: str, hog_factor: int = 1) -> str:
    """Cromwell's configuration (HOCON) for one workspace: AWS Batch backend, MySQL metadata.

    The password is ``${CROMWELL_DB_PASSWORD}``, injected from Secrets Manager by ECS.
    """
    url = f"jdbc:mysql://{db_host}:{db_port}/{database}?rewriteBatchedStatements=true&useSSL=true"
    return f"""include required(classpath("application"))

webservice {{
  interface = "0.0.0.0"
  port = {CROMWELL_PORT}
}}

system {{
  hog-safety {{
    hog-factor = {hog_factor}
  }}
}}

aws {{
  application-name = "cromwell"
  auths = [{{ name = "default", scheme = "default" }}]
  region = {_q(region)}
}}

engine {{
  filesystems {{
    s3 {{ auth = "default" }}
  }}
}}

backend {{
  default = "AWSBatch"
  providers {{
    AWSBatch {{
      actor-factory = "cromwell.backend.impl.aws.AwsBatchBackendLifecycleActorFactory"
      config {{
        root = {_q(root)}
        auth = "default"
        numSubmitAttempts = 6
        numCreateDefinitionAttempts = 6
        default-runtime-attributes {{
          queueArn = {_q(job_queue_arn)}
          jobRoleArn = {_q(job_role_arn)}
          scriptBucketName = {_q(bucket)}
        }}
        filesystems {{
          s3 {{ auth = "default" }}
        }}
      }}
    }}
  }}
}}

database {{
  profile = "slick.jdbc.MySQLProfile$"
  db {{
    driver = "com.mysql.cj.jdbc.Driver"
    url = {_q(url)}
    user = {_q(db_user)}
    password = ${{{PASSWORD_ENV}}}
    connectionTimeout = 5000
  }}
}}
"""


def execution_root(bucket: str, workspace: str) -> str:
    return f"s3://{bucket}/{workspace}/cromwell-execution"


def task_definition(*, family: str, settings: CromwellServerSettings, config_text: str, secret_arn: str,
                    tags: list[dict[str, str]]) -> dict[str, Any]:
    """The ``register_task_definition`` arguments of a workspace's server (Fargate, awsvpc)."""
    container = {
        "name": CONTAINER,
        "image": settings.image,
        "essential": True,
        "entryPoint": ["/bin/sh", "-c"],
        "command": [_START],
        "portMappings": [{"containerPort": CROMWELL_PORT, "protocol": "tcp"}],
        "environment": [{"name": CONFIG_ENV, "value": config_text}],
        # The JSON key form: ECS hands the container the password alone, not the whole secret.
        "secrets": [{"name": PASSWORD_ENV, "valueFrom": f"{secret_arn}:password::"}],
    }
    definition: dict[str, Any] = {
        "family": family,
        "networkMode": "awsvpc",
        "requiresCompatibilities": ["FARGATE"],
        "cpu": settings.cpu,
        "memory": settings.memory,
        "containerDefinitions": [container],
        "tags": tags,
    }
    if settings.execution_role_arn:
        definition["executionRoleArn"] = settings.execution_role_arn
    if settings.task_role_arn:
        definition["taskRoleArn"] = settings.task_role_arn
    return definition


def endpoint_url(service: str, namespace: str) -> str:
    """The server's address inside the deployment (a real deployment registers it in private DNS)."""
    return f"http://{service}.{namespace}:{CROMWELL_PORT}"
