"""airflow-platform: load the stack's settings, build the components, export outputs."""

from pathlib import Path

import pulumi
import pulumi_aws as aws

from components.addons import ClusterAddons, ClusterAddonsArgs
from components.airflow import AirflowRelease, AirflowReleaseArgs
from components.cluster import Cluster, ClusterArgs
from components.database import Database, DatabaseArgs
from components.database_alarms import DatabaseAlarms, DatabaseAlarmsArgs
from components.monitoring import Monitoring, MonitoringArgs
from components.network import Network, NetworkArgs
from components.registry import Registry, RegistryArgs
from components.settings import load_settings
from components.stack_secrets import StackSecrets
from components.upgrade_guard import UpgradeGuard, UpgradeGuardArgs

settings = load_settings()  # raises on a bad stack file before anything is registered
secrets = StackSecrets.load(settings)
aws_opts = None
network = None
if settings.is_eks:
    aws_provider = aws.Provider("aws", region=settings.region)
    aws_opts = pulumi.ResourceOptions(providers={"aws": aws_provider})
    network = Network("network", NetworkArgs(settings), aws_opts)

registry = Registry("registry", RegistryArgs(settings, Path(__file__).parent), aws_opts)
cluster = Cluster(
    "cluster",
    ClusterArgs(
        settings,
        vpc_id=network.vpc_id if network else None,
        private_subnet_ids=network.private_subnet_ids if network else None,
        public_subnet_ids=network.public_subnet_ids if network else None,
    ),
    aws_opts,
)
k8s_opts = pulumi.ResourceOptions.merge(
    aws_opts, pulumi.ResourceOptions(providers={"kubernetes": cluster.provider})
)
database = Database(
    "database",
    DatabaseArgs(
        settings,
        vpc_id=network.vpc_id if network else None,
        subnet_ids=network.private_subnet_ids if network else None,
        allowed_security_group_id=cluster.node_security_group_id,
    ),
    k8s_opts,
)
if database.instance_identifier is not None:
    # CloudWatch alarms on the RDS instance Airflow uses, to an SNS topic (subscriptions:
    # database.alarmEmails; README "Monitoring").
    alarms = DatabaseAlarms(
        "database-alarms",
        DatabaseAlarmsArgs(settings, instance_identifier=database.instance_identifier),
        aws_opts,
    )
    pulumi.export("db_instance_identifier", database.instance_identifier)
    pulumi.export("alarm_topic_arn", alarms.topic_arn)
if settings.is_eks:
    # Node pools, the default StorageClass and the ALB IngressClass; the release does not wait.
    assert network is not None and cluster.node_role_name is not None
    assert cluster.node_security_group_id is not None
    ClusterAddons(
        "addons",
        ClusterAddonsArgs(
            settings,
            node_role_name=cluster.node_role_name,
            private_subnet_ids=network.private_subnet_ids,
            security_group_id=cluster.node_security_group_id,
        ),
        k8s_opts,
    )
# Reads the versions the stack ran last; a version change snapshots RDS before migrating.
guard = UpgradeGuard(
    "upgrades",
    UpgradeGuardArgs(
        settings, image=registry.image_ref, db_instance_identifier=database.instance_identifier
    ),
    aws_opts,
)
airflow = AirflowRelease(
    "airflow",
    AirflowReleaseArgs(
        settings,
        secrets,
        image=settings.rollback.image if settings.rollback.active else registry.image_ref,
        db_host=database.host,
        db_port=database.port,
        db_name=database.database,
        db_user=database.user,
        db_password=database.password,
        db_sslmode=database.sslmode,
        oidc_provider_arn=cluster.oidc_provider_arn,
        oidc_provider_url=cluster.oidc_provider_url,
        wait_for=[guard.snapshot] if guard.snapshot else [],
    ),
    k8s_opts,
)

if settings.monitoring.enabled:
    # Independent of the Airflow release: each starts as soon as the cluster is there.
    monitoring = Monitoring(
        "monitoring", MonitoringArgs(settings, webhook_url=secrets.alerts_webhook_url), k8s_opts
    )
    pulumi.export("alertmanager_url", monitoring.alertmanager_url)
    pulumi.export("grafana_command", monitoring.grafana_command)
    pulumi.export("grafana_password", monitoring.grafana_password)

pulumi.export("cluster_name", cluster.name)
pulumi.export("kubeconfig", cluster.kubeconfig)
pulumi.export("db_host", database.host)
pulumi.export("image", registry.image_ref)
pulumi.export("airflow_namespace", airflow.namespace)
pulumi.export("task_logs_bucket", airflow.logs_bucket)
pulumi.export("ui_command", airflow.ui_command)
pulumi.export("ui_url", airflow.ui_url)
pulumi.export("admin_username", airflow.admin_username)
if airflow.canary_job is not None:
    pulumi.export("canary_job", airflow.canary_job)
pulumi.export("admin_password", airflow.admin_password)
pulumi.export("platform_versions", guard.platform_versions)
pulumi.export("upgrade_history", guard.upgrade_history)
