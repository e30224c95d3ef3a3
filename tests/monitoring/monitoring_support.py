"""Helpers for the monitoring tests: promtool, the metric catalog, metric names in PromQL.

The catalog is what Prometheus can really see:
- Airflow: the statsd names Airflow 3.2.2 emits (its metrics registry and the `Stats` calls in
  the installed package), put through the chart's own statsd exporter mapping
  (`files/statsd-mappings.yml` read from the chart package) with statsd_exporter's rules
  (prometheus/statsd_exporter v0.30.0, the chart's `images.statsd` tag): glob mappings first,
  each `*` one dot-separated segment, the first listed mapping winning; then regex mappings,
  unanchored (`pkg/mapper/mapper.go` `GetMapping`); unmapped names escaped with every
  character outside [a-zA-Z0-9_] turned into `_` (`pkg/mapper/escape.go`); timers become
  summaries (no `defaults.observer_type` in the chart's file) with quantiles 0.5/0.9/0.99 and
  `_sum`/`_count`; counters keep their name (the exporter serves the classic text format,
  `promhttp.Handler()` in `main.go`, which adds no `_total`). The prefix `airflow` is the
  chart's `config.metrics.statsd_prefix`.
- The other exporters: names from their upstream sources, listed below with the source.
- Karpenter's objects (`kube_karpenter_*`, eks): derived from the custom resource state config
  kube-state-metrics runs with (`components.monitoring_values.karpenter_state_metrics`), by
  kube-state-metrics' own naming rules (`custom_resource_state.catalog`).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tarfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.monitoring_values import karpenter_state_metrics
from tests.chart_support import CHART_DIR
from tests.monitoring import custom_resource_state as crs

CHART_TGZ = CHART_DIR / "airflow-1.22.0.tgz"
STATSD_PREFIX = "airflow"
PROMTOOL_TIMEOUT_S = 60

# kubernetes/kube-state-metrics docs/metrics/workload/pod-metrics.md, cluster/node-metrics.md
KUBE_STATE_METRICS = {
    "kube_pod_status_phase": {"namespace", "pod", "uid", "phase"},
    "kube_pod_owner": {
        "namespace",
        "pod",
        "uid",
        "owner_kind",
        "owner_name",
        "owner_is_controller",
    },
    "kube_pod_info": {"namespace", "pod", "uid", "node", "host_ip", "pod_ip", "created_by_kind"},
    "kube_pod_container_status_terminated_reason": {
        "namespace",
        "pod",
        "uid",
        "container",
        "reason",
    },
    "kube_pod_container_status_last_terminated_reason": {
        "namespace",
        "pod",
        "uid",
        "container",
        "reason",
    },
    "kube_pod_container_status_waiting_reason": {"namespace", "pod", "uid", "container", "reason"},
    "kube_pod_container_status_restarts_total": {"namespace", "pod", "uid", "container"},
    "kube_pod_container_resource_requests": {
        "namespace",
        "pod",
        "uid",
        "container",
        "node",
        "resource",
        "unit",
    },
    "kube_node_status_condition": {"node", "condition", "status"},
    "kube_node_status_allocatable": {"node", "resource", "unit"},
}
# google/cadvisor docs/storage/prometheus.md (served by the kubelet's /metrics/cadvisor)
CADVISOR = {
    "container_cpu_usage_seconds_total": {"namespace", "pod", "container", "cpu"},
    "container_memory_working_set_bytes": {"namespace", "pod", "container"},
}
# jbub/pgbouncer_exporter v0.18.0 internal/collector/metrics.go (namespace `pgbouncer_exporter`,
# subsystems stats/pools/database), the chart's images.pgbouncerExporter
# (dockerfiles/pgbouncer-exporter in the chart package builds that release)
_POOLS = {"database", "user", "pool_mode"}
PGBOUNCER_EXPORTER = {
    **{
        f"pgbouncer_exporter_pools_{m}": _POOLS
        for m in (
            "active_clients",
            "waiting_clients",
            "active_server",
            "idle_server",
            "used_server",
            "tested_server",
            "login_server",
            "max_wait",
        )
    },
    **{
        f"pgbouncer_exporter_database_{m}": {"name", "pool_mode"}
        for m in ("pool_size", "current_connections", "max_connections", "server_lifetime")
    },
    **{
        f"pgbouncer_exporter_stats_{m}": {"database"}
        for m in (
            "total_received",
            "total_sent",
            "total_query_time",
            "total_xact_time",
            "total_query_count",
            "total_xact_count",
        )
    },
}
# prometheus/prometheus documentation/prometheus-mixin/alerts.libsonnet
PROMETHEUS = {
    "prometheus_config_last_reload_successful": set(),
    "prometheus_rule_evaluation_failures_total": {"rule_group"},
    "prometheus_notifications_alertmanagers_discovered": set(),
    "prometheus_notifications_errors_total": {"alertmanager"},
    "prometheus_notifications_sent_total": {"alertmanager"},
}
# prometheus/alertmanager doc/alertmanager-mixin/alerts.libsonnet
ALERTMANAGER = {
    "alertmanager_notifications_failed_total": {"integration", "reason"},
    "alertmanager_notifications_total": {"integration"},
    "alertmanager_config_last_reload_successful": set(),
}
# Labels every scraped series gets from the ServiceMonitor/Pod target (prometheus-operator).
TARGET_LABELS = {"namespace", "pod", "service", "job", "instance", "container", "endpoint"}


# --- promtool ---------------------------------------------------------------------------------


def promtool() -> str:
    """promtool's path; under CI a missing promtool fails the test instead of skipping it."""
    path = shutil.which("promtool")
    if path:
        return path
    if os.environ.get("CI"):
        pytest.fail("promtool is missing (Debian package `prometheus`); CI must install it")
    pytest.skip("promtool is not installed (Debian package `prometheus`)")


def run_promtool(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool(), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=PROMTOOL_TIMEOUT_S,
        check=False,
    )


# --- the statsd exporter's mapping ------------------------------------------------------------


@dataclass(frozen=True)
class Mapping:
    match: str
    name: str
    labels: dict[str, str]
    regex: re.Pattern[str]
    is_regex: bool


def _glob_regex(match: str) -> re.Pattern[str]:
    # statsd_exporter pkg/mapper/fsm: a `*` stands for exactly one dot-separated segment.
    return re.compile("^" + re.escape(match).replace(r"\*", "([^.]*)") + "$")


@cache
def chart_mappings() -> tuple[Mapping, ...]:
    """The chart's statsd exporter mappings, read from the chart package."""
    with tarfile.open(CHART_TGZ) as tgz:
        member = tgz.extractfile("airflow/files/statsd-mappings.yml")
        assert member is not None
        doc = yaml.safe_load(member.read())
    out = []
    for m in doc["mappings"]:
        assert "match_metric_type" not in m, "a typed mapping: teach the catalog about it"
        is_regex = m.get("match_type") == "regex"
        regex = re.compile(m["match"]) if is_regex else _glob_regex(m["match"])
        out.append(Mapping(m["match"], m["name"], dict(m.get("labels", {})), regex, is_regex))
    return tuple(out)


def escape_metric_name(name: str) -> str:
    """statsd_exporter's EscapeMetricName (pkg/mapper/escape.go)."""
    # a run of dashes gives one underscore, like any other invalid character
    out = re.sub(r"[^a-zA-Z0-9_]", "_", re.sub(r"-{2,}", "-", name))
    return "_" + out if out[:1].isdigit() else out


def _fill(template: str, hit: re.Match[str]) -> str:
    """`$1`/`${1}` in a mapping's name or label replaced by the capture."""
    return re.sub(r"\$\{?(\d+)\}?", lambda g: hit.group(int(g.group(1))) or "", template)


def map_statsd(name: str) -> tuple[str, dict[str, str]]:
    """The Prometheus name and labels statsd_exporter gives a statsd metric name."""
    mappings = chart_mappings()
    globs = [m for m in mappings if not m.is_regex]
    regexes = [m for m in mappings if m.is_regex]
    for m in globs:
        hit = m.regex.match(name)
        if hit:
            return _mapped(m, hit)
    for m in regexes:
        hit = m.regex.search(name)
        if hit:
            return _mapped(m, hit)
    return escape_metric_name(name), {}


def _mapped(m: Mapping, hit: re.Match[str]) -> tuple[str, dict[str, str]]:
    return escape_metric_name(_fill(m.name, hit)), {k: _fill(v, hit) for k, v in m.labels.items()}


# --- what Airflow emits -----------------------------------------------------------------------

_KINDS = {
    "incr": "counter",
    "decr": "counter",
    "gauge": "gauge",
    "timing": "timer",
    "timer": "timer",
}
_CALL = re.compile(
    r"\b(?:Stats|DualStatsManager)\.(incr|decr|gauge|timing|timer)\(\s*(f?)\"([^\"]+)\""
)
_EXECUTOR_METRIC = re.compile(r"_get_metric_name\(\s*\"([^\"]+)\"\s*\)")
_PLACEHOLDER = re.compile(r"\{[^}]*\}")


@dataclass(frozen=True)
class Emitted:
    """A statsd name Airflow emits (variables as `{...}`), its kind and where it was found."""

    template: str
    kind: str
    origin: str


def _airflow_root() -> Path:
    import airflow

    return Path(airflow.__file__).parent


@cache
def airflow_emitted() -> tuple[Emitted, ...]:
    """Statsd names in Airflow's metrics registry and in the `Stats` calls of its source."""
    from airflow._shared.observability.metrics.metrics_registry import YAML_REGISTRY_PATH

    out: list[Emitted] = []
    for metric in yaml.safe_load(Path(YAML_REGISTRY_PATH).read_text())["metrics"]:
        for name in (metric["name"], metric.get("legacy_name", "-")):
            if name != "-":
                out.append(Emitted(name, metric["type"], "registry"))
    root = _airflow_root()
    for path in root.rglob("*.py"):
        if "tests" in path.relative_to(root).parts:
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        if "Stats" not in text:
            continue
        where = str(path.relative_to(root.parent))
        for kind, f, name in _CALL.findall(text):
            template = name if f else _PLACEHOLDER.sub("", name)
            out.append(Emitted(template, _KINDS[kind], where))
        for name in _EXECUTOR_METRIC.findall(text):
            # BaseExecutor._get_metric_name: bare name, or `.<executor class>` with 2+ executors
            out.append(Emitted(name, "gauge", where))
            out.append(Emitted(name + ".{executor_class_name}", "gauge", where))
    return tuple(out)


@dataclass
class CatalogEntry:
    label_sets: list[frozenset[str]] = field(default_factory=list)
    sources: set[str] = field(default_factory=set)

    @property
    def labels(self) -> set[str]:
        return set().union(*self.label_sets) if self.label_sets else set()


def _sample(template: str) -> tuple[str, bool]:
    """The template with each variable a recognisable segment, and whether it had any."""
    count = 0

    def repl(_: re.Match[str]) -> str:
        nonlocal count
        count += 1
        return f"zvar{count}z"

    return _PLACEHOLDER.sub(repl, template), count > 0


@cache
def airflow_catalog() -> dict[str, CatalogEntry]:
    """Prometheus name -> label sets and origins, for every name Airflow emits.

    Names whose Prometheus name itself carries a variable (unmapped per-DAG names such as
    `airflow_pool_running_slots_<pool>`) are left out: no fixed name can query them.
    """
    catalog: dict[str, CatalogEntry] = {}
    for e in airflow_emitted():
        sample, _ = _sample(e.template)
        name, labels = map_statsd(f"{STATSD_PREFIX}.{sample}")
        if "zvar" in name:
            continue
        label_set = frozenset(labels)
        series = (
            [
                (name, label_set | {"quantile"}),
                (f"{name}_sum", label_set),
                (f"{name}_count", label_set),
            ]
            if e.kind == "timer"
            else [(name, label_set)]
        )
        for series_name, labelset in series:
            entry = catalog.setdefault(series_name, CatalogEntry())
            if labelset not in entry.label_sets:
                entry.label_sets.append(labelset)
            entry.sources.add(e.origin)
    return catalog


def karpenter_catalog() -> dict[str, set[str]]:
    """The series kube-state-metrics makes of Karpenter's NodePools and NodeClaims (eks)."""
    return crs.catalog(karpenter_state_metrics())


def other_catalog() -> dict[str, set[str]]:
    return {
        **KUBE_STATE_METRICS,
        **karpenter_catalog(),
        **CADVISOR,
        **PGBOUNCER_EXPORTER,
        **PROMETHEUS,
        **ALERTMANAGER,
    }


# --- metric names in PromQL -------------------------------------------------------------------

_KEYWORDS = {
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "and",
    "or",
    "unless",
    "offset",
    "inf",
    "nan",
}
_LABEL_LIST = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_STRING = re.compile(r"\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*'|`[^`]*`")
_BRACES = re.compile(r"\{[^{}]*\}")
_NUMBER = re.compile(r"(?<![\w.])\d+(?:\.\d+)?(?:[eE][-+]?\d+)?(?:ms|s|m|h|d|w|y)*\b")
_IDENT = re.compile(r"(?<![\w$.:])([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?")


def _blank(m: re.Match[str]) -> str:
    return " " * len(m.group(0))


def _mask_strings(text: str) -> str:
    """Strings' contents replaced by `_`, keeping every position."""
    return _STRING.sub(lambda s: s.group(0)[0] + "_" * (len(s.group(0)) - 2) + s.group(0)[-1], text)


@dataclass(frozen=True)
class Selector:
    metric: str
    matchers: str


def selectors(expr: str) -> list[Selector]:
    """The vector selectors of a PromQL expression: metric name and its `{...}` text.

    Functions, aggregations, keywords, label lists (`by (...)`), ranges, numbers and strings
    are not selectors; positions are kept so each name finds the braces that follow it.
    """
    masked = _mask_strings(expr)
    braces = {m.start(): expr[m.start() : m.end()] for m in _BRACES.finditer(masked)}
    blanked = _BRACES.sub(_blank, masked)
    blanked = re.sub(r"\[[^\]]*\]", _blank, blanked)
    blanked = _LABEL_LIST.sub(_blank, blanked)
    blanked = _STRING.sub(_blank, blanked)
    blanked = _NUMBER.sub(_blank, blanked)
    out: list[Selector] = []
    for m in _IDENT.finditer(blanked):
        word, call = m.group(1), m.group(2)
        if call or word.lower() in _KEYWORDS:
            continue
        at = m.end(1)
        while at < len(blanked) and blanked[at].isspace() and at not in braces:
            at += 1
        out.append(Selector(word, braces.get(at, "")))
    return out


def metric_names(expr: str) -> set[str]:
    return {s.metric for s in selectors(expr)}


def label_names_used(selector: Selector) -> set[str]:
    masked = _mask_strings(selector.matchers)
    return set(re.findall(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)", masked))


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def catalog_problems(exprs: Iterable[tuple[str, str]]) -> list[str]:
    """For each `(where, PromQL)`, every metric the catalog lacks and every label it uses that
    the metric does not carry (target labels aside)."""
    known: dict[str, set[str]] = {n: e.labels for n, e in airflow_catalog().items()}
    known.update(other_catalog())
    problems = []
    for where, expr in exprs:
        for sel in selectors(expr):
            if sel.metric not in known:
                problems.append(f"{where}: unknown metric {sel.metric}")
                continue
            extra = label_names_used(sel) - known[sel.metric] - TARGET_LABELS
            if extra:
                problems.append(f"{where}: {sel.metric} has no label {sorted(extra)}")
    return problems
