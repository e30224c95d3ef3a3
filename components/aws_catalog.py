"""Checks that stack settings name real AWS things: regions, instance and RDS classes, EKS versions.

Regions and instance types come from the data botocore ships with the SDK
(`botocore/data/endpoints.json` and `botocore/data/ec2/<api-version>/service-2.json`),
so the lists follow the installed botocore rather than a copy kept here. The one
hand-maintained list is the EKS version window, which no SDK data file describes.

Each `*_problem` function returns None for a valid value, or a one-line message for the
user. Callers print it after `Pulumi.<stack>.yaml: airflow-platform:<key>: `, so the
messages do not repeat the key. Pure Python, no Pulumi imports.
"""

from __future__ import annotations

import difflib
import functools
from typing import Any

import botocore.loaders

# EKS Kubernetes minor versions in standard support on 2026-11-25, oldest first.
# Rule: standard support lasts 14 months from the EKS release, then 12 months extended.
# Source: Amazon EKS user guide, "Understand the Kubernetes version lifecycle on EKS",
# release calendar: https://docs.aws.amazon.com/eks/latest/userguide/kubernetes-versions.html
# (cross-checked with https://endoflife.date/amazon-eks).
#   1.34  EKS 2025-10-02, standard support ends 2026-12-02 (drop it after that date)
#   1.35  EKS 2026-01,    standard support ends 2027-03-27
#   1.36  EKS 2026-06-02, standard support ends 2027-08-02
#   1.37  upstream 2026-08-26; its EKS release was not confirmed when reviewed, so it is
#         left out until the calendar lists it
# Last reviewed: 2026-11-25.
EKS_VERSIONS: tuple[str, ...] = ("1.34", "1.35", "1.36")

EKS_DEFAULT_VERSION = "1.36"
"""Out for months and in standard support until 2027-08-02."""

_REGION_EXAMPLE = "eu-west-1"
_INSTANCE_TYPE_EXAMPLE = "m6i.large"
_RDS_CLASS_EXAMPLE = "db.t4g.micro"
_RDS_PREFIX = "db."


@functools.cache
def _loader() -> botocore.loaders.Loader:
    """One botocore data loader for the process."""
    return botocore.loaders.Loader()


@functools.cache
def known_regions() -> tuple[str, ...]:
    """Every region of every partition in botocore's `endpoints.json`, sorted."""
    endpoints = _loader().load_data("endpoints")
    regions: set[str] = set()
    for partition in endpoints["partitions"]:
        regions.update(partition["regions"])
    return tuple(sorted(regions))


def _partition(region: str) -> dict[str, Any]:
    for partition in _loader().load_data("endpoints")["partitions"]:
        if region in partition["regions"]:
            found: dict[str, Any] = partition
            return found
    raise ValueError(f"{region!r} is in no partition botocore knows")


def partition_of(region: str) -> str:
    """The partition (aws, aws-cn, aws-us-gov, ...) that `region` belongs to, for ARNs."""
    return str(_partition(region)["partition"])


def dns_suffix_of(region: str) -> str:
    """The DNS suffix of `region`'s partition (amazonaws.com, amazonaws.com.cn, ...)."""
    return str(_partition(region)["dnsSuffix"])


@functools.cache
def known_instance_types() -> tuple[str, ...]:
    """The `InstanceType` enum of botocore's EC2 service model, sorted."""
    model = _loader().load_service_model("ec2", "service-2")
    return tuple(sorted(model["shapes"]["InstanceType"]["enum"]))


@functools.cache
def _region_set() -> frozenset[str]:
    return frozenset(known_regions())


@functools.cache
def _instance_type_set() -> frozenset[str]:
    return frozenset(known_instance_types())


@functools.cache
def _sizes_by_family() -> dict[str, tuple[str, ...]]:
    """Instance sizes keyed by family: {"m6i": ("12xlarge", ..., "xlarge"), ...}."""
    families: dict[str, list[str]] = {}
    for instance_type in known_instance_types():
        family, _, size = instance_type.partition(".")
        families.setdefault(family, []).append(size)
    return {family: tuple(sizes) for family, sizes in families.items()}


def _quoted(names: list[str]) -> str:
    return ", ".join(f"'{name}'" for name in names)


def _instance_type_suggestions(value: str, *, allow_metal: bool = True) -> list[str]:
    """Up to three real instance types close to `value`, same family first.

    Within a known family, sizes that resemble the typed one come first; failing that,
    the family's sizes nearest by name, leaving bare-metal out unless it was close.
    """
    family, _, size = value.lower().partition(".")

    def fits(size_name: str) -> bool:
        return allow_metal or not size_name.startswith("metal")

    sizes = tuple(s for s in _sizes_by_family().get(family, ()) if fits(s))
    if sizes:
        picked = difflib.get_close_matches(size, sizes, n=3)
        if not picked:
            virtual = tuple(s for s in sizes if not s.startswith("metal")) or sizes
            picked = difflib.get_close_matches(size, virtual, n=3, cutoff=0.0)
        return [f"{family}.{s}" for s in picked]
    names = tuple(t for t in known_instance_types() if fits(t.partition(".")[2]))
    return difflib.get_close_matches(value.lower(), names, n=3)


def region_problem(region: str) -> str | None:
    """None if `region` is a region of any AWS partition botocore knows, else why not."""
    if region in _region_set():
        return None
    close = difflib.get_close_matches(region.lower(), known_regions(), n=3)
    if close:
        return f"'{region}' is not an AWS region; did you mean {_quoted(close)}?"
    return f"'{region}' is not an AWS region and none is close; use one like '{_REGION_EXAMPLE}'"


def instance_type_problem(instance_type: str) -> str | None:
    """None if `instance_type` is in botocore's EC2 `InstanceType` enum, else why not."""
    if instance_type in _instance_type_set():
        return None
    close = _instance_type_suggestions(instance_type)
    if close:
        return f"'{instance_type}' is not an EC2 instance type; did you mean {_quoted(close)}?"
    return (
        f"'{instance_type}' is not an EC2 instance type and none is close; "
        f"use one like '{_INSTANCE_TYPE_EXAMPLE}'"
    )


def rds_instance_class_problem(instance_class: str) -> str | None:
    """None if `instance_class` is `db.` plus an EC2 instance type, else why not.

    botocore's RDS model types `DBInstanceClass` as a plain string with no enum, so the
    list of valid names comes from the EC2 `InstanceType` enum: RDS classes for
    PostgreSQL are EC2 types behind `db.` (db.t4g.micro, db.m6g.large, db.r6i.xlarge).
    This catches typos and made-up sizes; whether a class is offered for a given engine
    version and region is only known to the RDS API (DescribeOrderableDBInstanceOptions).
    `db.serverless` is refused: it exists only for Aurora Serverless v2, not RDS PostgreSQL.
    """
    if instance_class == f"{_RDS_PREFIX}serverless":
        return (
            f"'{instance_class}' is Aurora Serverless v2 only; RDS PostgreSQL needs a "
            f"provisioned class like '{_RDS_CLASS_EXAMPLE}'"
        )
    has_prefix = instance_class.startswith(_RDS_PREFIX)
    base = instance_class[len(_RDS_PREFIX) :] if has_prefix else instance_class
    if has_prefix and base in _instance_type_set():
        return None
    if base in _instance_type_set():
        close = [base]
    else:
        close = _instance_type_suggestions(base, allow_metal=False)
    if close:
        names = [f"{_RDS_PREFIX}{name}" for name in close]
        return f"'{instance_class}' is not an RDS instance class; did you mean {_quoted(names)}?"
    return (
        f"'{instance_class}' is not an RDS instance class and none is close; "
        f"use one like '{_RDS_CLASS_EXAMPLE}'"
    )


def eks_version_problem(version: str) -> str | None:
    """None if `version` is in `EKS_VERSIONS`, else the window and the default to use."""
    if version in EKS_VERSIONS:
        return None
    return (
        f"'{version}' is not a supported EKS version "
        f"(supported: {', '.join(EKS_VERSIONS)}); use {EKS_DEFAULT_VERSION}"
    )
