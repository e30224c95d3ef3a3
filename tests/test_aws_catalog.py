"""Stack settings are checked against the AWS data botocore ships, not against lists kept here."""

from __future__ import annotations

import re
from collections.abc import Callable

import botocore.loaders
import pytest

from components.aws_catalog import (
    EKS_DEFAULT_VERSION,
    EKS_VERSIONS,
    eks_version_problem,
    instance_type_problem,
    known_instance_types,
    known_regions,
    rds_instance_class_problem,
    region_problem,
)

Check = Callable[[str], str | None]

HAND_WRITTEN_REGIONS = {
    "us-east-1",
    "us-east-2",
    "us-west-1",
    "us-west-2",
    "eu-west-1",
    "eu-west-2",
    "eu-central-1",
    "ap-southeast-1",
    "ap-northeast-1",
    "sa-east-1",
}
"""The kind of short list a hand-maintained validator would carry."""


def quoted(message: str) -> list[str]:
    """The names a message puts in single quotes, the first being the refused value."""
    return re.findall(r"'([^']*)'", message)


@pytest.mark.parametrize(
    ("check", "unreal"),
    [
        (region_problem, "xx-nowhere-9"),
        (instance_type_problem, "m6i.enormous"),
        (rds_instance_class_problem, "db.m6g.enormous"),
    ],
)
def test_unreal_values_are_refused_with_a_real_suggestion(check: Check, unreal: str) -> None:
    """A refusal names the value and suggests something that itself passes the same check."""
    message = check(unreal)
    assert message is not None
    names = quoted(message)
    assert names[0] == unreal
    suggestions = names[1:]
    assert suggestions
    for suggestion in suggestions:
        assert check(suggestion) is None, (suggestion, message)
    assert "\n" not in message
    assert "airflow-platform:" not in message


def test_made_up_size_is_answered_with_sizes_of_the_same_family() -> None:
    """m6i exists in the EC2 `InstanceType` enum (botocore data/ec2/<version>/service-2.json)."""
    message = instance_type_problem("m6i.enormous")
    assert message is not None
    suggestions = quoted(message)[1:]
    assert suggestions
    assert all(s.startswith("m6i.") for s in suggestions)
    assert "m6i.large" in suggestions


def test_rds_suggestions_keep_the_db_prefix_and_family() -> None:
    """RDS class = `db.` + EC2 `InstanceType` (botocore data/ec2/<version>/service-2.json)."""
    message = rds_instance_class_problem("db.m6g.enormous")
    assert message is not None
    suggestions = quoted(message)[1:]
    assert suggestions
    assert all(s.startswith("db.m6g.") for s in suggestions)


def test_rds_class_without_db_prefix_is_refused_with_the_prefixed_name() -> None:
    assert rds_instance_class_problem("m6g.large") is not None
    assert "'db.m6g.large'" in (rds_instance_class_problem("m6g.large") or "")


def test_db_serverless_is_refused_as_aurora_only() -> None:
    message = rds_instance_class_problem("db.serverless")
    assert message is not None
    assert "Aurora" in message


def test_unsupported_eks_version_names_the_window_and_the_default() -> None:
    message = eks_version_problem("1.99")
    assert message is not None
    assert message.startswith("'1.99' ")
    for version in EKS_VERSIONS:
        assert version in message
    assert message.endswith(f"use {EKS_DEFAULT_VERSION}")
    assert eks_version_problem(EKS_DEFAULT_VERSION) is None


@pytest.mark.parametrize("bad", ["1.33", "1.38", "1.36.0", "v1.36", " 1.36", ""])
def test_eks_versions_outside_the_window_are_refused(bad: str) -> None:
    assert eks_version_problem(bad) is not None


@pytest.mark.parametrize("region", ["eu-west-1", "us-east-1", "cn-north-1", "us-gov-west-1"])
def test_real_regions_are_accepted(region: str) -> None:
    """Regions of the aws, aws-cn and aws-us-gov partitions (botocore data/endpoints.json)."""
    assert region_problem(region) is None


@pytest.mark.parametrize(
    "instance_type", ["t3.large", "t3a.large", "m6i.large", "m6i.xlarge", "m6g.large"]
)
def test_real_instance_types_are_accepted(instance_type: str) -> None:
    """Members of the EC2 `InstanceType` enum (botocore data/ec2/<version>/service-2.json)."""
    assert instance_type_problem(instance_type) is None


@pytest.mark.parametrize("instance_class", ["db.t4g.micro", "db.t4g.small", "db.m6g.large"])
def test_real_rds_classes_are_accepted(instance_class: str) -> None:
    """`db.` plus an EC2 `InstanceType` member (botocore data/ec2/<version>/service-2.json)."""
    assert rds_instance_class_problem(instance_class) is None


@pytest.mark.parametrize("version", EKS_VERSIONS)
def test_every_version_in_the_window_is_accepted(version: str) -> None:
    assert eks_version_problem(version) is None


def test_eks_window_is_ordered_and_holds_the_default() -> None:
    assert EKS_DEFAULT_VERSION in EKS_VERSIONS
    minors = [int(v.split(".")[1]) for v in EKS_VERSIONS]
    assert all(v.startswith("1.") for v in EKS_VERSIONS)
    assert minors == sorted(minors)
    assert len(set(minors)) == len(minors)


def test_regions_come_from_every_partition_in_botocore() -> None:
    """All regions of all partitions in botocore data/endpoints.json are accepted.

    At least one of them is missing from a short hand-written list, so a validator
    built on such a list would refuse it and fail here.
    """
    endpoints = botocore.loaders.Loader().load_data("endpoints")
    from_data = {r for p in endpoints["partitions"] for r in p["regions"]}
    beyond_hand_list = sorted(from_data - HAND_WRITTEN_REGIONS)
    assert beyond_hand_list
    assert region_problem(beyond_hand_list[-1]) is None
    aws = next(p for p in endpoints["partitions"] if p["partition"] == "aws")
    assert region_problem(list(aws["regions"])[-1]) is None
    assert set(known_regions()) == from_data
    assert all(region_problem(r) is None for r in from_data)


def test_instance_types_are_the_ec2_enum_in_botocore() -> None:
    """Accepted means in the `InstanceType` enum (botocore data/ec2/<version>/service-2.json)."""
    model = botocore.loaders.Loader().load_service_model("ec2", "service-2")
    enum = set(model["shapes"]["InstanceType"]["enum"])
    assert set(known_instance_types()) == enum
    newest_looking = max(enum)
    assert instance_type_problem(newest_looking) is None
    assert rds_instance_class_problem(f"db.{newest_looking}") is None


@pytest.mark.parametrize(
    ("check", "shouted", "meant"),
    [
        (region_problem, "EU-WEST-1", "eu-west-1"),
        (instance_type_problem, "M6I.LARGE", "m6i.large"),
        (rds_instance_class_problem, "db.T4G.MICRO", "db.t4g.micro"),
    ],
)
def test_names_are_case_sensitive_and_the_suggestion_fixes_case(
    check: Check, shouted: str, meant: str
) -> None:
    message = check(shouted)
    assert message is not None
    assert meant in quoted(message)[1:]
