"""Egress NetworkPolicies for the Airflow release's pods, as plain Kubernetes manifests.

The chart's own NetworkPolicies (`networkPolicies.enabled`) only govern *ingress* between its
components. These add the *egress* side: once a policy with `Egress` in its `policyTypes`
selects a pod, that pod may open only the connections some policy allows (Kubernetes docs,
"Network Policies" > "The two sorts of pod isolation"). Policies are additive, so each one
below names one need and the pods that have it:

- DNS, for every pod of the release;
- the metadata database: PgBouncer in the release (eks) and PgBouncer to RDS in the VPC, or
  the in-cluster Postgres (minikube);
- traffic between the release's own pods: the execution API, StatsD, live task logs;
- the task-log store: MinIO in the release namespace (minikube), S3 and STS over 443 (eks);
- the git remote over 443 (and 22 for an ssh repository), for the pods that run git-sync;
- the Kubernetes API, for the scheduler (it launches task pods), the task pods (the
  `platform_k8s_pod` DAG runs a KubernetesPodOperator from them) and the api-server (it
  reads running task pods' logs);
- the post-deploy canary's pod (not the chart's): DNS and the api-server only
  (`canary/job.py`).

"443 out" is the honest rule for AWS endpoints: a NetworkPolicy names CIDRs, not host names,
and S3 and STS answer from AWS's public ranges (thousands of prefixes in ip-ranges.json, which
change), unless interface VPC endpoints place them inside the VPC. The VPC has none for S3 or
STS, so the rule is 0.0.0.0/0 on 443; git hosts are no different. Narrow it to the VPC CIDR
only once such endpoints exist (and the git remote is reached through one too).

Nothing here talks to Pulumi: `egress_policies` is a pure function of the settings, so the
manifests can be checked against what the chart renders. The caller creates each one as a
`kubernetes:networking.k8s.io/v1:NetworkPolicy` in the release namespace.
NetworkPolicies only take effect where the network plugin enforces them: on EKS the VPC CNI
add-on with network policy enabled, on minikube a CNI such as Calico.
"""

from __future__ import annotations

from typing import Any, Final

from canary.job import canary_egress_policy
from components import metadata_db as mdb
from components.chart_values import RELEASE_NAME
from components.naming import PART_OF
from components.settings import Settings

Manifest = dict[str, Any]

NAME_PREFIX: Final = "airflow-platform-egress"

# The chart's default ports (values.yaml `ports`), which the values leave alone.
API_SERVER_PORT: Final = 8080
STATSD_INGEST_PORT: Final = 9125
WORKER_LOGS_PORT: Final = 8793
TRIGGERER_LOGS_PORT: Final = 8794

POSTGRES_PORT: Final = 5432
IN_CLUSTER_POSTGRES_NAMESPACE: Final = "airflow-postgres"
"""Where the minikube stack's Postgres runs (components/database.py)."""
MINIO_PORT: Final = 9000
MINIO_POD_LABELS: Final = {"app.kubernetes.io/name": "minio"}
"""The in-cluster task-log store's pods (components/airflow.py), in the release namespace."""
DNS_PORT: Final = 53
HTTPS_PORT: Final = 443
SSH_PORT: Final = 22
KUBE_API_PORTS_EKS: Final[tuple[int, ...]] = (443,)
"""EKS serves the API on 443 from ENIs it places in the cluster's VPC subnets."""
KUBE_API_PORTS_MINIKUBE: Final[tuple[int, ...]] = (443, 6443, 8443)
"""The `kubernetes` Service's port, kubeadm's default, and minikube's default apiserver port."""
ANYWHERE: Final = "0.0.0.0/0"

# The chart's `component` label of each pod (templates/*/…-deployment.yaml, jobs, and
# files/pod-template-file.kubernetes-helm-yaml for task pods).
AIRFLOW_COMPONENTS: Final = (
    "scheduler",
    "dag-processor",
    "triggerer",
    "api-server",
    "worker",
    "run-airflow-migrations",
    "create-user-job",
)
"""Pods that run Airflow itself: they use the metadata database, StatsD and the log store."""
GIT_SYNC_COMPONENTS: Final = ("dag-processor", "triggerer", "worker")
"""Pods with git-sync containers: the chart adds them to the scheduler only without a
standalone dag-processor, which the values always enable."""
KUBE_API_COMPONENTS: Final = ("scheduler", "worker", "api-server")
"""Pods that call the Kubernetes API: the scheduler launches and watches task pods, task pods
run KubernetesPodOperator (`platform_k8s_pod`), and the api-server reads running task pods'
logs through it (KubernetesExecutor.get_task_log; the chart's pod-log-reader Role)."""
PGBOUNCER_COMPONENT: Final = "pgbouncer"


def release_selector() -> dict[str, Any]:
    """Every pod the chart renders for the release (`tier`/`release` labels)."""
    return {"matchLabels": {"tier": "airflow", "release": RELEASE_NAME}}


def components_selector(components: tuple[str, ...]) -> dict[str, Any]:
    """The release's pods whose `component` label is one of `components`."""
    selector = release_selector()
    if len(components) == 1:
        return {"matchLabels": {**selector["matchLabels"], "component": components[0]}}
    return {
        **selector,
        "matchExpressions": [{"key": "component", "operator": "In", "values": sorted(components)}],
    }


def _ports(protocol: str, *numbers: int) -> list[dict[str, Any]]:
    return [{"protocol": protocol, "port": n} for n in numbers]


def _policy(
    name: str, namespace: str, pods: dict[str, Any], egress: list[dict[str, Any]]
) -> Manifest:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {
            "name": f"{NAME_PREFIX}-{name}",
            "namespace": namespace,
            "labels": dict(PART_OF),
        },
        "spec": {"podSelector": pods, "policyTypes": ["Egress"], "egress": egress},
    }


def _namespace(name: str) -> dict[str, Any]:
    return {"matchLabels": {"kubernetes.io/metadata.name": name}}


def _dns(namespace: str) -> Manifest:
    """Every pod resolves Service and AWS names through CoreDNS (`k8s-app: kube-dns`)."""
    peer = {
        "namespaceSelector": _namespace("kube-system"),
        "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
    }
    return _policy(
        "dns",
        namespace,
        release_selector(),
        [{"to": [peer], "ports": _ports("UDP", DNS_PORT) + _ports("TCP", DNS_PORT)}],
    )


def _in_release(namespace: str) -> Manifest:
    """Airflow pods to the release's own pods: execution API (task pods, and anything that
    runs task code), StatsD metrics, and live logs the api-server reads from task pods and
    triggerers. Which pod accepts what is the chart's ingress policies' business."""
    return _policy(
        "in-release",
        namespace,
        components_selector(AIRFLOW_COMPONENTS),
        [
            {
                "to": [{"podSelector": release_selector()}],
                "ports": _ports("TCP", API_SERVER_PORT, WORKER_LOGS_PORT, TRIGGERER_LOGS_PORT)
                + _ports("UDP", STATSD_INGEST_PORT),
            }
        ],
    )


def _metadata_database(settings: Settings, namespace: str) -> list[Manifest]:
    airflow = components_selector(AIRFLOW_COMPONENTS)
    if not settings.is_eks:
        postgres = {
            "namespaceSelector": _namespace(IN_CLUSTER_POSTGRES_NAMESPACE),
            "podSelector": {"matchLabels": {"app.kubernetes.io/name": "postgres"}},
        }
        return [
            _policy(
                "metadata-db",
                namespace,
                airflow,
                [{"to": [postgres], "ports": _ports("TCP", POSTGRES_PORT)}],
            )
        ]
    pgbouncer = {"podSelector": components_selector((PGBOUNCER_COMPONENT,))}
    return [
        _policy(
            "metadata-db",
            namespace,
            airflow,
            [{"to": [pgbouncer], "ports": _ports("TCP", mdb.PGBOUNCER_PORT)}],
        ),
        # RDS lives in the VPC's private subnets; its address may change on failover, the
        # VPC CIDR does not.
        _policy(
            "pgbouncer-rds",
            namespace,
            components_selector((PGBOUNCER_COMPONENT,)),
            [
                {
                    "to": [{"ipBlock": {"cidr": str(settings.network.cidr)}}],
                    "ports": _ports("TCP", POSTGRES_PORT),
                }
            ],
        ),
    ]


def _log_store(settings: Settings, namespace: str) -> list[Manifest]:
    """MinIO in the release namespace (minikube); on eks S3 is reached by `_https_out`."""
    if settings.is_eks:
        return []
    minio = {"podSelector": {"matchLabels": dict(MINIO_POD_LABELS)}}
    return [
        _policy(
            "log-store",
            namespace,
            components_selector(AIRFLOW_COMPONENTS),
            [{"to": [minio], "ports": _ports("TCP", MINIO_PORT)}],
        )
    ]


def git_uses_ssh(repo: str) -> bool:
    return repo.startswith(("ssh://", "git@"))


def _https_out(namespace: str) -> Manifest:
    """443 to anywhere: S3 (task logs) and STS (IRSA's AssumeRoleWithWebIdentity) on eks, the
    git remote over https, and what task code calls. See the module docstring for why the
    destination cannot honestly be narrower than 0.0.0.0/0 without VPC endpoints."""
    return _policy(
        "https",
        namespace,
        components_selector(AIRFLOW_COMPONENTS),
        [{"to": [{"ipBlock": {"cidr": ANYWHERE}}], "ports": _ports("TCP", HTTPS_PORT)}],
    )


def _git_ssh(settings: Settings, namespace: str) -> list[Manifest]:
    """Port 22 to the git remote, only for an ssh repository and only for git-sync's pods."""
    gs = settings.airflow.git_sync
    if settings.airflow.dags_source != "gitSync" or not git_uses_ssh(gs.repo):
        return []
    return [
        _policy(
            "git-ssh",
            namespace,
            components_selector(GIT_SYNC_COMPONENTS),
            [{"to": [{"ipBlock": {"cidr": ANYWHERE}}], "ports": _ports("TCP", SSH_PORT)}],
        )
    ]


def _kubernetes_api(settings: Settings, namespace: str) -> Manifest:
    """The API server as pods reach it once the `kubernetes` Service is translated to its
    endpoints: on EKS the control plane's ENIs in the VPC (443); on minikube the node itself,
    whose address the program does not know (traffic to a pod's own node is always allowed,
    Kubernetes docs "Network Policies"; the rule covers a multi-node minikube)."""
    if settings.is_eks:
        peer = {"ipBlock": {"cidr": str(settings.network.cidr)}}
        ports = KUBE_API_PORTS_EKS
    else:
        peer = {"ipBlock": {"cidr": ANYWHERE}}
        ports = KUBE_API_PORTS_MINIKUBE
    return _policy(
        "kubernetes-api",
        namespace,
        components_selector(KUBE_API_COMPONENTS),
        [{"to": [peer], "ports": _ports("TCP", *ports)}],
    )


def egress_policies(settings: Settings, namespace: str) -> list[Manifest]:
    """The egress NetworkPolicies of the release namespace's Airflow pods, as manifests."""
    return [
        _dns(namespace),
        _in_release(namespace),
        *_metadata_database(settings, namespace),
        *_log_store(settings, namespace),
        _https_out(namespace),
        *_git_ssh(settings, namespace),
        _kubernetes_api(settings, namespace),
        *([canary_egress_policy(namespace, RELEASE_NAME)] if settings.upgrades.canary else []),
    ]
