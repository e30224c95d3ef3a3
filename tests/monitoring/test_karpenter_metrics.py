"""Autoscaling seen through Karpenter's objects: kube-state-metrics' custom resource state (eks).

On EKS Auto Mode, Karpenter runs in AWS's control plane, so its own metrics are out of reach;
kube-state-metrics reads its NodePools and NodeClaims instead
(`components.monitoring_values.karpenter_state_metrics`). These tests hold that config to what
kube-state-metrics v2.20 reads and produces (tests/monitoring/custom_resource_state.py, a model
of its pkg/customresourcestate) and run it over NodePools and NodeClaims shaped as Karpenter's
v1 API writes them (karpenter_objects.yaml).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from components import alert_rules
from components import node_pools as np
from components.monitoring_values import (
    KARPENTER_METRIC_PREFIX,
    karpenter_kube_state_metrics,
    karpenter_state_metrics,
)
from tests.chart_render import stack_settings
from tests.monitoring import custom_resource_state as crs
from tests.monitoring.monitoring_support import karpenter_catalog, run_promtool

OBJECTS = Path(__file__).with_name("karpenter_objects.yaml")
NEAR_LIMIT = "KarpenterNodePoolNearCpuLimit"


@cache
def _objects() -> tuple[dict[str, Any], ...]:
    return tuple(doc for doc in yaml.safe_load_all(OBJECTS.read_text()) if doc)


def _of_kind(kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in _objects() if o["kind"] == kind}


def _resource_for(obj: dict[str, Any]) -> dict[str, Any]:
    """The config's entry for the object's group, version and kind (one per kind)."""
    group, _, version = obj["apiVersion"].partition("/")
    resources: list[dict[str, Any]] = karpenter_state_metrics()["spec"]["resources"]
    (resource,) = [
        r
        for r in resources
        if r["groupVersionKind"] == {"group": group, "version": version, "kind": obj["kind"]}
    ]
    return resource


def _evaluations(*objects: dict[str, Any]) -> list[tuple[str, crs.Evaluation]]:
    return [(o["metadata"]["name"], crs.evaluate(_resource_for(o), o)) for o in objects]


def _series(*objects: dict[str, Any]) -> list[crs.Series]:
    return [s for _, e in _evaluations(*objects) for s in e.series]


def _one(found: list[crs.Series], name: str, **labels: str) -> crs.Series:
    hits = [
        s
        for s in found
        if s.name == f"{KARPENTER_METRIC_PREFIX}_{name}" and labels.items() <= s.labels.items()
    ]
    assert len(hits) == 1, (name, labels, hits)
    return hits[0]


def _paths(block: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    for label, path in block.get("labelsFromPath", {}).items():
        yield f"labelsFromPath.{label}", path


# --- the config against what kube-state-metrics reads ------------------------------------------


def test_the_config_has_the_shape_kube_state_metrics_reads() -> None:
    assert crs.config_problems(karpenter_state_metrics()) == []


def test_every_metric_has_a_type_kube_state_metrics_compiles_and_list_paths() -> None:
    """`each.type` (any case) is gauge, info or stateset with its settings under the matching
    key; every path, valueFrom and labelsFromPath is a list of strings, never a dotted string."""
    config = karpenter_state_metrics()
    checked = 0
    for resource in config["spec"]["resources"]:
        for label, path in _paths(resource):
            assert isinstance(path, list) and all(isinstance(p, str) for p in path), label
        for metric in resource["metrics"]:
            each = metric["each"]
            member = {"gauge": "gauge", "info": "info", "stateset": "stateSet"}[
                each["type"].lower()
            ]
            settings = each[member]
            paths = [("path", settings.get("path", [])), *_paths(metric), *_paths(settings)]
            if "valueFrom" in settings:
                paths.append(("valueFrom", settings["valueFrom"]))
            for where, path in paths:
                assert isinstance(path, list), (metric["name"], where)
                assert all(isinstance(p, str) for p in path), (metric["name"], where)
            checked += 1
    assert checked == sum(len(r["metrics"]) for r in config["spec"]["resources"]) >= 7


def _with(config: dict[str, Any], change: Any) -> dict[str, Any]:
    broken = copy.deepcopy(config)
    change(broken["spec"]["resources"][0])
    return broken


def _set(path: list[str | int], value: Any) -> Any:
    def change(resource: dict[str, Any]) -> None:
        target: Any = resource
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return change


@pytest.mark.parametrize(
    ("change", "message"),
    [
        # kube-state-metrics would silently drop a misspelt key: the labels would be missing
        (_set(["labelsFromPaths"], {"nodepool": ["metadata", "name"]}), "unknown key"),
        (_set(["metrics", 0, "each", "type"], "Counter"), "is not Gauge"),
        (_set(["metrics", 0, "each", "gauge", "path"], "spec.limits.cpu"), "list of strings"),
        (_set(["metrics", 0, "each", "type"], "Info"), "must not be nil"),
        (_set(["commonLabels"], {"customresource_kind": "x"}), "set by kube-state-metrics"),
        (_set(["metrics", 1, "name"], "nodepool_limit_cpu_cores"), "defined twice"),
        (_set(["groupVersionKind"], {"group": "karpenter.sh", "kind": "NodePool"}), "exactly"),
        (_set(["groupVersionKind", "kind"], "NodeClaim"), "has an entry already"),
        (_set(["metrics", 0, "each"], {"type": "Info", "info": {"path": []}}), "end in _info"),
    ],
)
def test_the_check_refuses_what_kube_state_metrics_would_drop_or_reject(
    change: Any, message: str
) -> None:
    problems = crs.config_problems(_with(karpenter_state_metrics(), change))
    assert any(message in p for p in problems), problems


def test_names_are_the_prefix_and_the_metric_name() -> None:
    """registry_factory.go `fullName`, with the docs' examples for the default and empty prefix."""
    metric = {"name": "uptime"}
    assert crs.full_name({}, metric) == "kube_customresource_uptime"
    assert crs.full_name({"metricNamePrefix": "myteam_foos"}, metric) == "myteam_foos_uptime"
    assert crs.full_name({"metricNamePrefix": ""}, metric) == "uptime"
    assert set(karpenter_catalog()) == {
        "kube_karpenter_nodepool_limit_cpu_cores",
        "kube_karpenter_nodepool_provisioned_cpu_cores",
        "kube_karpenter_nodepool_provisioned_memory_bytes",
        "kube_karpenter_nodepool_nodes",
        "kube_karpenter_nodepool_condition",
        "kube_karpenter_nodeclaim_info",
        "kube_karpenter_nodeclaim_condition",
    }
    for labels in karpenter_catalog().values():
        assert set(crs.GVK_LABELS) <= labels


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        # the docs' "Type conversion and special handling" list
        ("250m", 0.25),
        ("512Gi", 512 * 2**30),
        ("16", 16.0),
        ("22731Mi", 22731 * 2**20),
        ("1930m", 1.93),
        ("1e3", 1000.0),
        ("True", 1.0),
        ("False", 0.0),
        ("Unknown", 0.0),
        ("50%", 0.5),
        ("43.21", 43.21),
        ("2026-05-04T10:03:12Z", 1777888992.0),
        (3, 3.0),
        (True, 1.0),
    ],
)
def test_values_parse_as_kube_state_metrics_parses_them(raw: Any, value: float) -> None:
    assert crs.to_float(raw) == pytest.approx(value)


def test_a_value_kube_state_metrics_cannot_parse_is_an_error() -> None:
    with pytest.raises(crs.EvaluationError):
        crs.to_float("t3.large")
    with pytest.raises(crs.EvaluationError):
        crs.to_float(None)


def test_rbac_grants_list_and_watch_on_exactly_the_configured_kinds() -> None:
    """Least privilege: read-only verbs on the plural of each configured kind (kube-state-metrics
    lists and watches them; the plurals are the CRDs' `spec.names.plural`, kubernetes-sigs/karpenter
    pkg/apis/crds/karpenter.sh_nodepools.yaml and karpenter.sh_nodeclaims.yaml)."""
    values = karpenter_kube_state_metrics()
    (rule,) = values["rbac"]["extraRules"]
    kinds = [r["groupVersionKind"] for r in karpenter_state_metrics()["spec"]["resources"]]
    assert rule["apiGroups"] == sorted({k["group"] for k in kinds}) == ["karpenter.sh"]
    assert sorted(rule["resources"]) == sorted(k["kind"].lower() + "s" for k in kinds)
    assert sorted(rule["verbs"]) == ["list", "watch"]
    assert set(rule) == {"apiGroups", "resources", "verbs"}
    assert values["customResourceState"] == {"enabled": True, "config": karpenter_state_metrics()}


# --- the config run over Karpenter's objects --------------------------------------------------


def test_every_metric_resolves_on_realistic_objects_with_catalogued_labels() -> None:
    found = _series(*_objects())
    catalog = karpenter_catalog()
    for name, labels in catalog.items():
        produced = [s for s in found if s.name == name]
        assert produced, f"{name}: no series from karpenter_objects.yaml"
        for s in produced:
            assert set(s.labels) <= labels, (name, set(s.labels) - labels)
            assert s.labels["customresource_group"] == "karpenter.sh"
    assert {s.name for s in found} == set(catalog)


def test_only_missing_fields_raise_errors_and_they_are_not_logged_by_default() -> None:
    """The pool without limits is the one object whose path does not resolve; kube-state-metrics
    drops that value with an error log, which the config keeps for verbosity 10 (the chart
    passes no `--v`, so klog runs at 0)."""
    errors = [(name, *err) for name, e in _evaluations(*_objects()) for err in e.errors]
    assert errors == [
        ("system", f"{KARPENTER_METRIC_PREFIX}_nodepool_limit_cpu_cores", crs.NIL_PATH, 10)
    ]
    # a brand-new NodePool, before Karpenter writes its status
    fresh = copy.deepcopy(_of_kind("NodePool")[np.TASK_POOL])
    del fresh["status"]
    evaluation = crs.evaluate(_resource_for(fresh), fresh)
    assert [s.name for s in evaluation.series] == [
        f"{KARPENTER_METRIC_PREFIX}_nodepool_limit_cpu_cores"
    ]
    assert {err for _, err, _ in evaluation.errors} == {crs.NIL_PATH}
    assert all(level > 0 for _, _, level in evaluation.errors)


def test_node_pools_give_their_limit_capacity_nodes_and_conditions() -> None:
    pools = _of_kind("NodePool")
    found = _series(*pools.values())
    tasks, platform = {"nodepool": np.TASK_POOL}, {"nodepool": np.PLATFORM_POOL}
    assert _one(found, "nodepool_limit_cpu_cores", **tasks).value == 16
    assert _one(found, "nodepool_limit_cpu_cores", **platform).value == 8
    assert _one(found, "nodepool_provisioned_cpu_cores", **tasks).value == 6
    assert _one(found, "nodepool_provisioned_memory_bytes", **tasks).value == 22731 * 2**20
    assert _one(found, "nodepool_nodes", **tasks).value == 3
    assert _one(found, "nodepool_nodes", **platform).value == 2
    assert _one(found, "nodepool_condition", condition="Ready", **tasks).value == 1
    ready = _one(found, "nodepool_condition", condition="Ready", **tasks)
    assert ready.labels == {
        "customresource_group": "karpenter.sh",
        "customresource_version": "v1",
        "customresource_kind": "NodePool",
        "nodepool": np.TASK_POOL,
        "condition": "Ready",
    }
    # a pool without limits has no limit series (the alert leaves it out), but its nodes count
    limits = {s.labels["nodepool"] for s in found if s.name.endswith("_limit_cpu_cores")}
    assert limits == {np.TASK_POOL, np.PLATFORM_POOL}
    assert _one(found, "nodepool_nodes", nodepool="system").value == 1


def test_node_claims_give_one_info_series_each_and_their_conditions() -> None:
    claims = _of_kind("NodeClaim")
    found = _series(*claims.values())
    infos = [s for s in found if s.name == f"{KARPENTER_METRIC_PREFIX}_nodeclaim_info"]
    assert len(infos) == len(claims) == 2
    running = _one(found, "nodeclaim_info", nodeclaim="airflow-tasks-8xk2p")
    assert running.value == 1
    assert running.labels == {
        "customresource_group": "karpenter.sh",
        "customresource_version": "v1",
        "customresource_kind": "NodeClaim",
        "nodeclaim": "airflow-tasks-8xk2p",
        "nodepool": np.TASK_POOL,
        "instance_type": "t3.large",
        "capacity_type": "spot",
        "zone": "eu-west-1a",
        "node": "i-0a1b2c3d4e5f60718",
    }
    # no node yet: the label is left out, the series stays
    launching = _one(found, "nodeclaim_info", nodeclaim="airflow-tasks-q7wzn")
    assert "node" not in launching.labels and launching.labels["capacity_type"] == "on-demand"

    def condition(claim: str, kind: str) -> float:
        return _one(found, "nodeclaim_condition", nodeclaim=claim, condition=kind).value

    assert condition("airflow-tasks-8xk2p", "Ready") == 1
    assert condition("airflow-tasks-q7wzn", "Ready") == 0  # Unknown
    assert condition("airflow-tasks-q7wzn", "Launched") == 1
    assert condition("airflow-tasks-q7wzn", "Registered") == 0


def test_the_fixture_pools_are_the_ones_the_program_creates() -> None:
    """karpenter_objects.yaml stays honest: its platform pools carry the limits, template labels
    and requirements `components.node_pools` gives the integration stack, and its NodeClaims
    only what those pools allow."""
    settings = stack_settings("integration")
    pools = _of_kind("NodePool")
    for manifest in (np.task_pool(settings), np.platform_pool(settings)):
        fixture = pools[manifest["metadata"]["name"]]
        assert fixture["spec"]["limits"] == manifest["spec"]["limits"]
        assert fixture["spec"]["template"]["metadata"] == manifest["spec"]["template"]["metadata"]
        template = manifest["spec"]["template"]["spec"]
        for key in ("requirements", "nodeClassRef", "expireAfter"):
            assert fixture["spec"]["template"]["spec"][key] == template[key], key
    for claim in _of_kind("NodeClaim").values():
        labels = claim["metadata"]["labels"]
        pool = pools[labels["karpenter.sh/nodepool"]]
        allowed = {r["key"]: r["values"] for r in pool["spec"]["template"]["spec"]["requirements"]}
        assert (
            labels["node.kubernetes.io/instance-type"]
            in allowed["node.kubernetes.io/instance-type"]
        )
        assert labels["karpenter.sh/capacity-type"] in allowed["karpenter.sh/capacity-type"]
        owner = claim["metadata"]["ownerReferences"][0]
        assert (owner["kind"], owner["name"]) == ("NodePool", pool["metadata"]["name"])


def _series_text(s: crs.Series) -> str:
    labels = ", ".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
    return f"{s.name}{{{labels}}}"


def test_the_alert_expression_picks_the_full_pool_from_what_kube_state_metrics_exports(
    tmp_path: Path,
) -> None:
    """End to end on real shapes: the task pool filled to its limit, the platform pool at half,
    the built-in pool without a limit, turned into series by the config, then the alert's own
    expression evaluated by promtool over them."""
    pools = copy.deepcopy(_of_kind("NodePool"))
    pools[np.TASK_POOL]["status"]["resources"]["cpu"] = pools[np.TASK_POOL]["spec"]["limits"]["cpu"]
    input_series = [
        {"series": _series_text(s), "values": f"{s.value:g}x5"}
        for s in _series(*pools.values())
        if s.name.endswith(("_cpu_cores",))
    ]
    (rule,) = [r for r in alert_rules.alerts() if r["alert"] == NEAR_LIMIT]
    test = {
        "rule_files": [str(alert_rules.RULES_DIR / "kubernetes.yml")],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": input_series,
                "promql_expr_test": [
                    {
                        "expr": rule["expr"],
                        "eval_time": "2m",
                        "exp_samples": [{"labels": f'{{nodepool="{np.TASK_POOL}"}}', "value": 1}],
                    }
                ],
            }
        ],
    }
    path = tmp_path / "karpenter_end_to_end_test.yml"
    path.write_text(yaml.safe_dump(test, sort_keys=False))
    result = run_promtool("test", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert len(input_series) == 5  # cpu in use for three pools, limits for two
