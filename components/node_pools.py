"""What the platform asks of EKS Auto Mode, as plain Kubernetes manifests (eks stacks).

Two node pools (Auto Mode's managed Karpenter, `karpenter.sh/v1` NodePools) on the
platform's own NodeClass, which keeps nodes in the private subnets:

- **platform**: Airflow's own pods (scheduler, api-server, triggerer, dag-processor,
  PgBouncer, StatsD, the hook jobs). On-demand only, consolidated only when empty, one node
  at a time: a small, stable pool.
- **tasks**: the KubernetesExecutor's task pods, one per task. Tainted so nothing else lands
  there; spot allowed where `cluster.spot` says so (never production); consolidated as soon
  as nodes are empty or underused, so it follows the task load and shrinks to zero when idle;
  capped at `cluster.taskCpuLimit` vCPUs. Task pods carry `karpenter.sh/do-not-disrupt`, so
  consolidation never evicts a running task.

Plus the default StorageClass (encrypted gp3 on Auto Mode's EBS driver) and the ALB
IngressClass (Auto Mode's load balancer controller), internal unless configured otherwise.
Pure functions of the settings, so they are tested directly.
"""

from __future__ import annotations

from typing import Any, Final

from components.capacity import vcpus
from components.naming import PART_OF
from components.settings import Settings

Manifest = dict[str, Any]

POOL_LABEL: Final = "airflow-platform/pool"
PLATFORM_POOL: Final = "airflow-platform"
TASK_POOL: Final = "airflow-tasks"
PLATFORM_SELECTOR: Final = {POOL_LABEL: "platform"}
TASK_SELECTOR: Final = {POOL_LABEL: "tasks"}
TASK_TAINT: Final = {"key": "airflow-platform/tasks", "value": "true", "effect": "NoSchedule"}
TASK_TOLERATION: Final = {
    "key": TASK_TAINT["key"],
    "operator": "Equal",
    "value": TASK_TAINT["value"],
    "effect": TASK_TAINT["effect"],
}
DO_NOT_DISRUPT: Final = {"karpenter.sh/do-not-disrupt": "true"}
"""On task pods: Karpenter does not consolidate a node away under a running task."""
NODE_CLASS: Final = "airflow-platform"
NODE_CLASS_REF: Final = {"group": "eks.amazonaws.com", "kind": "NodeClass", "name": NODE_CLASS}
STORAGE_CLASS: Final = "gp3-encrypted"
EBS_PROVISIONER: Final = "ebs.csi.eks.amazonaws.com"
"""Auto Mode's EBS CSI driver (not the add-on's `ebs.csi.aws.com`)."""
ALB_CONTROLLER: Final = "eks.amazonaws.com/alb"
INGRESS_CLASS: Final = "alb"


def platform_cpu_limit(settings: Settings) -> int:
    """`cluster.maxNodes` nodes of the largest allowed type."""
    return settings.cluster.max_nodes * max(vcpus(t) for t in settings.cluster.instance_types)


def _pool(
    name: str,
    labels: dict[str, str],
    capacity_types: list[str],
    cpu_limit: int,
    disruption: dict[str, Any],
    settings: Settings,
    taints: list[dict[str, str]] | None = None,
) -> Manifest:
    spec: dict[str, Any] = {
        "nodeClassRef": dict(NODE_CLASS_REF),
        "requirements": [
            {
                "key": "node.kubernetes.io/instance-type",
                "operator": "In",
                "values": list(settings.cluster.instance_types),
            },
            {"key": "karpenter.sh/capacity-type", "operator": "In", "values": capacity_types},
            {"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]},
        ],
        "expireAfter": "336h",
    }
    if taints:
        spec["taints"] = taints
    return {
        "apiVersion": "karpenter.sh/v1",
        "kind": "NodePool",
        "metadata": {"name": name, "labels": dict(PART_OF)},
        "spec": {
            "template": {"metadata": {"labels": labels}, "spec": spec},
            "disruption": disruption,
            "limits": {"cpu": str(cpu_limit)},
        },
    }


def platform_pool(settings: Settings) -> Manifest:
    return _pool(
        PLATFORM_POOL,
        dict(PLATFORM_SELECTOR),
        ["on-demand"],
        platform_cpu_limit(settings),
        {
            "consolidationPolicy": "WhenEmpty",
            "consolidateAfter": "10m",
            "budgets": [{"nodes": "1"}],
        },
        settings,
    )


def task_pool(settings: Settings) -> Manifest:
    capacity = ["spot", "on-demand"] if settings.cluster.spot else ["on-demand"]
    return _pool(
        TASK_POOL,
        dict(TASK_SELECTOR),
        capacity,
        settings.cluster.task_cpu_limit,
        {"consolidationPolicy": "WhenEmptyOrUnderutilized", "consolidateAfter": "1m"},
        settings,
        taints=[dict(TASK_TAINT)],
    )


def node_class(role_name: str, subnet_ids: list[str], security_group_id: str) -> Manifest:
    """The platform's NodeClass: nodes in the VPC's private subnets only (by id, so no other
    VPC's subnets can match a tag), with the cluster security group, as Auto Mode's node role
    (whose access entry EKS made for the built-in pool)."""
    return {
        "apiVersion": "eks.amazonaws.com/v1",
        "kind": "NodeClass",
        "metadata": {"name": NODE_CLASS, "labels": dict(PART_OF)},
        "spec": {
            "role": role_name,
            "subnetSelectorTerms": [{"id": s} for s in subnet_ids],
            "securityGroupSelectorTerms": [{"id": security_group_id}],
        },
    }


def storage_class() -> Manifest:
    """The default StorageClass: encrypted gp3 volumes, made where the pod is scheduled."""
    return {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {
            "name": STORAGE_CLASS,
            "labels": dict(PART_OF),
            "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
        },
        "provisioner": EBS_PROVISIONER,
        "parameters": {"type": "gp3", "encrypted": "true"},
        "volumeBindingMode": "WaitForFirstConsumer",
        "allowVolumeExpansion": True,
        "reclaimPolicy": "Delete",
    }


def alb_ingress_class(settings: Settings) -> list[Manifest]:
    """IngressClassParams (the ALB's scheme) and the `alb` IngressClass of Auto Mode."""
    scheme = "internal" if settings.airflow.ingress.internal else "internet-facing"
    params = {
        "apiVersion": "eks.amazonaws.com/v1",
        "kind": "IngressClassParams",
        "metadata": {"name": INGRESS_CLASS, "labels": dict(PART_OF)},
        "spec": {"scheme": scheme},
    }
    ingress_class = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "IngressClass",
        "metadata": {"name": INGRESS_CLASS, "labels": dict(PART_OF)},
        "spec": {
            "controller": ALB_CONTROLLER,
            "parameters": {
                "apiGroup": "eks.amazonaws.com",
                "kind": "IngressClassParams",
                "name": INGRESS_CLASS,
            },
        },
    }
    return [params, ingress_class]
