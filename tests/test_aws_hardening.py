"""AWS hardening per stack: customer-managed keys, key policies, access logging, flow-log retention.

Production gets a customer-managed KMS key for the flow-log group, the task-log bucket and ECR,
and S3 server access logging of the task-log bucket; integration keeps the cheaper AWS-managed
encryption unless it sets `security.customerManagedKeys`. The cluster's secrets key has an
explicit key policy on every eks stack.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from components import iam
from tests.harness import ACCOUNT, Resource, Run, run_stack

EKS_STACKS = ("integration", "production")
KEY = "aws:kms/key:Key"
SSE = "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
LOGGING = "aws:s3/bucketLogging:BucketLogging"
ROOT = f"arn:aws:iam::{ACCOUNT}:root"


def named(run: Run, type_: str, name: str) -> Resource:
    [found] = [r for r in run.of_type(type_) if r.name == name]
    return found


def keys(run: Run) -> dict[str, Resource]:
    return {k.name: k for k in run.of_type(KEY)}


def policy(res: Resource) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(res.inputs["policy"])
    return doc


ALL_KEYS = {
    "cluster-secrets",
    "network-flow-logs",
    "registry-ecr",
    "airflow-logs",
    "database-logs",
    "database-alarms-topic",
}
"""Every customer-managed key a stack can have: production's, and integration's when it opts in."""


def sse_of(run: Run, bucket: str) -> dict[str, Any]:
    [found] = [r for r in run.of_type(SSE) if r.inputs["bucket"] == bucket]
    rule: dict[str, Any] = found.inputs["rules"][0]["applyServerSideEncryptionByDefault"]
    return rule


@pytest.mark.parametrize(
    ("stack", "expected"),
    [
        ("integration", {"cluster-secrets"}),
        (
            "production",
            ALL_KEYS,
        ),
    ],
)
def test_customer_managed_keys_per_stack(
    stack_runs: dict[str, Run], stack: str, expected: set[str]
) -> None:
    """Every key rotates yearly and carries an explicit policy whose first statement is the
    account's (AWS KMS Developer Guide, "Default key policy": without it the key can become
    unmanageable)."""
    found = keys(stack_runs[stack])
    assert set(found) == expected
    for key in found.values():
        assert key.inputs["enableKeyRotation"] is True
        statements = policy(key)["Statement"]
        assert statements[0]["Principal"] == {"AWS": ROOT}
        assert statements[0]["Action"] == "kms:*"
        assert key.inputs["tags"]["environment"] == stack


@pytest.mark.parametrize("stack", EKS_STACKS)
def test_cluster_secrets_key_has_its_explicit_policy(
    stack_runs: dict[str, Run], stack: str
) -> None:
    run = stack_runs[stack]
    key = keys(run)["cluster-secrets"]
    assert policy(key) == iam.eks_secrets_key_policy("aws", ACCOUNT)
    assert run.one("eks:index:Cluster").inputs["encryptionConfigKeyArn"] == key.outputs["arn"]


@pytest.mark.parametrize(("stack", "days"), [("integration", 30), ("production", 365)])
def test_flow_log_group(stack_runs: dict[str, Run], stack: str, days: int) -> None:
    """CloudWatch Logs: log group names are 1-512 of `[.-_/#A-Za-z0-9]` (CreateLogGroup API),
    and the key policy's `kms:EncryptionContext:aws:logs:arn` must name exactly the group the
    key encrypts, or CloudWatch Logs cannot use the key (CloudWatch Logs User Guide, "Encrypt
    log data in CloudWatch Logs using AWS KMS")."""
    run = stack_runs[stack]
    [group] = [
        g for g in run.of_type("aws:cloudwatch/logGroup:LogGroup") if g.name == "network-flow-logs"
    ]
    name = group.inputs["name"]
    assert re.fullmatch(r"[.\-_/#A-Za-z0-9]{1,512}", name)
    assert group.inputs["retentionInDays"] == days
    flow = run.one("aws:ec2/flowLog:FlowLog")
    assert flow.inputs["logDestination"] == group.outputs["arn"]
    if stack == "integration":
        assert "kmsKeyId" not in group.inputs
        return
    key = keys(run)["network-flow-logs"]
    assert group.inputs["kmsKeyId"] == key.outputs["arn"]
    [_, logs] = policy(key)["Statement"]
    assert logs["Principal"] == {"Service": "logs.eu-west-1.amazonaws.com"}
    arn = f"arn:aws:logs:eu-west-1:{ACCOUNT}:log-group:{name}"
    assert logs["Condition"] == {"ArnEquals": {"kms:EncryptionContext:aws:logs:arn": arn}}


@pytest.mark.parametrize("stack", EKS_STACKS)
def test_ecr_encryption(stack_runs: dict[str, Run], stack: str) -> None:
    """Amazon ECR User Guide, "Encryption at rest": KMS with a kmsKey (a customer-managed key);
    without a kmsKey ECR would use the AWS managed key aws/ecr."""
    run = stack_runs[stack]
    [config] = run.one("aws:ecr/repository:Repository").inputs["encryptionConfigurations"]
    if stack == "integration":
        assert config == {"encryptionType": "AES256"}
        return
    key = keys(run)["registry-ecr"]
    assert config == {"encryptionType": "KMS", "kmsKey": key.outputs["arn"]}
    assert policy(key) == iam.ecr_key_policy("aws", ACCOUNT)


@pytest.mark.parametrize("stack", EKS_STACKS)
def test_task_log_bucket_encryption_and_the_role_that_may_use_its_key(
    stack_runs: dict[str, Run], stack: str
) -> None:
    """SSE-KMS objects are written with kms:GenerateDataKey and read with kms:Decrypt by the
    requester (Amazon S3 User Guide, SSE-KMS): the IRSA role gets both on this key, through S3
    only; SSE-S3 needs no KMS permission at all."""
    run = stack_runs[stack]
    bucket = f"airflow-platform-{stack}-task-logs"
    role_policy = json.loads(named(run, "aws:iam/rolePolicy:RolePolicy", "airflow-task-logs")
                             .inputs["policy"])  # fmt: skip
    kms = [s for s in role_policy["Statement"] if any(a.startswith("kms:") for a in s["Action"])]
    if stack == "integration":
        assert sse_of(run, bucket) == {"sseAlgorithm": "AES256"}
        assert kms == []
        return
    key = keys(run)["airflow-logs"]
    assert sse_of(run, bucket) == {"sseAlgorithm": "aws:kms", "kmsMasterKeyId": key.outputs["arn"]}
    assert kms == [iam.task_logs_key_statement(key.outputs["arn"], "eu-west-1")]
    assert policy(key) == iam.task_logs_key_policy("aws", ACCOUNT)


def test_production_task_log_bucket_has_server_access_logging(stack_runs: dict[str, Run]) -> None:
    """Amazon S3 User Guide, "Logging requests with server access logging": the target is
    another bucket of the account, SSE-S3 encrypted (SSE-KMS targets receive no logs), whose
    policy lets `logging.s3.amazonaws.com` put objects under the configured target prefix
    for this source bucket only."""
    run = stack_runs["production"]
    source = "airflow-platform-production-task-logs"
    logging = run.one(LOGGING)
    assert logging.inputs["bucket"] == source
    target = logging.inputs["targetBucket"]
    assert target != source
    assert target in {b.inputs["bucket"] for b in run.of_type("aws:s3/bucket:Bucket")}
    assert sse_of(run, target) == {"sseAlgorithm": "AES256"}
    [doc] = [
        json.loads(p.inputs["policy"])
        for p in run.of_type("aws:s3/bucketPolicy:BucketPolicy")
        if p.inputs["bucket"] == target
    ]
    [deliver] = [s for s in doc["Statement"] if s["Effect"] == "Allow"]
    assert deliver["Principal"] == {"Service": "logging.s3.amazonaws.com"}
    # the delivered keys start with the target prefix: the policy must cover exactly them
    prefix = logging.inputs["targetPrefix"]
    assert deliver["Resource"] == f"arn:aws:s3:::{target}/{prefix}*"
    assert deliver["Condition"]["ArnLike"] == {"aws:SourceArn": f"arn:aws:s3:::{source}"}
    assert deliver["Condition"]["StringEquals"] == {"aws:SourceAccount": ACCOUNT}
    lifecycle = [
        r
        for r in run.of_type("aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration")
        if r.inputs["bucket"] == target
    ]
    assert lifecycle[0].inputs["rules"][0]["filter"]["prefix"] == prefix


def test_integration_has_no_access_logging(stack_runs: dict[str, Run]) -> None:
    run = stack_runs["integration"]
    assert run.of_type(LOGGING) == []
    assert len(run.of_type("aws:s3/bucket:Bucket")) == 1


def test_integration_can_opt_in() -> None:
    run = run_stack(
        "integration",
        set_values={"security.customerManagedKeys": True, "airflow.logs.accessLogging": True},
    )
    assert set(keys(run)) == ALL_KEYS
    assert len(run.of_type(LOGGING)) == 1


# --- dependencies: the new resources wait only for what they read ------------------------------


def test_new_resources_do_not_wait_for_the_cluster_or_the_network(
    stack_runs: dict[str, Run],
) -> None:
    run = stack_runs["production"]
    eks = run.one("eks:index:Cluster")
    vpc = run.one("aws:ec2/vpc:Vpc")
    found = keys(run)
    repo = run.one("aws:ecr/repository:Repository")
    assert run.depends_on(repo, found["registry-ecr"])  # the check sees a real dependency
    independent = [
        *found.values(),
        repo,
        run.one("docker:index/image:Image"),
        run.one(LOGGING),
        *run.of_type("aws:s3/bucket:Bucket"),
        *run.of_type(SSE),
    ]
    for res in independent:
        assert not run.depends_on(res, eks), res.name
        assert not run.depends_on(res, vpc), res.name
    assert not run.depends_on(eks, found["airflow-logs"])
    assert not run.depends_on(eks, found["registry-ecr"])


def test_access_logging_starts_once_delivery_is_allowed(stack_runs: dict[str, Run]) -> None:
    """S3 delivers access logs only where the target's policy lets it: the logging
    configuration reads the target's name after its policy exists (a data dependency, no
    explicit depends_on)."""
    run = stack_runs["production"]
    logging = run.one(LOGGING)
    target_policy = named(run, "aws:s3/bucketPolicy:BucketPolicy", "airflow-access-logs")
    assert target_policy.urn in logging.property_dependencies["targetBucket"]
    data_deps = {u for urns in logging.property_dependencies.values() for u in urns}
    assert set(logging.dependencies) <= data_deps  # no explicit depends_on
