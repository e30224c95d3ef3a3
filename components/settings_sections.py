"""The sections of a stack's settings: one pydantic model per `Pulumi.<stack>.yaml` section.

`components/settings.py` assembles them into `Settings` and parses a stack's config; the
names here are imported from there too.
"""

from __future__ import annotations

import ipaddress
import re
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

from components.aws_catalog import (
    EKS_DEFAULT_VERSION,
    eks_version_problem,
    instance_type_problem,
    rds_instance_class_problem,
    region_problem,
)

PROJECT = "airflow-platform"

SEMVER = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$"
)
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
DURATION = re.compile(r"^\d+(\.\d+)?(ms|s|m|h)$")
IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
IAM_PRINCIPAL = re.compile(r"^arn:aws(-cn|-us-gov)?:iam::\d{12}:(role|user)/[\w+=,.@/-]{1,512}$")
IMAGE_PLATFORMS = ("linux/amd64", "linux/arm64")
DEFAULT_DAGS_HOST_PATH = "/airflow-platform/dags"
"""Where `make up STACK=local` mounts the repository's `dags/` on the minikube node."""


class Target(StrEnum):
    MINIKUBE = "minikube"
    EKS = "eks"


class _Model(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        alias_generator=to_camel,
        populate_by_name=True,
        frozen=True,
    )


class AwsSettings(_Model):
    """Where AWS resources are made (eks only)."""

    region: str = Field(description="AWS region, e.g. eu-west-1.")

    @field_validator("region")
    @classmethod
    def _region(cls, v: str) -> str:
        problem = region_problem(v)
        if problem:
            raise ValueError(problem)
        return v


class NetworkSettings(_Model):
    """The VPC (eks only)."""

    cidr: ipaddress.IPv4Network = Field(
        default=ipaddress.IPv4Network("10.0.0.0/16"), description="VPC CIDR block (/16 to /20)."
    )
    az_count: int = Field(default=2, ge=2, le=6, description="Availability zones to span.")
    nat_per_az: bool = Field(default=False, description="One NAT gateway per AZ instead of one.")
    flow_logs_retention_days: int = Field(
        default=30, ge=1, le=3653, description="Retention of the VPC flow log group."
    )

    @field_validator("cidr")
    @classmethod
    def _cidr(cls, v: ipaddress.IPv4Network) -> ipaddress.IPv4Network:
        if not 16 <= v.prefixlen <= 20:
            raise ValueError(f"{v} must be between /16 and /20 to fit the subnets")
        if not v.is_private:
            raise ValueError(f"{v} is not a private address range")
        return v


class DatabaseSettings(_Model):
    """Airflow's metadata database."""

    engine_version: str = Field(default="16", description="PostgreSQL major version.")
    name: str = Field(default="airflow", description="Database name.")
    username: str = Field(default="airflow", description="Database user.")
    instance_class: str = Field(default="db.t4g.micro", description="RDS instance class (eks).")
    allocated_storage_gb: int = Field(default=20, ge=20, le=65536, description="RDS storage (eks).")
    multi_az: bool = Field(default=False, description="RDS Multi-AZ standby (eks).")
    deletion_protection: bool = Field(default=False, description="RDS deletion protection (eks).")
    backup_retention_days: int = Field(
        default=7, ge=0, le=35, description="RDS backups kept (eks)."
    )
    storage_size: str = Field(
        default="5Gi", description="PVC size of the in-cluster Postgres (minikube)."
    )
    protect: bool = Field(
        default=True,
        description="Refuse any update that would delete or replace the RDS instance (eks).",
    )
    performance_insights: bool = Field(
        default=True,
        description="RDS Performance Insights, in the Standard mode of Database Insights (eks).",
    )
    performance_insights_retention_days: int = Field(
        default=7,
        description="Days of Performance Insights data: 7 (free), 31 x 1-23 months, or 731 (eks).",
    )
    monitoring_interval_seconds: int = Field(
        default=60,
        description="RDS Enhanced Monitoring interval: 0 (off), 1, 5, 10, 15, 30 or 60 (eks).",
    )
    log_retention_days: int = Field(
        default=30,
        description=(
            "Days CloudWatch Logs keeps the exported PostgreSQL logs; one of the values"
            " CloudWatch accepts (1, 3, 5, 7, 14, 30, 60, 90, ..., 3653) (eks)."
        ),
    )
    slow_query_ms: int = Field(
        default=1000,
        description=(
            "Log statements slower than this many ms (log_min_duration_statement); -1 turns it off."
        ),
    )
    alarm_emails: list[str] = Field(
        default_factory=list,
        description=(
            "E-mail addresses subscribed to the database alarm topic; AWS mails each a"
            " confirmation link that must be accepted before alarms arrive (eks)."
        ),
    )
    free_storage_alarm_percent: int = Field(
        default=10,
        ge=1,
        le=90,
        description="Alarm when free storage falls below this % of the allocated storage (eks).",
    )
    cpu_alarm_percent: int = Field(
        default=80, ge=1, le=100, description="Alarm when CPU stays above this % (eks)."
    )
    connections_alarm_threshold: int = Field(
        default=100,
        ge=1,
        le=5000,
        description=(
            "Alarm above this many connections; RDS PostgreSQL's default max_connections is"
            " LEAST(DBInstanceClassMemory/9531392, 5000), about 190 on db.t4g.small (eks)."
        ),
    )
    restored_from: str = Field(
        default="",
        description=(
            "RDS DB snapshot (identifier, or ARN when shared) to restore into a new instance"
            " that Airflow then uses; keep it set afterwards (eks)."
        ),
    )
    keep_original: bool = Field(
        default=True,
        description=(
            "With restoredFrom: keep the previous instance declared and protected; set false"
            " (after an `up` with true) to let Pulumi forget it, never delete it (eks)."
        ),
    )

    @staticmethod
    def monitoring_interval_choices() -> tuple[int, ...]:
        """RDS `MonitoringInterval` (botocore RDS model, CreateDBInstance): valid values."""
        return (0, 1, 5, 10, 15, 30, 60)

    @staticmethod
    def performance_insights_retention_choices() -> tuple[int, ...]:
        """RDS `PerformanceInsightsRetentionPeriod`: 7, 31 x months 1-23, or 731."""
        return (7, *range(31, 31 * 23 + 1, 31), 731)

    @staticmethod
    def log_retention_choices() -> tuple[int, ...]:
        """CloudWatch Logs `PutRetentionPolicy` retention values (botocore shape `Days`)."""
        return (
            *(1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731),
            *(1096, 1827, 2192, 2557, 2922, 3288, 3653),
        )

    @field_validator("monitoring_interval_seconds")
    @classmethod
    def _monitoring(cls, v: int) -> int:
        choices = cls.monitoring_interval_choices()
        if v not in choices:
            raise ValueError(f"{v} is not an RDS monitoring interval; use one of {choices}")
        return v

    @field_validator("performance_insights_retention_days")
    @classmethod
    def _pi_retention(cls, v: int) -> int:
        if v not in cls.performance_insights_retention_choices():
            raise ValueError(
                f"{v} is not a Performance Insights retention: use 7, a multiple of 31 up to"
                " 713 (months x 31), or 731"
            )
        return v

    @field_validator("log_retention_days")
    @classmethod
    def _log_retention(cls, v: int) -> int:
        choices = cls.log_retention_choices()
        if v not in choices:
            near = min(choices, key=lambda c: (abs(c - v), c))
            raise ValueError(f"{v} is not a CloudWatch Logs retention; the nearest is {near}")
        return v

    @field_validator("slow_query_ms")
    @classmethod
    def _slow_query(cls, v: int) -> int:
        if not -1 <= v <= 2147483647:
            raise ValueError(f"{v} is out of range: -1 (off), 0 (every statement) or more ms")
        return v

    @field_validator("alarm_emails")
    @classmethod
    def _emails(cls, v: list[str]) -> list[str]:
        bad = [e for e in v if not re.fullmatch(r"[^@\s,]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+", e)]
        problems = [f"{e!r} is not an e-mail address" for e in bad]
        dupes = sorted({e for e in v if v.count(e) > 1})
        if dupes:
            problems.append(f"listed twice: {', '.join(dupes)}")
        if problems:
            raise ValueError("; ".join(problems))
        return v

    @field_validator("restored_from")
    @classmethod
    def _snapshot(cls, v: str) -> str:
        name = r"[A-Za-z](?!.*--)[A-Za-z0-9-]{0,254}(?<!-)"
        own = rf"((rds|awsbackup):)?{name}"
        shared = rf"arn:aws(-cn|-us-gov)?:rds:[a-z0-9-]+:\d{{12}}:snapshot:{own}"
        if v and not re.fullmatch(rf"{own}|{shared}", v):
            raise ValueError(
                f"{v!r} is not an RDS DB snapshot identifier (letters, digits and single"
                " hyphens, starting with a letter; rds:<name> for an automated snapshot; the"
                " snapshot's ARN when it is shared from another account)"
            )
        return v

    @field_validator("engine_version")
    @classmethod
    def _engine(cls, v: str) -> str:
        if v not in {"14", "15", "16", "17"}:
            raise ValueError(f"{v!r} is not a supported PostgreSQL major version (14-17)")
        return v

    @field_validator("name", "username")
    @classmethod
    def _ident(cls, v: str) -> str:
        if not IDENTIFIER.match(v) or len(v) > 63:
            raise ValueError(f"{v!r} is not a valid PostgreSQL identifier")
        return v

    @field_validator("instance_class")
    @classmethod
    def _class(cls, v: str) -> str:
        problem = rds_instance_class_problem(v)
        if problem:
            raise ValueError(problem)
        return v

    @field_validator("storage_size")
    @classmethod
    def _size(cls, v: str) -> str:
        if not re.match(r"^[1-9]\d*(Mi|Gi|Ti)$", v):
            raise ValueError(f"{v!r} is not a Kubernetes quantity like 5Gi")
        return v


class RegistrySettings(_Model):
    """Where the Airflow image is stored."""

    keep_images: int = Field(
        default=10, ge=1, le=1000, description="Images the ECR lifecycle keeps (eks)."
    )
    immutable_tags: bool = Field(default=False, description="ECR tag immutability (eks).")
    platform: str = Field(
        default="",
        description=(
            "Image platform, linux/amd64 or linux/arm64 (default: linux/amd64 on eks;"
            " the deploying machine's architecture on minikube)."
        ),
    )

    @field_validator("platform")
    @classmethod
    def _platform(cls, v: str) -> str:
        if v and v not in IMAGE_PLATFORMS:
            raise ValueError(f"{v!r} is not one of {', '.join(IMAGE_PLATFORMS)}")
        return v


class ClusterSettings(_Model):
    """The Kubernetes cluster."""

    kube_context: str = Field(
        default="minikube", description="kubeconfig context to deploy to (minikube)."
    )
    version: str = Field(
        default=EKS_DEFAULT_VERSION,
        description="EKS Kubernetes minor version, within the supported window (eks).",
    )
    instance_types: list[str] = Field(
        default_factory=lambda: ["t3.large"],
        description="Instance types the node pools may launch (eks, EKS Auto Mode).",
    )
    max_nodes: int = Field(
        default=3,
        ge=1,
        le=100,
        description="Most nodes of the platform pool, where Airflow's own pods run (eks).",
    )
    task_cpu_limit: int = Field(
        default=16,
        ge=2,
        le=10000,
        description=(
            "vCPUs the task pool may grow to; it shrinks to zero when no task runs (eks)."
        ),
    )
    spot: bool = Field(
        default=False, description="Let the task pool use spot capacity (eks; never production)."
    )
    endpoint_public_access: bool = Field(
        default=True,
        description=(
            "Public API endpoint, limited to publicAccessCidrs, beside private access (eks)."
        ),
    )
    public_access_cidrs: list[ipaddress.IPv4Network] = Field(
        default_factory=list,
        description=(
            "Public egress ranges of the machines that run `pulumi up` (office, VPN, CI runners);"
            " required with the public endpoint (eks)."
        ),
    )
    private_access_cidrs: list[ipaddress.IPv4Network] = Field(
        default_factory=list,
        description=(
            "Private ranges (VPC, VPN, peered runners) allowed to reach the private API endpoint;"
            " required without the public endpoint (eks)."
        ),
    )
    admin_arns: list[str] = Field(
        default_factory=list,
        description=(
            "IAM roles/users given cluster-admin by EKS access entries (CI, the bot, operators);"
            " not the identity that creates the cluster (eks)."
        ),
    )
    namespace_admin_arns: list[str] = Field(
        default_factory=list,
        description="IAM roles/users given admin in the Airflow namespace only (eks).",
    )

    @field_validator("version")
    @classmethod
    def _version(cls, v: str) -> str:
        problem = eks_version_problem(v)
        if problem:
            raise ValueError(problem)
        return v

    @field_validator("instance_types")
    @classmethod
    def _types(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("needs one or more EC2 instance types")
        problems = [p for p in map(instance_type_problem, v) if p]
        if problems:
            raise ValueError("; ".join(problems))
        return v

    @field_validator("public_access_cidrs")
    @classmethod
    def _public_cidrs(cls, v: list[ipaddress.IPv4Network]) -> list[ipaddress.IPv4Network]:
        problems = []
        for net in v:
            if net.prefixlen < 8:
                problems.append(f"{net} is wider than /8: that is not an allow-list")
            elif not net.is_global:
                problems.append(
                    f"{net} is a private, documentation or reserved range; EKS's public endpoint"
                    " sees the public address you connect from (your egress NAT or VPN)"
                )
        if problems:
            raise ValueError("; ".join(problems))
        return v

    @field_validator("private_access_cidrs")
    @classmethod
    def _private_cidrs(cls, v: list[ipaddress.IPv4Network]) -> list[ipaddress.IPv4Network]:
        bad = [str(n) for n in v if not n.is_private or n.prefixlen < 8]
        if bad:
            raise ValueError(
                f"{', '.join(bad)}: the private endpoint is reached from private ranges"
                " (RFC 1918, /8 or narrower)"
            )
        return v

    @field_validator("admin_arns", "namespace_admin_arns")
    @classmethod
    def _principals(cls, v: list[str]) -> list[str]:
        problems = []
        for arn in v:
            if ":assumed-role/" in arn:
                problems.append(
                    f"{arn} is a session, not a principal; use the role's ARN"
                    " (arn:aws:iam::<account>:role/<name>)"
                )
            elif not IAM_PRINCIPAL.match(arn):
                problems.append(f"{arn!r} is not an IAM role or user ARN")
        dupes = sorted({a for a in v if v.count(a) > 1})
        if dupes:
            problems.append(f"listed twice: {', '.join(dupes)}")
        if problems:
            raise ValueError("; ".join(problems))
        return v


class GitSyncSettings(_Model):
    """Where the DAGs come from."""

    repo: str = Field(default="", description="Git clone URL (https or ssh).")
    branch: str = Field(default="main", description="Branch to follow.")
    rev: str = Field(
        default="HEAD", description="Revision to pin (commit or tag); HEAD follows the branch."
    )
    sub_path: str = Field(default="dags", description="Folder in the repo that holds the DAGs.")
    period: str = Field(default="60s", description="Interval between syncs (Go duration).")

    @field_validator("repo")
    @classmethod
    def _repo(cls, v: str) -> str:
        if v and not re.match(r"^(https://|ssh://|git@[\w.-]+:)\S+$", v):
            raise ValueError(f"{v!r} is not an https:// or ssh git URL")
        return v

    @field_validator("period")
    @classmethod
    def _period(cls, v: str) -> str:
        if not DURATION.match(v):
            raise ValueError(f"{v!r} is not a duration like 60s or 5m")
        return v

    @field_validator("sub_path")
    @classmethod
    def _sub_path(cls, v: str) -> str:
        if v.startswith("/") or ".." in v.split("/"):
            raise ValueError(f"{v!r} must be a relative path inside the repository")
        return v


class LogsSettings(_Model):
    """Remote task logs."""

    bucket: str = Field(
        default="", description="S3 bucket for task logs (default: derived from project and stack)."
    )
    prefix: str = Field(default="task-logs", description="Key prefix of task logs in the bucket.")
    retention_days: int = Field(default=90, ge=1, le=3650, description="Days task logs are kept.")
    versioning: bool = Field(default=False, description="Bucket versioning (eks).")
    access_logging: bool = Field(
        default=False,
        description="S3 server access logging of the bucket into a separate bucket (eks).",
    )

    @field_validator("bucket")
    @classmethod
    def _bucket(cls, v: str) -> str:
        if v and (not BUCKET.match(v) or ".." in v or re.match(r"^\d+\.\d+\.\d+\.\d+$", v)):
            raise ValueError(f"{v!r} is not a valid S3 bucket name")
        return v

    @field_validator("prefix")
    @classmethod
    def _prefix(cls, v: str) -> str:
        if v.startswith("/") or not re.match(r"^[\w./-]*$", v):
            raise ValueError(
                f"{v!r} must be a relative key prefix of letters, digits, '_', '-', '.', '/'"
            )
        return v


class SecuritySettings(_Model):
    """Encryption choices (eks only)."""

    customer_managed_keys: bool = Field(
        default=False,
        description=(
            "Customer-managed KMS keys for the flow-log group, the task-log bucket and ECR"
            " instead of AWS-managed encryption (eks)."
        ),
    )


class IngressSettings(_Model):
    """Optional ingress for the Airflow UI."""

    enabled: bool = Field(default=False, description="Create an ingress for the UI.")
    class_name: str = Field(default="alb", description="Ingress class.")
    host: str = Field(default="", description="Host name of the UI.")
    tls_secret_name: str = Field(default="", description="Secret holding the TLS certificate.")
    certificate_arn: str = Field(
        default="",
        description="ACM certificate ARN: the ALB terminates HTTPS with it (eks, class alb).",
    )

    @field_validator("certificate_arn")
    @classmethod
    def _certificate(cls, v: str) -> str:
        if v and not re.match(
            r"^arn:aws(-cn|-us-gov)?:acm:[a-z0-9-]+:\d{12}:certificate/[\w-]+$", v
        ):
            raise ValueError(f"{v!r} is not an ACM certificate ARN")
        return v

    internal: bool = Field(
        default=True, description="Internal (not internet-facing) load balancer."
    )


def semantic_version(v: str, example: str) -> str:
    if not SEMVER.match(v):
        raise ValueError(f"{v!r} is not a semantic version like {example}")
    return v


def namespace_name(v: str) -> str:
    if not DNS_LABEL.match(v):
        raise ValueError(f"{v!r} is not a valid Kubernetes namespace name")
    return v


class AirflowSettings(_Model):
    """The Airflow release."""

    chart_version: str = Field(default="1.22.0", description="Official Airflow chart version.")
    namespace: str = Field(default="airflow", description="Kubernetes namespace of the release.")
    dags_source: Literal["gitSync", "hostPath"] = Field(
        default="gitSync",
        description=(
            "gitSync, or hostPath: this checkout's dags/ mounted into minikube by `make up`"
            " (default on minikube)."
        ),
    )
    dags_host_path: str = Field(
        default="", description="Node path of the DAGs for hostPath (minikube)."
    )
    git_sync: GitSyncSettings = Field(default_factory=GitSyncSettings, description="git-sync.")
    logs: LogsSettings = Field(default_factory=LogsSettings, description="Remote task logs.")
    ingress: IngressSettings = Field(default_factory=IngressSettings, description="UI ingress.")
    create_admin_user: bool = Field(
        default=True,
        description=(
            "Create the admin user for the first login (password: the adminPassword secret,"
            " or generated; `make ui` shows it)."
        ),
    )
    admin_username: str = Field(default="admin", description="Name of the admin user.")
    helm_timeout_seconds: int = Field(
        default=900, ge=60, le=3600, description="Helm install/upgrade timeout."
    )

    @field_validator("chart_version")
    @classmethod
    def _chart(cls, v: str) -> str:
        return semantic_version(v, "1.22.0")

    @field_validator("namespace")
    @classmethod
    def _ns(cls, v: str) -> str:
        return namespace_name(v)


SEVERITIES = ("page", "warning", "info")
"""Alert severities, most urgent first (monitoring/rules carry one of them, or `none`)."""
SLACK_CHANNEL = re.compile(r"^#[a-z0-9][a-z0-9._-]{0,79}$")
PROM_DURATION = re.compile(r"^[1-9]\d*(m|h|d|w|y)$")


Severity = Literal["page", "warning", "info"]


def _page_and_warning() -> list[Severity]:
    return ["page", "warning"]


class MonitoringSettings(_Model):
    """Prometheus, Alertmanager -> Slack and Grafana (kube-prometheus-stack)."""

    enabled: bool = Field(default=True, description="Install the metrics and alerting stack.")
    chart_version: str = Field(
        default="88.5.3", description="prometheus-community kube-prometheus-stack chart version."
    )
    namespace: str = Field(default="monitoring", description="Namespace of the metrics stack.")
    retention: str = Field(
        default="15d", description="How long Prometheus keeps samples (default 2d on minikube)."
    )
    storage_size: str = Field(
        default="50Gi", description="Prometheus volume size (default 5Gi on minikube)."
    )
    alerts_channel: str = Field(
        default="",
        description="Slack channel of this stack's alerts (default: #airflow-<stack>-alerts).",
    )
    page_channel: str = Field(
        default="",
        description=(
            "Slack channel for severity page (default: the alerts channel;"
            " production: #airflow-<stack>-pages)."
        ),
    )
    notify_severities: list[Severity] = Field(
        default_factory=_page_and_warning,
        description=(
            "Severities sent to Slack (default page, warning; integration: page only);"
            " the rest stay in Alertmanager."
        ),
    )
    repeat_interval: str = Field(
        default="4h",
        description="Re-send a still-firing alert after this long (default 12h off production).",
    )

    @field_validator("chart_version")
    @classmethod
    def _chart(cls, v: str) -> str:
        return semantic_version(v, "88.5.3")

    @field_validator("namespace")
    @classmethod
    def _ns(cls, v: str) -> str:
        return namespace_name(v)

    @field_validator("retention", "repeat_interval")
    @classmethod
    def _duration(cls, v: str) -> str:
        if not PROM_DURATION.match(v):
            raise ValueError(f"{v!r} is not a duration like 15d, 12h or 30m")
        return v

    @field_validator("storage_size")
    @classmethod
    def _size(cls, v: str) -> str:
        if not re.match(r"^[1-9]\d*(Mi|Gi|Ti)$", v):
            raise ValueError(f"{v!r} is not a Kubernetes quantity like 50Gi")
        return v

    @field_validator("alerts_channel", "page_channel")
    @classmethod
    def _channel(cls, v: str) -> str:
        if v and not SLACK_CHANNEL.match(v):
            raise ValueError(f"{v!r} is not a Slack channel name like #airflow-alerts")
        return v

    @field_validator("notify_severities")
    @classmethod
    def _unique(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError("lists a severity twice")
        return v


class UpgradeSettings(_Model):
    """Guarded upgrades: a snapshot before migrations, a canary DAG run after every deploy."""

    snapshot_before_migration: bool = Field(
        default=True,
        description="Snapshot RDS before an Airflow or chart version change (eks).",
    )
    keep_snapshots: int = Field(
        default=5, ge=1, le=50, description="Pre-upgrade snapshots kept; older ones are deleted."
    )
    canary: bool = Field(
        default=True, description="Run the smoke DAG through the API after every deploy."
    )
    canary_dag_id: str = Field(default="platform_canary", description="DAG the canary runs.")
    canary_timeout_seconds: int = Field(
        default=600, ge=60, le=3600, description="How long the canary waits for a successful run."
    )
    canary_force_failure: bool = Field(
        default=False,
        description="Make the canary's DAG run fail on purpose (the upgrade drill sets it).",
    )

    @field_validator("canary_dag_id")
    @classmethod
    def _dag_id(cls, v: str) -> str:
        if not re.match(r"^[A-Za-z0-9_.-]{1,250}$", v):
            raise ValueError(f"{v!r} is not a DAG id")
        return v


class RollbackSettings(_Model):
    """Versions pinned by `make rollback` (from the `upgrade_history` output); remove to upgrade."""

    image: str = Field(default="", description="Image reference to run instead of the build.")
    airflow_version: str = Field(default="", description="Airflow version of that image.")
    chart_version: str = Field(default="", description="Airflow chart version to run.")

    @property
    def active(self) -> bool:
        return bool(self.image)

    @field_validator("airflow_version", "chart_version")
    @classmethod
    def _version(cls, v: str) -> str:
        if v and not SEMVER.match(v):
            raise ValueError(f"{v!r} is not a semantic version")
        return v

    @field_validator("image")
    @classmethod
    def _image(cls, v: str) -> str:
        if v and not re.match(r"^[a-z0-9][\w./:-]*(@sha256:[0-9a-f]{64})?$", v):
            raise ValueError(f"{v!r} is not an image reference")
        return v
