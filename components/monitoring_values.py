"""Values for the kube-prometheus-stack chart: a pure function of a stack's settings.

What differs between stacks is size, retention and placement; the shape is the same everywhere:
- The repository's rules (monitoring/rules, created as PrometheusRule objects) are the single
  source of alerts: the chart's bundled rules are off, so nothing alerts without a tested rule
  and a runbook.
- Prometheus selects every ServiceMonitor and PrometheusRule in the cluster (not only those with
  the chart's release label), labels its alerts `stack=<stack>` (the Slack bot filters on it),
  keeps `monitoring.retention` and stops before its volume fills.
- Alertmanager reads its configuration from a Secret the program writes
  (`components/alertmanager_config.py`) and the Slack webhook from another, mounted as a file.
- Grafana's admin password comes from a generated Secret (the chart's default is a known
  password); dashboards arrive through its sidecar from ConfigMaps labelled `grafana_dashboard`.
- Control-plane scrapers the cluster does not expose (EKS and minikube both keep the scheduler,
  controller manager, etcd and kube-proxy metrics out of reach) are off, so no target is down by
  design.
- Node autoscaling is seen through Karpenter's objects (eks stacks): kube-state-metrics turns the
  NodePools and NodeClaims into `kube_karpenter_*` series (`karpenter_state_metrics()`), because
  Auto Mode's Karpenter itself runs out of the cluster's reach.
"""

from __future__ import annotations

import re
from typing import Any, Final

from components import alertmanager_config as amc
from components import node_pools as np
from components.settings import Settings

CHART_NAME: Final = "kube-prometheus-stack"
CHART_REPOSITORY: Final = "https://prometheus-community.github.io/helm-charts"
RELEASE_NAME: Final = "kps"
"""Short, so the operator-made objects keep readable names (`kps-prometheus`, ...)."""
GRAFANA_ADMIN_SECRET: Final = "grafana-admin"  # noqa: S105 (a Secret's name)
DASHBOARD_LABEL: Final = "grafana_dashboard"
"""The label the Grafana sidecar looks for (the chart's `grafana.sidecar.dashboards.label`)."""
RETENTION_SHARE: Final = 0.85
"""Prometheus deletes old blocks once the TSDB reaches this share of its volume."""

UNREACHABLE_CONTROL_PLANE: Final = (
    "kubeControllerManager",
    "kubeScheduler",
    "kubeEtcd",
    "kubeProxy",
)

KARPENTER_GROUP: Final = "karpenter.sh"
KARPENTER_VERSION: Final = "v1"
KARPENTER_METRIC_PREFIX: Final = "kube_karpenter"
"""kube-state-metrics names a series `<metricNamePrefix>_<name>`."""


def _resources(cpu: str, memory: str, memory_limit: str) -> dict[str, Any]:
    return {"requests": {"cpu": cpu, "memory": memory}, "limits": {"memory": memory_limit}}


def retention_size(storage_size: str) -> str:
    """`retentionSize` for a volume of `storage_size` (e.g. 50Gi -> 42GiB): the TSDB's units."""
    match = re.fullmatch(r"(\d+)(Mi|Gi|Ti)", storage_size)
    if match is None:
        raise ValueError(f"{storage_size!r} is not a quantity like 50Gi")
    mebibytes = int(match.group(1)) * {"Mi": 1, "Gi": 1024, "Ti": 1024 * 1024}[match.group(2)]
    return f"{int(mebibytes * RETENTION_SHARE)}MiB"


def _conditions(what: str) -> dict[str, Any]:
    """One series per status condition: 1 while its status is "True", 0 for "False"/"Unknown"."""
    return {
        "name": f"{what}_condition",
        "help": f"Status conditions of the {what}: 1 when True, 0 when False or Unknown.",
        "each": {
            "type": "Gauge",
            "gauge": {
                "path": ["status", "conditions"],
                "labelsFromPath": {"condition": ["type"]},
                "valueFrom": ["status"],
            },
        },
    }


def _gauge(name: str, help_text: str, path: list[str]) -> dict[str, Any]:
    return {"name": name, "help": help_text, "each": {"type": "Gauge", "gauge": {"path": path}}}


def karpenter_state_metrics() -> dict[str, Any]:
    """kube-state-metrics' Custom Resource State config for Karpenter's NodePools and NodeClaims.

    Why objects and not Karpenter's own metrics: on EKS Auto Mode, Karpenter is one of the
    controllers AWS runs in its control plane, "not visible to you" (Amazon EKS User Guide,
    "Monitor the EKS Auto Mode runtime"): no pod or Service of it exists in the cluster to
    scrape. For those controllers AWS documents log delivery only ("Access AWS-Managed
    Component Logs For EKS Auto", Karpenter being the "Compute autoscaling" source;
    awsdocs/amazon-eks-user-guide latest/ug/automode/auto-managed-component-logs.adoc). Its
    objects, though, are in the cluster's API.

    The format is kubernetes/kube-state-metrics docs/metrics/extend/customresourcestate-metrics.md,
    read by pkg/customresourcestate (config.go, config_metrics_types.go, registry_factory.go):
    - a series is named `<metricNamePrefix>_<name>` and always carries `customresource_group`,
      `customresource_version` and `customresource_kind`;
    - a Gauge parses Kubernetes quantities ("16", "500m", "32Gi") and "True"/"False"/"Unknown"
      (1/0/0) into numbers;
    - `labelsFromPath` on a resource is read from the whole object, on a gauge from each element
      of its `path`.

    The fields read are Karpenter's v1 API (kubernetes-sigs/karpenter pkg/apis/v1): a NodePool's
    `spec.limits` and `status.resources` (the capacity of its nodes, plus a `nodes` count, kept
    by the nodepool counter controller), and a NodeClaim's labels (`karpenter.sh/nodepool`, the
    instance type, capacity type and zone of its instance), `status.nodeName` and conditions
    (Launched, Registered, Initialized and the summary Ready).
    """
    gvk = {"group": KARPENTER_GROUP, "version": KARPENTER_VERSION}
    # kube-state-metrics logs an error, on every pass, for a gauge whose path is missing: a pool
    # without limits, a new object without status. Both are normal, so those logs are kept for
    # high verbosity (`errorLogV`, the docs' "Logging"); the chart runs it at the default, 0.
    quiet = {"errorLogV": 10}
    nodepools = {
        "groupVersionKind": {**gvk, "kind": "NodePool"},
        "metricNamePrefix": KARPENTER_METRIC_PREFIX,
        **quiet,
        "labelsFromPath": {"nodepool": ["metadata", "name"]},
        "metrics": [
            _gauge(
                "nodepool_limit_cpu_cores",
                "CPU limit of the NodePool (spec.limits.cpu): Karpenter launches no node past it.",
                ["spec", "limits", "cpu"],
            ),
            _gauge(
                "nodepool_provisioned_cpu_cores",
                "CPU capacity of the NodePool's nodes (status.resources.cpu).",
                ["status", "resources", "cpu"],
            ),
            _gauge(
                "nodepool_provisioned_memory_bytes",
                "Memory capacity of the NodePool's nodes (status.resources.memory).",
                ["status", "resources", "memory"],
            ),
            _gauge(
                "nodepool_nodes",
                "Nodes of the NodePool (status.resources.nodes).",
                ["status", "resources", "nodes"],
            ),
            _conditions("nodepool"),
        ],
    }
    labels = ["metadata", "labels"]
    nodeclaims = {
        "groupVersionKind": {**gvk, "kind": "NodeClaim"},
        "metricNamePrefix": KARPENTER_METRIC_PREFIX,
        **quiet,
        "labelsFromPath": {
            "nodeclaim": ["metadata", "name"],
            "nodepool": [*labels, "karpenter.sh/nodepool"],
        },
        "metrics": [
            {
                "name": "nodeclaim_info",
                "help": "The NodeClaim's instance and, once registered, its node.",
                "each": {
                    "type": "Info",
                    "info": {
                        "labelsFromPath": {
                            "instance_type": [*labels, "node.kubernetes.io/instance-type"],
                            "capacity_type": [*labels, "karpenter.sh/capacity-type"],
                            "zone": [*labels, "topology.kubernetes.io/zone"],
                            "node": ["status", "nodeName"],
                        }
                    },
                },
            },
            _conditions("nodeclaim"),
        ],
    }
    return {"kind": "CustomResourceStateMetrics", "spec": {"resources": [nodepools, nodeclaims]}}


def karpenter_kube_state_metrics() -> dict[str, Any]:
    """The kube-state-metrics subchart values that add `karpenter_state_metrics()` (eks).

    Keys of prometheus-community/helm-charts charts/kube-state-metrics (8.4.0, the dependency of
    kube-prometheus-stack 88.5.3): `customResourceState.enabled` mounts the config (a ConfigMap
    made from `customResourceState.config`, templates/crs-configmap.yaml) and passes
    `--custom-resource-state-config-file`; `rbac.extraRules` are appended to its ClusterRole
    (templates/role.yaml).
    """
    # What reading the objects of `karpenter_state_metrics()` needs, and no more (the chart
    # grants list/watch on CustomResourceDefinitions itself, for the discovery of their kinds).
    read_karpenter = {
        "apiGroups": [KARPENTER_GROUP],
        "resources": ["nodepools", "nodeclaims"],
        "verbs": ["list", "watch"],
    }
    return {
        "customResourceState": {"enabled": True, "config": karpenter_state_metrics()},
        "rbac": {"extraRules": [read_karpenter]},
    }


def monitoring_values(settings: Settings, *, has_webhook: bool) -> dict[str, Any]:
    s = settings
    m = s.monitoring
    lean = not s.is_eks
    placement: dict[str, Any] = {"nodeSelector": dict(np.PLATFORM_SELECTOR)} if s.is_eks else {}
    storage_class = {"storageClassName": np.STORAGE_CLASS} if s.is_eks else {}
    prometheus_spec: dict[str, Any] = {
        "retention": m.retention,
        "retentionSize": retention_size(m.storage_size),
        "externalLabels": {"stack": s.stack},
        "serviceMonitorSelectorNilUsesHelmValues": False,
        "podMonitorSelectorNilUsesHelmValues": False,
        "ruleSelectorNilUsesHelmValues": False,
        "resources": _resources("100m", "512Mi", "1Gi")
        if lean
        else _resources("500m", "2Gi", "4Gi"),
        "storageSpec": {
            "volumeClaimTemplate": {
                "spec": {
                    **storage_class,
                    "accessModes": ["ReadWriteOnce"],
                    "resources": {"requests": {"storage": m.storage_size}},
                }
            }
        },
        **placement,
    }
    alertmanager_spec: dict[str, Any] = {
        "configSecret": amc.CONFIG_SECRET,
        # The chart renders no configuration Secret of its own (templates/alertmanager/
        # secret.yaml is skipped): only the program's is there to be read.
        "useExistingSecret": True,
        "secrets": [amc.WEBHOOK_SECRET] if has_webhook else [],
        "resources": _resources("10m", "32Mi", "128Mi"),
        # Silences and notification state survive a restart.
        "storage": {
            "volumeClaimTemplate": {
                "spec": {
                    **storage_class,
                    "accessModes": ["ReadWriteOnce"],
                    "resources": {"requests": {"storage": "1Gi"}},
                }
            }
        },
        **placement,
    }
    values: dict[str, Any] = {
        "fullnameOverride": RELEASE_NAME,
        "crds": {"enabled": True},
        "defaultRules": {"create": False},
        "prometheus": {"prometheusSpec": prometheus_spec},
        "alertmanager": {"alertmanagerSpec": alertmanager_spec},
        "prometheusOperator": {
            "resources": _resources("50m", "128Mi", "256Mi"),
            **placement,
        },
        "grafana": {
            "admin": {
                "existingSecret": GRAFANA_ADMIN_SECRET,
                "userKey": "admin-user",
                "passwordKey": "admin-password",
            },
            "sidecar": {
                "dashboards": {
                    "enabled": True,
                    "label": DASHBOARD_LABEL,
                    "labelValue": "1",
                    "searchNamespace": "ALL",
                    "folderAnnotation": "grafana_folder",
                    "provider": {"foldersFromFilesStructure": True, "allowUiUpdates": False},
                }
            },
            "resources": _resources("50m", "128Mi", "256Mi"),
            **placement,
        },
        "kube-state-metrics": {
            "resources": _resources("20m", "64Mi", "256Mi"),
            **placement,
            # minikube has no Karpenter: nothing to read, no rights to grant.
            **(karpenter_kube_state_metrics() if s.is_eks else {}),
        },
        # Node metrics from every node, the task nodes (tainted) included.
        "prometheus-node-exporter": {
            "resources": _resources("10m", "32Mi", "64Mi"),
            "tolerations": [dict(np.TASK_TOLERATION)] if s.is_eks else [],
        },
    }
    for section in UNREACHABLE_CONTROL_PLANE:
        values[section] = {"enabled": False}
    return values
