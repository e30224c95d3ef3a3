"""Helpers for tests of the chart values: the chart's schema and the values a run passed to Helm."""

from __future__ import annotations

import json
from dataclasses import dataclass
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
    """The Airflow chart's Helm release (the metrics stack is another one)."""
    found = [
        r for r in run.of_type("kubernetes:helm.sh/v3:Release") if r.inputs["chart"] == "airflow"
    ]
    assert len(found) == 1, f"expected one Airflow release, found {[r.name for r in found]}"
    return found[0]


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


def secrets_in_namespace(run: Run, namespace: str) -> dict[str, Resource]:
    """The Kubernetes Secrets the program itself creates in `namespace`, by name."""
    return {
        r.inputs["metadata"]["name"]: r
        for r in run.of_type("kubernetes:core/v1:Secret")
        if r.inputs["metadata"].get("namespace") == namespace
    }


DEFAULT_CLASS_ANNOTATION = "storageclass.kubernetes.io/is-default-class"
EBS_CSI_ADDON = "aws-ebs-csi-driver"
EBS_PROVISIONERS = frozenset({"ebs.csi.aws.com", "kubernetes.io/aws-ebs"})
"""The EBS CSI driver's name, and the in-tree name EKS migrates to it (CSIMigrationAWS, 1.23+)."""
MINIKUBE_PROVISIONER = "k8s.io/minikube-hostpath"
EKS_NO_DEFAULT_CLASS_FROM = (1, 30)


@dataclass(frozen=True)
class StorageClass:
    """A StorageClass on a stack's target cluster, and whether anything there provisions it."""

    name: str
    provisioner: str
    default: bool
    origin: str
    provisioned_by: str | None
    """What serves the provisioner on that target; None when nothing does."""


def is_eks(run: Run) -> bool:
    return bool(run.of_type("eks:index:Cluster"))


def eks_ebs_csi_addon(run: Run) -> Resource | None:
    """The program's EKS add-on for the EBS CSI driver, if it installs one."""
    for addon in run.of_type("aws:eks/addon:Addon"):
        if addon.inputs.get("addonName") == EBS_CSI_ADDON:
            return addon
    return None


def _minor_version(version: str) -> tuple[int, int]:
    major, _, minor = version.partition(".")
    return int(major), int(minor.split(".")[0] or 0)


AUTO_MODE_EBS_PROVISIONER = "ebs.csi.eks.amazonaws.com"
"""EKS Auto Mode's own EBS CSI driver (Amazon EKS User Guide, "Create a storage class" for
Auto Mode): present on every Auto Mode cluster, no add-on needed."""


def _auto_mode(run: Run) -> bool:
    if not is_eks(run):
        return False
    auto = run.one("eks:index:Cluster").inputs.get("autoMode") or {}
    return auto.get("enabled") is True


def storage_classes(run: Run) -> dict[str, StorageClass]:
    """The StorageClasses a claim can use on the stack's target, by name.

    minikube: the `default-storageclass` addon's `standard` class (default) served by the
    `storage-provisioner` addon (k8s.io/minikube-hostpath), both on by default.
    EKS: the `gp2` class EKS creates (kubernetes.io/aws-ebs); on clusters created at 1.30 or
    later it carries no default annotation, and on 1.23+ its in-tree provisioner is migrated to
    the EBS CSI driver, which EKS does not install: the program must add the
    `aws-ebs-csi-driver` add-on. Plus every StorageClass the program creates itself.
    """
    classes: dict[str, StorageClass] = {}
    addon = eks_ebs_csi_addon(run)
    ebs_server = f"EKS add-on {EBS_CSI_ADDON} ({addon.name})" if addon else None
    if is_eks(run):
        cluster = run.one("eks:index:Cluster")
        version = str(cluster.inputs.get("version") or "")
        old = bool(version) and _minor_version(version) < EKS_NO_DEFAULT_CLASS_FROM
        classes["gp2"] = StorageClass(
            name="gp2",
            provisioner="kubernetes.io/aws-ebs",
            default=old,
            origin=f"created by EKS {version or '(version unset)'}"
            + ("" if old else ", without the default annotation (EKS 1.30+)"),
            provisioned_by=ebs_server,
        )
    else:
        classes["standard"] = StorageClass(
            name="standard",
            provisioner=MINIKUBE_PROVISIONER,
            default=True,
            origin="minikube addon default-storageclass",
            provisioned_by="minikube addon storage-provisioner",
        )
    for res in run.of_type("kubernetes:storage.k8s.io/v1:StorageClass"):
        meta = res.inputs.get("metadata") or {}
        name = str(meta.get("name") or res.name)
        provisioner = str(res.inputs.get("provisioner", ""))
        annotations = meta.get("annotations") or {}
        served: str | None
        if provisioner == AUTO_MODE_EBS_PROVISIONER and _auto_mode(run):
            served = "EKS Auto Mode block storage"
        elif provisioner in EBS_PROVISIONERS:
            served = ebs_server
        elif provisioner == MINIKUBE_PROVISIONER and not is_eks(run):
            served = "minikube addon storage-provisioner"
        else:
            served = None
        classes[name] = StorageClass(
            name=name,
            provisioner=provisioner,
            default=str(annotations.get(DEFAULT_CLASS_ANNOTATION, "")).lower() == "true",
            origin=f"created by the program ({res.name})",
            provisioned_by=served,
        )
    return classes
