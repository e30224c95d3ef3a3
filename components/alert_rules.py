"""Alert rules for a stack: the rule files in monitoring/rules, fitted to its Airflow namespace.

The files under `monitoring/rules/` are the one source of truth for alerts (promtool checks and
unit-tests them as they are). They are written for the namespace `airflow`; a stack whose
Airflow runs elsewhere gets the same rules with the exact matcher `namespace="airflow"`
replaced. Any other way of matching the namespace is refused, so no matcher is left behind
pointing at the wrong place.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

RULES_DIR = Path(__file__).resolve().parent.parent / "monitoring" / "rules"
RUNBOOKS_URL = "https://github.com/acme-data/airflow-platform/blob/main/monitoring/runbooks.md"

SOURCE_NAMESPACE = "airflow"
SOURCE_MATCHER = f'namespace="{SOURCE_NAMESPACE}"'
# page: wakes someone up; warning: for the team channel in working hours; info: context only.
# `none` belongs to the Watchdog alone: always firing, routed to a dead man's switch.
SEVERITIES = ("page", "warning", "info")
WATCHDOG = "Watchdog"
REQUIRED_ANNOTATIONS = ("summary", "description", "runbook_url")

_NAMESPACE_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
# Any matcher on the label `namespace`, in any spacing, operator or quoting.
_ANY_NAMESPACE_MATCHER = re.compile(
    r"""\bnamespace\s*(=~|!~|!=|=)\s*("(?:[^"\\]|\\.)*"|'[^']*'|`[^`]*`)"""
)


class RuleFileError(ValueError):
    """A rule file that this module refuses to render."""


def runbook_anchor(alert: str) -> str:
    """The anchor GitHub gives a runbooks.md heading that is exactly the alert's name."""
    return alert.lower()


def runbook_url(alert: str) -> str:
    return f"{RUNBOOKS_URL}#{runbook_anchor(alert)}"


def rule_files(rules_dir: Path = RULES_DIR) -> list[Path]:
    """The rule files, in a stable order."""
    return sorted(rules_dir.glob("*.yml"))


def _groups_of(path: Path) -> list[dict[str, Any]]:
    # libyaml's safe loader where PyYAML was built with it: the same documents, parsed in C.
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    data = yaml.load(path.read_text(), Loader=loader)  # noqa: S506 (a safe loader)
    if not isinstance(data, dict) or not isinstance(data.get("groups"), list):
        raise RuleFileError(f"{path.name}: expected a mapping with a list under `groups`")
    groups: list[dict[str, Any]] = data["groups"]
    return groups


def check_namespace_matchers(expr: str, where: str) -> None:
    """Refuse a namespace matcher that is not exactly `namespace="airflow"`."""
    for m in _ANY_NAMESPACE_MATCHER.finditer(expr):
        if m.group(0) != SOURCE_MATCHER:
            raise RuleFileError(
                f"{where}: matches the namespace with `{m.group(0)}`; write exactly "
                f"`{SOURCE_MATCHER}` so the namespace can be set per stack"
            )


def _check_alert(rule: dict[str, Any], where: str) -> list[str]:
    problems: list[str] = []
    name = rule["alert"]
    labels = rule.get("labels") or {}
    annotations = rule.get("annotations") or {}
    severity = labels.get("severity")
    allowed = ("none",) if name == WATCHDOG else SEVERITIES
    if severity not in allowed:
        problems.append(f"{where}: severity {severity!r} is not one of {', '.join(allowed)}")
    for key in REQUIRED_ANNOTATIONS:
        if not str(annotations.get(key, "")).strip():
            problems.append(f"{where}: annotation `{key}` is missing")
    url = annotations.get("runbook_url")
    if url is not None and url != runbook_url(name):
        problems.append(f"{where}: runbook_url should be {runbook_url(name)}")
    return problems


def source_groups(rules_dir: Path = RULES_DIR) -> list[dict[str, Any]]:
    """Every file's groups exactly as written (for the namespace `airflow`), checked.

    Raises RuleFileError listing every problem: a namespace matcher in another form, an alert
    defined twice, a severity outside the scheme, a missing annotation, a runbook link that is
    not the alert's own section.
    """
    problems: list[str] = []
    seen: dict[str, str] = {}
    out: list[dict[str, Any]] = []
    for path in rule_files(rules_dir):
        groups = _groups_of(path)
        for group in groups:
            for rule in group.get("rules", []):
                name = rule.get("alert") or rule.get("record")
                where = f"{path.name}: {group.get('name')}/{name}"
                check_namespace_matchers(str(rule.get("expr", "")), where)
                if "alert" in rule:
                    if name in seen:
                        problems.append(f"{where}: alert already defined in {seen[name]}")
                    seen[name] = path.name
                    problems.extend(_check_alert(rule, where))
        out.extend(groups)
    if problems:
        raise RuleFileError("invalid alert rules:\n" + "\n".join(problems))
    return out


def alerts(rules_dir: Path = RULES_DIR) -> list[dict[str, Any]]:
    """Every alerting rule, as written."""
    return [r for g in source_groups(rules_dir) for r in g.get("rules", []) if "alert" in r]


def render_rules(namespace: str, rules_dir: Path = RULES_DIR) -> list[dict[str, Any]]:
    """The rule groups for a stack whose Airflow runs in `namespace`."""
    if not _NAMESPACE_RE.match(namespace) or len(namespace) > 63:
        raise ValueError(f"{namespace!r} is not a valid Kubernetes namespace name")
    target = f'namespace="{namespace}"'
    groups = source_groups(rules_dir)
    for group in groups:
        for rule in group.get("rules", []):
            rule["expr"] = str(rule["expr"]).replace(SOURCE_MATCHER, target)
    return groups


def prometheus_rule_spec(namespace: str) -> dict[str, Any]:
    """The `spec` of a monitoring.coreos.com/v1 PrometheusRule holding every rule group."""
    return {"groups": render_rules(namespace)}
