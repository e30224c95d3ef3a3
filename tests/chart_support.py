"""Helpers for tests of the chart values: the chart's schema and the values a run passed to Helm."""

from __future__ import annotations

import json
from functools import cache
from typing import Any

import jsonschema

from tests.harness import ROOT_DIR, Resource, Run

CHART_DIR = ROOT_DIR.parent / "shared" / "airflow-chart"


@cache
def chart_schema() -> dict[str, Any]:
    """The pinned chart's values.schema.json with the top level closed, as the chart's tests do."""
    schema: dict[str, Any] = json.loads((CHART_DIR / "values.schema.json").read_text())
    return {**schema, "additionalProperties": False}


def _chart_meta(key: str) -> str:
    for line in (CHART_DIR / "VERSION").read_text().splitlines():
        name, _, value = line.partition(":")
        if name.strip() == key:
            return value.strip()
    raise AssertionError(f"no {key} in VERSION")


def chart_version() -> str:
    return _chart_meta("version")


def chart_app_version() -> str:
    return _chart_meta("appVersion")


def schema_errors(values: dict[str, Any]) -> list[str]:
    validator_cls = jsonschema.validators.validator_for(chart_schema())
    validator = validator_cls(chart_schema())
    return [
        f"{'.'.join(str(p) for p in e.absolute_path)}: {e.message[:200]}"
        for e in validator.iter_errors(values)
    ]


def release(run: Run) -> Resource:
    return run.one("kubernetes:helm.sh/v3:Release")


def values_of(run: Run) -> dict[str, Any]:
    values: dict[str, Any] = release(run).inputs["values"]
    return values


def secrets_by_name(run: Run) -> dict[str, Resource]:
    return {r.inputs["metadata"]["name"]: r for r in run.of_type("kubernetes:core/v1:Secret")}


def leaves(value: Any, path: str = "") -> dict[str, Any]:
    """`{"a.b[0].c": leaf}` for every leaf of a nested value."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(leaves(v, f"{path}.{k}" if path else str(k)))
        return out or {path: {}}
    if isinstance(value, list):
        out = {}
        for i, v in enumerate(value):
            out.update(leaves(v, f"{path}[{i}]"))
        return out or {path: []}
    return {path: value}
