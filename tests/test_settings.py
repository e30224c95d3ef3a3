"""Bad stack files: one error naming the file and every bad key; nothing registered."""

from __future__ import annotations

from typing import Any

import pytest

from components.aws_catalog import EKS_DEFAULT_VERSION
from components.settings import (
    DEFAULT_DAGS_HOST_PATH,
    SECRET_KEYS,
    RawConfig,
    SettingsError,
    Target,
    parse_settings,
)
from tests.harness import try_stack

# (case id, stack, values to set, secrets to set, keys to remove, keys the error must name)
Case = tuple[str, str, dict[str, Any], dict[str, Any], tuple[str, ...], set[str]]

CASES: list[Case] = [
    (
        "production without a page webhook",
        "production",
        {},
        {},
        ("alertsSlackWebhookUrl",),
        {"alertsSlackWebhookUrl"},
    ),
    (
        "production unmonitored",
        "production",
        {"monitoring.enabled": False},
        {},
        (),
        {"monitoring.enabled"},
    ),
    (
        "production without canary",
        "production",
        {"upgrades.canary": False},
        {},
        (),
        {"upgrades.canary"},
    ),
    (
        "retention as word",
        "local",
        {"monitoring.retention": "forever"},
        {},
        (),
        {"monitoring.retention"},
    ),
    (
        "channel without #",
        "integration",
        {"monitoring.alertsChannel": "alerts"},
        {},
        (),
        {"monitoring.alertsChannel"},
    ),
    (
        "unknown severity",
        "integration",
        {"monitoring.notifySeverities": ["critical"]},
        {},
        (),
        {"monitoring.notifySeverities[0]"},
    ),
    (
        "page channel never paged",
        "integration",
        {"monitoring.pageChannel": "#pages", "monitoring.notifySeverities": ["warning"]},
        {},
        (),
        {"monitoring.pageChannel"},
    ),
    (
        "rollback pins half",
        "integration",
        {"rollback.image": "123456789012.dkr.ecr.eu-west-1.amazonaws.com/airflow:abc"},
        {},
        (),
        {"rollback"},
    ),
    (
        "minikube keeps snapshots",
        "local",
        {"upgrades.keepSnapshots": 3},
        {},
        (),
        {"upgrades.keepSnapshots"},
    ),
    (
        "too many snapshots",
        "integration",
        {"upgrades.keepSnapshots": 500},
        {},
        (),
        {"upgrades.keepSnapshots"},
    ),
    (
        "webhook in plain text",
        "local",
        {"alertsSlackWebhookUrl": "https://hooks.slack.com/x"},
        {},
        (),
        {"alertsSlackWebhookUrl"},
    ),
    ("unknown target", "local", {"target": "gke"}, {}, (), {"target"}),
    ("missing target", "local", {}, {}, ("target",), {"target"}),
    ("unknown top key", "local", {"databse.multiAz": True}, {}, (), {"databse"}),
    ("unknown nested key", "integration", {"database.multiAZ": True}, {}, (), {"database.multiAZ"}),
    ("int as word", "integration", {"network.azCount": "three"}, {}, (), {"network.azCount"}),
    (
        "nodes as word",
        "integration",
        {"cluster.maxNodes": "many"},
        {},
        (),
        {"cluster.maxNodes"},
    ),
    ("bool as word", "integration", {"database.multiAz": "maybe"}, {}, (), {"database.multiAz"}),
    ("eks without region", "integration", {}, {}, ("aws.region",), {"aws.region"}),
    ("bad region", "integration", {"aws.region": "europe"}, {}, (), {"aws.region"}),
    ("minikube sets region", "local", {"aws.region": "eu-west-1"}, {}, (), {"aws"}),
    (
        "minikube sets rds class",
        "local",
        {"database.instanceClass": "db.t4g.micro"},
        {},
        (),
        {"database.instanceClass"},
    ),
    ("minikube sets spot", "local", {"cluster.spot": True}, {}, (), {"cluster.spot"}),
    ("minikube sets vpc", "local", {"network.cidr": "10.1.0.0/16"}, {}, (), {"network"}),
    (
        "minikube sets ecr",
        "local",
        {"registry.immutableTags": True},
        {},
        (),
        {"registry.immutableTags"},
    ),
    (
        "eks sets kube context",
        "integration",
        {"cluster.kubeContext": "dev"},
        {},
        (),
        {"cluster.kubeContext"},
    ),
    ("prod single az db", "production", {"database.multiAz": False}, {}, (), {"database.multiAz"}),
    (
        "prod no deletion protection",
        "production",
        {"database.deletionProtection": False},
        {},
        (),
        {"database.deletionProtection"},
    ),
    (
        "prod one node",
        "production",
        {"cluster.maxNodes": 1},
        {},
        (),
        {"cluster.maxNodes"},
    ),
    (
        "private endpoint without private ranges",
        "production",
        {"cluster.endpointPublicAccess": False},
        {},
        ("cluster.publicAccessCidrs",),
        {"cluster.privateAccessCidrs"},
    ),
    (
        "documentation range as allow-list",
        "integration",
        {"cluster.publicAccessCidrs": ["203.0.113.0/24"]},
        {},
        (),
        {"cluster.publicAccessCidrs"},
    ),
    (
        "private range as public allow-list",
        "integration",
        {"cluster.publicAccessCidrs": ["10.8.0.0/16"]},
        {},
        (),
        {"cluster.publicAccessCidrs"},
    ),
    (
        "public range as private access",
        "production",
        {"cluster.endpointPublicAccess": False, "cluster.privateAccessCidrs": ["8.8.8.0/24"]},
        {},
        ("cluster.publicAccessCidrs",),
        {"cluster.privateAccessCidrs"},
    ),
    (
        "session arn as admin",
        "integration",
        {"cluster.adminArns": ["arn:aws:sts::123456789012:assumed-role/ci/gh-run-42"]},
        {},
        (),
        {"cluster.adminArns"},
    ),
    (
        "principal in both access lists",
        "integration",
        {
            "cluster.adminArns": ["arn:aws:iam::123456789012:role/ops"],
            "cluster.namespaceAdminArns": ["arn:aws:iam::123456789012:role/ops"],
        },
        {},
        (),
        {"cluster.namespaceAdminArns"},
    ),
    (
        "minikube sets access entries",
        "local",
        {"cluster.adminArns": ["arn:aws:iam::123456789012:role/ops"]},
        {},
        (),
        {"cluster.adminArns"},
    ),
    (
        "prod unprotected db",
        "production",
        {"database.protect": False},
        {},
        (),
        {"database.protect"},
    ),
    ("unreal region", "integration", {"aws.region": "xx-nowhere-9"}, {}, (), {"aws.region"}),
    (
        "region the RDS CA bundle cannot verify",
        "integration",
        {"aws.region": "ca-west-1"},
        {},
        (),
        {"aws.region"},
    ),
    (
        "unreal instance type",
        "production",
        {"cluster.instanceTypes": ["m6i.enormous"]},
        {},
        (),
        {"cluster.instanceTypes"},
    ),
    (
        "unreal rds class",
        "integration",
        {"database.instanceClass": "db.m6g.enormous"},
        {},
        (),
        {"database.instanceClass"},
    ),
    ("unreal eks version", "integration", {"cluster.version": "1.99"}, {}, (), {"cluster.version"}),
    (
        "image platform",
        "local",
        {"registry.platform": "linux/s390x"},
        {},
        (),
        {"registry.platform"},
    ),
    (
        "public endpoint open to all",
        "integration",
        {},
        {},
        ("cluster.publicAccessCidrs",),
        {"cluster.publicAccessCidrs"},
    ),
    ("prod spot", "production", {"cluster.spot": True}, {}, (), {"cluster.spot"}),
    (
        "prod short backups",
        "production",
        {"database.backupRetentionDays": 3},
        {},
        (),
        {"database.backupRetentionDays"},
    ),
    ("prod two azs", "production", {"network.azCount": 2}, {}, (), {"network.azCount"}),
    (
        "prod flow logs kept 30 days",
        "production",
        {"network.flowLogsRetentionDays": 30},
        {},
        (),
        {"network.flowLogsRetentionDays"},
    ),
    (
        "prod without customer-managed keys",
        "production",
        {"security.customerManagedKeys": False},
        {},
        (),
        {"security.customerManagedKeys"},
    ),
    (
        "prod task-log bucket without access logging",
        "production",
        {"airflow.logs.accessLogging": False},
        {},
        (),
        {"airflow.logs.accessLogging"},
    ),
    (
        "minikube sets kms keys",
        "local",
        {"security.customerManagedKeys": True},
        {},
        (),
        {"security"},
    ),
    (
        "minikube sets access logging",
        "local",
        {"airflow.logs.accessLogging": True},
        {},
        (),
        {"airflow.logs.accessLogging"},
    ),
    ("cidr prefix 33", "integration", {"network.cidr": "10.0.0.0/33"}, {}, (), {"network.cidr"}),
    ("cidr public range", "integration", {"network.cidr": "8.8.0.0/16"}, {}, (), {"network.cidr"}),
    ("cidr too small", "integration", {"network.cidr": "10.0.0.0/24"}, {}, (), {"network.cidr"}),
    (
        "allow-list everything",
        "integration",
        {"cluster.publicAccessCidrs": ["0.0.0.0/0"]},
        {},
        (),
        {"cluster.publicAccessCidrs"},
    ),
    (
        "allow-list not a cidr",
        "integration",
        {"cluster.publicAccessCidrs": ["office"]},
        {},
        (),
        {"cluster.publicAccessCidrs[0]"},
    ),
    (
        "task pool without room",
        "integration",
        {"cluster.taskCpuLimit": 1},
        {},
        (),
        {"cluster.taskCpuLimit"},
    ),
    (
        "instance types not a list",
        "integration",
        {"cluster.instanceTypes": 5},
        {},
        (),
        {"cluster.instanceTypes"},
    ),
    (
        "postgres 9",
        "integration",
        {"database.engineVersion": "9"},
        {},
        (),
        {"database.engineVersion"},
    ),
    (
        "rds class without db.",
        "integration",
        {"database.instanceClass": "m5.large"},
        {},
        (),
        {"database.instanceClass"},
    ),
    (
        "chart version not semver",
        "local",
        {"airflow.chartVersion": "1.22"},
        {},
        (),
        {"airflow.chartVersion"},
    ),
    (
        "namespace uppercase",
        "local",
        {"airflow.namespace": "Airflow_NS"},
        {},
        (),
        {"airflow.namespace"},
    ),
    (
        "git-sync without repo",
        "integration",
        {},
        {},
        ("airflow.gitSync.repo",),
        {"airflow.gitSync.repo"},
    ),
    (
        "git-sync ftp repo",
        "local",
        {"airflow.gitSync.repo": "ftp://example.com/r.git"},
        {},
        (),
        {"airflow.gitSync.repo"},
    ),
    (
        "git-sync period",
        "local",
        {"airflow.gitSync.period": "soon"},
        {},
        (),
        {"airflow.gitSync.period"},
    ),
    (
        "git-sync subPath escapes",
        "local",
        {"airflow.gitSync.subPath": "../etc"},
        {},
        (),
        {"airflow.gitSync.subPath"},
    ),
    (
        "bucket name",
        "integration",
        {"airflow.logs.bucket": "My_Bucket"},
        {},
        (),
        {"airflow.logs.bucket"},
    ),
    (
        "ssh key and credentials",
        "integration",
        {"gitSyncKnownHosts": "github.com ssh-ed25519 AAAA"},
        {"gitSyncSshKey": "k", "gitSyncUsername": "u", "gitSyncToken": "t"},
        (),
        {"gitSyncSshKey", "airflow.gitSync.repo"},
    ),
    (
        "token in plaintext",
        "integration",
        {"gitSyncToken": "ghp_plain", "gitSyncUsername": "bot"},
        {},
        (),
        {"gitSyncToken", "gitSyncUsername"},
    ),
    (
        "host path on eks",
        "integration",
        {"airflow.dagsSource": "hostPath"},
        {},
        (),
        {"airflow.dagsSource"},
    ),
    ("production on minikube", "local", {"environment": "production"}, {}, (), {"environment"}),
    ("one az", "integration", {"network.azCount": 1}, {}, (), {"network.azCount"}),
    (
        "connection id with dash",
        "local",
        {},
        {"connections": '{"my-s3": "aws://"}'},
        (),
        {"connections.my-s3"},
    ),
    (
        "connection not a uri",
        "local",
        {},
        {"connections": '{"warehouse": "just text"}'},
        (),
        {"connections.warehouse"},
    ),
    (
        "connection object without type",
        "local",
        {},
        {"connections": '{"warehouse": {"host": "db"}}'},
        (),
        {"connections.warehouse"},
    ),
    ("variables not a map", "local", {}, {"variables": '["a", "b"]'}, (), {"variables"}),
    (
        "ingress without host",
        "integration",
        {"airflow.ingress.enabled": True},
        {},
        (),
        {"airflow.ingress.host"},
    ),
    ("fernet key not fernet", "local", {}, {"fernetKey": "not-a-fernet-key"}, (), {"fernetKey"}),
    (
        "variable key collision",
        "local",
        {},
        {"variables": '{"Bucket": "a", "bucket": "b"}'},
        (),
        {"variables.bucket"},
    ),
    (
        "ssh key without known hosts",
        "integration",
        {"airflow.gitSync.repo": "git@github.com:acme/dags.git"},
        {"gitSyncSshKey": "k"},
        (),
        {"gitSyncKnownHosts"},
    ),
]


@pytest.mark.parametrize(
    ("stack", "values", "secrets", "remove", "keys"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_bad_config_is_one_clear_error_and_registers_nothing(
    stack: str,
    values: dict[str, Any],
    secrets: dict[str, Any],
    remove: tuple[str, ...],
    keys: set[str],
) -> None:
    error, run = try_stack(stack, set_values=values, set_secrets=secrets, remove=remove)
    assert isinstance(error, SettingsError), f"expected a SettingsError, got {error!r}"
    assert run.resources == []
    assert {key for key, _ in error.problems} == keys
    lines = str(error).splitlines()[1:]
    assert len(lines) == len(keys)
    for key in keys:
        assert any(
            line.startswith(f"Pulumi.{stack}.yaml: airflow-platform:{key}: ") for line in lines
        ), lines


def test_at_least_thirty_cases() -> None:
    assert len(CASES) >= 30


def test_every_problem_is_listed_at_once() -> None:
    error, run = try_stack(
        "production",
        set_values={
            "database.multiAz": False,
            "cluster.spot": True,
            "network.cidr": "10.0.0.0/8",
            "airflow.chartVersion": "latest",
            "cluster.kubeContext": "minikube",
        },
        remove=("aws.region",),
    )
    assert isinstance(error, SettingsError)
    assert run.resources == []
    assert {k for k, _ in error.problems} == {
        "database.multiAz",
        "cluster.spot",
        "network.cidr",
        "airflow.chartVersion",
        "cluster.kubeContext",
        "aws.region",
    }
    assert str(error).startswith("6 problem(s) in Pulumi.production.yaml:")


def raw(stack: str, **values: Any) -> RawConfig:
    """Raw config as the runtime gives it; the keys that are secrets arrive as secrets."""
    return RawConfig(
        stack=stack, values=values, secret_keys=frozenset(k for k in values if k in SECRET_KEYS)
    )


PAGES = {"alertsSlackWebhookUrl": "https://hooks.slack.com/services/T000/B000/XXXX"}


def test_defaults_follow_the_per_stack_matrix() -> None:
    repo = {"airflow.gitSync.repo": "https://example.com/dags.git"}
    where = {"aws.region": "eu-west-1", "cluster.publicAccessCidrs": '["84.17.32.0/24"]'}
    prod = parse_settings(raw("production", target="eks", **where, **repo, **PAGES))
    integ = parse_settings(raw("integration", target="eks", **where, **repo))
    local = parse_settings(raw("local", target="minikube"))
    assert (prod.network.az_count, prod.network.nat_per_az) == (3, True)
    assert (integ.network.az_count, integ.network.nat_per_az) == (2, False)
    assert prod.database.multi_az and prod.database.deletion_protection
    assert not integ.database.multi_az and not integ.database.deletion_protection
    assert prod.registry.immutable_tags and not integ.registry.immutable_tags
    assert not prod.cluster.spot and integ.cluster.spot
    assert prod.cluster.endpoint_public_access and prod.cluster.max_nodes >= 2
    assert (prod.cluster.task_cpu_limit, integ.cluster.task_cpu_limit) == (160, 16)
    assert prod.database.protect and integ.database.protect
    assert prod.cluster.version == integ.cluster.version == EKS_DEFAULT_VERSION
    assert prod.airflow.logs.versioning and not integ.airflow.logs.versioning
    assert prod.airflow.logs.access_logging and not integ.airflow.logs.access_logging
    assert prod.security.customer_managed_keys and not integ.security.customer_managed_keys
    assert (prod.network.flow_logs_retention_days, integ.network.flow_logs_retention_days) == (
        365,
        30,
    )
    assert local.target is Target.MINIKUBE and local.cluster.kube_context == "minikube"
    assert local.airflow.dags_source == "hostPath"
    assert local.airflow.dags_host_path == DEFAULT_DAGS_HOST_PATH
    assert local.airflow.create_admin_user and prod.airflow.create_admin_user
    assert prod.logs_bucket == "airflow-platform-production-task-logs"


def test_config_values_arrive_as_strings_and_are_coerced() -> None:
    s = parse_settings(
        raw(
            "integration",
            target="eks",
            **{
                "aws.region": "us-east-1",
                "cluster.maxNodes": "2",
                "cluster.spot": "false",
                "cluster.endpointPublicAccess": "false",
                "cluster.privateAccessCidrs": '["10.99.0.0/16"]',
                "cluster.instanceTypes": '["m6i.large"]',
                "airflow.gitSync.repo": "git@github.com:acme/dags.git",
            },
        )
    )
    assert s.cluster.max_nodes == 2 and s.cluster.spot is False
    assert s.cluster.instance_types == ["m6i.large"]


def test_production_public_endpoint_with_an_allow_list() -> None:
    s = parse_settings(
        raw(
            "production",
            target="eks",
            **{
                "aws.region": "eu-west-1",
                "cluster.endpointPublicAccess": "true",
                "cluster.publicAccessCidrs": '["84.17.32.0/24"]',
                "airflow.gitSync.repo": "https://example.com/dags.git",
                **PAGES,
            },
        )
    )
    assert s.cluster.endpoint_public_access and [str(c) for c in s.cluster.public_access_cidrs] == [
        "84.17.32.0/24"
    ]


def test_integration_may_turn_on_the_production_hardening() -> None:
    s = parse_settings(
        raw(
            "integration",
            target="eks",
            **{
                "aws.region": "eu-west-1",
                "cluster.publicAccessCidrs": '["84.17.32.0/24"]',
                "airflow.gitSync.repo": "https://example.com/dags.git",
                "security.customerManagedKeys": "true",
                "airflow.logs.accessLogging": "true",
                "network.flowLogsRetentionDays": "365",
            },
        )
    )
    assert s.security.customer_managed_keys and s.airflow.logs.access_logging
    assert s.network.flow_logs_retention_days == 365


def test_monitoring_profiles_follow_the_per_stack_matrix() -> None:
    """Local is lean; integration is quieter than production, which pages its own channel."""
    repo = {"airflow.gitSync.repo": "https://example.com/dags.git"}
    where = {"aws.region": "eu-west-1", "cluster.publicAccessCidrs": '["84.17.32.0/24"]'}
    prod = parse_settings(raw("production", target="eks", **where, **repo, **PAGES))
    integ = parse_settings(raw("integration", target="eks", **where, **repo))
    local = parse_settings(raw("local", target="minikube"))
    assert (local.monitoring.retention, local.monitoring.storage_size) == ("2d", "5Gi")
    assert (prod.monitoring.retention, prod.monitoring.storage_size) == ("30d", "100Gi")
    assert integ.monitoring.notify_severities == ["page"]
    assert prod.monitoring.notify_severities == ["page", "warning"]
    assert (integ.monitoring.repeat_interval, prod.monitoring.repeat_interval) == ("12h", "4h")
    assert prod.page_channel == "#airflow-production-pages" != prod.alerts_channel
    assert integ.page_channel == integ.alerts_channel == "#airflow-integration-alerts"


def test_rollback_pins_go_together() -> None:
    s = parse_settings(
        raw(
            "local",
            target="minikube",
            **{
                "rollback.image": "airflow-platform:3f2a9c",
                "rollback.airflowVersion": "3.1.0",
                "rollback.chartVersion": "1.21.0",
            },
        )
    )
    assert s.rollback.active and s.rollback.chart_version == "1.21.0"
    assert not parse_settings(raw("local", target="minikube")).rollback.active
