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


def _resources(cpu: str, memory: str, memory_limit: str) -> dict[str, Any]:
    return {"requests": {"cpu": cpu, "memory": memory}, "limits": {"memory": memory_limit}}


def retention_size(storage_size: str) -> str:
    """`retentionSize` for a volume of `storage_size` (e.g. 50Gi -> 42GiB): the TSDB's units."""
    match = re.fullmatch(r"(\d+)(Mi|Gi|Ti)", storage_size)
    if match is None:
        raise ValueError(f"{storage_size!r} is not a quantity like 50Gi")
    mebibytes = int(match.group(1)) * {"Mi": 1, "Gi": 1024, "Ti": 1024 * 1024}[match.group(2)]
    return f"{int(mebibytes * RETENTION_SHARE)}MiB"


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
