"""One typed, validated model of a stack's configuration.

`parse_settings` is pure: it takes the stack's raw config (what Pulumi hands the
program) and returns `Settings`, or raises `SettingsError` listing every problem
as `Pulumi.<stack>.yaml: airflow-platform:<key>: <what is wrong>`.
`load_settings` reads the raw config from the Pulumi runtime; it never creates a
resource, so a bad stack file stops the program before anything is registered.
"""

from __future__ import annotations

import base64
import binascii
import copy
import functools
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import Field, ValidationError

from components.settings_sections import (
    BUCKET,
    DEFAULT_DAGS_HOST_PATH,
    DNS_LABEL,
    DURATION,
    IAM_PRINCIPAL,
    IDENTIFIER,
    IMAGE_PLATFORMS,
    PROJECT,
    SEMVER,
    AirflowSettings,
    AwsSettings,
    ClusterSettings,
    DatabaseSettings,
    GitSyncSettings,
    IngressSettings,
    LogsSettings,
    MonitoringSettings,
    NetworkSettings,
    RegistrySettings,
    RollbackSettings,
    SecuritySettings,
    Target,
    UpgradeSettings,
    _Model,
)

__all__ = [  # defined in settings_sections, re-exported here for the modules that import them
    "BUCKET",
    "DEFAULT_DAGS_HOST_PATH",
    "DNS_LABEL",
    "DURATION",
    "IAM_PRINCIPAL",
    "IDENTIFIER",
    "IMAGE_PLATFORMS",
    "PROJECT",
    "SEMVER",
    "AirflowSettings",
    "AwsSettings",
    "ClusterSettings",
    "DatabaseSettings",
    "GitSyncSettings",
    "IngressSettings",
    "LogsSettings",
    "MonitoringSettings",
    "NetworkSettings",
    "RegistrySettings",
    "RollbackSettings",
    "SecuritySettings",
    "Target",
    "UpgradeSettings",
]

SECRET_KEYS: dict[str, str] = {
    "gitSyncUsername": "Git user for an https repo (with gitSyncToken).",
    "gitSyncToken": "Git token/password for an https repo.",
    "gitSyncSshKey": "Private SSH key for an ssh repo (with gitSyncKnownHosts).",
    "adminPassword": "Password of the admin user (default: generated; `make ui` shows it).",
    "fernetKey": "Fernet key (default: generated).",
    "apiSecretKey": "API secret key (default: generated).",
    "jwtSecret": "JWT signing secret (default: generated).",
    "connections": "Airflow connections: id -> URI or JSON object.",
    "variables": "Airflow variables: key -> value.",
    "alertsSlackWebhookUrl": "Slack incoming-webhook URL Alertmanager posts alerts to.",
}
"""Top-level keys that must be stored encrypted (`pulumi config set --secret`)."""

PLAIN_TOP_KEYS = ("target", "environment", "owner", "gitSyncKnownHosts")


class Settings(_Model):
    """A stack's whole configuration."""

    stack: str = Field(description="Stack name (not config).", exclude=True)
    target: Target = Field(description="minikube or eks.")
    environment: str = Field(
        description="Environment tag (default: stack name); 'production' gets production rules."
    )
    owner: str = Field(default="data-platform", description="Owner tag.")
    aws: AwsSettings | None = Field(default=None, description="AWS region and tags (eks).")
    network: NetworkSettings = Field(default_factory=NetworkSettings, description="VPC (eks).")
    database: DatabaseSettings = Field(
        default_factory=DatabaseSettings, description="Metadata database."
    )
    registry: RegistrySettings = Field(
        default_factory=RegistrySettings, description="Image registry."
    )
    cluster: ClusterSettings = Field(
        default_factory=ClusterSettings, description="Kubernetes cluster."
    )
    airflow: AirflowSettings = Field(
        default_factory=AirflowSettings, description="Airflow release."
    )
    security: SecuritySettings = Field(
        default_factory=SecuritySettings, description="Encryption (eks)."
    )
    monitoring: MonitoringSettings = Field(
        default_factory=MonitoringSettings, description="Metrics, alerts and dashboards."
    )
    upgrades: UpgradeSettings = Field(
        default_factory=UpgradeSettings, description="Snapshot before migrating; canary after."
    )
    rollback: RollbackSettings = Field(
        default_factory=RollbackSettings, description="Versions pinned by `make rollback`."
    )
    git_sync_known_hosts: str = Field(default="", description="known_hosts for an ssh repo.")
    secrets_set: frozenset[str] = Field(
        default=frozenset(), exclude=True, description="Secret keys present."
    )
    connection_ids: tuple[str, ...] = Field(
        default=(), exclude=True, description="Ids in the connections secret (names only)."
    )
    variable_keys: tuple[str, ...] = Field(
        default=(), exclude=True, description="Keys in the variables secret (names only)."
    )

    @property
    def is_eks(self) -> bool:
        return self.target is Target.EKS

    @property
    def is_production(self) -> bool:
        return self.environment == "production"

    @property
    def region(self) -> str:
        if self.aws is None:
            raise ValueError("region is only known on eks stacks")
        return self.aws.region

    @property
    def tags(self) -> dict[str, str]:
        """Tags every AWS resource carries."""
        return {
            "project": PROJECT,
            "environment": self.environment,
            "owner": self.owner,
            "stack": self.stack,
        }

    @property
    def logs_bucket(self) -> str:
        return self.airflow.logs.bucket or f"{PROJECT}-{self.stack}-task-logs"

    @property
    def alerts_channel(self) -> str:
        return self.monitoring.alerts_channel or f"#airflow-{self.stack}-alerts"

    @property
    def page_channel(self) -> str:
        """Where severity `page` goes: its own channel in production, else the alerts channel."""
        if self.monitoring.page_channel:
            return self.monitoring.page_channel
        if self.is_production:
            return f"#airflow-{self.stack}-pages"
        return self.alerts_channel


# Keys that only mean something on one target: setting them on the other is an error.
EKS_ONLY: tuple[str, ...] = (
    "aws",
    "network",
    "database.instanceClass",
    "database.allocatedStorageGb",
    "database.multiAz",
    "database.deletionProtection",
    "database.backupRetentionDays",
    "registry.keepImages",
    "registry.immutableTags",
    "cluster.version",
    "cluster.instanceTypes",
    "cluster.maxNodes",
    "cluster.taskCpuLimit",
    "cluster.spot",
    "cluster.endpointPublicAccess",
    "cluster.publicAccessCidrs",
    "cluster.privateAccessCidrs",
    "cluster.adminArns",
    "cluster.namespaceAdminArns",
    "database.protect",
    "airflow.ingress.certificateArn",
    "airflow.logs.versioning",
    "airflow.logs.accessLogging",
    "security",
    "upgrades.snapshotBeforeMigration",
    "upgrades.keepSnapshots",
    "database.performanceInsights",
    "database.performanceInsightsRetentionDays",
    "database.monitoringIntervalSeconds",
    "database.logRetentionDays",
    "database.alarmEmails",
    "database.freeStorageAlarmPercent",
    "database.cpuAlarmPercent",
    "database.connectionsAlarmThreshold",
    "database.restoredFrom",
    "database.keepOriginal",
)
MINIKUBE_ONLY: tuple[str, ...] = (
    "cluster.kubeContext",
    "database.storageSize",
    "airflow.dagsHostPath",
)


def _defaults(target: Target, environment: str) -> dict[str, Any]:
    """Per-target defaults from the per-stack matrix; the stack file overrides them."""
    if target is Target.MINIKUBE:
        return {
            "airflow": {"dagsSource": "hostPath", "dagsHostPath": DEFAULT_DAGS_HOST_PATH},
            # A lean metrics stack, so the laptop loop keeps working.
            "monitoring": {"retention": "2d", "storageSize": "5Gi", "repeatInterval": "12h"},
        }
    if environment == "production":
        return {
            "network": {"azCount": 3, "natPerAz": True, "flowLogsRetentionDays": 365},
            "database": {
                "instanceClass": "db.m6g.large",
                "multiAz": True,
                "deletionProtection": True,
                "backupRetentionDays": 14,
                "allocatedStorageGb": 50,
            },
            "registry": {"immutableTags": True, "keepImages": 30},
            "cluster": {"maxNodes": 6, "taskCpuLimit": 160, "instanceTypes": ["m6i.large"]},
            "airflow": {"logs": {"versioning": True, "retentionDays": 365, "accessLogging": True}},
            "security": {"customerManagedKeys": True},
            "monitoring": {"retention": "30d", "storageSize": "100Gi"},
        }
    return {
        "network": {"azCount": 2, "natPerAz": False},
        "cluster": {"spot": True, "instanceTypes": ["t3.large", "t3a.large"]},
        # Quieter than production: only pages reach Slack, and they repeat less often.
        "monitoring": {"notifySeverities": ["page"], "repeatInterval": "12h"},
    }


class SettingsError(ValueError):
    """Every problem of a stack file, one per line."""

    def __init__(self, stack_file: str, problems: Iterable[tuple[str, str]]) -> None:
        self.stack_file = stack_file
        self.problems = sorted(set(problems))
        lines = [f"{stack_file}: {PROJECT}:{key}: {msg}" for key, msg in self.problems]
        super().__init__(f"{len(self.problems)} problem(s) in {stack_file}:\n" + "\n".join(lines))


def _deep_merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), dict):
            out[k] = _deep_merge(out[k], v)
        else:
            out[k] = v
    return out


def _has_path(data: Mapping[str, Any], dotted: str) -> bool:
    node: Any = data
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return False
        node = node[part]
    return True


def _nest(flat: Mapping[str, Any]) -> dict[str, Any]:
    """`{"database.multiAz": v}` -> `{"database": {"multiAz": v}}` (Pulumi config is flat)."""
    out: dict[str, Any] = {}
    for key, value in flat.items():
        *parents, leaf = key.split(".")
        node = out
        for part in parents:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        node[leaf] = value
    return out


def _decode(value: Any) -> Any:
    """Config values arrive as strings; objects and lists as JSON text."""
    if isinstance(value, str):
        stripped = value.strip()
        if stripped[:1] in "{[":
            try:
                return json.loads(stripped)
            except json.JSONDecodeError:
                return value
    return value


def _loc(loc: tuple[int | str, ...]) -> str:
    parts: list[str] = []
    for p in loc:
        if isinstance(p, int):
            parts[-1] = f"{parts[-1]}[{p}]" if parts else f"[{p}]"
        else:
            parts.append(p)
    return ".".join(parts)


@dataclass(frozen=True)
class RawConfig:
    """A stack's config as Pulumi gives it to the program: `key -> value` under the project."""

    stack: str
    values: Mapping[str, Any]
    secret_keys: frozenset[str]

    @property
    def stack_file(self) -> str:
        return f"Pulumi.{self.stack}.yaml"


def parse_settings(raw: RawConfig) -> Settings:
    """Validate a stack's raw config into `Settings` or raise one `SettingsError`."""
    problems: list[tuple[str, str]] = []
    data: dict[str, Any] = _nest({k: _decode(v) for k, v in raw.values.items()})

    secrets_present = frozenset(k for k in SECRET_KEYS if k in data)
    for key in secrets_present:
        if key not in raw.secret_keys:
            problems.append((key, "is a secret: set it with `pulumi config set --secret`"))
    problems += connection_problems(data.get("connections"))
    problems += variable_problems(data.get("variables"))
    problems += fernet_key_problems(data.get("fernetKey"))
    names = {
        "connectionIds": tuple(sorted(data["connections"]))
        if isinstance(data.get("connections"), Mapping)
        else (),
        "variableKeys": tuple(sorted(data["variables"]))
        if isinstance(data.get("variables"), Mapping)
        else (),
    }
    for key in secrets_present:
        data.pop(key)

    target_raw = data.get("target")
    target: Target | None = None
    try:
        target = Target(str(target_raw))
    except ValueError:
        problems.append(("target", f"must be one of minikube, eks (got {target_raw!r})"))

    environment = data.get("environment", raw.stack)
    if not isinstance(environment, str) or not DNS_LABEL.match(environment):
        problems.append(("environment", f"{environment!r} is not a short lowercase name"))
        environment = raw.stack

    if target is Target.MINIKUBE:
        problems += [
            (k, "is AWS-only; a minikube stack may not set it")
            for k in EKS_ONLY
            if _has_path(data, k)
        ]
        if environment == "production":
            problems.append(("environment", "production needs target eks"))
    if target is Target.EKS:
        problems += [
            (k, "is minikube-only; an eks stack may not set it")
            for k in MINIKUBE_ONLY
            if _has_path(data, k)
        ]
        if not _has_path(data, "aws.region"):
            problems.append(("aws.region", "is required on an eks stack"))

    defaults = _defaults(target or Target.MINIKUBE, environment)
    fixed = {
        "stack": raw.stack,
        "environment": environment,
        "secretsSet": secrets_present,
        **names,
    }
    settings, field_problems = _validate({**_deep_merge(defaults, data), **fixed})
    reported = {key for key, _ in problems}
    problems += [p for p in field_problems if p[0] not in reported]
    if settings is None:
        # Validate again without the bad keys, so rules across fields are checked too
        # and the user sees every problem in one go.
        # A required field dropped this way (aws.region) fails its section next: then the
        # section goes too, until what is left validates.
        pruned = copy.deepcopy(data)
        dropped: set[str] = set()
        failing = [key.split("[")[0] for key, _ in field_problems]
        for _ in range(4):
            for key in failing:
                _drop(pruned, key)
                dropped.add(key)
            settings, again = _validate({**_deep_merge(defaults, pruned), **fixed})
            if settings is not None:
                break
            failing = [
                key.rpartition(".")[0] if key in dropped else key.split("[")[0] for key, _ in again
            ]
    if settings is not None:
        bad = {key.split("[")[0] for key, _ in problems}
        problems += [p for p in _cross_field_problems(settings) if p[0] not in bad]
    if problems:
        raise SettingsError(raw.stack_file, problems)
    assert settings is not None
    return settings


def _validate(data: dict[str, Any]) -> tuple[Settings | None, list[tuple[str, str]]]:
    try:
        return Settings.model_validate(data), []
    except ValidationError as err:
        problems = []
        for e in err.errors():
            msg = e["msg"].removeprefix("Value error, ")
            if e["type"] == "extra_forbidden":
                msg = "is not a known key (see the README's config table)"
            problems.append((_loc(e["loc"]), msg))
        return None, problems


def _drop(data: dict[str, Any], dotted: str) -> None:
    *parents, leaf = dotted.split(".")
    node: Any = data
    for part in parents:
        node = node.get(part) if isinstance(node, dict) else None
    if isinstance(node, dict):
        node.pop(leaf, None)


CONNECTION_FIELDS = frozenset(
    {"conn_type", "host", "login", "password", "schema", "port", "extra", "description"}
)
URI_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def _names_problems(key: str, names: Iterable[str]) -> list[tuple[str, str]]:
    p: list[tuple[str, str]] = []
    seen: dict[str, str] = {}
    for name in names:
        if not IDENTIFIER.match(name):
            p.append(
                (
                    f"{key}.{name}",
                    "is not a valid name (letters, digits, '_'; not starting with a digit)",
                )
            )
        elif name.upper() in seen:
            p.append(
                (
                    f"{key}.{name}",
                    f"collides with {seen[name.upper()]!r} (names are upper-cased in env vars)",
                )
            )
        seen.setdefault(name.upper(), name)
    return p


def connection_problems(value: Any) -> list[tuple[str, str]]:
    """Each connection is a URI (`type://...`) or an object with Airflow's connection fields."""
    if value is None:
        return []
    if not isinstance(value, Mapping):
        return [("connections", "must be a map of connection id -> URI or object")]
    p = _names_problems("connections", value)
    for conn_id, conn in value.items():
        key = f"connections.{conn_id}"
        if isinstance(conn, str):
            if not URI_SCHEME.match(conn):
                p.append((key, "is not a connection URI like aws://?region_name=eu-west-1"))
        elif isinstance(conn, Mapping):
            unknown = sorted(set(conn) - CONNECTION_FIELDS)
            if unknown:
                p.append((key, f"unknown connection fields {unknown}"))
            if not isinstance(conn.get("conn_type"), str) or not conn.get("conn_type"):
                p.append((key, "needs a conn_type"))
            if "port" in conn and not isinstance(conn["port"], int):
                p.append((key, "port must be an integer"))
            if "extra" in conn and not isinstance(conn["extra"], Mapping | str):
                p.append((key, "extra must be an object or a JSON string"))
        else:
            p.append((key, "must be a URI string or an object"))
    return p


def fernet_key_problems(value: Any) -> list[tuple[str, str]]:
    """A Fernet key is 32 bytes in url-safe base64."""
    if value is None:
        return []
    try:
        raw = base64.urlsafe_b64decode(str(value).encode())
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 32:
        return [("fernetKey", "is not a Fernet key (32 bytes, url-safe base64)")]
    return []


def variable_problems(value: Any) -> list[tuple[str, str]]:
    """Variables are `key -> string` (objects and lists are stored as JSON)."""
    if value is None:
        return []
    if not isinstance(value, Mapping):
        return [("variables", "must be a map of variable key -> value")]
    return _names_problems("variables", value)


def _cross_field_problems(s: Settings) -> list[tuple[str, str]]:
    p: list[tuple[str, str]] = []
    sec = s.secrets_set
    gs = s.airflow.git_sync
    if s.airflow.dags_source == "gitSync" and not gs.repo:
        p.append(("airflow.gitSync.repo", "is required when DAGs come from git-sync"))
    if s.airflow.dags_source == "hostPath":
        if s.is_eks:
            p.append(("airflow.dagsSource", "hostPath is for minikube only; use gitSync"))
        elif not s.airflow.dags_host_path.startswith("/"):
            p.append(
                (
                    "airflow.dagsHostPath",
                    "an absolute path on the minikube node is required for hostPath",
                )
            )
    if "gitSyncSshKey" in sec and sec & {"gitSyncUsername", "gitSyncToken"}:
        p.append(
            ("gitSyncSshKey", "set either gitSyncSshKey or gitSyncUsername/gitSyncToken, not both")
        )
    if ("gitSyncUsername" in sec) != ("gitSyncToken" in sec):
        p.append(("gitSyncToken", "gitSyncUsername and gitSyncToken go together"))
    if "gitSyncSshKey" in sec and not s.git_sync_known_hosts:
        p.append(
            ("gitSyncKnownHosts", "is required with gitSyncSshKey (host key checking stays on)")
        )
    if "gitSyncSshKey" in sec and gs.repo.startswith("https://"):
        p.append(("airflow.gitSync.repo", "an ssh key needs an ssh URL (git@host:org/repo.git)"))
    if sec & {"gitSyncUsername", "gitSyncToken"} and gs.repo and not gs.repo.startswith("https://"):
        p.append(("airflow.gitSync.repo", "username/token credentials need an https:// URL"))
    ing = s.airflow.ingress
    if ing.enabled and not ing.host:
        p.append(("airflow.ingress.host", "is required when the ingress is enabled"))

    c = s.cluster
    if s.is_eks and s.aws is not None and s.region not in _verifiable_rds_regions():
        p.append(
            (
                "aws.region",
                f"the RDS CA bundle (components/certs) has no valid root for {s.region}, so"
                " PgBouncer could not verify the database; refresh the bundle (README)",
            )
        )
    if s.is_eks:
        if c.endpoint_public_access and not c.public_access_cidrs:
            p.append(
                (
                    "cluster.publicAccessCidrs",
                    "is required with the public API endpoint: list the public egress CIDRs of"
                    " the machines that run `pulumi up` (office/VPN, CI runners); or set"
                    " cluster.endpointPublicAccess: false and cluster.privateAccessCidrs",
                )
            )
        if c.public_access_cidrs and not c.endpoint_public_access:
            p.append(("cluster.publicAccessCidrs", "only applies with endpointPublicAccess: true"))
        if not c.endpoint_public_access and not c.private_access_cidrs:
            p.append(
                (
                    "cluster.privateAccessCidrs",
                    "is required with a private-only API endpoint: list the private ranges that"
                    " run `pulumi up`, the bot and CI inside the VPC or over VPN/peering",
                )
            )
        both = sorted(set(c.admin_arns) & set(c.namespace_admin_arns))
        if both:
            p.append(
                (
                    "cluster.namespaceAdminArns",
                    f"{', '.join(both)} also in cluster.adminArns (one access entry per principal)",
                )
            )
    if s.is_production and s.is_eks:
        d = s.database
        if not d.multi_az:
            p.append(("database.multiAz", "must be true in production"))
        if not d.deletion_protection:
            p.append(("database.deletionProtection", "must be true in production"))
        if d.backup_retention_days < 7:
            p.append(("database.backupRetentionDays", "must be at least 7 in production"))
        if c.max_nodes < 2:
            p.append(("cluster.maxNodes", "must be at least 2 in production (two replicas)"))
        if c.spot:
            p.append(("cluster.spot", "production runs on on-demand capacity"))
        if s.network.az_count < 3:
            p.append(("network.azCount", "must be at least 3 in production"))
        if ing.enabled and not ing.internal:
            p.append(("airflow.ingress.internal", "production's UI ingress must be internal"))
        if not d.protect:
            p.append(("database.protect", "must be true in production"))
        if s.network.flow_logs_retention_days < 365:
            p.append(("network.flowLogsRetentionDays", "must be at least 365 in production"))
        if not s.security.customer_managed_keys:
            p.append(("security.customerManagedKeys", "must be true in production"))
        if not s.airflow.logs.access_logging:
            p.append(("airflow.logs.accessLogging", "must be true in production"))
        if not s.monitoring.enabled:
            p.append(("monitoring.enabled", "must be true in production"))
        elif "alertsSlackWebhookUrl" not in sec:
            p.append(
                (
                    "alertsSlackWebhookUrl",
                    "is required in production (where pages go): a Slack incoming-webhook URL,"
                    " set with `pulumi config set --secret`",
                )
            )
        if not s.upgrades.canary:
            p.append(("upgrades.canary", "must be true in production"))
    m = s.monitoring
    if m.page_channel and "page" not in m.notify_severities:
        p.append(("monitoring.pageChannel", "is unused unless notifySeverities includes page"))
    r = s.rollback
    pins = {"image": r.image, "airflowVersion": r.airflow_version, "chartVersion": r.chart_version}
    if any(pins.values()) and not all(pins.values()):
        missing = ", ".join(f"rollback.{k}" for k, v in pins.items() if not v)
        p.append(
            (
                "rollback",
                f"image, airflowVersion and chartVersion are set together; missing {missing}"
                " (`make rollback` sets all three)",
            )
        )
    if s.upgrades.canary and not s.airflow.create_admin_user:
        p.append(
            (
                "upgrades.canary",
                "needs airflow.createAdminUser: the canary logs in to the API as that user",
            )
        )
    if r.active and s.upgrades.canary_force_failure:
        p.append(("upgrades.canaryForceFailure", "is for the drill's upgrade, not a rollback"))
    return p


@functools.cache
def _verifiable_rds_regions() -> frozenset[str]:
    from components.metadata_db import rds_ca_regions

    return rds_ca_regions()


def raw_config_from_runtime(stack: str) -> RawConfig:
    """The config Pulumi passed to this program, for this project's namespace."""
    from pulumi.runtime import config as rc

    prefix = f"{PROJECT}:"
    keys = set(rc.CONFIG.get()) | set(rc.get_config_env())
    values = {k[len(prefix) :]: rc.get_config(k) for k in sorted(keys) if k.startswith(prefix)}
    secret = frozenset(k for k in values if rc.is_config_secret(prefix + k))
    secret |= frozenset(
        k[len(prefix) :] for k in rc.get_config_secret_keys_env() if k.startswith(prefix)
    )
    return RawConfig(stack=stack, values=values, secret_keys=secret)


def load_settings() -> Settings:
    """Read and validate the running stack's config (no resource is created).

    A bad stack file ends the run as a `pulumi.RunError`: the Python language host
    prints its message as Pulumi's own error output, without a Python traceback.
    """
    import pulumi

    try:
        return parse_settings(raw_config_from_runtime(pulumi.get_stack()))
    except SettingsError as err:

        class StackSettingsError(SettingsError, pulumi.RunError):
            """The same problems, as the error the language host reports without a traceback."""

        raise StackSettingsError(err.stack_file, err.problems) from None
