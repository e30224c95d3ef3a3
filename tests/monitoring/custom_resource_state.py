"""kube-state-metrics' Custom Resource State metrics, as the tests need them: checked, named, run.

A model of kubernetes/kube-state-metrics v2.20 (the appVersion of the kube-state-metrics chart
8.4.0 that kube-prometheus-stack 88.5.3 pulls in), package pkg/customresourcestate:
- `config_problems`: the fields its Go structs read (config.go `Metrics`, `MetricsSpec`,
  `Resource`, `GroupVersionKind`, `Labels`, `Generator`, `Metric`; config_metrics_types.go
  `MetricGauge`, `MetricInfo`, `MetricStateSet`). kube-state-metrics decodes the config with a
  plain YAML decoder (pkg/app/server.go `resolveCustomResourceConfig`), so a misspelt key is
  dropped without a word: this check is what catches it. Types are matched case-insensitively
  (`configOverrides` lowercases them) and only gauge, info and stateset compile
  (registry_factory.go `newCompiledMetric`).
- `catalog`: the series names and label names a config produces. A name is
  `<metricNamePrefix>_<name>` (`fullName`; the prefix defaults to `kube_customresource`,
  `GetMetricNamePrefix`); every series carries `customresource_group`, `customresource_version`
  and `customresource_kind` (`compile`).
- `series`: the series a config gives for objects: paths resolved as `compilePath` does, values
  parsed as `toFloat64` does, gauges, infos and state sets expanded as their `Values` methods
  do, the resource's and metric's `labelsFromPath` read from the whole object (`BaseLabels`)
  and only added where the metric's own labels do not set them (`DefaultLabels`). Where
  kube-state-metrics would log an error (at the metric's `errorLogV`) and drop a value, the
  error is returned beside the series.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

GVK_LABELS = ("customresource_group", "customresource_version", "customresource_kind")
DEFAULT_PREFIX = "kube_customresource"

# Keys of the Go structs, by their yaml tags (inline structs folded in).
_LABELS = {"commonLabels", "labelsFromPath"}
CONFIG_KEYS = {"spec"}
# `kind: CustomResourceStateMetrics` is in every example of the docs; the decoder ignores it.
CONFIG_IGNORED = {"kind"}
SPEC_KEYS = {"resources"}
RESOURCE_KEYS = _LABELS | {
    "metricNamePrefix",
    "groupVersionKind",
    "resourcePlural",
    "metrics",
    "errorLogV",
}
GVK_KEYS = {"group", "version", "kind"}
GENERATOR_KEYS = _LABELS | {"each", "name", "help", "errorLogV"}
METRIC_KEYS = {"gauge", "stateSet", "info", "type"}
_META = {"labelsFromPath", "path"}
MEMBER_KEYS = {
    "gauge": _META | {"labelFromKey", "valueFrom", "nilIsZero"},
    "info": _META | {"labelFromKey"},
    "stateSet": _META | {"list", "labelName", "valueFrom"},
}
TYPES = {"gauge": "gauge", "info": "info", "stateset": "stateSet"}
"""Lowercased `each.type` -> the member holding its settings."""

_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_LABEL = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


# --- the config's shape ---------------------------------------------------------------------


def _unknown(where: str, got: Mapping[str, Any], allowed: set[str]) -> list[str]:
    return [f"{where}: unknown key {k!r}" for k in sorted(set(got) - allowed)]


def _path_problems(where: str, path: Any) -> list[str]:
    if not isinstance(path, list) or not all(isinstance(p, str) for p in path):
        return [f"{where}: a path must be a list of strings, got {path!r}"]
    return []


def _labels_problems(where: str, block: Mapping[str, Any]) -> list[str]:
    problems: list[str] = []
    common = block.get("commonLabels", {})
    if not isinstance(common, dict):
        problems.append(f"{where}.commonLabels: not a mapping")
        common = {}
    for name in common:
        if name in GVK_LABELS:
            problems.append(f"{where}.commonLabels: {name} is set by kube-state-metrics")
    paths = block.get("labelsFromPath", {})
    if not isinstance(paths, dict):
        return [*problems, f"{where}.labelsFromPath: not a mapping"]
    for name, path in paths.items():
        if "*" in name:
            problems.append(f"{where}.labelsFromPath: {name!r} copies a whole object")
        elif not _LABEL.match(name):
            problems.append(f"{where}.labelsFromPath: {name!r} is not a label name")
        problems += _path_problems(f"{where}.labelsFromPath.{name}", path)
    for name in common:
        if not _LABEL.match(name):
            problems.append(f"{where}.commonLabels: {name!r} is not a label name")
    return problems


def _each_problems(where: str, each: Any) -> list[str]:
    if not isinstance(each, dict):
        return [f"{where}: `each` must be a mapping"]
    problems = _unknown(where, each, METRIC_KEYS)
    kind = str(each.get("type", "")).lower()
    member = TYPES.get(kind)
    if member is None:
        return [*problems, f"{where}.type: {each.get('type')!r} is not Gauge, Info or StateSet"]
    others = (set(MEMBER_KEYS) - {member}) & set(each)
    if others:
        problems.append(f"{where}: type {each['type']} ignores {sorted(others)}")
    settings = each.get(member)
    if not isinstance(settings, dict):
        return [*problems, f"{where}.{member}: missing (each.{member} must not be nil)"]
    inner = f"{where}.{member}"
    problems += _unknown(inner, settings, MEMBER_KEYS[member])
    for key in ("path", "valueFrom"):
        if key in settings:
            problems += _path_problems(f"{inner}.{key}", settings[key])
    problems += _labels_problems(inner, settings)
    label_name = str(settings.get("labelName", ""))
    if member == "stateSet" and not (settings.get("list") and _LABEL.match(label_name)):
        problems.append(f"{inner}: needs a `list` and a `labelName`")
    if member == "info" and not settings.get("labelsFromPath"):
        problems.append(f"{inner}: an info with no labelsFromPath produces nothing")
    key_label = settings.get("labelFromKey")
    if key_label is not None and not _LABEL.match(str(key_label)):
        problems.append(f"{inner}.labelFromKey: {key_label!r} is not a label name")
    return problems


def config_problems(config: Any) -> list[str]:
    """Every way `config` departs from what kube-state-metrics reads (empty when none)."""
    if not isinstance(config, dict):
        return ["the config must be a mapping"]
    problems = _unknown("config", config, CONFIG_KEYS | CONFIG_IGNORED)
    spec = config.get("spec")
    if not isinstance(spec, dict):
        return [*problems, "config.spec: missing"]
    problems += _unknown("spec", spec, SPEC_KEYS)
    resources = spec.get("resources")
    if not isinstance(resources, list) or not resources:
        return [*problems, "spec.resources: must be a non-empty list"]
    names: set[str] = set()
    kinds: list[Any] = []
    for i, resource in enumerate(resources):
        where = f"spec.resources[{i}]"
        if not isinstance(resource, dict):
            problems.append(f"{where}: not a mapping")
            continue
        problems += _unknown(where, resource, RESOURCE_KEYS)
        problems += _labels_problems(where, resource)
        gvk = resource.get("groupVersionKind")
        if not isinstance(gvk, dict) or set(gvk) != GVK_KEYS:
            problems.append(f"{where}.groupVersionKind: needs exactly {sorted(GVK_KEYS)}")
        elif gvk in kinds:
            # the docs: several entries for one resource make kube-state-metrics exit
            problems.append(f"{where}.groupVersionKind: {gvk} has an entry already")
        kinds.append(gvk)
        prefix = resource.get("metricNamePrefix")
        if prefix is not None and prefix != "" and not _NAME.match(str(prefix)):
            problems.append(f"{where}.metricNamePrefix: {prefix!r} is not a metric name")
        metrics = resource.get("metrics")
        if not isinstance(metrics, list) or not metrics:
            problems.append(f"{where}.metrics: must be a non-empty list")
            continue
        for j, generator in enumerate(metrics):
            at = f"{where}.metrics[{j}]"
            if not isinstance(generator, dict):
                problems.append(f"{at}: not a mapping")
                continue
            problems += _unknown(at, generator, GENERATOR_KEYS)
            problems += _labels_problems(at, generator)
            if not generator.get("help"):
                problems.append(f"{at}: no help text")
            problems += _each_problems(f"{at}.each", generator.get("each"))
            each = generator.get("each")
            is_info = isinstance(each, dict) and str(each.get("type", "")).lower() == "info"
            if is_info and not str(generator.get("name", "")).endswith("_info"):
                # `compileFamily` logs it: an info's name ends in _info
                problems.append(f"{at}: an info metric's name must end in _info")
            name = full_name(resource, generator)
            if not _NAME.match(name):
                problems.append(f"{at}: {name!r} is not a metric name")
            elif name in names:
                problems.append(f"{at}: {name} is defined twice")
            names.add(name)
    return problems


# --- names and labels -----------------------------------------------------------------------


def full_name(resource: Mapping[str, Any], generator: Mapping[str, Any]) -> str:
    """registry_factory.go `fullName`: the prefix (unless empty) and the name, joined by `_`."""
    prefix = resource.get("metricNamePrefix", DEFAULT_PREFIX)
    prefix = DEFAULT_PREFIX if prefix is None else prefix
    return "_".join(p for p in (prefix, generator["name"]) if p)


def _member(generator: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    each = generator["each"]
    member = TYPES[str(each["type"]).lower()]
    settings: dict[str, Any] = each[member]
    return member, settings


def _label_names(block: Mapping[str, Any]) -> set[str]:
    return set(block.get("commonLabels", {})) | set(block.get("labelsFromPath", {}))


def catalog(config: Mapping[str, Any]) -> dict[str, set[str]]:
    """Series name -> every label name it can carry, for a config without problems."""
    out: dict[str, set[str]] = {}
    for resource in config["spec"]["resources"]:
        for generator in resource["metrics"]:
            member, settings = _member(generator)
            labels = set(GVK_LABELS) | _label_names(resource) | _label_names(generator)
            labels |= _label_names(settings)
            if settings.get("labelFromKey"):
                labels.add(settings["labelFromKey"])
            if member == "stateSet":
                labels.add(settings["labelName"])
            out[full_name(resource, generator)] = labels
    return out


# --- evaluation -----------------------------------------------------------------------------


class EvaluationError(ValueError):
    """A value kube-state-metrics would log as an error and drop."""


NIL_PATH = "got nil while resolving path"
"""`compiledGauge.value`'s error for a path that does not resolve."""


_QUANTITY = re.compile(
    r"^([+-]?(?:\d+(?:\.\d*)?|\.\d+))"
    r"(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E|[eE][+-]?\d+)?$"
)
_SUFFIX = {
    "": 1.0,
    **{s: 1024.0**i for i, s in enumerate(("Ki", "Mi", "Gi", "Ti", "Pi", "Ei"), start=1)},
    **{s: 10.0**e for s, e in (("n", -9), ("u", -6), ("m", -3), ("k", 3), ("M", 6))},
    **{s: 10.0**e for s, e in (("G", 9), ("T", 12), ("P", 15), ("E", 18))},
}
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")


def parse_quantity(text: str) -> float | None:
    """A Kubernetes quantity as a float (apimachinery resource.ParseQuantity), or None."""
    m = _QUANTITY.match(text)
    if m is None:
        return None
    number, suffix = float(m.group(1)), m.group(2) or ""
    if suffix[:1] in {"e", "E"}:
        return number * 10.0 ** int(suffix[1:])
    return number * _SUFFIX[suffix]


def to_float(value: Any, nil_is_zero: bool = False) -> float:
    """registry_factory.go `toFloat64`."""
    if value is None:
        if nil_is_zero:
            return 0.0
        raise EvaluationError("expected number but found nil value")
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        lowered = value.lower()
        if lowered in {"true", "yes"}:
            return 1.0
        if lowered in {"false", "no", "unknown"}:
            return 0.0
        if _RFC3339.match(value):
            return datetime.fromisoformat(value).timestamp()
        quantity = parse_quantity(value)
        if quantity is not None:
            return quantity
        if value.endswith("%"):
            return float(value[:-1]) / 100
        try:
            return float(value)
        except ValueError:
            raise EvaluationError(f"{value!r} is not a number") from None
    raise EvaluationError(f"expected number but was {value!r}")


def _step(obj: Any, part: str) -> Any:
    """One segment of registry_factory.go `compilePath`."""
    if part.startswith("[") and part.endswith("]"):
        key, sep, wanted = part[1:-1].partition("=")
        if not sep:
            raise EvaluationError(f"invalid list lookup: {part}")
        if not isinstance(obj, list):
            return None
        for item in obj:
            if isinstance(item, dict) and key in item:
                candidate = item[key]
                if candidate == wanted or _same_number(candidate, wanted):
                    return item
                if isinstance(candidate, bool) and str(candidate).lower() == wanted.lower():
                    return item
        return None
    if isinstance(obj, dict):
        key, sep, wanted = part.partition("=")
        if sep and "=" not in wanted and obj.get(key) == wanted:
            return obj[key]
        return obj.get(part)
    if isinstance(obj, list):
        try:
            index = int(part)
        except ValueError:
            return None
        index = index + len(obj) if index < 0 else index
        return obj[index] if 0 <= index < len(obj) else None
    return None


def _same_number(candidate: Any, wanted: str) -> bool:
    try:
        return to_float(candidate) == to_float(wanted)
    except EvaluationError:
        return False


def get(obj: Any, path: list[str]) -> Any:
    for part in path:
        if obj is None:
            return None
        obj = _step(obj, part)
    return obj


def _go_string(value: Any) -> str:
    """fmt.Sprintf("%v") for the scalars a label can come from."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer() and not math.isinf(value):
        return str(int(value))
    return str(value)


def path_labels(obj: Any, paths: Mapping[str, list[str]]) -> dict[str, str]:
    """registry_factory.go `addPathLabels` (without `*` copies): labels whose path resolves."""
    out: dict[str, str] = {}
    for name, path in paths.items():
        value = get(obj, path)
        if value is not None:
            out[name] = _go_string(value)
    return out


@dataclass(frozen=True)
class Series:
    name: str
    labels: dict[str, str]
    value: float


def _gauge_value(settings: Mapping[str, Any], item: Any) -> float | None:
    """`compiledGauge.value`: None where kube-state-metrics skips the element silently."""
    got = get(item, settings.get("valueFrom", []))
    if got is None:
        if settings.get("nilIsZero"):
            return 0.0
        if item is None:
            raise EvaluationError(NIL_PATH)
        return None
    return to_float(got, bool(settings.get("nilIsZero")))


def _gauge(
    settings: Mapping[str, Any], v: Any, errors: list[str]
) -> Iterator[tuple[dict[str, str], float]]:
    paths = settings.get("labelsFromPath", {})
    value_from = settings.get("valueFrom", [])
    key_label = settings.get("labelFromKey", "")

    def value_of(item: Any, own_key: bool) -> float | None:
        try:
            if own_key:
                return to_float(item, bool(settings.get("nilIsZero")))
            return _gauge_value(settings, item)
        except EvaluationError as e:
            errors.append(str(e))
            return None

    if isinstance(v, dict):
        for key, item in v.items():
            value = value_of(item, len(value_from) == 1 and key == value_from[0])
            if value is None:
                continue
            labels: dict[str, str] = {}
            if key and key_label:
                labels[key_label] = key
            labels.update(path_labels(item, paths))
            labels.update(path_labels(v, paths))
            yield labels, value
    elif isinstance(v, list):
        for item in v:
            value = value_of(item, False)
            if value is not None:
                yield path_labels(item, paths), value
    else:
        value = value_of(v, False)
        if value is not None:
            yield path_labels(v, paths), value


def _info(
    settings: Mapping[str, Any], v: Any, errors: list[str]
) -> Iterator[tuple[dict[str, str], float]]:
    paths = settings.get("labelsFromPath", {})
    key_label = settings.get("labelFromKey", "")

    def one(obj: Any) -> Iterator[tuple[dict[str, str], float]]:
        if obj is not None:
            labels = path_labels(obj, paths)
            if labels:
                yield labels, 1.0

    if isinstance(v, list):
        for item in v:
            yield from one(item)
    elif isinstance(v, dict):
        # the object itself, then one more series for each of its members that yields labels
        for key, item in v.items():
            labels = {key_label: key} if key and key_label else {}
            labels.update(path_labels(item, paths))
            if labels:
                yield labels, 1.0
        yield from one(v)
    else:
        yield from one(v)


def _state_set(
    settings: Mapping[str, Any], v: Any, errors: list[str]
) -> Iterator[tuple[dict[str, str], float]]:
    def one(obj: Any) -> Iterator[tuple[dict[str, str], float]]:
        current = get(obj, settings.get("valueFrom", []))
        if current is None:
            return
        if not isinstance(current, str):
            errors.append(f"expected value for path to be string, got {current!r}")
            return
        for entry in settings["list"]:
            labels = {settings["labelName"]: entry}
            labels.update(path_labels(obj, settings.get("labelsFromPath", {})))
            yield labels, 1.0 if current == entry else 0.0

    for item in v if isinstance(v, list) else [v]:
        yield from one(item)


_EXPAND = {"gauge": _gauge, "info": _info, "stateSet": _state_set}


@dataclass(frozen=True)
class Evaluation:
    series: list[Series]
    errors: list[tuple[str, str, int]]
    """(metric name, error, the errorLogV kube-state-metrics logs it at)."""


def evaluate(resource: Mapping[str, Any], obj: Mapping[str, Any]) -> Evaluation:
    """The series one resource entry of a config gives for one object, and the errors."""
    gvk = resource["groupVersionKind"]
    common = {
        **resource.get("commonLabels", {}),
        "customresource_group": gvk["group"],
        "customresource_version": gvk["version"],
        "customresource_kind": gvk["kind"],
    }
    out: list[Series] = []
    errors: list[tuple[str, str, int]] = []
    for generator in resource["metrics"]:
        member, settings = _member(generator)
        name = full_name(resource, generator)
        base = {**common, **generator.get("commonLabels", {})}
        paths = {**resource.get("labelsFromPath", {}), **generator.get("labelsFromPath", {})}
        base.update(path_labels(obj, paths))
        found = get(obj, settings.get("path", []))
        mine: list[str] = []
        for labels, value in _EXPAND[member](settings, found, mine):
            out.append(Series(name, {**base, **labels}, value))
        # a metric's own errorLogV, when not zero, overrides the resource's (`compileFamily`)
        level = int(generator.get("errorLogV") or resource.get("errorLogV") or 0)
        errors += [(name, e, level) for e in mine]
    return Evaluation(out, errors)
