"""Each rule can fail: one recorded resource, changed to break it, trips exactly that rule.

A case picks a resource the program registers for a stack, optionally brings it to
a compliant baseline first (`prepare`, for what a stack legitimately does
differently), then changes one thing (`mutate`). The new violations must all come
from the rule under test and name that resource. Cases whose resource the
program does not register yet are skipped, and say which type they wait for.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from policy.rules import RULES, Res, evaluate
from tests.policy.policy_support import recorded, show

Props = dict[str, Any]


@dataclass(frozen=True)
class Case:
    rule: str
    stack: str
    type: str
    mutate: Callable[[Props], None]
    pick: Callable[[Res], bool] = lambda r: True
    prepare: Callable[[Props], None] = lambda p: None


def _set(path: str, value: Any) -> Callable[[Props], None]:
    def apply(props: Props) -> None:
        *parents, last = path.split(".")
        node = props
        for key in parents:
            node = node.setdefault(key, {})
        node[last] = value

    return apply


def _drop(path: str) -> Callable[[Props], None]:
    def apply(props: Props) -> None:
        *parents, last = path.split(".")
        node = props
        for key in parents:
            node = node[key]
        del node[last]

    return apply


def _edit_json(key: str, edit: Callable[[Any], None]) -> Callable[[Props], None]:
    def apply(props: Props) -> None:
        doc = json.loads(props[key])
        edit(doc)
        props[key] = json.dumps(doc)

    return apply


def _first_statement(change: Callable[[dict[str, Any]], None]) -> Callable[[Any], None]:
    return lambda doc: change(doc["Statement"][0])


def _web_identity(r: Res) -> bool:
    return "AssumeRoleWithWebIdentity" in str(r.props.get("assumeRolePolicy"))


def _airflow(r: Res) -> bool:
    return "airflow" in str(r.props.get("chart", ""))


def _widen_sub(doc: Any) -> None:
    for s in doc["Statement"]:
        cond = s.get("Condition", {})
        equals = cond.get("StringEquals", {})
        for key in [k for k in equals if k.endswith(":sub")]:
            cond.setdefault("StringLike", {})[key] = "system:serviceaccount:*"
            del equals[key]


def _containers(props: Props) -> list[dict[str, Any]]:
    return props["spec"]["template"]["spec"]["containers"]  # type: ignore[no-any-return]


def _set_container(key: str, value: Any) -> Callable[[Props], None]:
    def apply(props: Props) -> None:
        _containers(props)[0][key] = value

    return apply


def _for_bucket(suffix: str) -> Callable[[Res], bool]:
    return lambda r: str(r.props.get("bucket", "")).endswith(suffix)


def _drop_root_statement(doc: Any) -> None:
    doc["Statement"] = [s for s in doc["Statement"] if "AWS" not in s.get("Principal", {})]


def _drop_conditions(doc: Any) -> None:
    for s in doc["Statement"]:
        s.pop("Condition", None)


PDB_ON = {
    f"values.{c}.podDisruptionBudget.enabled": True
    for c in ("scheduler", "apiServer", "triggerer", "dagProcessor", "pgbouncer")
}
"""The PodDisruptionBudgets the production release turns on (a compliant baseline)."""


def _set_all(paths: dict[str, Any]) -> Callable[[Props], None]:
    def apply(props: Props) -> None:
        for path, value in paths.items():
            _set(path, value)(props)

    return apply


def _both(*steps: Callable[[Props], None]) -> Callable[[Props], None]:
    def apply(props: Props) -> None:
        for step in steps:
            step(props)

    return apply


def _disable_lifecycle_rules(props: Props) -> None:
    for rule in props["rules"]:
        rule["status"] = "Disabled"


def _task_pool(r: Res) -> bool:
    return "tasks" in r.name


def _allow_spot(props: Props) -> None:
    for req in props["spec"]["template"]["spec"]["requirements"]:
        if req["key"] == "karpenter.sh/capacity-type":
            req["values"] = ["spot", "on-demand"]


SSL_ON = _set_container("args", ["-c", "ssl=on"])
P, INT, L = "production", "integration", "local"
EKS = "eks:index:Cluster"
POOL = "kubernetes:karpenter.sh/v1:NodePool"
RDS, PG = "aws:rds/instance:Instance", "aws:rds/parameterGroup:ParameterGroup"
BUCKET = "aws:s3/bucket:Bucket"
RELEASE = "kubernetes:helm.sh/v3:Release"
STS = "kubernetes:apps/v1:StatefulSet"
KEY, LOG_GROUP = "aws:kms/key:Key", "aws:cloudwatch/logGroup:LogGroup"
SSE = "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
ALB_SCHEME = "alb.ingress.kubernetes.io/scheme"

CASES: list[Case] = [
    Case("eks-endpoint-restricted", P, EKS,
         _both(_set("endpointPublicAccess", True), _set("publicAccessCidrs", ["0.0.0.0/0"]))),
    Case("eks-secrets-encrypted", P, EKS, _drop("encryptionConfigKeyArn")),
    Case("eks-control-plane-logs", P, EKS, _set("enabledClusterLogTypes", ["api", "audit"])),
    Case("node-pools-on-demand", P, POOL, _allow_spot, pick=_task_pool),
    Case("node-pools-capped", INT, POOL, _drop("spec.limits.cpu"), pick=_task_pool),
    Case("nodes-no-ssh-from-anywhere", P,
         "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule",
         _both(_set("fromPort", 22), _set("toPort", 22), _drop("referencedSecurityGroupId"),
               _set("cidrIpv4", "0.0.0.0/0"))),
    Case("rds-storage-encrypted", P, RDS, _set("storageEncrypted", False)),
    Case("rds-not-public", P, RDS, _set("publiclyAccessible", True)),
    Case("rds-deletion-protection", P, RDS, _set("deletionProtection", False)),
    Case("rds-final-snapshot", P, RDS, _set("skipFinalSnapshot", True)),
    Case("rds-backup-retention", INT, RDS, _set("backupRetentionPeriod", 3)),
    Case("rds-multi-az", P, RDS, _set("multiAz", False)),
    Case("rds-tls-enforced", P, PG,
         _set("parameters", [{"name": "rds.force_ssl", "value": "0", "applyMethod": "immediate"}])),
    Case("s3-public-access-block", P, "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",
         _set("blockPublicPolicy", False)),
    Case("s3-encryption", P,
         "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
         _set("rules", [])),
    Case("s3-tls-only", P, "aws:s3/bucketPolicy:BucketPolicy",
         _edit_json("policy", lambda d: d.update(Statement=[
             s for s in d["Statement"] if s.get("Effect") != "Deny"]))),
    Case("s3-cmk-encrypted", P, SSE,
         _set("rules", [{"applyServerSideEncryptionByDefault": {"sseAlgorithm": "AES256"}}]),
         pick=_for_bucket("-task-logs")),
    Case("s3-cmk-encrypted", P, SSE,
         _set("rules", [{"applyServerSideEncryptionByDefault": {
             "sseAlgorithm": "aws:kms", "kmsMasterKeyId": "alias/aws/s3"}}]),
         pick=_for_bucket("-task-logs")),
    Case("s3-access-logging", P, SSE,
         _set("rules", [{"applyServerSideEncryptionByDefault": {"sseAlgorithm": "aws:kms"}}]),
         pick=_for_bucket("-access-logs")),
    Case("s3-access-logging", P, "aws:s3/bucketLogging:BucketLogging",
         lambda p: p.update(targetBucket=p["bucket"])),
    Case("s3-lifecycle", P, "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration",
         _disable_lifecycle_rules),
    Case("s3-versioning", P, "aws:s3/bucketVersioning:BucketVersioning",
         _set("versioningConfiguration.status", "Suspended")),
    Case("ecr-scan-on-push", P, "aws:ecr/repository:Repository",
         _set("imageScanningConfiguration.scanOnPush", False)),
    Case("ecr-immutable-tags", P, "aws:ecr/repository:Repository",
         _set("imageTagMutability", "MUTABLE")),
    Case("ecr-cmk-encrypted", P, "aws:ecr/repository:Repository",
         _set("encryptionConfigurations", [{"encryptionType": "AES256"}])),
    Case("ecr-cmk-encrypted", P, "aws:ecr/repository:Repository",
         _set("encryptionConfigurations", [{"encryptionType": "KMS"}])),
    Case("ecr-lifecycle-policy", P, "aws:ecr/lifecyclePolicy:LifecyclePolicy",
         _set("policy", json.dumps({"rules": []}))),
    Case("vpc-flow-logs", P, "aws:ec2/flowLog:FlowLog", _set("trafficType", "REJECT")),
    Case("kms-key-policy", INT, KEY, _drop("policy")),
    Case("kms-key-policy", P, KEY, _edit_json("policy", _drop_root_statement)),
    Case("kms-key-policy", P, KEY, _edit_json("policy", _drop_conditions),
         pick=lambda r: "logs." in str(r.props.get("policy"))),
    Case("logs-cmk-encrypted", P, LOG_GROUP, _drop("kmsKeyId")),
    Case("vpc-default-sg-closed", P, "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup",
         _set("ingress", [{"protocol": "-1", "fromPort": 0, "toPort": 0, "self": True}])),
    Case("iam-no-wildcards", P, "aws:iam/rolePolicy:RolePolicy",
         _edit_json("policy", _first_statement(lambda s: s.update(Action="*")))),
    Case("irsa-trust-exact", P, "aws:iam/role:Role", _edit_json("assumeRolePolicy", _widen_sub),
         pick=_web_identity),
    Case("airflow-ui-not-public", L, "kubernetes:core/v1:Service",
         _set("spec.type", "LoadBalancer")),
    Case("airflow-ui-not-public", P, RELEASE, _set("values.apiServer.service.type", "LoadBalancer"),
         pick=_airflow),
    Case("no-internet-facing-lb", P, RELEASE,
         _set("values.ingress.flower", {"enabled": True,
                                        "annotations": {ALB_SCHEME: "internet-facing"}}),
         pick=_airflow),
    Case("no-internet-facing-lb", P, RELEASE,
         _set("values.ingress.pgbouncer", {"enabled": True, "annotations": {}}), pick=_airflow),
    Case("chart-pdbs", P, RELEASE, _set("values.scheduler.podDisruptionBudget.enabled", False),
         pick=_airflow, prepare=_set_all(PDB_ON)),
    Case("chart-pdbs", P, RELEASE, _drop("values.pgbouncer.podDisruptionBudget"),
         pick=_airflow, prepare=_set_all(PDB_ON)),
    Case("chart-values-no-secrets", P, RELEASE, _set("values.fernetKey", "not-a-secret-name"),
         pick=_airflow),
    Case("chart-bundled-postgres-off", P, RELEASE, _set("values.postgresql.enabled", True),
         pick=_airflow),
    Case("aws-tags", P, "aws:ec2/vpc:Vpc", _drop("tags.owner")),
    Case("chart-pgbouncer", L, RELEASE, _set("values.pgbouncer.enabled", False),
         pick=_airflow, prepare=_set("values.pgbouncer.enabled", True)),
    Case("metadata-db-managed", L, STS, _set_container("image", "postgres:16.6"),
         prepare=_both(_set_container("image", "example/app:1.0"), SSL_ON)),
    Case("metadata-db-tls", L, STS, _set_container("args", []), prepare=SSL_ON),
    Case("task-logs-in-s3", L, STS, _set_container("image", "minio/minio:RELEASE.2025-01-01"),
         prepare=SSL_ON),
    Case("image-in-scanned-registry", P, "docker:index/image:Image", _set("skipPush", True)),
]  # fmt: skip


def _id(case: Case) -> str:
    return f"{case.rule}:{case.stack}:{case.type.rsplit(':', 1)[-1]}"


RULES_FOR_RESOURCES_NOT_DEPLOYED = {"nodes-on-demand"}
"""Rules for managed node groups, which the program no longer creates (EKS Auto Mode): they
break on crafted records in tests/policy/test_policy_hardening.py."""


def test_every_rule_has_a_breaking_case() -> None:
    assert {r.name for r in RULES} == {c.rule for c in CASES} | RULES_FOR_RESOURCES_NOT_DEPLOYED


def _replace(resources: tuple[Res, ...], old: Res, props: Props) -> list[Res]:
    new = dataclasses.replace(old, props=props)
    return [new if r is old else r for r in resources]


@pytest.mark.parametrize("case", CASES, ids=_id)
def test_mutation_trips_exactly_its_rule(case: Case) -> None:
    resources = recorded(case.stack)
    target = next((r for r in resources if r.type == case.type and case.pick(r)), None)
    assert target is not None, f"the {case.stack} stack registers no matching {case.type}"

    baseline_props = copy.deepcopy(dict(target.props))
    case.prepare(baseline_props)
    baseline = _replace(resources, target, baseline_props)
    before = {(v.rule, v.resource, v.message) for v in evaluate(baseline)}
    assert not {v for v in before if v[0] == case.rule and v[1] == target.name}, (
        f"{target.name} already breaks {case.rule} before the mutation"
    )

    broken_props = copy.deepcopy(baseline_props)
    case.mutate(broken_props)
    after = evaluate(_replace(resources, target, broken_props))
    new = [v for v in after if (v.rule, v.resource, v.message) not in before]

    assert new, f"{case.rule} did not fire after the mutation"
    assert {v.rule for v in new} == {case.rule}, show(new)
    for v in new:
        assert v.resource == target.name, show(new)
        assert target.name in v.message, v.message
