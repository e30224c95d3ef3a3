"""The hardening rules on hand-built records: KMS keys and their policies, customer-managed
encryption, S3 access logging, PodDisruptionBudgets, spot capacity and internet-facing LBs."""

from __future__ import annotations

import json
from typing import Any

import pytest

from policy.rules import (
    RULES_BY_NAME,
    UNKNOWN,
    Level,
    Res,
    chart_pdbs,
    ecr_cmk_encrypted,
    evaluate,
    kms_key_policy,
    logs_cmk_encrypted,
    no_internet_facing_lb,
    nodes_on_demand,
    s3_access_logging,
    s3_cmk_encrypted,
)
from tests.policy.test_policy_rules import TAGS, res

ROOT = {
    "Sid": "EnableIamPolicies",
    "Effect": "Allow",
    "Principal": {"AWS": "arn:aws:iam::123456789012:root"},
    "Action": "kms:*",
    "Resource": "*",
}
KEY_ARN = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
INTEGRATION = {**TAGS, "environment": "integration", "stack": "integration"}
NEW_RULES = (
    "kms-key-policy",
    "logs-cmk-encrypted",
    "s3-cmk-encrypted",
    "s3-access-logging",
    "ecr-cmk-encrypted",
    "nodes-on-demand",
    "chart-pdbs",
    "no-internet-facing-lb",
)


def test_the_new_rules_are_mandatory() -> None:
    for name in NEW_RULES:
        assert RULES_BY_NAME[name].level is Level.MANDATORY, name


# --- kms-key-policy -----------------------------------------------------------------------------


def key(*statements: Any, policy: Any = None) -> Res:
    doc = {"Version": "2012-10-17", "Statement": list(statements)}
    return res(
        "aws:kms/key:Key", "k", "airflow-platform:network:Network",
        policy=json.dumps(doc) if policy is None else policy, tags=TAGS,
    )  # fmt: skip


def test_a_key_with_the_account_and_a_conditioned_service_passes() -> None:
    logs = {
        "Effect": "Allow",
        "Principal": {"Service": "logs.eu-west-1.amazonaws.com"},
        "Action": ["kms:Encrypt*", "kms:Decrypt*"],
        "Resource": "*",
        "Condition": {"ArnEquals": {"kms:EncryptionContext:aws:logs:arn": "arn:..."}},
    }
    assert kms_key_policy(key(ROOT, logs)) == []


def test_a_key_without_a_policy_fails() -> None:
    bare = res("aws:kms/key:Key", "k", enableKeyRotation=True, tags=TAGS)
    [message] = kms_key_policy(bare)
    assert "no explicit key policy" in message


def test_a_key_policy_unknown_during_preview_is_not_judged() -> None:
    assert kms_key_policy(key(policy=UNKNOWN)) == []


@pytest.mark.parametrize(
    ("statements", "expected"),
    [
        ([], "account root"),
        ([{**ROOT, "Principal": {"AWS": "arn:aws:iam::123456789012:role/ci"}}], "account root"),
        ([{**ROOT, "Action": ["kms:Decrypt"]}], "account root"),
        ([ROOT, {"Effect": "Allow", "Principal": "*", "Action": "kms:Decrypt", "Resource": "*"}],
         "any principal"),
        ([ROOT, {"Effect": "Allow", "Principal": {"Service": "logs.eu-west-1.amazonaws.com"},
                 "Action": "kms:Decrypt*", "Resource": "*"}],
         "logs.eu-west-1.amazonaws.com without a condition"),
    ],
)  # fmt: skip
def test_a_key_policy_that_loses_control_or_opens_the_key_fails(
    statements: list[Any], expected: str
) -> None:
    messages = kms_key_policy(key(*statements))
    assert any(expected in m for m in messages), messages


def test_a_key_policy_that_is_not_json_fails() -> None:
    assert kms_key_policy(key(policy="{not json")) == [
        "k (aws:kms/key:Key): key policy is not valid JSON"
    ]


# --- customer-managed encryption ----------------------------------------------------------------


def test_log_groups_need_a_customer_managed_key_on_production_only() -> None:
    group = res("aws:cloudwatch/logGroup:LogGroup", "g", tags=TAGS, retentionInDays=365)
    assert logs_cmk_encrypted(group) != []
    aws_managed = res("aws:cloudwatch/logGroup:LogGroup", "g", tags=TAGS, kmsKeyId="alias/aws/logs")
    assert logs_cmk_encrypted(aws_managed) != []
    assert logs_cmk_encrypted(res(group.type, "g", tags=TAGS, kmsKeyId=KEY_ARN)) == []
    assert logs_cmk_encrypted(res(group.type, "g", tags=TAGS, kmsKeyId=UNKNOWN)) == []
    assert logs_cmk_encrypted(res(group.type, "g", tags=INTEGRATION)) == []


@pytest.mark.parametrize(
    ("configs", "ok"),
    [
        ([{"encryptionType": "KMS", "kmsKey": KEY_ARN}], True),
        ([{"encryptionType": "KMS", "kmsKey": UNKNOWN}], True),
        ([{"encryptionType": "KMS"}], False),  # the AWS managed key aws/ecr
        ([{"encryptionType": "KMS", "kmsKey": "alias/aws/ecr"}], False),
        ([{"encryptionType": "AES256"}], False),
        ([], False),
    ],
)
def test_ecr_repositories_need_a_customer_managed_key_on_production(
    configs: list[Any], ok: bool
) -> None:
    repo = res("aws:ecr/repository:Repository", "r", encryptionConfigurations=configs, tags=TAGS)
    assert (ecr_cmk_encrypted(repo) == []) is ok
    integration = res(repo.type, "r", encryptionConfigurations=configs, tags=INTEGRATION)
    assert ecr_cmk_encrypted(integration) == []


def buckets(
    *,
    env_tags: dict[str, str] = TAGS,
    source_sse: str = "aws:kms",
    target_sse: str = "AES256",
    target_ref: str = "name",
    logging: bool = True,
) -> list[Res]:
    """A task-log bucket logging into an access-log bucket, each with its encryption."""
    src = res("aws:s3/bucket:Bucket", "logs", bucket="logs-bucket", tags=env_tags)
    dst = res("aws:s3/bucket:Bucket", "access", bucket="access-bucket", tags=env_tags)

    def sse(name: str, bucket: Res, algorithm: str) -> Res:
        rule: dict[str, Any] = {"sseAlgorithm": algorithm}
        if algorithm == "aws:kms":
            rule["kmsMasterKeyId"] = KEY_ARN
        return res(
            "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
            name, bucket=UNKNOWN, deps={"bucket": (bucket.urn,)},
            rules=[{"applyServerSideEncryptionByDefault": rule}],
        )  # fmt: skip

    out = [src, dst, sse("logs-sse", src, source_sse), sse("access-sse", dst, target_sse)]
    if logging:
        target: dict[str, Any] = (
            {"targetBucket": "access-bucket"}
            if target_ref == "name"
            else {
                "targetBucket": UNKNOWN,
                "deps": {"bucket": (src.urn,), "targetBucket": (dst.urn,)},
            }
        )
        out.append(
            res("aws:s3/bucketLogging:BucketLogging", "logs-logging", bucket="logs-bucket",
                targetPrefix="logs-bucket/", **target)
        )  # fmt: skip
    return out


@pytest.mark.parametrize("target_ref", ["name", "dependency"])
def test_a_kms_bucket_logging_into_an_sse_s3_bucket_passes(target_ref: str) -> None:
    """The target is recognised by its name, or during preview by the dependency alone."""
    resources = buckets(target_ref=target_ref)
    assert s3_cmk_encrypted(resources) == []
    assert s3_access_logging(resources) == []


def test_a_production_bucket_with_sse_s3_fails_cmk() -> None:
    found = s3_cmk_encrypted(buckets(source_sse="AES256"))
    assert [r.name for r, _ in found] == ["logs-sse"]
    assert s3_cmk_encrypted(buckets(source_sse="AES256", env_tags=INTEGRATION)) == []


def test_a_bucket_without_any_default_encryption_is_left_to_s3_encryption() -> None:
    resources = [r for r in buckets() if r.name != "logs-sse"]
    assert s3_cmk_encrypted(resources) == []
    assert {v.rule for v in evaluate(resources) if v.resource == "logs"} >= {"s3-encryption"}


def test_a_production_bucket_without_access_logging_fails() -> None:
    found = s3_access_logging(buckets(logging=False))
    # without a logging configuration the access bucket is no target either: both must log
    assert sorted(r.name for r, _ in found) == ["access", "logs"]
    assert s3_access_logging(buckets(logging=False, env_tags=INTEGRATION)) == []


def test_an_access_log_target_with_sse_kms_fails_on_any_stack() -> None:
    """Amazon S3 User Guide, server access logging: SSE-KMS is not supported for the target."""
    for env_tags in (TAGS, INTEGRATION):
        found = s3_access_logging(buckets(target_sse="aws:kms", env_tags=env_tags))
        assert [r.name for r, _ in found] == ["access-sse"]


def test_a_bucket_logging_into_itself_fails() -> None:
    resources = buckets()
    logging = next(r for r in resources if r.name == "logs-logging")
    itself = Res(logging.type, logging.name, logging.urn,
                 {**logging.props, "targetBucket": "logs-bucket"}, logging.deps)  # fmt: skip
    found = s3_access_logging([itself if r is logging else r for r in resources])
    assert ("logs-logging", True) in [(r.name, "into itself" in m) for r, m in found]


# --- nodes-on-demand ----------------------------------------------------------------------------


@pytest.mark.parametrize("type_", ["eks:index:ManagedNodeGroup", "aws:eks/nodeGroup:NodeGroup"])
def test_production_node_groups_are_on_demand(type_: str) -> None:
    assert nodes_on_demand(res(type_, "ng", capacityType="SPOT", tags=TAGS)) != []
    assert nodes_on_demand(res(type_, "ng", capacityType="ON_DEMAND", tags=TAGS)) == []
    assert nodes_on_demand(res(type_, "ng", tags=TAGS)) == []  # EKS's default is ON_DEMAND
    assert nodes_on_demand(res(type_, "ng", capacityType="SPOT", tags=INTEGRATION)) == []


# --- chart-pdbs ---------------------------------------------------------------------------------

COMPONENTS = ("scheduler", "apiServer", "triggerer", "dagProcessor", "pgbouncer")


def release(values: dict[str, Any]) -> Res:
    return res("kubernetes:helm.sh/v3:Release", "airflow-chart", chart="airflow", values=values)


def chart(replicas: int = 2, pdb: bool = True, **extra: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        c: {"replicas": replicas, "podDisruptionBudget": {"enabled": pdb}} for c in COMPONENTS
    }
    values["pgbouncer"]["enabled"] = True
    for path, value in extra.items():
        section, key_ = path.split("__")
        values[section][key_] = value
    return values


def production_marker(tags: dict[str, str] = TAGS) -> Res:
    """Any AWS resource of the stack: it says which environment the stack is."""
    return res("aws:ec2/vpc:Vpc", "vpc", "airflow-platform:network:Network", tags=tags)


def test_every_multi_replica_component_with_a_budget_passes() -> None:
    assert chart_pdbs([production_marker(), release(chart())]) == []


def test_each_multi_replica_component_without_a_budget_fails() -> None:
    found = chart_pdbs([production_marker(), release(chart(pdb=False))])
    assert len(found) == len(COMPONENTS)
    for component, (rel, message) in zip(COMPONENTS, found, strict=True):
        assert rel.name == "airflow-chart" and f"values.{component} runs 2" in message


def test_a_budget_missing_from_the_values_fails() -> None:
    values = chart()
    del values["triggerer"]["podDisruptionBudget"]
    [(_, message)] = chart_pdbs([production_marker(), release(values)])
    assert "values.triggerer" in message


@pytest.mark.parametrize(
    "values",
    [
        chart(replicas=1, pdb=False),  # one replica: a budget would only block drains
        chart(pdb=False, pgbouncer__enabled=False, dagProcessor__enabled=False,
              scheduler__replicas=1, apiServer__replicas=1, triggerer__replicas=1),
    ],
    ids=["single-replica", "components-off"],
)  # fmt: skip
def test_components_that_are_off_or_single_need_no_budget(values: dict[str, Any]) -> None:
    assert chart_pdbs([production_marker(), release(values)]) == []


def test_pgbouncer_is_off_unless_enabled() -> None:
    values = chart()
    del values["pgbouncer"]["enabled"]
    values["pgbouncer"]["podDisruptionBudget"]["enabled"] = False
    assert chart_pdbs([production_marker(), release(values)]) == []


def test_budgets_are_not_required_off_production() -> None:
    assert chart_pdbs([production_marker(INTEGRATION), release(chart(pdb=False))]) == []


# --- no-internet-facing-lb ----------------------------------------------------------------------


def ingress(scheme: str | None, name: str = "apiServer", **more: Any) -> dict[str, Any]:
    annotations = {} if scheme is None else {"alb.ingress.kubernetes.io/scheme": scheme}
    return {"ingress": {name: {"enabled": True, "annotations": annotations, **more}}}


def test_an_internal_ingress_passes() -> None:
    assert no_internet_facing_lb([production_marker(), release(ingress("internal"))]) == []


@pytest.mark.parametrize("scheme", ["internet-facing", None])
def test_an_ingress_not_explicitly_internal_fails_on_production(scheme: str | None) -> None:
    resources = [production_marker(), release(ingress(scheme))]
    [(rel, message)] = no_internet_facing_lb(resources)
    assert rel.name == "airflow-chart" and "values.ingress.apiServer" in message
    assert no_internet_facing_lb([production_marker(INTEGRATION), release(ingress(scheme))]) == []


def test_an_internet_facing_ui_ingress_trips_both_gates() -> None:
    resources = [production_marker(), release(ingress("internet-facing"))]
    rules = {v.rule for v in evaluate(resources) if v.resource == "airflow-chart"}
    assert {"no-internet-facing-lb", "airflow-ui-not-public"} <= rules


def test_a_class_name_does_not_make_an_ingress_internal() -> None:
    values = ingress(None, ingressClassName="alb-internal")
    assert no_internet_facing_lb([production_marker(), release(values)]) != []


def test_the_deprecated_global_ingress_switch_counts() -> None:
    values = {"ingress": {"enabled": True, "web": {"annotations": {}}}}
    [(_, message)] = no_internet_facing_lb([production_marker(), release(values)])
    assert "values.ingress.web" in message


@pytest.mark.parametrize(
    ("resource", "fails"),
    [
        (res("aws:lb/loadBalancer:LoadBalancer", "lb", internal=False, tags=TAGS), True),
        (res("aws:lb/loadBalancer:LoadBalancer", "lb", tags=TAGS), True),
        (res("aws:lb/loadBalancer:LoadBalancer", "lb", internal=True, tags=TAGS), False),
        (res("aws:elb/loadBalancer:LoadBalancer", "lb", internal=False, tags=TAGS), True),
        (res("kubernetes:networking.k8s.io/v1:Ingress", "ing",
             metadata={"annotations": {"alb.ingress.kubernetes.io/scheme": "internet-facing"}}),
         True),
        (res("kubernetes:networking.k8s.io/v1:Ingress", "ing",
             metadata={"annotations": {"alb.ingress.kubernetes.io/scheme": "internal"}}), False),
    ],
)  # fmt: skip
def test_aws_load_balancers_and_ingress_objects(resource: Res, fails: bool) -> None:
    found = no_internet_facing_lb([production_marker(), resource])
    assert bool(found) is fails
    assert all(r.name == resource.name for r, _ in found)
