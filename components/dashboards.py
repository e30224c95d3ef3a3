"""Grafana dashboards for the platform, as JSON models built in code.

`dashboards()` maps a file name to a dashboard model. The monitoring component puts each one in
a ConfigMap that Grafana's dashboard sidecar loads (label `grafana_dashboard: "1"`). Every
panel and query reads the Prometheus data source through the templated variable
`${datasource}`, as kube-prometheus-stack's own dashboards do, and filters Airflow's objects by
the variable `$namespace` (default: the stack's Airflow namespace).

Metric names: Airflow's come from its statsd metrics through the chart's statsd exporter
(`files/statsd-mappings.yml`, otherwise dots become underscores; timers become summaries with
`quantile`, `_sum` and `_count`); PgBouncer's from the chart's exporter
(jbub/pgbouncer_exporter: `pgbouncer_exporter_*`); Karpenter's node pools (`kube_karpenter_*`)
from kube-state-metrics' custom resource state config in `monitoring_values.py`; the rest from
kube-state-metrics and the kubelet's cAdvisor. tests/monitoring checks every name against those
sources.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

DATASOURCE: dict[str, str] = {"type": "prometheus", "uid": "${datasource}"}
NS = 'namespace="$namespace"'
RATE = "$__rate_interval"
SCHEMA_VERSION = 39
TAGS = ["airflow-platform"]

_COLUMNS = 2
_WIDTH = 24 // _COLUMNS
_HEIGHT = 8


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str = ""


@dataclass(frozen=True)
class Panel:
    title: str
    queries: tuple[Query, ...]
    unit: str = "short"
    description: str = ""
    kind: str = "timeseries"


def _target(query: Query, ref: int) -> dict[str, Any]:
    return {
        "refId": chr(ord("A") + ref),
        "datasource": DATASOURCE,
        "expr": query.expr,
        "legendFormat": query.legend or "__auto",
        "range": True,
    }


def _panel(panel: Panel, panel_id: int) -> dict[str, Any]:
    index = panel_id - 1
    model: dict[str, Any] = {
        "id": panel_id,
        "type": panel.kind,
        "title": panel.title,
        "description": panel.description,
        "datasource": DATASOURCE,
        "gridPos": {
            "h": _HEIGHT,
            "w": _WIDTH,
            "x": (index % _COLUMNS) * _WIDTH,
            "y": (index // _COLUMNS) * _HEIGHT,
        },
        "targets": [_target(q, i) for i, q in enumerate(panel.queries)],
        "fieldConfig": {"defaults": {"unit": panel.unit}, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True}},
    }
    if panel.kind == "stat":
        model["options"] = {"reduceOptions": {"calcs": ["lastNotNull"], "values": False}}
    return model


def _variables(namespace: str) -> list[dict[str, Any]]:
    return [
        {
            "name": "datasource",
            "label": "Data source",
            "type": "datasource",
            "query": "prometheus",
            "current": {},
            "hide": 0,
            "includeAll": False,
            "multi": False,
            "refresh": 1,
            "regex": "",
        },
        {
            "name": "namespace",
            "label": "Airflow namespace",
            "type": "query",
            "datasource": DATASOURCE,
            "query": {"query": "label_values(kube_pod_info, namespace)", "refId": "namespace"},
            "definition": "label_values(kube_pod_info, namespace)",
            "current": {"selected": True, "text": namespace, "value": namespace},
            "hide": 0,
            "includeAll": False,
            "multi": False,
            "refresh": 2,
            "regex": "",
            "sort": 1,
        },
    ]


def _dashboard(uid: str, title: str, namespace: str, panels: list[Panel]) -> dict[str, Any]:
    return {
        "uid": uid,
        "title": title,
        "tags": TAGS,
        "timezone": "utc",
        "editable": False,
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "refresh": "1m",
        "time": {"from": "now-6h", "to": "now"},
        "annotations": {"list": []},
        "templating": {"list": _variables(namespace)},
        "panels": [_panel(p, i) for i, p in enumerate(panels, start=1)],
    }


def _summary_quantiles(metric: str, by: str = "") -> tuple[Query, ...]:
    """p50 and p99 of a statsd timer (a summary with quantiles 0.5, 0.9, 0.99)."""
    group = f" by ({by})" if by else ""
    label = f"{{{{{by}}}}} " if by else ""
    return tuple(
        Query(f'max{group} ({metric}{{{NS}, quantile="{q}"}})', f"{label}p{q[2:].ljust(2, '0')}")
        for q in ("0.5", "0.99")
    )


def scheduler_dashboard(namespace: str) -> dict[str, Any]:
    panels = [
        Panel(
            "Scheduler heartbeats",
            (Query(f"sum(rate(airflow_scheduler_heartbeat{{{NS}}}[{RATE}]))", "heartbeats/s"),),
            unit="ops",
            description="Zero means no scheduler runs: alert AirflowSchedulerHeartbeatMissing.",
        ),
        Panel(
            "Scheduler loop duration",
            _summary_quantiles("airflow_scheduler_scheduler_loop_duration"),
            unit="s",
        ),
        Panel(
            "Critical section duration",
            _summary_quantiles("airflow_scheduler_critical_section_duration"),
            unit="s",
            description="Time the scheduler holds the pool lock to queue tasks.",
        ),
        Panel(
            "Task instances executable and starving",
            (
                Query(f"sum(airflow_scheduler_tasks_executable{{{NS}}})", "executable"),
                Query(f"sum(airflow_scheduler_tasks_starving{{{NS}}})", "starving (no pool slot)"),
            ),
        ),
        Panel(
            "DAG runs running",
            (Query(f"sum(airflow_scheduler_dagruns_running{{{NS}}})", "running"),),
        ),
        Panel(
            "DAG processor and triggerer heartbeats",
            (
                Query(
                    f"sum(rate(airflow_dag_processor_heartbeat{{{NS}}}[{RATE}]))",
                    "dag-processor",
                ),
                Query(f"sum(rate(airflow_triggerer_heartbeat{{{NS}}}[{RATE}]))", "triggerer"),
            ),
            unit="ops",
        ),
        Panel(
            "DAG file processing time (last loop)",
            (Query(f"max(airflow_dag_processing_total_parse_time{{{NS}}})", "all files"),),
            unit="s",
        ),
        Panel(
            "DAG files and import errors",
            (
                Query(f"max(airflow_dag_processing_import_errors{{{NS}}})", "import errors"),
                Query(f"max(airflow_dag_processing_file_path_queue_size{{{NS}}})", "files queued"),
                Query(f"max(airflow_dagbag_size{{{NS}}})", "DAGs"),
            ),
        ),
    ]
    return _dashboard(
        "airflow-scheduler", "Airflow / Scheduler and DAG processing", namespace, panels
    )


def tasks_dashboard(namespace: str) -> dict[str, Any]:
    failures = f"sum(increase(airflow_ti_failures{{{NS}}}[1h]))"
    successes = f"sum(increase(airflow_ti_successes{{{NS}}}[1h]))"
    panels = [
        Panel(
            "Task attempts finished",
            (
                Query(f"sum(rate(airflow_ti_successes{{{NS}}}[{RATE}])) * 60", "succeeded"),
                Query(f"sum(rate(airflow_ti_failures{{{NS}}}[{RATE}])) * 60", "failed"),
            ),
            unit="opm",
        ),
        Panel(
            "Failed share of task attempts (1h)",
            (Query(f"{failures} / ({failures} + ({successes} or {failures} * 0))", "failed"),),
            unit="percentunit",
            kind="stat",
        ),
        Panel(
            "Task duration, slowest tasks (p99)",
            (
                Query(
                    "topk(10, max by (dag_id, task_id) "
                    f'(airflow_task_duration{{{NS}, dag_id!="", quantile="0.99"}}))',
                    "{{dag_id}}.{{task_id}}",
                ),
            ),
            unit="s",
            description="Per task from the dag.<dag_id>.<task_id>.duration timer.",
        ),
        Panel(
            "Task duration, mean of all tasks",
            (
                Query(
                    f'sum(rate(airflow_task_duration_sum{{{NS}, dag_id=""}}[{RATE}])) / '
                    f'sum(rate(airflow_task_duration_count{{{NS}, dag_id=""}}[{RATE}]))',
                    "mean",
                ),
            ),
            unit="s",
            description="From the task.duration timer, which carries no DAG label.",
        ),
        Panel(
            "DAG run duration, successful runs (p50)",
            (
                Query(
                    "max by (dag_id) "
                    f'(airflow_dagrun_duration{{{NS}, dag_id!="", quantile="0.5"}})',
                    "{{dag_id}}",
                ),
            ),
            unit="s",
        ),
        Panel(
            "DAG runs finished (1h)",
            (
                Query(
                    "sum by (dag_id) "
                    f'(increase(airflow_dagrun_duration_count{{{NS}, dag_id!=""}}[1h]))',
                    "{{dag_id}} success",
                ),
                Query(
                    "sum by (dag_id) "
                    f'(increase(airflow_dagrun_failed_count{{{NS}, dag_id!=""}}[1h]))',
                    "{{dag_id}} failed",
                ),
            ),
        ),
        Panel(
            "DAG run schedule delay (p99)",
            (
                Query(
                    "max by (dag_id) "
                    f'(airflow_dagrun_schedule_delay{{{NS}, dag_id!="", quantile="0.99"}})',
                    "{{dag_id}}",
                ),
            ),
            unit="s",
            description="Time between a run's logical start and the scheduler starting it.",
        ),
        Panel(
            "Operator failures (1h)",
            (
                Query(
                    "sum by (operator) "
                    f'(increase(airflow_operator_failures{{{NS}, operator!=""}}[1h])) > 0',
                    "{{operator}}",
                ),
            ),
        ),
    ]
    return _dashboard("airflow-tasks", "Airflow / DAG and task outcomes", namespace, panels)


def executor_dashboard(namespace: str) -> dict[str, Any]:
    task_pods = f'kube_pod_owner{{{NS}, owner_kind=""}}'
    panels = [
        Panel(
            "Executor slots",
            (
                Query(f"sum(airflow_executor_open_slots{{{NS}}})", "open"),
                Query(f"sum(airflow_executor_running_tasks{{{NS}}})", "running"),
                Query(f"sum(airflow_executor_queued_tasks{{{NS}}})", "queued"),
            ),
            description="Open is parallelism minus running; queued tasks wait for an open slot.",
        ),
        Panel(
            "Executor slot usage",
            (
                Query(
                    f"sum(airflow_executor_running_tasks{{{NS}}}) / "
                    f"(sum(airflow_executor_running_tasks{{{NS}}}) + "
                    f"sum(airflow_executor_open_slots{{{NS}}}))",
                    "used",
                ),
            ),
            unit="percentunit",
            kind="stat",
        ),
        Panel(
            "Task pods by phase",
            (
                Query(
                    f"sum by (phase) (kube_pod_status_phase{{{NS}}} == 1 "
                    f"and on (namespace, pod) {task_pods})",
                    "{{phase}}",
                ),
            ),
            description="KubernetesExecutor task pods: the namespace's pods without an owner.",
        ),
        Panel(
            "Pool open slots",
            (
                Query(
                    f'sum by (pool) (airflow_pool_open_slots{{{NS}, pool!=""}})',
                    "{{pool}}",
                ),
            ),
        ),
        Panel(
            "Pool starving tasks",
            (
                Query(
                    f'sum by (pool) (airflow_pool_starving_tasks{{{NS}, pool!=""}})',
                    "{{pool}}",
                ),
            ),
            description="Tasks that cannot be scheduled for lack of a pool slot.",
        ),
        Panel(
            "Task pod CPU and memory requests",
            (
                Query(
                    "sum by (resource) "
                    f'(kube_pod_container_resource_requests{{{NS}, resource=~"cpu|memory"}} '
                    f"and on (namespace, pod) {task_pods})",
                    "{{resource}}",
                ),
            ),
        ),
    ]
    return _dashboard("airflow-executor", "Airflow / Executor capacity", namespace, panels)


def pgbouncer_dashboard(namespace: str) -> dict[str, Any]:
    def by_db(metric: str, legend: str = "{{database}}") -> Query:
        return Query(f"sum by (database) ({metric}{{{NS}}})", legend)

    panels = [
        Panel("Clients active", (by_db("pgbouncer_exporter_pools_active_clients"),)),
        Panel(
            "Clients waiting",
            (by_db("pgbouncer_exporter_pools_waiting_clients"),),
            description="Clients that sent a query and wait for a server connection.",
        ),
        Panel(
            "Longest wait",
            (
                Query(
                    f"max by (database) (pgbouncer_exporter_pools_max_wait{{{NS}}})",
                    "{{database}}",
                ),
            ),
            unit="s",
        ),
        Panel(
            "Server connections",
            (
                by_db("pgbouncer_exporter_pools_active_server", "{{database}} active"),
                by_db("pgbouncer_exporter_pools_idle_server", "{{database}} idle"),
                by_db("pgbouncer_exporter_pools_used_server", "{{database}} used"),
            ),
        ),
        Panel(
            "Pool size and connections",
            (
                Query(
                    f"sum by (name) (pgbouncer_exporter_database_pool_size{{{NS}}})",
                    "{{name}} pool size",
                ),
                Query(
                    f"sum by (name) (pgbouncer_exporter_database_current_connections{{{NS}}})",
                    "{{name}} connections",
                ),
            ),
        ),
        Panel(
            "Queries and transactions",
            (
                Query(
                    "sum by (database) "
                    f"(rate(pgbouncer_exporter_stats_total_query_count{{{NS}}}[{RATE}]))",
                    "{{database}} queries",
                ),
                Query(
                    "sum by (database) "
                    f"(rate(pgbouncer_exporter_stats_total_xact_count{{{NS}}}[{RATE}]))",
                    "{{database}} transactions",
                ),
            ),
            unit="ops",
        ),
    ]
    return _dashboard("airflow-pgbouncer", "Airflow / PgBouncer", namespace, panels)


def cluster_dashboard(namespace: str) -> dict[str, Any]:
    ready = 'kube_node_status_condition{condition="Ready", status="true"}'
    oom = 'reason="OOMKilled"'
    panels = [
        Panel(
            "Pods by phase",
            (Query(f"sum by (phase) (kube_pod_status_phase{{{NS}}})", "{{phase}}"),),
        ),
        Panel(
            "Pods Pending",
            (Query(f'sum(kube_pod_status_phase{{{NS}, phase="Pending"}})', "pending"),),
            kind="stat",
        ),
        Panel(
            "Container restarts (1h)",
            (
                Query(
                    "sum by (pod, container) "
                    f"(increase(kube_pod_container_status_restarts_total{{{NS}}}[1h])) > 0",
                    "{{pod}}/{{container}}",
                ),
            ),
        ),
        Panel(
            "Containers OOMKilled",
            (
                Query(
                    "count by (pod, container) ("
                    f"kube_pod_container_status_terminated_reason{{{NS}, {oom}}} == 1 or "
                    f"kube_pod_container_status_last_terminated_reason{{{NS}, {oom}}} == 1)",
                    "{{pod}}/{{container}}",
                ),
            ),
            description="Current or last termination of the container was an OOM kill.",
        ),
        Panel(
            "Nodes Ready and not Ready",
            (
                Query(f"sum({ready})", "Ready"),
                Query(f"count({ready} == 0) or vector(0)", "not Ready"),
            ),
        ),
        Panel(
            "CPU used by pod",
            (
                Query(
                    "sum by (pod) (rate(container_cpu_usage_seconds_total"
                    f'{{{NS}, container!=""}}[{RATE}]))',
                    "{{pod}}",
                ),
            ),
            unit="cores",
        ),
        Panel(
            "Memory working set by pod",
            (
                Query(
                    f'sum by (pod) (container_memory_working_set_bytes{{{NS}, container!=""}})',
                    "{{pod}}",
                ),
            ),
            unit="bytes",
        ),
        Panel(
            "Namespace requests against allocatable",
            (
                Query(
                    "sum by (resource) "
                    f'(kube_pod_container_resource_requests{{{NS}, resource=~"cpu|memory"}}) / '
                    'sum by (resource) (kube_node_status_allocatable{resource=~"cpu|memory"})',
                    "{{resource}}",
                ),
            ),
            unit="percentunit",
        ),
        *_node_pool_panels(),
    ]
    return _dashboard("airflow-cluster", "Airflow / Cluster and namespace", namespace, panels)


def _node_pool_panels() -> list[Panel]:
    """Karpenter's NodePools and NodeClaims (`kube_karpenter_*`, from kube-state-metrics' custom
    resource state, `components/monitoring_values.py`): eks stacks only, empty on minikube."""
    source = "From the Karpenter objects (eks stacks; minikube has none)."
    return [
        Panel(
            "Nodes per node pool",
            (
                Query("max by (nodepool) (kube_karpenter_nodepool_nodes)", "{{nodepool}}"),
                Query(
                    "count by (nodepool) "
                    '(kube_karpenter_nodeclaim_condition{condition="Ready"} == 0)',
                    "{{nodepool}} not Ready yet",
                ),
            ),
            description=f"Nodes per NodePool, and node claims not Ready yet. {source}",
        ),
        Panel(
            "Node pool CPU against its limit",
            (
                Query(
                    "max by (nodepool) (kube_karpenter_nodepool_provisioned_cpu_cores)",
                    "{{nodepool}} nodes",
                ),
                Query(
                    "max by (nodepool) (kube_karpenter_nodepool_limit_cpu_cores)",
                    "{{nodepool}} limit",
                ),
            ),
            unit="cores",
            description=(
                "CPU of the pool's nodes and the pool's limit: Karpenter adds no node past the "
                f"limit (alert KarpenterNodePoolNearCpuLimit). {source}"
            ),
        ),
    ]


def dashboards(namespace: str = "airflow") -> dict[str, dict[str, Any]]:
    """Every dashboard, by the file name its ConfigMap key should have."""
    return {
        "airflow-scheduler.json": scheduler_dashboard(namespace),
        "airflow-tasks.json": tasks_dashboard(namespace),
        "airflow-executor.json": executor_dashboard(namespace),
        "airflow-pgbouncer.json": pgbouncer_dashboard(namespace),
        "airflow-cluster.json": cluster_dashboard(namespace),
    }
