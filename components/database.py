"""Database: Airflow's metadata Postgres — RDS on EKS, a StatefulSet on minikube.

On EKS the instance is observable on its own: Performance Insights (in the Standard mode of
Database Insights), Enhanced Monitoring with its IAM role, the PostgreSQL and upgrade logs
exported into log groups this program creates with a retention, and slow statements logged
through the parameter group. `DatabaseAlarms` (components/database_alarms.py) turns its
metrics into alarms.

`database.restoredFrom` restores a snapshot into a new instance that becomes the one Airflow
uses; the previous instance stays declared and protected until the operator lets it go.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s
import pulumi_random as random

from components.aws_catalog import partition_of
from components.iam import (
    Document,
    key_policy,
    log_group_arn,
    logs_key_statement,
    service_assume_role_policy,
)
from components.keys import customer_key
from components.naming import PART_OF, resource_prefix, tags
from components.settings import Settings

POSTGRES_IMAGES = {
    "14": "postgres:14.15",
    "15": "postgres:15.10",
    "16": "postgres:16.6",
    "17": "postgres:17.2",
}
"""Official postgres images for the in-cluster database, pinned per major version."""

LOG_EXPORTS = ("postgresql", "upgrade")
"""RDS for PostgreSQL log types exported to CloudWatch Logs (`EnableCloudwatchLogsExports`
accepts postgresql, upgrade and iam-db-auth-error; IAM authentication is off here). The
upgrade log records major version upgrades, which this program performs in place."""

AUTOVACUUM_LOG_MS = 10000
"""Autovacuum runs longer than this are logged (`log_autovacuum_min_duration`)."""

MONITORING_POLICY = "service-role/AmazonRDSEnhancedMonitoringRole"
"""The AWS managed policy for the Enhanced Monitoring role (RDS User Guide, "Setting up and
enabling Enhanced Monitoring": the role is trusted by monitoring.rds.amazonaws.com)."""

DATABASE_INSIGHTS_MODE = "standard"
"""RDS can default new instances to the paid Advanced mode of Database Insights, which also
needs 465 days of Performance Insights retention; Standard keeps the free 7-day tier."""

_IDENTIFIER_MAX = 63


def monitoring_policy_arn(region: str) -> str:
    """The Enhanced Monitoring managed policy in `region`'s partition (aws, aws-cn, ...)."""
    return f"arn:{partition_of(region)}:iam::aws:policy/{MONITORING_POLICY}"


def instance_identifier(settings: Settings) -> str:
    """The RDS identifier of the instance the program creates first (not restored)."""
    return f"{resource_prefix(settings)}-metadata"


def restored_identifier(base: str, snapshot: str) -> str:
    """The identifier of the instance restored from `snapshot`: `<base>-from-<snapshot>`.

    RDS identifiers are 1-63 letters, digits and hyphens, start with a letter, and have no
    trailing or doubled hyphen (botocore RDS model, `DBInstanceIdentifier`). The snapshot's
    own name is kept readable (without an ARN, an `rds:` prefix or a repeat of `base`);
    when it does not fit, it is shortened and a digest of the full snapshot id keeps two
    snapshots from mapping to one identifier.
    """
    tail = snapshot.rsplit(":", 1)[-1].lower()
    tail = tail.removeprefix(f"{base}-")
    tail = re.sub(r"-+", "-", re.sub(r"[^a-z0-9]", "-", tail)).strip("-") or "snapshot"
    ident = f"{base}-from-{tail}"
    if len(ident) > _IDENTIFIER_MAX:
        digest = hashlib.sha256(snapshot.encode()).hexdigest()[:6]
        room = _IDENTIFIER_MAX - len(f"{base}-from--{digest}")
        if room < 1:
            raise ValueError(f"{base!r} leaves no room for a restored instance's identifier")
        ident = f"{base}-from-{tail[:room].rstrip('-')}-{digest}"
    return ident


def rds_log_group_name(identifier: str, log_type: str) -> str:
    """Where RDS publishes an exported log: `/aws/rds/instance/<identifier>/<log type>`.

    RDS User Guide, "Publishing PostgreSQL logs to Amazon CloudWatch Logs": RDS writes
    into this group and creates it (without retention) when it does not exist yet.
    """
    return f"/aws/rds/instance/{identifier}/{log_type}"


def rds_logs_key_policy(
    partition: str, region: str, account_id: str, log_groups: list[str]
) -> Document:
    """The key of the database's log groups: the account, and CloudWatch Logs for them only.

    CloudWatch Logs User Guide, "Encrypt log data in CloudWatch Logs using AWS KMS": the
    regional principal `logs.<region>.amazonaws.com` gets the encrypt/decrypt family, with
    `kms:EncryptionContext:aws:logs:arn` naming the log groups (ArnEquals on a list
    matches any of them). The account statement is the default key policy's.
    """
    if not log_groups:
        raise ValueError("the key needs at least one log group")
    arns = [log_group_arn(partition, region, account_id, g) for g in log_groups]
    logs = logs_key_statement("CloudWatchLogsForTheDatabaseLogGroups", region, arns)
    return key_policy(partition, account_id, logs)


def logging_parameters(slow_query_ms: int) -> list[dict[str, str]]:
    """The parameter group's logging settings, applied without a reboot.

    All three have a context other than `postmaster` in PostgreSQL (`postgres
    --describe-config`), which RDS lists as dynamic: the `immediate` apply method is
    accepted for them (RDS User Guide, "Working with DB parameter groups": static
    parameters need `pending-reboot`).
    """
    values = {
        "log_min_duration_statement": str(slow_query_ms),
        "log_lock_waits": "1",
        "log_autovacuum_min_duration": str(AUTOVACUUM_LOG_MS),
    }
    return [{"name": k, "value": v, "apply_method": "immediate"} for k, v in values.items()]


@dataclass(frozen=True)
class DatabaseArgs:
    settings: Settings
    # eks: where the instance lives and who may reach it
    vpc_id: pulumi.Input[str] | None = None
    subnet_ids: pulumi.Input[list[str]] | None = None
    allowed_security_group_id: pulumi.Input[str] | None = None
    # minikube: the namespace for the StatefulSet
    namespace: str = "airflow-postgres"


class Database(pulumi.ComponentResource):
    """Airflow's metadata Postgres. Same outputs on both targets."""

    host: pulumi.Output[str]
    port: pulumi.Output[int]
    database: pulumi.Output[str]
    user: pulumi.Output[str]
    password: pulumi.Output[str]
    sslmode: str
    instance_identifier: pulumi.Output[str] | None
    """The RDS instance Airflow uses (the restored one after a restore); None on minikube."""
    instance_arn: pulumi.Output[str] | None

    def __init__(
        self, name: str, args: DatabaseArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("airflow-platform:database:Database", name, None, opts)
        s = args.settings
        password = random.RandomPassword(
            f"{name}-password",
            length=32,
            special=False,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.password = pulumi.Output.secret(password.result)
        self.database = pulumi.Output.from_input(s.database.name)
        self.user = pulumi.Output.from_input(s.database.username)
        self.instance_identifier = None
        self.instance_arn = None
        if s.is_eks:
            self._rds(name, args)
        else:
            self._in_cluster(name, args)
        outputs: dict[str, Any] = {
            "host": self.host,
            "port": self.port,
            "database": self.database,
            "user": self.user,
            "password": self.password,
        }
        if self.instance_identifier is not None:
            outputs["instance_identifier"] = self.instance_identifier
            outputs["instance_arn"] = self.instance_arn
        self.register_outputs(outputs)

    def _rds(self, name: str, args: DatabaseArgs) -> None:
        s = args.settings
        db = s.database
        if args.vpc_id is None or args.subnet_ids is None or args.allowed_security_group_id is None:
            raise ValueError(
                "an RDS database needs vpc_id, subnet_ids and allowed_security_group_id"
            )
        child = pulumi.ResourceOptions(parent=self)
        subnets = aws.rds.SubnetGroup(
            f"{name}-subnets",
            subnet_ids=args.subnet_ids,
            tags=tags(s, f"{name}-subnets"),
            opts=child,
        )
        sg = aws.ec2.SecurityGroup(
            f"{name}-sg",
            vpc_id=args.vpc_id,
            description="Airflow metadata database: Postgres from the cluster only",
            tags=tags(s, f"{name}-sg"),
            opts=child,
        )
        # A separate rule, so the instance waits for its security group only and
        # starts while the cluster is still being created.
        aws.vpc.SecurityGroupIngressRule(
            f"{name}-from-cluster",
            security_group_id=sg.id,
            referenced_security_group_id=args.allowed_security_group_id,
            ip_protocol="tcp",
            from_port=5432,
            to_port=5432,
            description="Postgres from the EKS cluster",
            tags=tags(s, f"{name}-from-cluster"),
            opts=child,
        )
        # One parameter group per major version, under its own name: a major upgrade creates
        # the new group first, moves the instance to it, and only then deletes the old one.
        params = aws.rds.ParameterGroup(
            f"{name}-params-pg{db.engine_version}",
            family=f"postgres{db.engine_version}",
            description="Airflow metadata: TLS required",
            parameters=[
                aws.rds.ParameterGroupParameterArgs(name="rds.force_ssl", value="1"),
                *(
                    aws.rds.ParameterGroupParameterArgs(**p)
                    for p in logging_parameters(db.slow_query_ms)
                ),
            ],
            tags=tags(s, f"{name}-params"),
            opts=child,
        )
        monitoring_role = self._monitoring_role(name, s) if db.monitoring_interval_seconds else None

        original = instance_identifier(s)
        identifiers = [original]
        if db.restored_from:
            identifiers.append(restored_identifier(original, db.restored_from))
        # The restored instance gets its own log groups. The original's stay in the key's
        # policy even once dropped: they are retained, and the original may still run.
        groups = [rds_log_group_name(i, t) for i in identifiers for t in LOG_EXPORTS]
        key = None
        if s.security.customer_managed_keys:
            region = s.region
            key = customer_key(
                f"{name}-logs",
                s,
                "metadata database log groups",
                lambda partition, account: rds_logs_key_policy(partition, region, account, groups),
                self,
            )
        common: dict[str, Any] = {
            "engine": "postgres",
            "engine_version": db.engine_version,
            "instance_class": db.instance_class,
            "allocated_storage": db.allocated_storage_gb,
            "storage_type": "gp3",
            "storage_encrypted": True,
            "publicly_accessible": False,
            "db_subnet_group_name": subnets.name,
            "vpc_security_group_ids": [sg.id],
            "parameter_group_name": params.name,
            # On a restore, RDS takes the database name and the master user from the
            # snapshot (the provider leaves db_name out for postgres) and the provider sets
            # this password right after, so the metadata Secret keeps working.
            "db_name": db.name,
            "username": db.username,
            "password": self.password,
            "multi_az": db.multi_az,
            "backup_retention_period": db.backup_retention_days,
            "skip_final_snapshot": not s.is_production,
            "copy_tags_to_snapshot": True,
            "auto_minor_version_upgrade": True,
            # A major engine upgrade is an in-place modification, applied when `up` runs
            # (not at the next maintenance window, while the old parameter group is deleted).
            "allow_major_version_upgrade": True,
            "apply_immediately": True,
            "iam_database_authentication_enabled": False,
            "database_insights_mode": DATABASE_INSIGHTS_MODE,
            "performance_insights_enabled": db.performance_insights,
            "performance_insights_retention_period": (
                db.performance_insights_retention_days if db.performance_insights else None
            ),
            "monitoring_interval": db.monitoring_interval_seconds,
            "monitoring_role_arn": monitoring_role.arn if monitoring_role else None,
            "enabled_cloudwatch_logs_exports": list(LOG_EXPORTS),
        }
        instances: list[aws.rds.Instance] = []
        for index, identifier in enumerate(identifiers):
            restored = index == 1
            if not restored and db.restored_from and not db.keep_original:
                # Dropped from the program. The `up` that restored it recorded the original
                # as protected and retained (below), so Pulumi refuses until the operator
                # runs `pulumi state unprotect`, and then only forgets it: the operator
                # deletes it in AWS (pulumi/pulumi deploy/step.go, DeleteStep.Apply).
                continue
            suffix = "-restored" if restored else ""
            instances.append(
                self._instance(name, suffix, identifier, common, key, s, restored=restored)
            )
        active = instances[-1]
        self.host = active.address
        self.port = active.port
        self.sslmode = "require"
        self.instance_identifier = active.identifier
        self.instance_arn = active.arn

    def _instance(
        self,
        name: str,
        suffix: str,
        identifier: str,
        common: dict[str, Any],
        key: aws.kms.Key | None,
        s: Settings,
        *,
        restored: bool,
    ) -> aws.rds.Instance:
        """One RDS instance with the log groups it writes into."""
        db = s.database
        superseded = bool(db.restored_from) and not restored
        # While a restored instance serves Airflow, the original is kept whatever the
        # stack's protect setting: protected, retained if it is ever dropped, and
        # protected against deletion in AWS too.
        protect = db.protect or superseded
        group_opts = pulumi.ResourceOptions(parent=self, retain_on_delete=superseded)
        groups = [
            aws.cloudwatch.LogGroup(
                f"{name}{suffix}-log-{log_type}",
                name=rds_log_group_name(identifier, log_type),
                retention_in_days=db.log_retention_days,
                kms_key_id=key.arn if key else None,
                tags=tags(s, f"{name}{suffix}-log-{log_type}"),
                opts=group_opts,
            )
            for log_type in LOG_EXPORTS
        ]
        final_snapshot = f"{identifier}-final"
        return aws.rds.Instance(
            f"{name}-instance{suffix}",
            identifier=identifier,
            snapshot_identifier=db.restored_from if restored else None,
            deletion_protection=db.deletion_protection or superseded,
            final_snapshot_identifier=final_snapshot if s.is_production else None,
            tags=tags(s, f"{name}-instance{suffix}"),
            **common,
            # Protected: an update that would delete or replace the instance (a new db name or
            # master user, a changed subnet group, another snapshot, ...) fails instead of
            # taking the data along; retained, so a later removal from the program only
            # makes Pulumi forget it.
            # It waits for its log groups (seconds, next to the minutes RDS takes) because RDS
            # creates a missing group itself, without retention or key, at its first export,
            # and the program's group would then fail as already existing.
            opts=pulumi.ResourceOptions(
                parent=self, protect=protect, retain_on_delete=protect, depends_on=groups
            ),
        )

    def _monitoring_role(self, name: str, s: Settings) -> aws.iam.Role:
        """The role RDS Enhanced Monitoring assumes to publish OS metrics to CloudWatch Logs."""
        role = aws.iam.Role(
            f"{name}-monitoring",
            assume_role_policy=json.dumps(
                service_assume_role_policy("monitoring.rds.amazonaws.com")
            ),
            description="RDS Enhanced Monitoring of the Airflow metadata database",
            tags=tags(s, f"{name}-monitoring"),
            opts=pulumi.ResourceOptions(parent=self),
        )
        aws.iam.RolePolicyAttachment(
            f"{name}-monitoring",
            role=role.name,
            policy_arn=monitoring_policy_arn(s.region),
            opts=pulumi.ResourceOptions(parent=self),
        )
        return role

    def _in_cluster(self, name: str, args: DatabaseArgs) -> None:
        s = args.settings
        db = s.database
        child = pulumi.ResourceOptions(parent=self)
        labels = {
            "app.kubernetes.io/name": "postgres",
            **PART_OF,
        }
        ns = k8s.core.v1.Namespace(
            f"{name}-ns", metadata={"name": args.namespace, "labels": labels}, opts=child
        )
        namespace = ns.metadata.name
        secret = k8s.core.v1.Secret(
            f"{name}-credentials",
            metadata={"name": "postgres-credentials", "namespace": namespace, "labels": labels},
            type="Opaque",
            string_data={"POSTGRES_PASSWORD": self.password},
            opts=child,
        )
        service_spec: Any = {
            "type": "ClusterIP",
            "selector": labels,
            "ports": [{"name": "postgres", "port": 5432, "targetPort": 5432}],
        }
        service = k8s.core.v1.Service(
            f"{name}-service",
            metadata={"name": "postgres", "namespace": namespace, "labels": labels},
            spec=service_spec,
            opts=child,
        )
        statefulset_spec: Any = {
            "serviceName": service.metadata.name,
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "securityContext": {"fsGroup": 999},
                    "containers": [
                        {
                            "name": "postgres",
                            "image": POSTGRES_IMAGES[db.engine_version],
                            # The image's entrypoint runs `postgres` with these arguments.
                            "args": ["-c", f"log_min_duration_statement={db.slow_query_ms}"],
                            "ports": [{"containerPort": 5432, "name": "postgres"}],
                            "env": [
                                {"name": "POSTGRES_DB", "value": db.name},
                                {"name": "POSTGRES_USER", "value": db.username},
                                {
                                    "name": "POSTGRES_PASSWORD",
                                    "valueFrom": {
                                        "secretKeyRef": {
                                            "name": secret.metadata.name,
                                            "key": "POSTGRES_PASSWORD",
                                        }
                                    },
                                },
                                {"name": "PGDATA", "value": "/var/lib/postgresql/data/pgdata"},
                            ],
                            "readinessProbe": {
                                "exec": {
                                    "command": ["pg_isready", "-U", db.username, "-d", db.name]
                                },
                                "periodSeconds": 5,
                            },
                            "resources": {
                                "requests": {"cpu": "100m", "memory": "256Mi"},
                                "limits": {"memory": "1Gi"},
                            },
                            "volumeMounts": [
                                {"name": "data", "mountPath": "/var/lib/postgresql/data"}
                            ],
                        }
                    ],
                },
            },
            "volumeClaimTemplates": [
                {
                    "metadata": {"name": "data"},
                    "spec": {
                        "accessModes": ["ReadWriteOnce"],
                        "resources": {"requests": {"storage": db.storage_size}},
                    },
                }
            ],
        }
        k8s.apps.v1.StatefulSet(
            f"{name}-postgres",
            metadata={"name": "postgres", "namespace": namespace, "labels": labels},
            spec=statefulset_spec,
            opts=child,
        )
        self.host = pulumi.Output.concat(
            service.metadata.name, ".", namespace, ".svc.cluster.local"
        )
        self.port = pulumi.Output.from_input(5432)
        self.sslmode = "disable"
