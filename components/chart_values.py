"""The Airflow chart's values as a pure function of settings and resolved names.

Nothing here talks to Pulumi: every input is plain data, so the result can be
validated against the chart's own JSON schema and inspected in tests. Secrets
never appear here: the chart gets the *names* of Kubernetes Secrets that the
AirflowRelease component creates.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from components import metadata_db as mdb
from components.settings import Settings

AIRFLOW_VERSION = "3.2.2"
"""The Airflow version of the image (`image/Dockerfile`) and the pinned chart's appVersion."""

CHART_REPOSITORY = "https://airflow.apache.org"
CHART_NAME = "airflow"
RELEASE_NAME = "airflow"
LOGS_CONN_ID = "aws_task_logs"
API_SERVER_PORT = 8080
IRSA_ANNOTATION = "eks.amazonaws.com/role-arn"
CHECKSUM_ANNOTATION = "airflow-platform/secrets-checksum"
"""Pod annotation that changes whenever a Secret the pod reads changes, so the pods roll."""

# Airflow components that write or read task logs, keyed by the chart's values section.
LOG_SERVICE_ACCOUNTS: dict[str, str] = {
    "scheduler": f"{RELEASE_NAME}-scheduler",
    "workers": f"{RELEASE_NAME}-worker",
    "triggerer": f"{RELEASE_NAME}-triggerer",
    "dagProcessor": f"{RELEASE_NAME}-dag-processor",
    "apiServer": f"{RELEASE_NAME}-api-server",
}


@dataclass(frozen=True)
class SecretNames:
    """Names of the Kubernetes Secrets the chart reads (created by AirflowRelease)."""

    metadata: str = "airflow-platform-metadata"
    pgbouncer_config: str = "airflow-platform-pgbouncer-config"
    pgbouncer_stats: str = "airflow-platform-pgbouncer-stats"
    fernet_key: str = "airflow-platform-fernet-key"
    api_secret_key: str = "airflow-platform-api-secret-key"  # noqa: S105 (a Secret's name)
    jwt_secret: str = "airflow-platform-jwt-secret"  # noqa: S105 (a Secret's name)
    git_credentials: str = "airflow-platform-git-credentials"
    git_ssh_key: str = "airflow-platform-git-ssh-key"
    task_logs_connection: str = "airflow-platform-task-logs-connection"
    connections_variables: str = "airflow-platform-connections-variables"
    admin_user: str = "airflow-platform-admin-user"
    rds_ca: str = mdb.RDS_CA_CONFIGMAP_NAME
    """A ConfigMap, not a Secret: the public RDS CA bundle."""


SECRETS = SecretNames()


def remote_base_log_folder(bucket: str, prefix: str) -> str:
    """`s3://bucket/prefix` with no doubled or trailing slash."""
    prefix = prefix.strip("/")
    return f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}"


def logging_config(bucket: str, prefix: str, conn_id: str) -> dict[str, str]:
    """Airflow's `[logging]` section for remote task logs in S3.

    The same keys on every stack: on EKS the connection resolves to the IRSA
    web identity; on minikube it carries the in-cluster store's endpoint URL.
    """
    return {
        "remote_logging": "True",
        "remote_base_log_folder": remote_base_log_folder(bucket, prefix),
        "remote_log_conn_id": conn_id,
        "delete_local_logs": "False",
        "encrypt_s3_logs": "False",
        "colored_console_log": "False",
    }


def env_name(kind: str, name: str) -> str:
    """`AIRFLOW_CONN_<ID>` / `AIRFLOW_VAR_<KEY>`: how Airflow finds them in the environment."""
    return f"AIRFLOW_{kind}_{name.upper()}"


def task_logs_connection(region: str, endpoint_url: str | None = None) -> dict[str, Any]:
    """The task-log connection without credentials: IRSA (eks) supplies them.

    With an endpoint URL (the in-cluster store) the caller adds login/password.
    """
    extra: dict[str, Any] = {"region_name": region}
    if endpoint_url:
        extra["endpoint_url"] = endpoint_url
    return {"conn_type": "aws", "extra": extra}


def split_image_ref(ref: str) -> tuple[str, str]:
    """`repo:tag` or `repo:tag@sha256:...` -> (repo, `tag` or `tag@sha256:...`).

    The chart builds the worker pod template's image as `repository:tag` (it has no
    digest there), so the digest rides in the tag: `repo:tag@sha256:...` is a valid
    reference in which the digest wins.
    """
    name, at, digest = ref.partition("@")
    repository, colon, tag = name.rpartition(":")
    if not colon or not repository or "/" in tag:
        raise ValueError(f"{ref!r} is not an image reference with a tag")
    return repository, f"{tag}{at}{digest}"


@dataclass(frozen=True)
class ChartInputs:
    """Everything the values depend on, resolved to plain data."""

    settings: Settings
    image_ref: str
    """The built image (`repo:tag`, or `repo:tag@sha256:...` once pushed)."""
    logs_bucket: str
    logs_role_arn: str | None = None
    """The IRSA role for task logs (eks); None on minikube."""
    extra_secret_env: tuple[str, ...] = ()
    """Env names kept in the connections/variables Secret (AIRFLOW_CONN_*, AIRFLOW_VAR_*)."""
    secrets_checksum: str = ""
    """Keyed digest of every Secret the Airflow pods read; rolls them when one changes."""
    pgbouncer_checksum: str = ""
    """The same for PgBouncer's config and stats Secrets (eks)."""


def _sizes(settings: Settings) -> dict[str, Any]:
    """Replicas and resources: the only way stacks differ besides names and addresses."""
    if settings.is_production:
        return {"replicas": 2, "cpu": "500m", "memory": "1Gi", "worker_memory": "1Gi"}
    if settings.is_eks:
        return {"replicas": 1, "cpu": "250m", "memory": "1Gi", "worker_memory": "1Gi"}
    return {"replicas": 1, "cpu": "100m", "memory": "512Mi", "worker_memory": "512Mi"}


def _service_account(name: str, role_arn: str | None) -> dict[str, Any]:
    return {
        "create": True,
        "name": name,
        "annotations": {IRSA_ANNOTATION: role_arn} if role_arn else {},
    }


def _resources(cpu: str, memory: str) -> dict[str, Any]:
    return {"requests": {"cpu": cpu, "memory": memory}, "limits": {"memory": memory}}


def git_sync_values(settings: Settings) -> dict[str, Any]:
    """`dags.gitSync`: where the DAGs come from, and the credentials' Secret by name."""
    gs = settings.airflow.git_sync
    pinned = gs.rev if gs.rev != "HEAD" else gs.branch
    values: dict[str, Any] = {
        "enabled": settings.airflow.dags_source == "gitSync",
        "repo": gs.repo,
        "branch": gs.branch,
        "rev": gs.rev,
        "ref": pinned,
        "subPath": gs.sub_path,
        "period": gs.period,
        "depth": 1,
        "maxFailures": 3,
    }
    if {"gitSyncUsername", "gitSyncToken"} <= settings.secrets_set:
        values["credentialsSecret"] = SECRETS.git_credentials
    if "gitSyncSshKey" in settings.secrets_set:
        values["sshKeySecret"] = SECRETS.git_ssh_key
        values["knownHosts"] = settings.git_sync_known_hosts
    return values


def admin_user_job(settings: Settings) -> dict[str, Any]:
    """The chart's user-creation hook, fed from a Secret (never a password in values).

    It runs after the migrations on every install and upgrade: it creates the
    admin user when missing, then sets its password from the Secret, so the
    password `make ui` shows is always the one that works.
    """
    if not settings.airflow.create_admin_user:
        return {"enabled": False}
    return {
        "enabled": True,
        "useHelmHooks": True,
        "applyCustomEnv": False,
        "args": [
            "bash",
            "-c",
            'airflow users create --role Admin --username "$ADMIN_USERNAME"'
            ' --password "$ADMIN_PASSWORD" --email "$ADMIN_USERNAME@localhost"'
            " --firstname Airflow --lastname Admin"
            ' && exec airflow users reset-password --username "$ADMIN_USERNAME"'
            ' --password "$ADMIN_PASSWORD"',
        ],
        "env": [
            {"name": "ADMIN_USERNAME", "value": settings.airflow.admin_username},
            {
                "name": "ADMIN_PASSWORD",
                "valueFrom": {"secretKeyRef": {"name": SECRETS.admin_user, "key": "password"}},
            },
        ],
    }


def ingress_values(settings: Settings) -> dict[str, Any]:
    ing = settings.airflow.ingress
    if not ing.enabled:
        return {"apiServer": {"enabled": False}}
    tls = {"enabled": bool(ing.tls_secret_name), "secretName": ing.tls_secret_name}
    annotations = {}
    if ing.class_name == "alb":
        annotations = {
            "alb.ingress.kubernetes.io/scheme": "internal" if ing.internal else "internet-facing",
            "alb.ingress.kubernetes.io/target-type": "ip",
        }
    return {
        "apiServer": {
            "enabled": True,
            "ingressClassName": ing.class_name,
            "annotations": annotations,
            "hosts": [{"name": ing.host, "tls": tls}],
            "path": "/",
            "pathType": "Prefix",
        }
    }


def ui_url(settings: Settings) -> str | None:
    ing = settings.airflow.ingress
    if not ing.enabled:
        return None
    return f"{'https' if ing.tls_secret_name else 'http'}://{ing.host}/"


def chart_values(inputs: ChartInputs) -> dict[str, Any]:
    """The chart's values for one stack."""
    s = inputs.settings
    sizes = _sizes(s)
    role = inputs.logs_role_arn
    secret_env = [
        {
            "envName": env_name("CONN", LOGS_CONN_ID),
            "secretName": SECRETS.task_logs_connection,
            "secretKey": env_name("CONN", LOGS_CONN_ID),
        }
    ] + [
        {"envName": env, "secretName": SECRETS.connections_variables, "secretKey": env}
        for env in inputs.extra_secret_env
    ]
    # The async engine's own URI (asyncpg), from the metadata Secret, on every Airflow
    # container; the sync one is the chart's `data.metadataSecretName` (`connection`).
    secret_env.append(mdb.async_connection_env(SECRETS.metadata))
    component_resources = _resources(sizes["cpu"], sizes["memory"])
    repository, tag = split_image_ref(inputs.image_ref)
    image = {"repository": repository, "tag": tag, "pullPolicy": "IfNotPresent"}
    values: dict[str, Any] = {
        "executor": "KubernetesExecutor",
        "airflowVersion": AIRFLOW_VERSION,
        "defaultAirflowTag": AIRFLOW_VERSION,
        "images": {
            "airflow": image,
            # Every task pod is made from the worker pod template: the same image.
            "pod_template": dict(image),
            "useDefaultImageForMigration": False,
        },
        "airflowPodAnnotations": {CHECKSUM_ANNOTATION: inputs.secrets_checksum},
        "postgresql": {"enabled": False},
        "redis": {"enabled": False},
        "data": {"metadataSecretName": SECRETS.metadata},
        "fernetKeySecretName": SECRETS.fernet_key,
        "apiSecretKeySecretName": SECRETS.api_secret_key,
        "jwtSecretName": SECRETS.jwt_secret,
        "pgbouncer": {
            "enabled": s.is_eks,
            "configSecretName": SECRETS.pgbouncer_config,
            "metricsExporterSidecar": {
                "statsSecretName": SECRETS.pgbouncer_stats,
                "statsSecretKey": mdb.STATS_SECRET_KEY,
            },
            "replicas": sizes["replicas"],
            "podAnnotations": {CHECKSUM_ANNOTATION: inputs.pgbouncer_checksum},
            # The RDS CA bundle (a ConfigMap), so PgBouncer verifies the server (verify-full).
            **mdb.pgbouncer_ca_volumes(SECRETS.rds_ca),
        },
        "secret": secret_env,
        # Defines the async engine's connect args (asyncpg's statement cache off), which
        # `[database] sql_alchemy_connect_args_async` names; mounted on every Airflow pod.
        "airflowLocalSettings": mdb.airflow_local_settings(),
        "config": {
            "core": {"load_examples": "False"},
            "database": {"sql_alchemy_connect_args_async": mdb.ASYNC_CONNECT_ARGS_IMPORT_PATH},
            "logging": logging_config(inputs.logs_bucket, s.airflow.logs.prefix, LOGS_CONN_ID),
            "kubernetes_executor": {"delete_worker_pods": "True"},
        },
        "dags": {"gitSync": git_sync_values(s)},
        "migrateDatabaseJob": {
            "enabled": True,
            "useHelmHooks": True,
            "ttlSecondsAfterFinished": 3600,
        },
        "createUserJob": admin_user_job(s),
        "scheduler": {
            "replicas": sizes["replicas"],
            "serviceAccount": _service_account(LOG_SERVICE_ACCOUNTS["scheduler"], role),
            "resources": component_resources,
        },
        "workers": {
            "serviceAccount": _service_account(LOG_SERVICE_ACCOUNTS["workers"], role),
            "resources": _resources(sizes["cpu"], sizes["worker_memory"]),
        },
        "triggerer": {
            "replicas": sizes["replicas"],
            "serviceAccount": _service_account(LOG_SERVICE_ACCOUNTS["triggerer"], role),
            "resources": component_resources,
            # The chart's default claims a 100Gi volume for trigger logs; they go to the
            # remote log store like every other log, so no volume is claimed at all.
            "persistence": {"enabled": False},
        },
        "dagProcessor": {
            "enabled": True,
            "replicas": sizes["replicas"],
            "serviceAccount": _service_account(LOG_SERVICE_ACCOUNTS["dagProcessor"], role),
            "resources": component_resources,
        },
        "apiServer": {
            "replicas": sizes["replicas"],
            "serviceAccount": _service_account(LOG_SERVICE_ACCOUNTS["apiServer"], role),
            "service": {"type": "ClusterIP"},
            "resources": component_resources,
        },
        "ingress": ingress_values(s),
    }
    if s.airflow.dags_source == "hostPath":
        values["dags"]["persistence"] = {"enabled": False}
        values["volumes"] = [
            {
                "name": "dags-host",
                "hostPath": {"path": s.airflow.dags_host_path, "type": "Directory"},
            }
        ]
        values["volumeMounts"] = [
            {"name": "dags-host", "mountPath": "/opt/airflow/dags", "readOnly": True}
        ]
    url = ui_url(s)
    if url:
        values["config"]["api"] = {"base_url": url}
    return values


def port_forward_command(namespace: str) -> str:
    """What a user runs to reach the UI on http://localhost:8080."""
    return (
        f"kubectl --namespace {namespace} port-forward "
        f"svc/{RELEASE_NAME}-api-server {API_SERVER_PORT}:{API_SERVER_PORT}"
    )
