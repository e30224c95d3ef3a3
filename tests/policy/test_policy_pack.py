"""The registry, the pack's files, and the CrossGuard glue (without starting the analyzer)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from pulumi_policy import (
    EnforcementLevel,
    PolicyCustomTimeouts,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.proxy import UNKNOWN_BOOLEAN_VALUE, UNKNOWN_STRING_VALUE, unknown_checking_proxy

from policy.crossguard import plain, policies
from policy.rules import RULES, UNKNOWN, Level

POLICY_DIR = Path(__file__).resolve().parents[2] / "policy"
OPTS = PolicyResourceOptions(False, [], None, [], PolicyCustomTimeouts(0, 0, 0), [])
URN = "urn:pulumi:production::airflow-platform::"


def test_at_least_twenty_rules_with_name_description_and_level() -> None:
    assert len(RULES) >= 20
    assert len({r.name for r in RULES}) == len(RULES)
    for r in RULES:
        assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", r.name), r.name
        assert r.description and "\n" not in r.description and r.description.endswith("."), r.name
        assert r.level in (Level.MANDATORY, Level.ADVISORY)
        assert r.why_level, r.name


def test_pulumi_policy_yaml() -> None:
    doc = yaml.safe_load((POLICY_DIR / "PulumiPolicy.yaml").read_text())
    assert doc["runtime"]["name"] == "python"
    assert doc["runtime"]["options"]["virtualenv"] == "../.venv"
    assert doc["description"]


def test_main_builds_the_pack_from_every_rule() -> None:
    text = (POLICY_DIR / "__main__.py").read_text()
    assert 'PolicyPack(\n    "airflow-platform",\n    policies=policies(),' in text


def test_one_crossguard_policy_per_rule_with_its_level() -> None:
    built = policies()
    assert [p.name for p in built] == [r.name for r in RULES]
    for p, r in zip(built, RULES, strict=True):
        assert p.description == r.description
        assert p.enforcement_level is EnforcementLevel(r.level.value)
        kind = ResourceValidationPolicy if r.resource_check else StackValidationPolicy
        assert isinstance(p, kind), r.name


def _policy(name: str) -> Any:
    return next(p for p in policies() if p.name == name)


def _collect() -> tuple[list[tuple[str, str | None]], Any]:
    seen: list[tuple[str, str | None]] = []

    def report(message: str, urn: str | None = None) -> None:
        seen.append((message, urn))

    return seen, report


def test_plain_unwraps_the_unknown_checking_proxy() -> None:
    props = unknown_checking_proxy(
        {"a": {"b": [1, {"c": UNKNOWN_STRING_VALUE}]}, "flag": UNKNOWN_BOOLEAN_VALUE}
    )
    assert plain(props) == {"a": {"b": [1, {"c": UNKNOWN}]}, "flag": UNKNOWN}


def test_resource_policy_reports_through_crossguard() -> None:
    props = unknown_checking_proxy(
        {"publiclyAccessible": True, "storageEncrypted": True, "backupRetentionPeriod": 7,
         "password": UNKNOWN_STRING_VALUE, "tags": {"environment": "integration"}}
    )  # fmt: skip
    args = ResourceValidationArgs("aws:rds/instance:Instance", props, f"{URN}db", "db", OPTS, None)
    seen, report = _collect()
    _policy("rds-not-public").validate(args, report)
    assert seen == [("db (aws:rds/instance:Instance): publiclyAccessible is true", None)]
    seen.clear()
    _policy("rds-storage-encrypted").validate(args, report)
    assert seen == []


def _policy_resource(type_: str, name: str, props: dict[str, Any]) -> PolicyResource:
    return PolicyResource(
        type_,
        unknown_checking_proxy(props),
        f"{URN}{type_}::{name}",
        name,
        OPTS,
        None,
        None,
        [],
        {},
    )


def test_stack_policy_matches_by_dependency_when_ids_are_unknown() -> None:
    vpc = _policy_resource("aws:ec2/vpc:Vpc", "vpc", {"cidrBlock": "10.0.0.0/16"})
    log = _policy_resource(
        "aws:ec2/flowLog:FlowLog", "fl", {"vpcId": UNKNOWN_STRING_VALUE, "trafficType": "ALL"}
    )
    log.property_dependencies["vpcId"] = [vpc]
    seen, report = _collect()
    _policy("vpc-flow-logs").validate(StackValidationArgs([vpc, log]), report)
    assert seen == []

    _policy("vpc-flow-logs").validate(StackValidationArgs([vpc]), report)
    assert seen == [("vpc (aws:ec2/vpc:Vpc): no flow log", vpc.urn)]


def test_readme_rule_table_matches_the_registry() -> None:
    readme = (POLICY_DIR / "README.md").read_text()
    rows = re.findall(r"^\| `([a-z0-9-]+)` \| (mandatory|advisory) \| (.+?) \|", readme, re.M)
    assert [(n, lvl, d) for n, lvl, d in rows] == [
        (r.name, r.level.value, r.description) for r in RULES
    ]
    assert f"## Rules ({len(RULES)})" in readme
