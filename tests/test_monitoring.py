"""The metrics stack on the mock record, and its scrape targets against the real Airflow chart.

The ServiceMonitors are checked against the Services the pinned Airflow chart renders for the
same stack (labels, port names) and against the chart's NetworkPolicies (Prometheus's pods from
the monitoring namespace must be admitted on the scrape port), not against what the program
meant to select.
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from components import alertmanager_config as amc
from components import monitoring_values as mv
from tests.chart_render import Rendered, render_run, selector_matches, stack_settings
from tests.chart_support import release as airflow_release
from tests.harness import STACKS, Resource, Run, fake_secret
from tests.secrets_check import plaintext_leaks

KPS = "kube-prometheus-stack"


def kps_release(run: Run) -> Resource:
    found = [r for r in run.of_type("kubernetes:helm.sh/v3:Release") if r.inputs["chart"] == KPS]
    assert len(found) == 1, [r.name for r in found]
    return found[0]


def custom_resources(run: Run, kind: str) -> list[Resource]:
    return [
        r
        for r in run.of_type(f"kubernetes:monitoring.coreos.com/v1:{kind}")
        + run.of_type("kubernetes:apiextensions.k8s.io:CustomResource")
        if r.inputs.get("kind") == kind
    ]


@pytest.mark.parametrize("stack", STACKS)
def test_every_stack_runs_the_pinned_metrics_stack(stack_runs: dict[str, Run], stack: str) -> None:
    rel = kps_release(stack_runs[stack]).inputs
    assert rel["version"] == "88.5.3"
    assert rel["repositoryOpts"]["repo"] == "https://prometheus-community.github.io/helm-charts"
    assert rel["namespace"] == "monitoring"
    values = rel["values"]
    spec = values["prometheus"]["prometheusSpec"]
    assert spec["externalLabels"] == {"stack": stack}
    # The repository's rules are the only alerts; its ServiceMonitors are selected.
    assert values["defaultRules"]["create"] is False
    assert spec["serviceMonitorSelectorNilUsesHelmValues"] is False
    assert spec["ruleSelectorNilUsesHelmValues"] is False


def test_local_is_lean_and_eks_is_sized(stack_runs: dict[str, Run]) -> None:
    def profile(stack: str) -> tuple[str, str, str]:
        spec = kps_release(stack_runs[stack]).inputs["values"]["prometheus"]["prometheusSpec"]
        claim = spec["storageSpec"]["volumeClaimTemplate"]["spec"]
        return spec["retention"], claim["resources"]["requests"]["storage"], spec["retentionSize"]

    assert profile("local") == ("2d", "5Gi", "4352MiB")
    assert profile("integration") == ("15d", "50Gi", "43520MiB")
    assert profile("production") == ("30d", "100Gi", "87040MiB")
    local = kps_release(stack_runs["local"]).inputs["values"]["prometheus"]["prometheusSpec"]
    prod = kps_release(stack_runs["production"]).inputs["values"]["prometheus"]["prometheusSpec"]
    assert local["resources"]["requests"]["memory"] == "512Mi"
    assert prod["resources"]["requests"]["memory"] == "2Gi"
    assert "nodeSelector" not in local and prod["nodeSelector"]
    claim = prod["storageSpec"]["volumeClaimTemplate"]["spec"]
    assert claim["storageClassName"] == "gp3-encrypted"


@pytest.mark.parametrize("stack", ["integration", "production"])
def test_the_slack_webhook_reaches_the_engine_only_as_a_secret(
    stack_runs: dict[str, Run], stack: str
) -> None:
    run = stack_runs[stack]
    assert plaintext_leaks(run) == []
    hook = next(
        r
        for r in run.of_type("kubernetes:core/v1:Secret")
        if r.inputs["metadata"]["name"] == amc.WEBHOOK_SECRET
    )
    assert hook.has_secret_under("stringData")
    assert fake_secret("alertsSlackWebhookUrl") in str(hook.inputs["stringData"])
    values = kps_release(run).inputs["values"]
    assert values["alertmanager"]["alertmanagerSpec"]["secrets"] == [amc.WEBHOOK_SECRET]
    assert values["alertmanager"]["alertmanagerSpec"]["configSecret"] == amc.CONFIG_SECRET
    assert values["alertmanager"]["alertmanagerSpec"]["useExistingSecret"] is True
    assert "TESTSECRET" not in yaml.safe_dump(values)
    config = next(
        r
        for r in run.of_type("kubernetes:core/v1:Secret")
        if r.inputs["metadata"]["name"] == amc.CONFIG_SECRET
    )
    assert "TESTSECRET" not in config.inputs["stringData"][amc.CONFIG_KEY]
    assert "slack_configs" in config.inputs["stringData"][amc.CONFIG_KEY]


def test_local_without_a_webhook_sends_nowhere(stack_runs: dict[str, Run]) -> None:
    run = stack_runs["local"]
    names = {r.inputs["metadata"]["name"] for r in run.of_type("kubernetes:core/v1:Secret")}
    assert amc.WEBHOOK_SECRET not in names and amc.CONFIG_SECRET in names
    values = kps_release(run).inputs["values"]
    assert values["alertmanager"]["alertmanagerSpec"]["secrets"] == []


@pytest.mark.parametrize("stack", STACKS)
def test_kube_state_metrics_reads_karpenter_objects_on_eks_only(
    stack_runs: dict[str, Run], stack: str
) -> None:
    """eks: the custom resource state config and read-only rights on NodePools and NodeClaims
    (the keys of charts/kube-state-metrics 8.4.0 in prometheus-community/helm-charts:
    `customResourceState.enabled`/`.config`, `rbac.extraRules`). minikube has no Karpenter:
    neither is set, so kube-state-metrics runs as the chart ships it."""
    ksm = kps_release(stack_runs[stack]).inputs["values"]["kube-state-metrics"]
    if not stack_settings(stack).is_eks:
        assert "customResourceState" not in ksm and "rbac" not in ksm
        return
    assert ksm["customResourceState"] == {
        "enabled": True,
        "config": mv.karpenter_state_metrics(),
    }
    assert ksm["rbac"] == {
        "extraRules": [
            {
                "apiGroups": ["karpenter.sh"],
                "resources": ["nodepools", "nodeclaims"],
                "verbs": ["list", "watch"],
            }
        ]
    }
    assert ksm["resources"]["requests"] and ksm["nodeSelector"]


def test_only_the_local_stack_runs_without_karpenter() -> None:
    """The parametrized test above takes both branches."""
    assert [s for s in STACKS if not stack_settings(s).is_eks] == ["local"]


@pytest.mark.parametrize("stack", STACKS)
def test_grafana_has_no_known_password(stack_runs: dict[str, Run], stack: str) -> None:
    run = stack_runs[stack]
    grafana = kps_release(run).inputs["values"]["grafana"]
    assert "adminPassword" not in grafana
    assert grafana["admin"]["existingSecret"] == mv.GRAFANA_ADMIN_SECRET
    admin = next(
        r
        for r in run.of_type("kubernetes:core/v1:Secret")
        if r.inputs["metadata"]["name"] == mv.GRAFANA_ADMIN_SECRET
    )
    assert admin.has_secret_under("stringData")
    assert "grafana_password" in run.secret_outputs


@pytest.mark.parametrize("stack", STACKS)
def test_operator_objects_wait_for_the_chart_and_airflow_waits_for_none(
    stack_runs: dict[str, Run], stack: str
) -> None:
    run = stack_runs[stack]
    chart = kps_release(run)
    objects = custom_resources(run, "ServiceMonitor") + custom_resources(run, "PrometheusRule")
    assert objects and all(chart.urn in r.dependencies for r in objects)
    assert not run.depends_on(airflow_release(run), chart)


@pytest.mark.parametrize("stack", STACKS)
def test_dashboards_are_provisioned_from_config_maps(
    stack_runs: dict[str, Run], stack: str
) -> None:
    maps = [
        r
        for r in stack_runs[stack].of_type("kubernetes:core/v1:ConfigMap")
        if r.inputs["metadata"].get("labels", {}).get(mv.DASHBOARD_LABEL) == "1"
    ]
    assert len(maps) >= 5
    for cm in maps:
        ((file_name, body),) = cm.inputs["data"].items()
        assert file_name.endswith(".json") and '"uid"' in body


@pytest.mark.parametrize("stack", STACKS)
def test_alert_rules_are_rendered_for_the_airflow_namespace(
    stack_runs: dict[str, Run], stack: str
) -> None:
    (rule,) = custom_resources(stack_runs[stack], "PrometheusRule")
    alerts = [r for g in rule.inputs["spec"]["groups"] for r in g["rules"] if "alert" in r]
    assert len(alerts) >= 14
    assert all(r["labels"]["severity"] for r in alerts)


def _scrapes(run: Run) -> list[dict[str, Any]]:
    return [r.inputs["spec"] for r in custom_resources(run, "ServiceMonitor")]


def _services(rendered: Rendered, selector: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        svc
        for svc in rendered.of_kind("Service")
        if selector_matches(selector, svc["metadata"].get("labels", {}))
    ]


@pytest.mark.parametrize("stack", STACKS)
def test_service_monitors_select_what_the_airflow_chart_renders(
    stack_runs: dict[str, Run], stack: str
) -> None:
    run = stack_runs[stack]
    rendered = render_run(run)
    namespace = airflow_release(run).inputs["namespace"]
    scrapes = _scrapes(run)
    components = set()
    for spec in scrapes:
        assert spec["namespaceSelector"]["matchNames"] == [namespace]
        (service,) = _services(rendered, spec["selector"])
        ports = {p["name"] for p in service["spec"]["ports"]}
        assert {e["port"] for e in spec["endpoints"]} <= ports
        components.add(service["metadata"]["labels"]["component"])
    expected = {"statsd", "pgbouncer"} if stack != "local" else {"statsd"}
    assert components == expected


@pytest.mark.parametrize("stack", STACKS)
def test_the_chart_network_policies_admit_prometheus_on_the_scrape_ports(
    stack_runs: dict[str, Run], stack: str
) -> None:
    run = stack_runs[stack]
    rendered = render_run(run)
    prometheus_pod = {"app.kubernetes.io/name": "prometheus", "prometheus": "kps-prometheus"}
    namespace_labels = {"kubernetes.io/metadata.name": "monitoring"}
    for spec in _scrapes(run):
        (service,) = _services(rendered, spec["selector"])
        port_numbers = {
            p["port"]
            for p in service["spec"]["ports"]
            if p["name"] in {e["port"] for e in spec["endpoints"]}
        }
        pod_labels = service["spec"]["selector"]
        policies = [
            p
            for p in rendered.of_kind("NetworkPolicy")
            if selector_matches(p["spec"]["podSelector"], pod_labels)
        ]
        assert policies, f"no policy selects {pod_labels}"
        admitted = set()
        for policy in policies:
            for rule in policy["spec"].get("ingress", []):
                for peer in rule.get("from", []):
                    if selector_matches(
                        peer.get("namespaceSelector"), namespace_labels
                    ) and selector_matches(peer.get("podSelector"), prometheus_pod):
                        admitted |= {p["port"] for p in rule.get("ports", [])}
        assert port_numbers <= admitted, (service["metadata"]["name"], port_numbers, admitted)
