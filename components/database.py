"""Database: Airflow's metadata Postgres — RDS on EKS, a StatefulSet on minikube."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s
import pulumi_random as random

from components.naming import PART_OF, resource_prefix, tags
from components.settings import Settings

POSTGRES_IMAGES = {
    "14": "postgres:14.15",
    "15": "postgres:15.10",
    "16": "postgres:16.6",
    "17": "postgres:17.2",
}
"""Official postgres images for the in-cluster database, pinned per major version."""


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
        if s.is_eks:
            self._rds(name, args)
        else:
            self._in_cluster(name, args)
        self.register_outputs(
            {
                "host": self.host,
                "port": self.port,
                "database": self.database,
                "user": self.user,
                "password": self.password,
            }
        )

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
            parameters=[aws.rds.ParameterGroupParameterArgs(name="rds.force_ssl", value="1")],
            tags=tags(s, f"{name}-params"),
            opts=child,
        )
        final_snapshot = f"{resource_prefix(s)}-metadata-final"
        instance = aws.rds.Instance(
            f"{name}-instance",
            engine="postgres",
            engine_version=db.engine_version,
            instance_class=db.instance_class,
            allocated_storage=db.allocated_storage_gb,
            storage_type="gp3",
            storage_encrypted=True,
            publicly_accessible=False,
            db_subnet_group_name=subnets.name,
            vpc_security_group_ids=[sg.id],
            parameter_group_name=params.name,
            db_name=db.name,
            username=db.username,
            password=self.password,
            multi_az=db.multi_az,
            deletion_protection=db.deletion_protection,
            backup_retention_period=db.backup_retention_days,
            skip_final_snapshot=not s.is_production,
            final_snapshot_identifier=final_snapshot if s.is_production else None,
            copy_tags_to_snapshot=True,
            auto_minor_version_upgrade=True,
            # A major engine upgrade is an in-place modification, applied when `up` runs
            # (not at the next maintenance window, while the old parameter group is deleted).
            allow_major_version_upgrade=True,
            apply_immediately=True,
            iam_database_authentication_enabled=False,
            tags=tags(s, f"{name}-instance"),
            # Protected: an update that would delete or replace the instance (a new db name or
            # master user, a changed subnet group, ...) fails instead of taking the data along.
            opts=pulumi.ResourceOptions(parent=self, protect=db.protect),
        )
        self.host = instance.address
        self.port = instance.port
        self.sslmode = "require"

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
