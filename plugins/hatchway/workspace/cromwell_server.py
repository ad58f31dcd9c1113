"""A Cromwell server of a workspace's own (``mode: per_workspace``): ECS + RDS + Secrets Manager.

Each public method of :class:`CromwellServer` is one task of ``cromwell_server_provision`` and
an *ensure*: it looks its resource up first, creates only what is missing and converges tags
(and the service's revision and count), so a repeat makes no mutating call. A step finds what
an earlier step made by name, not through XCom: no step passes or returns a secret.

What gets made, per workspace: a secret with the database credentials, a MySQL RDS instance
(or a database of its own on ``shared_db_instance``), a task definition family and a Fargate
service of one task in the deployment's one ECS cluster. Every resource carries the
workspace's tags; the cluster carries the deployment's. Names come from
:class:`hatchway.domain.names.WorkspaceNames`. Instance identifiers and task definition
families are account-wide names, so a found one is used or deleted only when its
``hatchway:platform`` tag is this deployment's.

The endpoint (``http://<service>.<dns_namespace>:8000``) is a name this module derives; a real
deployment registers it in the workspace's private DNS (ECS service discovery or a private
hosted zone), which is not made here.
"""

from __future__ import annotations

import json
import logging
import secrets as pysecrets
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from botocore.exceptions import ClientError

from hatchway.domain.cromwell_server import (
    MYSQL_PORT,
    CromwellServerSettings,
    ServerRecord,
    endpoint_url,
    execution_root,
    render_config,
    task_definition,
)
from hatchway.domain.names import NetworkNames, PlatformNames, WorkspaceNames
from hatchway.domain.workspace import (
    TAG_PLATFORM,
    PlatformConfig,
    QueueMode,
    WorkspaceRequest,
    WorkspaceState,
    platform_tags,
    utcnow,
    workspace_tags,
)
from hatchway.workspace import iam
from hatchway.workspace.provision import read_model, write_model
from hatchway.workspace.clients import AwsClients, error_code, is_not_found, tag_dict, tag_list

log = logging.getLogger(__name__)

COMPONENT = "cromwell"
GONE = {"ServiceNotActiveException", "InvalidDBInstanceState", "InvalidDBInstanceStateFault"}


class CromwellServerError(RuntimeError):
    """A server cannot be made as asked; the message says why and what to do."""


@dataclass(frozen=True)
class DatabaseRequest:
    """A database and user of one workspace on a shared instance (credentials by secret ARN only)."""

    host: str
    port: int
    database: str
    user: str
    secret_arn: str
    admin_secret_arn: str | None


def create_database(clients: AwsClients, request: DatabaseRequest) -> None:
    """Create the workspace's database and user on a shared MySQL instance: SQL, not an AWS API.

    Runs ``CREATE DATABASE IF NOT EXISTS``, ``CREATE USER IF NOT EXISTS``, ``ALTER USER`` (the
    stored password) and ``GRANT ALL`` with ``pymysql`` as the instance's admin (the secret
    ``shared_db_admin_secret_arn``). moto serves no MySQL, so the tests replace this function
    and check it was asked for; ``pymysql`` must be installed where the task runs.
    """
    try:
        import pymysql
    except ImportError as exc:
        raise CromwellServerError(
            f"shared_db_instance needs pymysql on the workers to create database {request.database!r} and "
            f"user {request.user!r}; install it, or create them by hand and run again") from exc
    if not request.admin_secret_arn:
        raise CromwellServerError("shared_db_instance is set but shared_db_admin_secret_arn is not")
    admin = json.loads(clients.secrets.get_secret_value(SecretId=request.admin_secret_arn)["SecretString"])
    own = json.loads(clients.secrets.get_secret_value(SecretId=request.secret_arn)["SecretString"])
    conn = pymysql.connect(host=request.host, port=request.port, user=admin["username"],
                           password=admin["password"], ssl={"ssl": {}})
    try:
        with conn.cursor() as cur:
            # Names are checked by WorkspaceNames (letters, digits, '_'); values are parameters.
            cur.execute(f"CREATE DATABASE IF NOT EXISTS `{request.database}`")
            cur.execute("CREATE USER IF NOT EXISTS %s@'%%' IDENTIFIED BY %s", (request.user, own["password"]))
            cur.execute("ALTER USER %s@'%%' IDENTIFIED BY %s", (request.user, own["password"]))
            cur.execute(f"GRANT ALL PRIVILEGES ON `{request.database}`.* TO %s@'%%'", (request.user,))
        conn.commit()
    finally:
        conn.close()


def read_server(clients: AwsClients, config: PlatformConfig, workspace: str) -> ServerRecord | None:
    """The record of a workspace's server (its endpoint), or None."""
    return read_model(clients, config, WorkspaceNames(config.prefix, workspace).cromwell_record_key, ServerRecord)


def _write_server(clients: AwsClients, config: PlatformConfig, record: ServerRecord, tags: dict[str, str]) -> None:
    write_model(clients, config, WorkspaceNames(config.prefix, record.workspace).cromwell_record_key, record, tags)


def _ecs_tags(tags: dict[str, str]) -> list[dict[str, str]]:
    return tag_list(tags, "key", "value")


class CromwellServer:
    """The Cromwell server of one workspace.

    :param clients: AWS clients (from the Airflow connection).
    :param config: the deployment's configuration.
    :param workspace: the workspace name (it must be provisioned).
    :param settings: how servers are made (``server`` of ``hatchway_cromwell_config``).
    """

    STEPS = ("plan", "ensure_secret", "ensure_database", "ensure_cluster", "ensure_task_definition",
             "ensure_service", "record")

    def __init__(self, clients: AwsClients, config: PlatformConfig, workspace: str,
                 settings: CromwellServerSettings | None = None):
        self.clients = clients
        self.config = config
        self.workspace = workspace
        self.settings = settings or CromwellServerSettings()
        self.names = WorkspaceNames(config.prefix, workspace)
        self.platform = PlatformNames(config.prefix)

    # -- what the workspace already has ----------------------------------------------
    @cached_property
    def workspace_record(self):
        from hatchway.workspace.provision import read_record

        return read_record(self.clients, self.config, self.workspace)

    @cached_property
    def tags(self) -> dict[str, str]:
        record = self.workspace_record
        if record is None:
            raise CromwellServerError(f"workspace {self.workspace!r} has no record: run workspace_provision first")
        return workspace_tags(self.config, WorkspaceRequest(workspace=record.workspace, owner=record.owner,
                                                           cost_center=record.cost_center))

    def _job_queue_arn(self) -> str:
        name = (self.platform.shared_job_queue if self.config.queue_mode is QueueMode.SHARED
                else self.names.job_queue)
        found = self.clients.batch.describe_job_queues(jobQueues=[name])["jobQueues"]
        if not found:
            raise CromwellServerError(f"job queue {name!r} is missing: run workspace_provision for "
                                      f"{self.workspace!r} first")
        return found[0]["jobQueueArn"]

    def _job_role_arn(self) -> str:
        try:
            return self.clients.iam.get_role(RoleName=self.names.job_role)["Role"]["Arn"]
        except ClientError as exc:
            if is_not_found(exc):
                raise CromwellServerError(f"job role {self.names.job_role!r} is missing: run workspace_provision "
                                          f"for {self.workspace!r} first") from exc
            raise

    def _network(self) -> dict[str, list[str]]:
        """Subnets and security group of the workspace's network (or the shared one), else the settings'."""
        own = not (self.config.shared_network or self.config.queue_mode is QueueMode.SHARED)
        net = NetworkNames(self.names.base if own else self.platform.shared_network)
        ec2, scope = self.clients.ec2, {"Name": f"tag:{TAG_PLATFORM}", "Values": [self.config.prefix]}
        vpcs = ec2.describe_vpcs(Filters=[{"Name": "tag:Name", "Values": [net.vpc]}, scope])["Vpcs"]
        if vpcs:
            vpc = vpcs[0]["VpcId"]
            subnets = ec2.describe_subnets(Filters=[
                {"Name": "tag:Name", "Values": [f"{net.private_subnet}-0", f"{net.private_subnet}-1"]},
                {"Name": "vpc-id", "Values": [vpc]}, scope])["Subnets"]
            groups = ec2.describe_security_groups(Filters=[
                {"Name": "group-name", "Values": [net.batch_security_group]},
                {"Name": "vpc-id", "Values": [vpc]}])["SecurityGroups"]
            if subnets and groups:
                return {"subnets": sorted(s["SubnetId"] for s in subnets), "securityGroups": [groups[0]["GroupId"]]}
        if self.settings.subnets and self.settings.security_groups:
            return {"subnets": sorted(self.settings.subnets), "securityGroups": sorted(self.settings.security_groups)}
        raise CromwellServerError(f"workspace {self.workspace!r} has no network and the server settings name no "
                                  "subnets and security_groups: run workspace_provision, or set them")

    def _secret(self) -> dict[str, Any] | None:
        try:
            found = self.clients.secrets.describe_secret(SecretId=self.names.cromwell_db_secret)
        except ClientError as exc:
            if is_not_found(exc):
                return None
            raise
        return None if found.get("DeletedDate") else found

    def _instance(self, identifier: str) -> dict[str, Any] | None:
        try:
            found = self.clients.rds.describe_db_instances(DBInstanceIdentifier=identifier)["DBInstances"]
        except ClientError as exc:
            if is_not_found(exc):
                return None
            raise
        return found[0] if found else None

    def _ours(self, tags: dict[str, str]) -> bool:
        return tags.get(TAG_PLATFORM) == self.config.prefix

    # -- plan ------------------------------------------------------------------------------
    def plan(self) -> dict[str, Any]:
        """Check the workspace is there (record, queue, role, network) before making anything."""
        record = self.workspace_record
        if record is None or record.state is not WorkspaceState.ACTIVE:
            raise CromwellServerError(f"workspace {self.workspace!r} is not provisioned (or torn down): run "
                                      "workspace_provision first")
        self._job_queue_arn(), self._job_role_arn(), self._network()
        if self.settings.shared_db_instance and self._instance(self.settings.shared_db_instance) is None:
            raise CromwellServerError(f"shared_db_instance {self.settings.shared_db_instance!r} does not exist")
        return {"workspace": self.workspace, "shared_db": bool(self.settings.shared_db_instance)}

    # -- a. the credentials -------------------------------------------------------------
    def ensure_secret(self) -> dict[str, Any]:
        """The database credentials, generated once and kept only in Secrets Manager; returns the ARN."""
        found = self._secret()
        if found:
            missing = iam.tags_to_set(tag_dict(found.get("Tags")), self.tags)
            if missing:
                self.clients.secrets.tag_resource(SecretId=found["ARN"], Tags=tag_list(missing))
            return {"secret_arn": found["ARN"]}
        value = json.dumps({"username": self.names.cromwell_db_user, "password": pysecrets.token_urlsafe(24)})
        arn = self.clients.secrets.create_secret(
            Name=self.names.cromwell_db_secret, SecretString=value, Tags=tag_list(self.tags),
            Description=f"Cromwell database credentials of Hatchway workspace {self.workspace}")["ARN"]
        return {"secret_arn": arn}

    def _secret_arn(self) -> str:
        found = self._secret()
        if not found:
            raise CromwellServerError(f"secret {self.names.cromwell_db_secret!r} is missing: run ensure_secret")
        return found["ARN"]

    # -- b. the database --------------------------------------------------------------
    def ensure_database(self) -> dict[str, Any]:
        """The workspace's MySQL instance, or its database on the shared instance."""
        if self.settings.shared_db_instance:
            return self._ensure_shared_database()
        rds, ident = self.clients.rds, self.names.cromwell_db_instance
        secret = self._secret()
        if secret is None:
            raise CromwellServerError(f"secret {self.names.cromwell_db_secret!r} is missing: run ensure_secret")
        instance = self._instance(ident)
        if instance:
            tags = tag_dict(instance.get("TagList"))
            if not self._ours(tags):
                raise CromwellServerError(f"RDS instance {ident!r} belongs to deployment {tags.get(TAG_PLATFORM)!r}")
            if instance["DBInstanceStatus"] == "deleting":
                raise CromwellServerError(f"RDS instance {ident!r} is being deleted: run again once it is gone")
            missing = iam.tags_to_set(tags, self.tags)
            if missing:
                rds.add_tags_to_resource(ResourceName=instance["DBInstanceArn"], Tags=tag_list(missing))
            if secret.get("CreatedDate") and secret["CreatedDate"] > instance["InstanceCreateTime"]:
                # The secret was made again after the instance (it was lost): the instance takes its password.
                rds.modify_db_instance(DBInstanceIdentifier=ident, MasterUserPassword=self._password(),
                                       ApplyImmediately=True)
        else:
            args: dict[str, Any] = {}
            if self.settings.db_engine_version:
                args["EngineVersion"] = self.settings.db_engine_version
            instance = rds.create_db_instance(
                DBInstanceIdentifier=ident, DBInstanceClass=self.settings.db_instance_class, Engine="mysql",
                AllocatedStorage=self.settings.db_allocated_storage, DBName=self.names.cromwell_database,
                MasterUsername=self.names.cromwell_db_user, MasterUserPassword=self._password(),
                PubliclyAccessible=False, StorageEncrypted=True, Tags=tag_list(self.tags), **args)["DBInstance"]
        endpoint = self._endpoint(ident, instance)
        return {"db_identifier": ident, "database": self.names.cromwell_database, **endpoint}

    def _password(self) -> str:
        value = self.clients.secrets.get_secret_value(SecretId=self.names.cromwell_db_secret)["SecretString"]
        return json.loads(value)["password"]

    def _endpoint(self, ident: str, instance: dict[str, Any]) -> dict[str, Any]:
        if instance.get("DBInstanceStatus") != "available" or not instance.get("Endpoint"):
            # A new instance takes minutes on AWS (moto makes it available at once).
            self.clients.rds.get_waiter("db_instance_available").wait(
                DBInstanceIdentifier=ident, WaiterConfig={"Delay": 30, "MaxAttempts": 60})
            instance = self._instance(ident) or {}
        endpoint = instance.get("Endpoint") or {}
        return {"host": endpoint.get("Address", ""), "port": int(endpoint.get("Port", MYSQL_PORT))}

    def _ensure_shared_database(self) -> dict[str, Any]:
        ident = self.settings.shared_db_instance
        instance = self._instance(ident)
        if instance is None:
            raise CromwellServerError(f"shared_db_instance {ident!r} does not exist")
        endpoint = self._endpoint(ident, instance)
        current = read_server(self.clients, self.config, self.workspace)
        if not (current and current.shared_db and current.db_identifier == ident):
            create_database(self.clients, DatabaseRequest(
                host=endpoint["host"], port=endpoint["port"], database=self.names.cromwell_database,
                user=self.names.cromwell_db_user, secret_arn=self._secret_arn(),
                admin_secret_arn=self.settings.shared_db_admin_secret_arn))
        return {"db_identifier": ident, "database": self.names.cromwell_database, "shared": True, **endpoint}

    def _database(self) -> dict[str, Any]:
        """Where the database is, looked up (no creation)."""
        ident = self.settings.shared_db_instance or self.names.cromwell_db_instance
        instance = self._instance(ident)
        if instance is None:
            raise CromwellServerError(f"RDS instance {ident!r} is missing: run ensure_database")
        endpoint = instance.get("Endpoint") or {}
        return {"db_identifier": ident, "host": endpoint.get("Address", ""),
                "port": int(endpoint.get("Port", MYSQL_PORT))}

    # -- c. the cluster and the task definition -----------------------------------------
    def _find_cluster(self) -> dict[str, Any] | None:
        found = self.clients.ecs.describe_clusters(clusters=[self.platform.cromwell_cluster],
                                                   include=["TAGS"])["clusters"]
        return next((c for c in found if c.get("status") == "ACTIVE"), None)

    def ensure_cluster(self) -> dict[str, Any]:
        """The deployment's one ECS cluster for Cromwell servers (deployment tags, no workspace tag)."""
        ecs, tags = self.clients.ecs, platform_tags(self.config, COMPONENT)
        cluster = self._find_cluster()
        if cluster:
            missing = iam.tags_to_set(tag_dict(cluster.get("tags"), "key", "value"), tags)
            if missing:
                ecs.tag_resource(resourceArn=cluster["clusterArn"], tags=_ecs_tags(missing))
            return {"cluster_arn": cluster["clusterArn"]}
        made = ecs.create_cluster(clusterName=self.platform.cromwell_cluster, tags=_ecs_tags(tags))["cluster"]
        return {"cluster_arn": made["clusterArn"]}

    def wanted_task_definition(self) -> dict[str, Any]:
        db = self._database()
        text = render_config(
            region=self.config.region, job_queue_arn=self._job_queue_arn(), job_role_arn=self._job_role_arn(),
            bucket=self.config.bucket, root=execution_root(self.config.bucket, self.workspace), db_host=db["host"],
            db_port=db["port"], database=self.names.cromwell_database, db_user=self.names.cromwell_db_user,
            hog_factor=self.settings.hog_factor)
        return task_definition(family=self.names.cromwell_task_family, settings=self.settings, config_text=text,
                               secret_arn=self._secret_arn(), tags=_ecs_tags(self.tags))

    def _latest_task_definition(self) -> dict[str, Any] | None:
        try:
            found = self.clients.ecs.describe_task_definition(taskDefinition=self.names.cromwell_task_family,
                                                              include=["TAGS"])
        except ClientError as exc:
            if error_code(exc) == "ClientException" or is_not_found(exc):
                return None
            raise
        definition = found["taskDefinition"]
        if definition.get("status", "ACTIVE") != "ACTIVE":
            return None
        return {**definition, "tags": found.get("tags", [])}

    def ensure_task_definition(self) -> dict[str, Any]:
        """Register a revision only when the wanted definition differs from the latest active one."""
        ecs, wanted = self.clients.ecs, self.wanted_task_definition()
        latest = self._latest_task_definition()
        if latest and self._ours(tag_dict(latest["tags"], "key", "value")) and _same_definition(latest, wanted):
            missing = iam.tags_to_set(tag_dict(latest["tags"], "key", "value"), self.tags)
            if missing:
                ecs.tag_resource(resourceArn=latest["taskDefinitionArn"], tags=_ecs_tags(missing))
            return {"task_definition_arn": latest["taskDefinitionArn"], "registered": False}
        if latest and not self._ours(tag_dict(latest["tags"], "key", "value")):
            raise CromwellServerError(f"task definition family {self.names.cromwell_task_family!r} belongs to "
                                      "another deployment")
        arn = ecs.register_task_definition(**wanted)["taskDefinition"]["taskDefinitionArn"]
        return {"task_definition_arn": arn, "registered": True}

    # -- d. the service -------------------------------------------------------------------
    def _find_service(self) -> dict[str, Any] | None:
        try:
            found = self.clients.ecs.describe_services(cluster=self.platform.cromwell_cluster,
                                                       services=[self.names.cromwell_service],
                                                       include=["TAGS"])["services"]
        except ClientError as exc:
            if is_not_found(exc):
                return None
            raise
        return next((s for s in found if s.get("status") == "ACTIVE"), None)

    def ensure_service(self) -> dict[str, Any]:
        """One Fargate task of the latest revision, in the workspace's network; converges revision and count."""
        ecs = self.clients.ecs
        latest = self._latest_task_definition()
        if latest is None:
            raise CromwellServerError(f"task definition {self.names.cromwell_task_family!r} is missing: run "
                                      "ensure_task_definition")
        network = {"awsvpcConfiguration": {**self._network(), "assignPublicIp": "DISABLED"}}
        service = self._find_service()
        if service:
            missing = iam.tags_to_set(tag_dict(service.get("tags"), "key", "value"), self.tags)
            if missing:
                ecs.tag_resource(resourceArn=service["serviceArn"], tags=_ecs_tags(missing))
            update: dict[str, Any] = {}
            if service.get("taskDefinition") != latest["taskDefinitionArn"]:
                update["taskDefinition"] = latest["taskDefinitionArn"]
            if service.get("desiredCount") != 1:
                update["desiredCount"] = 1
            current = (service.get("networkConfiguration") or {}).get("awsvpcConfiguration") or {}
            want = network["awsvpcConfiguration"]
            if (sorted(current.get("subnets", [])), sorted(current.get("securityGroups", []))) != (
                    sorted(want["subnets"]), sorted(want["securityGroups"])):
                update["networkConfiguration"] = network
            if update:
                ecs.update_service(cluster=self.platform.cromwell_cluster, service=self.names.cromwell_service,
                                   **update)
            return {"service_arn": service["serviceArn"], "updated": sorted(update)}
        made = ecs.create_service(
            cluster=self.platform.cromwell_cluster, serviceName=self.names.cromwell_service,
            taskDefinition=latest["taskDefinitionArn"], desiredCount=1, launchType="FARGATE",
            networkConfiguration=network, tags=_ecs_tags(self.tags), propagateTags="SERVICE")["service"]
        return {"service_arn": made["serviceArn"], "updated": []}

    # -- the record ---------------------------------------------------------------------
    def endpoint(self) -> str:
        return endpoint_url(self.names.cromwell_service, f"{self.config.prefix}.{self.settings.dns_namespace}")

    def record(self) -> dict[str, Any]:
        """Map the workspace to its server's endpoint (written only when it changed)."""
        latest = self._latest_task_definition()
        if latest is None or self._find_service() is None:
            raise CromwellServerError(f"the server of {self.workspace!r} is incomplete: run the ensures first")
        db = self._database()
        current = read_server(self.clients, self.config, self.workspace)
        wanted = ServerRecord(
            workspace=self.workspace, endpoint=self.endpoint(), cluster=self.platform.cromwell_cluster,
            service=self.names.cromwell_service, task_definition_arn=latest["taskDefinitionArn"],
            db_identifier=db["db_identifier"], database=self.names.cromwell_database,
            shared_db=bool(self.settings.shared_db_instance), secret_arn=self._secret_arn(),
            created_at=current.created_at if current else utcnow())
        if current is None or not current.same_as(wanted):
            _write_server(self.clients, self.config, wanted, self.tags)
        return {"workspace": self.workspace, "endpoint": wanted.endpoint}

    # -- teardown and purge ---------------------------------------------------------------
    def stop(self) -> dict[str, Any]:
        """Scale the service to 0 and delete it; the database, secret and definitions stay."""
        ecs, stopped = self.clients.ecs, False
        service = self._find_service()
        if service:
            try:
                if service.get("desiredCount"):
                    ecs.update_service(cluster=self.platform.cromwell_cluster, service=self.names.cromwell_service,
                                       desiredCount=0)
                ecs.delete_service(cluster=self.platform.cromwell_cluster, service=self.names.cromwell_service,
                                   force=True)
                stopped = True
            except ClientError as exc:
                if not (is_not_found(exc) or error_code(exc) in GONE):
                    raise
        current = read_server(self.clients, self.config, self.workspace)
        if current and current.state != "stopped":
            current.state = "stopped"
            _write_server(self.clients, self.config, current, {})
        return {"stopped_service": stopped}

    def purge(self) -> dict[str, Any]:
        """:meth:`stop`, then delete the definitions, the database, the secret, the record, and the
        cluster once no server of another workspace is left in it. Whatever is gone already is skipped."""
        out: dict[str, Any] = self.stop()
        out["deregistered"] = self._deregister_definitions()
        out["deleted_db_instance"] = self._delete_instance()
        secret = self._secret()
        if secret and self._ours(tag_dict(secret.get("Tags"))):
            try:
                self.clients.secrets.delete_secret(SecretId=secret["ARN"], ForceDeleteWithoutRecovery=True)
            except ClientError as exc:
                if not is_not_found(exc):
                    raise
        out["deleted_secret"] = bool(secret)
        self.clients.s3.delete_object(Bucket=self.config.bucket, Key=self.names.cromwell_record_key)
        out["deleted_cluster"] = self._delete_cluster_if_empty()
        return out

    def _deregister_definitions(self) -> int:
        ecs, family, count = self.clients.ecs, self.names.cromwell_task_family, 0
        for page in ecs.get_paginator("list_task_definitions").paginate(familyPrefix=family, status="ACTIVE"):
            for arn in page["taskDefinitionArns"]:
                if arn.rsplit("/", 1)[-1].rsplit(":", 1)[0] != family:
                    continue  # a family that only starts with ours
                tags = ecs.describe_task_definition(taskDefinition=arn, include=["TAGS"]).get("tags", [])
                if not self._ours(tag_dict(tags, "key", "value")):
                    continue
                ecs.deregister_task_definition(taskDefinition=arn)
                count += 1
        return count

    def _delete_instance(self) -> bool:
        if self.settings.shared_db_instance:
            # The shared instance is not the workspace's: its database stays (drop it by hand if wanted).
            return False
        ident = self.names.cromwell_db_instance
        instance = self._instance(ident)
        if instance is None or instance["DBInstanceStatus"] == "deleting":
            return False
        if not self._ours(tag_dict(instance.get("TagList"))):
            return False
        args: dict[str, Any] = {"SkipFinalSnapshot": True}
        if not self.settings.skip_final_snapshot:
            args = {"SkipFinalSnapshot": False,
                    "FinalDBSnapshotIdentifier": f"{ident}-final-{utcnow():%Y%m%d%H%M%S}"}
        try:
            self.clients.rds.delete_db_instance(DBInstanceIdentifier=ident, **args)
        except ClientError as exc:
            if not (is_not_found(exc) or error_code(exc) in GONE):
                raise
        return True

    def _delete_cluster_if_empty(self) -> bool:
        ecs, cluster = self.clients.ecs, self._find_cluster()
        if cluster is None:
            return False
        arns = [a for page in ecs.get_paginator("list_services").paginate(cluster=cluster["clusterArn"])
                for a in page["serviceArns"]]
        active = [s for i in range(0, len(arns), 10)
                  for s in ecs.describe_services(cluster=cluster["clusterArn"], services=arns[i:i + 10])["services"]
                  if s.get("status") == "ACTIVE"]
        if active:
            return False
        try:
            ecs.delete_cluster(cluster=cluster["clusterArn"])
        except ClientError as exc:
            # Another workspace's server starting right now, or tasks still draining: the next purge retries.
            if error_code(exc) in {"ClusterContainsServicesException", "ClusterContainsTasksException"}:
                log.info("cluster %s is still in use: kept", cluster["clusterName"])
                return False
            if not is_not_found(exc):
                raise
        return True


def _same_definition(found: dict[str, Any], wanted: dict[str, Any]) -> bool:
    """Is the registered revision the wanted one, in everything Hatchway sets?"""
    for key, value in wanted.items():
        if key in ("tags", "containerDefinitions"):
            continue
        if found.get(key) != value:
            return False
    for key in ("executionRoleArn", "taskRoleArn"):
        if found.get(key) and key not in wanted:
            return False
    containers = found.get("containerDefinitions") or []
    if len(containers) != len(wanted["containerDefinitions"]):
        return False
    for have, want in zip(containers, wanted["containerDefinitions"]):
        for key, value in want.items():
            current = have.get(key)
            if key == "portMappings":
                current = [{"containerPort": p.get("containerPort"), "protocol": p.get("protocol", "tcp")}
                           for p in current or []]
            if current != value:
                return False
    return True


def ensure_server(clients: AwsClients, config: PlatformConfig, workspace: str,
                  settings: CromwellServerSettings | None = None) -> ServerRecord:
    """Every step of ``cromwell_server_provision`` in order; returns the record (no secret in it)."""
    server = CromwellServer(clients, config, workspace, settings)
    for step in CromwellServer.STEPS:
        getattr(server, step)()
    return read_server(clients, config, workspace)


def teardown_server(clients: AwsClients, config: PlatformConfig, workspace: str,
                    settings: CromwellServerSettings | None = None) -> dict[str, Any]:
    """Stop the workspace's server (the service goes; data, database and secret stay)."""
    return CromwellServer(clients, config, workspace, settings).stop()


def purge_server(clients: AwsClients, config: PlatformConfig, workspace: str,
                 settings: CromwellServerSettings | None = None) -> dict[str, Any]:
    """Delete every resource of the workspace's server, and the cluster once it is empty."""
    return CromwellServer(clients, config, workspace, settings).purge()
