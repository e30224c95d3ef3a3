"""Grafana dashboards: valid models, templated data source, valid PromQL on real metric names."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.dashboards import DATASOURCE, dashboards
from tests.monitoring.monitoring_support import (
    airflow_catalog,
    catalog_problems,
    label_names_used,
    metric_names,
    run_promtool,
    selectors,
)

# Grafana's variables, replaced by what Grafana would send to Prometheus.
GRAFANA_VARIABLES = {"$__rate_interval": "2m", "$namespace": "airflow"}


def _panels() -> Iterator[tuple[str, dict[str, Any]]]:
    for file_name, model in dashboards().items():
        for panel in model["panels"]:
            yield file_name, panel


def _exprs() -> Iterator[tuple[str, str, str]]:
    """(file, panel title, PromQL with Grafana's variables filled in)."""
    for file_name, panel in _panels():
        for target in panel["targets"]:
            expr = target["expr"]
            for var, value in GRAFANA_VARIABLES.items():
                expr = expr.replace(var, value)
            yield file_name, panel["title"], expr


def test_dashboards_are_json_with_unique_uids_and_titles() -> None:
    models = dashboards()
    assert set(models) == {
        "airflow-scheduler.json",
        "airflow-tasks.json",
        "airflow-executor.json",
        "airflow-pgbouncer.json",
        "airflow-cluster.json",
    }
    for file_name, model in models.items():
        assert json.loads(json.dumps(model)) == model, file_name
        # Grafana refuses uids longer than 40 characters
        assert 0 < len(model["uid"]) <= 40
    uids = [m["uid"] for m in models.values()]
    titles = [m["title"] for m in models.values()]
    assert len(set(uids)) == len(uids)
    assert len(set(titles)) == len(titles)


def test_uids_are_stable() -> None:
    """Links and bookmarks use the uid: changing one breaks them."""
    assert {f: m["uid"] for f, m in dashboards().items()} == {
        "airflow-scheduler.json": "airflow-scheduler",
        "airflow-tasks.json": "airflow-tasks",
        "airflow-executor.json": "airflow-executor",
        "airflow-pgbouncer.json": "airflow-pgbouncer",
        "airflow-cluster.json": "airflow-cluster",
    }


def test_panel_ids_are_unique_and_panels_do_not_overlap() -> None:
    for file_name, model in dashboards().items():
        ids = [p["id"] for p in model["panels"]]
        assert len(ids) == len(set(ids)), file_name
        cells: set[tuple[int, int]] = set()
        for p in model["panels"]:
            g = p["gridPos"]
            assert g["x"] + g["w"] <= 24, f"{file_name}: {p['title']} is wider than the grid"
            mine = {
                (x, y)
                for x in range(g["x"], g["x"] + g["w"])
                for y in range(g["y"], g["y"] + g["h"])
            }
            assert not cells & mine, f"{file_name}: {p['title']} overlaps another panel"
            cells |= mine


def test_every_panel_and_query_uses_the_templated_datasource() -> None:
    assert DATASOURCE == {"type": "prometheus", "uid": "${datasource}"}
    for file_name, model in dashboards().items():
        variables = {v["name"]: v for v in model["templating"]["list"]}
        assert variables["datasource"]["type"] == "datasource"
        assert variables["datasource"]["query"] == "prometheus"
        assert variables["namespace"]["datasource"] == DATASOURCE
        for panel in model["panels"]:
            assert panel["datasource"] == DATASOURCE, f"{file_name}: {panel['title']}"
            assert panel["targets"], f"{file_name}: {panel['title']} has no query"
            for target in panel["targets"]:
                assert target["datasource"] == DATASOURCE, f"{file_name}: {panel['title']}"
            refs = [t["refId"] for t in panel["targets"]]
            assert len(refs) == len(set(refs))


def test_the_namespace_variable_defaults_to_the_stack_namespace() -> None:
    for model in dashboards("data-airflow").values():
        variables = {v["name"]: v for v in model["templating"]["list"]}
        assert variables["namespace"]["current"]["value"] == "data-airflow"


def test_every_query_is_valid_promql(tmp_path: Path) -> None:
    """Each query as a recording rule: `promtool check rules` parses it as Prometheus would."""
    rules = [
        {"record": f"dashboard:query_{i}", "expr": expr} for i, (_, _, expr) in enumerate(_exprs())
    ]
    assert rules
    path = tmp_path / "dashboard_queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    result = run_promtool("check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr


def test_promql_check_catches_an_invalid_query(tmp_path: Path) -> None:
    """The check above can fail: promtool rejects a broken expression."""
    path = tmp_path / "broken.yml"
    rule = {"record": "dashboard:broken", "expr": "sum by (pod (rate(x[5m]))"}
    path.write_text(yaml.safe_dump({"groups": [{"name": "x", "rules": [rule]}]}))
    assert run_promtool("check", "rules", str(path)).returncode != 0


def test_queries_use_only_metric_names_and_labels_the_exporters_produce() -> None:
    """Names from the verified catalog (tests/monitoring/monitoring_support.py)."""
    problems = catalog_problems((f"{f} / {title}", expr) for f, title, expr in _exprs())
    assert not problems, "\n".join(problems)


def test_airflow_and_pod_queries_filter_on_the_namespace_variable() -> None:
    for file_name, title, expr in _exprs():
        for sel in selectors(expr):
            if sel.metric.startswith(("airflow_", "pgbouncer_", "kube_pod_", "container_")):
                assert 'namespace="airflow"' in sel.matchers, f"{file_name} / {title}: {sel}"


def test_queries_on_shared_names_pick_one_series_family() -> None:
    """Airflow emits some metrics twice, tagged and legacy: `task.duration` (no label) and
    `dag.<dag>.<task>.duration` both become airflow_task_duration, the second with
    dag_id/task_id. A query must select one family with a matcher on a label that only one of
    them has, or it counts everything twice. The executor's gauges are the exception:
    BaseExecutor._get_metric_name emits the bare name or the per-executor one, never both.
    """
    catalog = airflow_catalog()
    assert {frozenset(), frozenset({"dag_id", "task_id"})} <= set(
        catalog["airflow_task_duration_count"].label_sets
    )
    for file_name, title, expr in _exprs():
        for sel in selectors(expr):
            entry = catalog.get(sel.metric)
            if not entry or len(entry.label_sets) < 2 or sel.metric.startswith("airflow_executor_"):
                continue
            common = frozenset.intersection(*entry.label_sets)
            distinguishing = entry.labels - common
            assert distinguishing & label_names_used(sel), (
                f"{file_name} / {title}: {sel.metric} mixes two series families"
            )


@pytest.mark.parametrize(
    ("file_name", "metrics"),
    [
        (
            "airflow-scheduler.json",
            {
                "airflow_scheduler_heartbeat",
                "airflow_scheduler_scheduler_loop_duration",
                "airflow_dag_processing_total_parse_time",
                "airflow_dag_processing_import_errors",
                "airflow_dag_processor_heartbeat",
            },
        ),
        (
            "airflow-tasks.json",
            {"airflow_ti_failures", "airflow_ti_successes", "airflow_task_duration"},
        ),
        (
            "airflow-executor.json",
            {
                "airflow_executor_open_slots",
                "airflow_executor_queued_tasks",
                "airflow_executor_running_tasks",
            },
        ),
        (
            "airflow-pgbouncer.json",
            {
                "pgbouncer_exporter_pools_active_clients",
                "pgbouncer_exporter_pools_waiting_clients",
                "pgbouncer_exporter_database_pool_size",
            },
        ),
        (
            "airflow-cluster.json",
            {
                "kube_pod_status_phase",
                "kube_pod_container_status_restarts_total",
                "kube_pod_container_status_last_terminated_reason",
                "kube_node_status_condition",
                "container_cpu_usage_seconds_total",
                "container_memory_working_set_bytes",
                "kube_karpenter_nodepool_nodes",
                "kube_karpenter_nodepool_provisioned_cpu_cores",
                "kube_karpenter_nodepool_limit_cpu_cores",
            },
        ),
    ],
)
def test_each_dashboard_shows_what_it_is_for(file_name: str, metrics: set[str]) -> None:
    used: set[str] = set()
    for f, _, expr in _exprs():
        if f == file_name:
            used |= metric_names(expr)
    assert metrics <= used, sorted(metrics - used)
