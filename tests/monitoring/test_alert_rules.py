"""Alert rules: promtool-valid, unit-tested both ways, documented, and on real metric names."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from components import alert_rules
from components.alert_rules import (
    RULES_DIR,
    RUNBOOKS_URL,
    RuleFileError,
    alerts,
    prometheus_rule_spec,
    render_rules,
    source_groups,
)
from tests.monitoring.monitoring_support import (
    airflow_catalog,
    catalog_problems,
    label_names_used,
    load_yaml,
    map_statsd,
    metric_names,
    run_promtool,
    selectors,
)

MONITORING = RULES_DIR.parent
TESTS_DIR = MONITORING / "tests"
RUNBOOKS = MONITORING / "runbooks.md"
NAMESPACED_PREFIXES = ("airflow_", "pgbouncer_", "kube_pod_")


def _test_files() -> list[Path]:
    return sorted(TESTS_DIR.glob("*.yml"))


def _exprs() -> dict[str, str]:
    return {r["alert"]: str(r["expr"]) for r in alerts()}


# --- promtool -------------------------------------------------------------------------------


def test_promtool_accepts_every_rule_file() -> None:
    files = [str(p) for p in alert_rules.rule_files()]
    assert files, "no rule files"
    result = run_promtool("check", "rules", *files)
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_accepts_the_rules_rendered_for_another_namespace(tmp_path: Path) -> None:
    path = tmp_path / "rendered.yml"
    path.write_text(yaml.safe_dump({"groups": render_rules("data-airflow")}, sort_keys=False))
    result = run_promtool("check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert 'namespace="airflow"' not in path.read_text()


def test_promtool_unit_tests_pass() -> None:
    files = [str(p) for p in _test_files()]
    assert files, "no promtool test files"
    result = run_promtool("test", "rules", *files)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_rule_file_has_a_test_file() -> None:
    covered: set[Path] = set()
    for test_file in _test_files():
        for rel in load_yaml(test_file)["rule_files"]:
            target = (test_file.parent / rel).resolve()
            assert target.exists(), f"{test_file.name}: {rel} does not exist"
            covered.add(target)
    assert covered == {p.resolve() for p in alert_rules.rule_files()}


def _alert_tests() -> dict[str, dict[str, list[tuple[Path, dict[str, Any], dict[str, Any]]]]]:
    """alert -> {"fires"|"quiet": [(test file, test group, alert_rule_test item)]}."""
    out: dict[str, dict[str, list[tuple[Path, dict[str, Any], dict[str, Any]]]]] = {}
    for test_file in _test_files():
        for group in load_yaml(test_file)["tests"]:
            for item in group.get("alert_rule_test", []):
                kind = "fires" if item.get("exp_alerts") else "quiet"
                by_kind = out.setdefault(item["alertname"], {"fires": [], "quiet": []})
                by_kind[kind].append((test_file, group, item))
    return out


def test_every_alert_has_a_test_that_fires_it_and_one_that_does_not() -> None:
    tests = _alert_tests()
    missing = []
    for name in _exprs():
        found = tests.get(name, {"fires": [], "quiet": []})
        if not found["fires"]:
            missing.append(f"{name}: no test where it fires")
        # The Watchdog fires by design at every instant (vector(1)): no quiet case exists.
        if name != alert_rules.WATCHDOG and not found["quiet"]:
            missing.append(f"{name}: no test where it stays quiet")
    assert not missing, "\n".join(missing)
    assert set(tests) <= set(_exprs()), "tests name alerts that do not exist"


def test_the_watchdog_always_fires_with_severity_none() -> None:
    watchdog = next(r for r in alerts() if r["alert"] == alert_rules.WATCHDOG)
    assert watchdog["expr"].strip() == "vector(1)"
    assert watchdog["labels"]["severity"] == "none"
    assert "for" not in watchdog


def _mutated_run(tmp_path: Path, alert: str, kind: str, expr: str) -> tuple[int, str]:
    """Run only `alert`'s `kind` tests against its rule file with `expr` in place of its own."""
    rules_dir = tmp_path / alert / "rules"
    rules_dir.mkdir(parents=True)
    tests_dir = tmp_path / alert / "tests"
    tests_dir.mkdir()
    test_items = _alert_tests()[alert][kind]
    source_file = (test_items[0][0].parent / load_yaml(test_items[0][0])["rule_files"][0]).resolve()
    doc = load_yaml(source_file)
    for group in doc["groups"]:
        for rule in group["rules"]:
            if rule.get("alert") == alert:
                rule["expr"] = expr
    (rules_dir / source_file.name).write_text(yaml.safe_dump(doc, sort_keys=False))
    groups = []
    for _, group, item in test_items:
        g = copy.deepcopy(group)
        g["alert_rule_test"] = [item]
        groups.append(g)
    test_doc = {
        "rule_files": [f"../rules/{source_file.name}"],
        "evaluation_interval": "1m",
        "tests": groups,
    }
    (tests_dir / "mutated_test.yml").write_text(yaml.safe_dump(test_doc, sort_keys=False))
    result = run_promtool("test", "rules", str(tests_dir / "mutated_test.yml"))
    return result.returncode, result.stdout + result.stderr


@pytest.mark.parametrize("alert", sorted(set(_exprs()) - {alert_rules.WATCHDOG}))
def test_the_tests_catch_an_alert_that_never_or_always_fires(alert: str, tmp_path: Path) -> None:
    """The firing tests fail on a rule that never fires; the quiet ones on one that always does."""
    code, out = _mutated_run(tmp_path / "never", alert, "fires", "vector(1) > 2")
    assert code != 0, f"{alert}: its firing tests pass with a rule that never fires\n{out}"
    code, out = _mutated_run(tmp_path / "always", alert, "quiet", "vector(1)")
    assert code != 0, f"{alert}: its quiet tests pass with a rule that always fires\n{out}"


# --- labels, annotations, runbooks ----------------------------------------------------------


def _github_anchor(heading: str) -> str:
    """GitHub's heading anchor: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _runbook_anchors() -> set[str]:
    headings = re.findall(r"^#{1,6}\s+(.+?)\s*$", RUNBOOKS.read_text(), flags=re.MULTILINE)
    return {_github_anchor(h) for h in headings}


def test_every_alert_has_severity_summary_description_and_its_runbook() -> None:
    anchors = _runbook_anchors()
    problems = []
    for rule in alerts():
        name = rule["alert"]
        severity = rule.get("labels", {}).get("severity")
        allowed = {"none"} if name == alert_rules.WATCHDOG else set(alert_rules.SEVERITIES)
        if severity not in allowed:
            problems.append(f"{name}: severity {severity!r}")
        annotations = rule.get("annotations", {})
        for key in ("summary", "description", "runbook_url"):
            if not str(annotations.get(key, "")).strip():
                problems.append(f"{name}: no {key}")
        url = str(annotations.get("runbook_url", ""))
        base, _, anchor = url.partition("#")
        if base != RUNBOOKS_URL or anchor not in anchors:
            problems.append(f"{name}: runbook_url {url!r} has no section in runbooks.md")
    assert not problems, "\n".join(problems)


def test_every_alert_has_a_runbook_section_with_meaning_checks_causes_and_fix() -> None:
    """Each alert's section says what it means, why its threshold, what to check, the fix."""
    text = RUNBOOKS.read_text()
    sections = re.split(r"^## ", text, flags=re.MULTILINE)[1:]
    by_name = {s.splitlines()[0].strip(): s for s in sections}
    for name in _exprs():
        assert name in by_name, f"runbooks.md has no section `## {name}`"
        body = by_name[name]
        words = ["Meaning", "First checks", "Likely causes", "Resolve"]
        if name != alert_rules.WATCHDOG:
            words.append("Why this threshold")
        for word in words:
            assert f"**{word}" in body, f"{name}: runbook lacks **{word}**"


# --- rendering for a stack's namespace -------------------------------------------------------


def test_render_rules_changes_only_the_namespace_matchers() -> None:
    source = source_groups()
    rendered = render_rules("data-airflow")
    assert len(rendered) == len(source)
    for before, after in zip(source, rendered, strict=True):
        for r0, r1 in zip(before["rules"], after["rules"], strict=True):
            e0, e1 = str(r0["expr"]), str(r1["expr"])
            assert e1.count('namespace="data-airflow"') == e0.count('namespace="airflow"')
            assert e1.replace('namespace="data-airflow"', 'namespace="airflow"') == e0
            assert {k: v for k, v in r1.items() if k != "expr"} == {
                k: v for k, v in r0.items() if k != "expr"
            }


def test_prometheus_rule_spec_is_the_groups_as_json() -> None:
    spec = prometheus_rule_spec("airflow")
    assert set(spec) == {"groups"}
    assert json.loads(json.dumps(spec)) == spec
    names = [g["name"] for g in spec["groups"]]
    assert len(names) == len(set(names)), "group names must be unique in a PrometheusRule"
    for group in spec["groups"]:
        assert set(group) <= {"name", "interval", "rules"}
        for rule in group["rules"]:
            assert set(rule) <= {"alert", "record", "expr", "for", "labels", "annotations"}


def _write_rules(directory: Path, expr: str, **overrides: Any) -> None:
    rule: dict[str, Any] = {
        "alert": "ExampleAlert",
        "expr": expr,
        "labels": {"severity": "warning"},
        "annotations": {
            "summary": "s",
            "description": "d",
            "runbook_url": alert_rules.runbook_url("ExampleAlert"),
        },
    }
    rule.update(overrides)
    doc = {"groups": [{"name": "example", "rules": [rule]}]}
    (directory / "example.yml").write_text(yaml.safe_dump(doc))


@pytest.mark.parametrize(
    "matcher",
    [
        'namespace=~"airflow"',
        'namespace!="kube-system"',
        'namespace = "airflow"',
        "namespace='airflow'",
        'namespace=~"airflow|other"',
    ],
)
def test_render_rules_refuses_any_other_namespace_matcher(tmp_path: Path, matcher: str) -> None:
    _write_rules(tmp_path, f"up{{{matcher}}} == 0")
    with pytest.raises(RuleFileError, match="matches the namespace"):
        render_rules("airflow", rules_dir=tmp_path)


def test_render_rules_accepts_the_exact_matcher(tmp_path: Path) -> None:
    _write_rules(tmp_path, 'sum by (namespace) (up{namespace="airflow", job="x"}) == 0')
    rendered = render_rules("team-a", rules_dir=tmp_path)
    assert rendered[0]["rules"][0]["expr"] == (
        'sum by (namespace) (up{namespace="team-a", job="x"}) == 0'
    )


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"labels": {"severity": "critical"}}, "severity"),
        ({"labels": {}}, "severity"),
        ({"annotations": {"summary": "s", "description": "d"}}, "runbook_url"),
        (
            {"annotations": {"summary": "s", "description": "", "runbook_url": "x"}},
            "description",
        ),
        (
            {
                "annotations": {
                    "summary": "s",
                    "description": "d",
                    "runbook_url": alert_rules.runbook_url("OtherAlert"),
                }
            },
            "runbook_url should be",
        ),
    ],
)
def test_rule_files_without_the_required_labels_are_refused(
    tmp_path: Path, overrides: dict[str, Any], message: str
) -> None:
    _write_rules(tmp_path, "vector(1)", **overrides)
    with pytest.raises(RuleFileError, match=message):
        render_rules("airflow", rules_dir=tmp_path)


@pytest.mark.parametrize("namespace", ["Airflow", "air_flow", "-airflow", "a" * 64, ""])
def test_render_rules_refuses_an_invalid_namespace(namespace: str) -> None:
    with pytest.raises(ValueError, match="namespace"):
        render_rules(namespace)


def test_namespaced_metrics_select_the_airflow_namespace() -> None:
    """Airflow, PgBouncer and pod series exist per namespace: each selector names it."""
    problems = []
    for name, expr in _exprs().items():
        for sel in selectors(expr):
            if sel.metric.startswith(NAMESPACED_PREFIXES) and (
                'namespace="airflow"' not in sel.matchers
            ):
                problems.append(f"{name}: {sel.metric}{sel.matchers}")
    assert not problems, "\n".join(problems)


# --- metric names against what the exporters really produce ----------------------------------


@pytest.mark.parametrize(
    ("statsd", "prometheus", "labels"),
    [
        # regex mapping with a fixed label (chart: airflow.scheduler_heartbeat)
        ("airflow.scheduler_heartbeat", "airflow_scheduler_heartbeat", {"type": "counter"}),
        ("airflow.dag_processor_heartbeat", "airflow_dag_processor_heartbeat", {"type": "counter"}),
        # unmapped: dots become underscores, no label
        ("airflow.triggerer_heartbeat", "airflow_triggerer_heartbeat", {}),
        ("airflow.ti_failures", "airflow_ti_failures", {}),
        ("airflow.dag_processing.import_errors", "airflow_dag_processing_import_errors", {}),
        ("airflow.executor.open_slots", "airflow_executor_open_slots", {}),
        # glob mappings: each * is one segment, captured into a label
        (
            "airflow.executor.open_slots.KubernetesExecutor",
            "airflow_executor_open_slots",
            {"executor": "KubernetesExecutor"},
        ),
        (
            "airflow.dag.etl.load.duration",
            "airflow_task_duration",
            {"dag_id": "etl", "task_id": "load"},
        ),
        # regex mapping, unanchored, with a capture
        (
            "airflow.operator_failures_PythonOperator",
            "airflow_operator_failures",
            {"operator": "PythonOperator"},
        ),
        # an unmapped per-pool name keeps the pool in the name
        ("airflow.pool.running_slots.default_pool", "airflow_pool_running_slots_default_pool", {}),
    ],
)
def test_the_chart_mapping_turns_statsd_names_into_these_series(
    statsd: str, prometheus: str, labels: dict[str, str]
) -> None:
    """statsd_exporter v0.30.0 pkg/mapper (glob FSM, then regex) over the chart's mapping file."""
    assert map_statsd(statsd) == (prometheus, labels)


def test_airflow_emits_the_heartbeats_and_gauges_the_alerts_need() -> None:
    """Found in Airflow 3.2.2's own `Stats` calls, not only its registry."""
    catalog = airflow_catalog()
    for name in (
        "airflow_scheduler_heartbeat",
        "airflow_dag_processor_heartbeat",
        "airflow_triggerer_heartbeat",
        "airflow_dag_processing_import_errors",
        "airflow_ti_failures",
        "airflow_ti_successes",
        "airflow_executor_open_slots",
        "airflow_executor_queued_tasks",
    ):
        assert any(s != "registry" for s in catalog[name].sources), name


def test_selectors_find_metric_names_only() -> None:
    expr = (
        'sum by (namespace, pod) (rate(foo_total{namespace="airflow", a=~"x|y"}[5m] offset 30m))'
        ' / on (pod) group_left bar > bool 0.5 or absent(baz{b="sum(x)"}) unless vector(1)'
    )
    assert metric_names(expr) == {"foo_total", "bar", "baz"}
    by_name = {s.metric: s for s in selectors(expr)}
    assert label_names_used(by_name["foo_total"]) == {"namespace", "a"}
    assert label_names_used(by_name["baz"]) == {"b"}


def test_rules_use_only_metric_names_and_labels_the_exporters_produce() -> None:
    """Airflow names derived from the chart's statsd mapping and Airflow's emitted metrics;
    the rest from kube-state-metrics, Prometheus and Alertmanager sources (monitoring_support).
    """
    problems = catalog_problems(_exprs().items())
    assert not problems, "\n".join(problems)
