"""The Airflow chart's values as a pure function of settings and resolved names.

Nothing here talks to Pulumi: every input is plain data, so the result can be
validated against the chart's own JSON schema and inspected in tests. Secrets
never appear here: the chart gets the *names* of Kubernetes Secrets that the
AirflowRelease component creates.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

from canary.job import POD_LABELS as CANARY_POD_LABELS
from components import metadata_db as mdb
from components import node_pools as np
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


Resources = dict[str, Any]
"""A container's `resources`: cpu and memory requests, and a memory limit."""


def _resources(cpu: str, memory: str) -> Resources:
    """Requests, and a memory limit equal to the memory request.

    No cpu limit: a cpu limit only throttles, while the memory limit keeps one container
    from taking its neighbours' memory (Kubernetes docs, "Resource Management for Pods
    and Containers").
    """
    return {"requests": {"cpu": cpu, "memory": memory}, "limits": {"memory": memory}}


@dataclass(frozen=True)
class Sizes:
    """Every replica count and container size of a stack: the one place sizing lives."""

    replicas: int
    """Scheduler, api-server, triggerer, dag-processor and PgBouncer (eks) replicas."""
    airflow: Resources
    """Long-running Airflow containers; the chart gives each one's `wait-for-airflow-migrations`
    init container the same resources (`<component>.resources`)."""
    worker: Resources
    """The task pods' `base` container (worker pod template)."""
    job: Resources
    """The migration and create-user hook Jobs (an Airflow CLI each)."""
    git_sync: Resources = field(default_factory=lambda: _resources("20m", "128Mi"))
    """git-sync, as init container and as sidecar (a shallow clone of the DAG repository)."""
    log_groomer: Resources = field(default_factory=lambda: _resources("10m", "64Mi"))
    """The log groomer sidecars (a shell loop that deletes old local log files)."""
    pgbouncer: Resources = field(default_factory=lambda: _resources("50m", "128Mi"))
    pgbouncer_exporter: Resources = field(default_factory=lambda: _resources("10m", "64Mi"))
    statsd: Resources = field(default_factory=lambda: _resources("20m", "128Mi"))


def _sizes(settings: Settings) -> Sizes:
    """Replicas and resources: the only way stacks differ besides names and addresses.

    Production runs two of every long-running component (PgBouncer included), so one
    can be drained or lost with its node or zone; the sidecars are the same everywhere.
    """
    if settings.is_production:
        return Sizes(
            replicas=2,
            airflow=_resources("500m", "1Gi"),
            worker=_resources("500m", "1Gi"),
            job=_resources("250m", "1Gi"),
        )
    if settings.is_eks:
        return Sizes(
            replicas=1,
            airflow=_resources("250m", "1Gi"),
            worker=_resources("250m", "1Gi"),
            job=_resources("250m", "1Gi"),
        )
    return Sizes(
        replicas=1,
        airflow=_resources("100m", "512Mi"),
        worker=_resources("100m", "512Mi"),
        job=_resources("100m", "512Mi"),
    )


def _service_account(
    name: str, role_arn: str | None, *, automount_token: bool = True
) -> dict[str, Any]:
    return {
        "create": True,
        "name": name,
        "annotations": {IRSA_ANNOTATION: role_arn} if role_arn else {},
        "automountServiceAccountToken": automount_token,
    }


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
        if ing.certificate_arn:
            # The ALB terminates HTTPS with the ACM certificate; plain HTTP is not served.
            annotations |= {
                "alb.ingress.kubernetes.io/certificate-arn": ing.certificate_arn,
                "alb.ingress.kubernetes.io/listen-ports": '[{"HTTPS": 443}]',
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


def task_placement(settings: Settings) -> dict[str, Any]:
    """Task pods on the task pool (eks): its label, its taint tolerated, and never evicted by
    consolidation while they run."""
    if not settings.is_eks:
        return {"nodeSelector": {}, "tolerations": [], "podAnnotations": {}}
    return {
        "nodeSelector": dict(np.TASK_SELECTOR),
        "tolerations": [dict(np.TASK_TOLERATION)],
        "podAnnotations": dict(np.DO_NOT_DISRUPT),
    }


def ui_url(settings: Settings) -> str | None:
    ing = settings.airflow.ingress
    if not ing.enabled:
        return None
    secure = ing.tls_secret_name or ing.certificate_arn
    return f"{'https' if secure else 'http'}://{ing.host}/"


AIRFLOW_UID = 50000
AIRFLOW_GID = 0
"""The chart's `uid` and `gid`: the pod securityContext it renders for Airflow pods when none
is given (`runAsUser: uid`, `fsGroup: gid`; templates/_helpers.yaml `airflowPodSecurityContext`)."""
NOBODY_UID = 65534
"""The chart's `statsd.uid` and `pgbouncer.uid` (`localPodSecurityContext`)."""
GIT_SYNC_UID = 65533
"""The chart's `dags.gitSync.uid` (`localContainerSecurityContext`)."""
RUNTIME_DEFAULT_SECCOMP = {"type": "RuntimeDefault"}

ZONE_TOPOLOGY_KEY = "topology.kubernetes.io/zone"
HOSTNAME_TOPOLOGY_KEY = "kubernetes.io/hostname"

REPLICATED_SECTIONS: dict[str, str] = {
    "scheduler": "scheduler",
    "apiServer": "api-server",
    "triggerer": "triggerer",
    "dagProcessor": "dag-processor",
    "pgbouncer": "pgbouncer",
}
"""Values sections whose Deployment runs `Sizes.replicas` pods -> their pods' `component` label."""


def pod_labels(component: str) -> dict[str, str]:
    """The labels the chart puts on a component's pods and selects them by."""
    return {"tier": "airflow", "component": component, "release": RELEASE_NAME}


def disruption_budget(replicas: int) -> dict[str, Any]:
    """`<section>.podDisruptionBudget`: on wherever a component runs more than one pod.

    With one replica a budget either blocks every node drain (`maxUnavailable: 0`) or
    protects nothing, so it is only enabled with two or more.
    """
    return {"enabled": replicas > 1, "config": {"maxUnavailable": 1}}


def topology_spread(component: str, replicas: int) -> list[dict[str, Any]]:
    """`<section>.topologySpreadConstraints` for a component's replicas.

    Nodes: a hard rule (`DoNotSchedule`), so no two replicas share a node and losing one
    node never takes a component down; `nodeTaintsPolicy: Honor` leaves cordoned and
    tainted nodes out of the count, so a drain does not block on them. Zones: best effort
    (`ScheduleAnyway`): the nodes come from one managed node group across the zones, whose
    autoscaling group cannot be asked for a node in a given zone, so a hard zone rule could
    keep a replica Pending on a small or unevenly filled cluster.
    """
    if replicas < 2:
        return []
    selector = {"matchLabels": pod_labels(component)}
    return [
        {
            "maxSkew": 1,
            "topologyKey": ZONE_TOPOLOGY_KEY,
            "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": selector,
        },
        {
            "maxSkew": 1,
            "topologyKey": HOSTNAME_TOPOLOGY_KEY,
            "whenUnsatisfiable": "DoNotSchedule",
            "nodeTaintsPolicy": "Honor",
            "labelSelector": selector,
        },
    ]


def _replicated(component: str, replicas: int) -> dict[str, Any]:
    return {
        "replicas": replicas,
        "podDisruptionBudget": disruption_budget(replicas),
        "topologySpreadConstraints": topology_spread(component, replicas),
    }


def airflow_pod_security_context() -> dict[str, Any]:
    """Global `securityContexts.pod`, used by every Airflow pod that sets none of its own
    (components, hook Jobs, the worker pod template). The chart's helper takes the first one
    set and does not merge, so the defaults it would render are spelled out here."""
    return {
        "runAsUser": AIRFLOW_UID,
        "fsGroup": AIRFLOW_GID,
        "seccompProfile": dict(RUNTIME_DEFAULT_SECCOMP),
    }


def nobody_pod_security_context() -> dict[str, Any]:
    """`statsd`/`pgbouncer` `.securityContexts.pod`: they do not read the global one."""
    return {"runAsUser": NOBODY_UID, "seccompProfile": dict(RUNTIME_DEFAULT_SECCOMP)}


def git_sync_container_security_context() -> dict[str, Any]:
    """`dags.gitSync.securityContexts.container`, for the init container and the sidecar."""
    return {
        "runAsUser": GIT_SYNC_UID,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
    }


PROMETHEUS_POD_LABELS: Final = {"app.kubernetes.io/name": "prometheus"}
"""Labels the Prometheus operator puts on the Prometheus pods it runs."""


def metrics_scrapers(s: Settings) -> list[dict[str, Any]]:
    """Who the chart's statsd and PgBouncer ingress policies admit besides Airflow's own pods:
    Prometheus, from the metrics stack's namespace, to scrape the exporters."""
    if not s.monitoring.enabled:
        return []
    return [
        {
            "namespaceSelector": {
                "matchLabels": {"kubernetes.io/metadata.name": s.monitoring.namespace}
            },
            "podSelector": {"matchLabels": dict(PROMETHEUS_POD_LABELS)},
        }
    ]


def api_server_ingress_peers(settings: Settings) -> list[dict[str, Any]]:
    """Who may reach the api-server once the chart's NetworkPolicies are on.

    The chart's api-server policy admits nobody unless `apiServer.networkPolicy.ingress.from`
    names peers; task pods need the execution API, the canary the REST API, and the UI's
    ingress needs the pods too:
    the ALB (target type ip) from inside the VPC, or the ingress controller's namespace.
    """
    peers: list[dict[str, Any]] = [
        {"podSelector": {"matchLabels": {"tier": "airflow", "release": RELEASE_NAME}}}
    ]
    if settings.upgrades.canary:
        # The post-deploy canary's pod calls the REST API.
        peers.append({"podSelector": {"matchLabels": dict(CANARY_POD_LABELS)}})
    if settings.airflow.ingress.enabled:
        if settings.is_eks:
            peers.append({"ipBlock": {"cidr": str(settings.network.cidr)}})
        else:
            peers.append(
                {
                    "namespaceSelector": {
                        "matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}
                    }
                }
            )
    return peers


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
    replicas = sizes.replicas
    repository, tag = split_image_ref(inputs.image_ref)
    image = {"repository": repository, "tag": tag, "pullPolicy": "IfNotPresent"}
    values: dict[str, Any] = {
        "executor": "KubernetesExecutor",
        # The image's Airflow version: the build's, or the one `make rollback` pinned.
        "airflowVersion": s.rollback.airflow_version or AIRFLOW_VERSION,
        "defaultAirflowTag": s.rollback.airflow_version or AIRFLOW_VERSION,
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
        # RuntimeDefault seccomp on every pod; the container contexts stay the chart's
        # (no privilege escalation, all capabilities dropped).
        "securityContexts": {"pod": airflow_pod_security_context()},
        # The chart's ingress policies between its components; the egress side is
        # components/network_policies.py.
        "networkPolicies": {"enabled": True},
        "statsd": {
            "extraNetworkPolicies": metrics_scrapers(s),
            "resources": sizes.statsd,
            "securityContexts": {"pod": nobody_pod_security_context()},
            "serviceAccount": {"automountServiceAccountToken": False},
        },
        "pgbouncer": {
            "enabled": s.is_eks,
            **_replicated(REPLICATED_SECTIONS["pgbouncer"], replicas),
            "resources": sizes.pgbouncer,
            "securityContexts": {"pod": nobody_pod_security_context()},
            "serviceAccount": {"automountServiceAccountToken": False},
            "configSecretName": SECRETS.pgbouncer_config,
            "extraNetworkPolicies": metrics_scrapers(s),
            "metricsExporterSidecar": {
                "statsSecretName": SECRETS.pgbouncer_stats,
                "statsSecretKey": mdb.STATS_SECRET_KEY,
                "resources": sizes.pgbouncer_exporter,
            },
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
        "dags": {
            "gitSync": {
                **git_sync_values(s),
                "resources": sizes.git_sync,
                "securityContexts": {"container": git_sync_container_security_context()},
            }
        },
        "migrateDatabaseJob": {
            "enabled": True,
            "useHelmHooks": True,
            "ttlSecondsAfterFinished": 3600,
            "resources": sizes.job,
            "serviceAccount": {"automountServiceAccountToken": False},
        },
        "createUserJob": {
            **admin_user_job(s),
            "resources": sizes.job,
            "serviceAccount": {"automountServiceAccountToken": False},
        },
        # Service-account tokens only in pods that call the Kubernetes API: the scheduler
        # (launches task pods), task pods (KubernetesPodOperator, `platform_k8s_pod`) and the
        # api-server (reads running task pods' logs: the chart binds it to its pod-log-reader
        # Role). IRSA does not need the token: the EKS Pod Identity webhook projects its own
        # `aws-iam-token` volume into pods whose ServiceAccount carries the role annotation.
        "scheduler": {
            **_replicated(REPLICATED_SECTIONS["scheduler"], replicas),
            "serviceAccount": _service_account(LOG_SERVICE_ACCOUNTS["scheduler"], role),
            "resources": sizes.airflow,
            "logGroomerSidecar": {"resources": sizes.log_groomer},
        },
        "workers": {
            "serviceAccount": _service_account(LOG_SERVICE_ACCOUNTS["workers"], role),
            "resources": sizes.worker,
            "kubernetes": task_placement(s),
        },
        # Airflow's own pods on the platform pool (eks; minikube has one node).
        "nodeSelector": dict(np.PLATFORM_SELECTOR) if s.is_eks else {},
        "triggerer": {
            **_replicated(REPLICATED_SECTIONS["triggerer"], replicas),
            # Deferrable KubernetesPodOperator triggers would need the token back.
            "serviceAccount": _service_account(
                LOG_SERVICE_ACCOUNTS["triggerer"], role, automount_token=False
            ),
            "resources": sizes.airflow,
            "logGroomerSidecar": {"resources": sizes.log_groomer},
            # The chart's default claims a 100Gi volume for trigger logs; they go to the
            # remote log store like every other log, so no volume is claimed at all.
            "persistence": {"enabled": False},
        },
        "dagProcessor": {
            "enabled": True,
            **_replicated(REPLICATED_SECTIONS["dagProcessor"], replicas),
            "serviceAccount": _service_account(
                LOG_SERVICE_ACCOUNTS["dagProcessor"], role, automount_token=False
            ),
            "resources": sizes.airflow,
            "logGroomerSidecar": {"resources": sizes.log_groomer},
        },
        "apiServer": {
            **_replicated(REPLICATED_SECTIONS["apiServer"], replicas),
            "serviceAccount": _service_account(LOG_SERVICE_ACCOUNTS["apiServer"], role),
            "service": {"type": "ClusterIP"},
            "resources": sizes.airflow,
            "networkPolicy": {"ingress": {"from": api_server_ingress_peers(s)}},
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
