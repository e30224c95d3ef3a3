"""Monitoring: Prometheus, Alertmanager -> Slack and Grafana (kube-prometheus-stack), plus what
the platform adds: its alert rules, the scrape targets of Airflow's exporters, and dashboards.

Everything here is made from repository sources: the values (`monitoring_values.py`), the
Alertmanager configuration (`alertmanager_config.py`), the rules (`monitoring/rules`, through
`alert_rules.py`) and the dashboards (`dashboards.py`). The Slack webhook reaches the cluster
only as a Secret that Alertmanager mounts as a file.

Ordering: the objects of the operator's kinds (ServiceMonitor, PrometheusRule) need the chart's
CRDs, so they wait for the chart. Nothing else waits: the Secrets and dashboard ConfigMaps are
read by pods once they run, and the Airflow release does not wait for monitoring at all.

CRDs on a chart bump: the operator's CRDs live in the chart's `charts/crds/crds/` folder, which
Helm installs on the first install and never upgrades. Before raising `monitoring.chartVersion`
across operator versions, apply the new version's CRDs (README, "Monitoring and alerts"). The
chart's `crds.upgradeJob` would do it in a hook, but 88.5.3 marks it a preview and runs
`busybox:latest`; it stays off.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random
import yaml

from components import alert_rules, dashboards
from components import alertmanager_config as amc
from components import chart_values as cv
from components import monitoring_values as mv
from components.naming import PART_OF
from components.settings import Settings

SERVICE_MONITOR_LABELS = {**PART_OF, "app.kubernetes.io/component": "metrics"}

SCRAPES: dict[str, tuple[str, str]] = {
    "statsd": ("statsd", "statsd-scrape"),
    "pgbouncer": ("pgbouncer", "pgb-metrics"),
}
"""ServiceMonitor name -> (the chart's `component` label of the Service, its metrics port)."""


def service_monitor_spec(settings: Settings, component: str, port: str) -> dict[str, Any]:
    """Scrape one of the Airflow chart's exporter Services (selected by the chart's labels)."""
    return {
        "namespaceSelector": {"matchNames": [settings.airflow.namespace]},
        "selector": {
            "matchLabels": {"tier": "airflow", "component": component, "release": cv.RELEASE_NAME}
        },
        "endpoints": [{"port": port, "interval": "30s", "scrapeTimeout": "10s"}],
    }


def scraped(settings: Settings) -> dict[str, tuple[str, str]]:
    """The exporters this stack runs: PgBouncer only where the chart runs it (eks)."""
    return {name: v for name, v in SCRAPES.items() if name != "pgbouncer" or settings.is_eks}


@dataclass(frozen=True)
class MonitoringArgs:
    settings: Settings
    webhook_url: pulumi.Input[str] | None = None


class Monitoring(pulumi.ComponentResource):
    """The metrics and alerting stack of one cluster."""

    namespace: pulumi.Output[str]
    alertmanager_url: str
    grafana_command: str

    def __init__(
        self, name: str, args: MonitoringArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("airflow-platform:monitoring:Monitoring", name, None, opts)
        s = args.settings
        m = s.monitoring
        child = pulumi.ResourceOptions(parent=self)
        ns = k8s.core.v1.Namespace(
            f"{name}-ns", metadata={"name": m.namespace, "labels": PART_OF}, opts=child
        )
        self.namespace = ns.metadata.name
        has_webhook = args.webhook_url is not None

        def secret(short: str, secret_name: str, data: dict[str, pulumi.Input[str]]) -> None:
            k8s.core.v1.Secret(
                f"{name}-{short}",
                metadata={"name": secret_name, "namespace": self.namespace, "labels": PART_OF},
                type="Opaque",
                string_data=data,
                opts=child,
            )

        if args.webhook_url is not None:
            secret(
                "slack-webhook",
                amc.WEBHOOK_SECRET,
                {amc.WEBHOOK_KEY: pulumi.Output.secret(args.webhook_url)},
            )
        config = amc.alertmanager_config(s, has_webhook=has_webhook)
        secret(
            "alertmanager-config",
            amc.CONFIG_SECRET,
            {amc.CONFIG_KEY: yaml.safe_dump(config, sort_keys=False)},
        )
        generated = random.RandomPassword(
            f"{name}-grafana-admin", length=24, special=False, opts=child
        )
        self.grafana_password: pulumi.Output[str] = pulumi.Output.secret(generated.result)
        secret(
            "grafana-admin",
            mv.GRAFANA_ADMIN_SECRET,
            {"admin-user": "admin", "admin-password": self.grafana_password},
        )
        for file_name, model in dashboards.dashboards().items():
            k8s.core.v1.ConfigMap(
                f"{name}-dashboard-{file_name.removesuffix('.json')}",
                metadata={
                    "name": f"dashboard-{file_name.removesuffix('.json')}",
                    "namespace": self.namespace,
                    "labels": {**PART_OF, mv.DASHBOARD_LABEL: "1"},
                    "annotations": {"grafana_folder": "Airflow platform"},
                },
                data={file_name: pulumi.Output.from_input(model).apply(_json)},
                opts=child,
            )
        chart = k8s.helm.v3.Release(
            f"{name}-chart",
            name=mv.RELEASE_NAME,
            chart=mv.CHART_NAME,
            version=m.chart_version,
            repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=mv.CHART_REPOSITORY),
            namespace=self.namespace,
            values=mv.monitoring_values(s, has_webhook=has_webhook),
            atomic=False,
            cleanup_on_fail=True,
            timeout=600,
            max_history=10,
            opts=child,
        )
        # The operator's kinds exist once the chart has installed its CRDs.
        crd_ready = pulumi.ResourceOptions(parent=self, depends_on=[chart])
        for scrape, (component, port) in scraped(s).items():
            k8s.apiextensions.CustomResource(
                f"{name}-{scrape}",
                api_version="monitoring.coreos.com/v1",
                kind="ServiceMonitor",
                metadata={
                    "name": f"airflow-{scrape}",
                    "namespace": self.namespace,
                    "labels": SERVICE_MONITOR_LABELS,
                },
                spec=service_monitor_spec(s, component, port),
                opts=crd_ready,
            )
        k8s.apiextensions.CustomResource(
            f"{name}-rules",
            api_version="monitoring.coreos.com/v1",
            kind="PrometheusRule",
            metadata={"name": "airflow-platform", "namespace": self.namespace, "labels": PART_OF},
            spec=alert_rules.prometheus_rule_spec(s.airflow.namespace),
            opts=crd_ready,
        )
        self.alertmanager_url = f"http://{mv.RELEASE_NAME}-alertmanager.{m.namespace}.svc:9093"
        self.grafana_command = (
            f"kubectl port-forward -n {m.namespace} svc/{mv.RELEASE_NAME}-grafana 3000:80"
        )
        self.register_outputs(
            {
                "namespace": self.namespace,
                "alertmanager_url": self.alertmanager_url,
                "grafana_command": self.grafana_command,
                "grafana_password": self.grafana_password,
            }
        )


def _json(model: Any) -> str:
    return json.dumps(model, indent=2, sort_keys=True)
