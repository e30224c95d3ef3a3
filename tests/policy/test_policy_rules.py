"""Rules on hand-built records: the shapes the AirflowRelease registers, and edge cases."""

from __future__ import annotations

import json
from typing import Any

import pytest

from policy.rules import (
    RULES_BY_NAME,
    UNKNOWN,
    Res,
    aws_tags,
    chart_bundled_postgres_off,
    chart_values_no_secrets,
    eks_endpoint_restricted,
    evaluate,
    iam_no_wildcards,
    irsa_trust_exact,
    nodes_no_ssh_from_anywhere,
    rds_tls_enforced,
    s3_encryption,
    s3_lifecycle,
    s3_public_access_block,
    s3_tls_only_policy,
    s3_versioning,
    ui_not_public,
    vpc_flow_logs,
)

STACK = "urn:pulumi:production::airflow-platform::"
TAGS = {
    "project": "airflow-platform",
    "environment": "production",
    "owner": "data-platform",
    "stack": "production",
}
OIDC = "oidc.eks.eu-west-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE"
LOGS_KEY = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
SERVICE_ACCOUNTS = [
    f"system:serviceaccount:airflow:airflow-{sa}"
    for sa in ("scheduler", "worker", "triggerer", "dag-processor", "api-server")
]


def res(
    type_: str, name: str, parents: str = "airflow-platform:airflow:AirflowRelease", **props: Any
) -> Res:
    urn = f"{STACK}{parents}${type_}::{name}"
    deps = props.pop("deps", {})
    return Res(type_, name, urn, props, deps)


def rule_names(resources: list[Res]) -> set[str]:
    return {v.rule for v in evaluate(resources)}


# --- the task-log bucket and its companions ---------------------------------------------------


def bucket_set(env: str = "production") -> list[Res]:
    tags = {**TAGS, "environment": env, "stack": env}
    bucket = res(
        "aws:s3/bucket:Bucket", "airflow-logs", bucket=f"acme-airflow-logs-{env}", tags=tags
    )
    ref = {"bucket": (bucket.urn,)}
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "DenyInsecureTransport",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:*",
                "Resource": [
                    f"arn:aws:s3:::acme-airflow-logs-{env}",
                    f"arn:aws:s3:::acme-airflow-logs-{env}/*",
                ],
                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            }
        ],
    }
    out = [
        bucket,
        res("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock", "airflow-logs-pab",
            bucket=UNKNOWN, deps=ref, blockPublicAcls=True, blockPublicPolicy=True,
            ignorePublicAcls=True, restrictPublicBuckets=True),
        res("aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
            "airflow-logs-sse", bucket=bucket.props["bucket"],
            rules=[{"applyServerSideEncryptionByDefault": {"sseAlgorithm": "aws:kms",
                                                           "kmsMasterKeyId": LOGS_KEY}}]),
        res("aws:s3/bucketPolicy:BucketPolicy", "airflow-logs-policy", bucket=UNKNOWN, deps=ref,
            policy=json.dumps(policy)),
        res("aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration", "airflow-logs-lc",
            bucket=UNKNOWN, deps=ref,
            rules=[{"id": "expire", "status": "Enabled", "expiration": {"days": 365}}]),
    ]  # fmt: skip
    if env == "production":
        out.append(
            res("aws:s3/bucketVersioning:BucketVersioning", "airflow-logs-versioning",
                bucket=UNKNOWN, deps=ref, versioningConfiguration={"status": "Enabled"})
        )  # fmt: skip
        out.append(
            res("aws:s3/bucketLogging:BucketLogging", "airflow-logs-logging", bucket=UNKNOWN,
                deps=ref, targetBucket=f"acme-airflow-logs-{env}-access-logs",
                targetPrefix="logs/")
        )  # fmt: skip
    return out


@pytest.mark.parametrize("env", ["production", "integration"])
def test_a_complete_bucket_set_passes(env: str) -> None:
    assert evaluate(bucket_set(env)) == []


def test_integration_bucket_needs_no_versioning() -> None:
    assert s3_versioning(bucket_set("integration")) == []


@pytest.mark.parametrize(
    ("companion", "rule"),
    [
        ("airflow-logs-pab", "s3-public-access-block"),
        ("airflow-logs-sse", "s3-encryption"),
        ("airflow-logs-policy", "s3-tls-only"),
        ("airflow-logs-lc", "s3-lifecycle"),
        ("airflow-logs-versioning", "s3-versioning"),
        ("airflow-logs-logging", "s3-access-logging"),
    ],
)
def test_a_bucket_without_a_companion_fails_that_rule_only(companion: str, rule: str) -> None:
    resources = [r for r in bucket_set() if r.name != companion]
    found = evaluate(resources)
    assert {v.rule for v in found} == {rule}
    assert all(v.resource == "airflow-logs" and "airflow-logs" in v.message for v in found)


def test_public_access_block_needs_all_four_flags() -> None:
    resources = bucket_set()
    pab = next(r for r in resources if r.name == "airflow-logs-pab")
    resources[resources.index(pab)] = Res(
        pab.type, pab.name, pab.urn, {**pab.props, "ignorePublicAcls": False}, pab.deps
    )
    (found,) = s3_public_access_block(resources)
    assert found[0].name == "airflow-logs-pab" and "ignorePublicAcls" in found[1]


def test_a_companion_of_another_bucket_does_not_count() -> None:
    other = res("aws:s3/bucket:Bucket", "other", bucket="other-bucket", tags=TAGS)
    problems = s3_encryption([*bucket_set(), other])
    assert [(r.name, "no server-side" in m) for r, m in problems] == [("other", True)]


def test_tls_policy_unknown_during_preview_is_not_a_violation() -> None:
    resources = [
        r
        if r.name != "airflow-logs-policy"
        else Res(r.type, r.name, r.urn, {"policy": UNKNOWN}, r.deps)
        for r in bucket_set()
    ]
    assert s3_tls_only_policy(resources) == []


def test_tls_policy_with_an_allow_only_fails() -> None:
    resources = bucket_set()
    pol = next(r for r in resources if r.name == "airflow-logs-policy")
    allow = {"Statement": [{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::1:role/x"},
                            "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/*"}]}  # fmt: skip
    resources[resources.index(pol)] = Res(
        pol.type, pol.name, pol.urn, {"policy": json.dumps(allow)}, pol.deps
    )
    (found,) = s3_tls_only_policy(resources)
    assert found[0].name == "airflow-logs-policy"


def test_lifecycle_rule_must_be_enabled_and_expire() -> None:
    resources = bucket_set()
    lc = next(r for r in resources if r.name == "airflow-logs-lc")
    props = {"rules": [{"id": "x", "status": "Enabled", "filter": {"prefix": "logs/"}}]}
    resources[resources.index(lc)] = Res(lc.type, lc.name, lc.urn, props, lc.deps)
    assert [r.name for r, _ in s3_lifecycle(resources)] == ["airflow-logs-lc"]


# --- IAM ---------------------------------------------------------------------------------------


def trust(condition: dict[str, Any]) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Federated": f"arn:aws:iam::123456789012:oidc-provider/{OIDC}"},
                    "Action": "sts:AssumeRoleWithWebIdentity",
                    "Condition": condition,
                }
            ],
        }
    )


GOOD_TRUST = {"StringEquals": {f"{OIDC}:sub": SERVICE_ACCOUNTS, f"{OIDC}:aud": "sts.amazonaws.com"}}


def irsa_role(condition: dict[str, Any]) -> Res:
    return res("aws:iam/role:Role", "airflow-logs", assumeRolePolicy=trust(condition), tags=TAGS)


def test_irsa_trust_on_exact_service_accounts_passes() -> None:
    assert irsa_trust_exact(irsa_role(GOOD_TRUST)) == []


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ({"StringLike": {f"{OIDC}:sub": "system:serviceaccount:airflow:*"},
          "StringEquals": {f"{OIDC}:aud": "sts.amazonaws.com"}}, "StringLike"),
        ({"StringEquals": {f"{OIDC}:sub": ["system:serviceaccount:airflow:*"],
                           f"{OIDC}:aud": "sts.amazonaws.com"}}, "not one exact"),
        ({"StringEquals": {f"{OIDC}:sub": SERVICE_ACCOUNTS}}, "aud"),
        ({"StringEquals": {f"{OIDC}:aud": "sts.amazonaws.com"}}, "no StringEquals"),
        ({}, "no StringEquals"),
    ],
)  # fmt: skip
def test_irsa_trust_wider_than_the_service_accounts_fails(
    condition: dict[str, Any], expected: str
) -> None:
    found = irsa_trust_exact(irsa_role(condition))
    assert found and any(expected in m for m in found), found
    assert all(m.startswith("airflow-logs") for m in found)


def test_any_principal_in_a_trust_policy_fails() -> None:
    doc = {
        "Statement": [{"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}]
    }
    role = res("aws:iam/role:Role", "open", assumeRolePolicy=json.dumps(doc), tags=TAGS)
    assert irsa_trust_exact(role)


def role_policy(
    statement: dict[str, Any], parents: str = "airflow-platform:airflow:AirflowRelease"
) -> Res:
    doc = {"Version": "2012-10-17", "Statement": [statement]}
    return res("aws:iam/rolePolicy:RolePolicy", "airflow-logs", parents, policy=json.dumps(doc))


S3_SCOPED = {
    "Effect": "Allow",
    "Action": ["s3:GetObject", "s3:PutObject", "s3:ListBucket"],
    "Resource": [
        "arn:aws:s3:::acme-airflow-logs-production",
        "arn:aws:s3:::acme-airflow-logs-production/logs/*",
    ],
}


def test_a_scoped_s3_policy_passes() -> None:
    assert iam_no_wildcards(role_policy(S3_SCOPED)) == []


@pytest.mark.parametrize(
    "change",
    [{"Action": "*"}, {"Action": ["s3:*"]}, {"Resource": "*"}, {"NotAction": "iam:*"}],
)
def test_wildcard_grants_fail(change: dict[str, Any]) -> None:
    found = iam_no_wildcards(role_policy({**S3_SCOPED, **change}))
    assert found and all(m.startswith("airflow-logs") for m in found)


def test_deny_with_wildcards_is_fine() -> None:
    deny = {"Effect": "Deny", "Action": "s3:*", "Resource": "*"}
    assert iam_no_wildcards(role_policy(deny)) == []


def test_policies_pulumi_eks_writes_itself_are_not_judged() -> None:
    inside_eks = "airflow-platform:cluster:Cluster$eks:index:Cluster"
    assert iam_no_wildcards(role_policy({**S3_SCOPED, "Action": "*"}, inside_eks)) == []


def test_inline_role_policies_are_checked() -> None:
    doc = json.dumps({"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]})
    role = res("aws:iam/role:Role", "r", assumeRolePolicy="{}", inlinePolicies=[{"policy": doc}])
    assert len(iam_no_wildcards(role)) == 2


# --- the chart ---------------------------------------------------------------------------------


def values(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "executor": "KubernetesExecutor",
        "fernetKeySecretName": "airflow-fernet-key",
        "apiSecretKeySecretName": "airflow-api-secret-key",
        "jwtSecretName": "airflow-jwt-secret",
        "data": {"metadataSecretName": "airflow-metadata"},
        "postgresql": {"enabled": False},
        "pgbouncer": {"enabled": True},
        "apiServer": {"service": {"type": "ClusterIP"}},
        "dags": {"gitSync": {"enabled": True, "repo": "https://github.com/acme-data/airflow-platform.git",
                             "credentialsSecret": "airflow-git-credentials"}},
        "config": {"logging": {"remote_logging": "True", "remote_base_log_folder": "s3://b/logs",
                               "remote_log_conn_id": "aws_task_logs"}},
        "env": [{"name": "AIRFLOW__CORE__LOAD_EXAMPLES", "value": "False"}],
    }  # fmt: skip
    base.update(overrides)
    return base


def release(v: dict[str, Any]) -> Res:
    return res("kubernetes:helm.sh/v3:Release", "airflow-chart", chart="airflow",
               repositoryOpts={"repo": "https://airflow.apache.org"}, version="1.18.0",
               namespace="airflow", values=v)  # fmt: skip


def test_good_chart_values_pass() -> None:
    assert evaluate([release(values())]) == []


@pytest.mark.parametrize(
    ("override", "what"),
    [
        ({"fernetKey": "c2VjcmV0"}, "fernetKey"),
        ({"webserverSecretKey": "s"}, "webserverSecretKey"),
        ({"apiSecretKey": "s"}, "apiSecretKey"),
        ({"jwtSecret": "s"}, "jwtSecret"),
        (
            {"data": {"metadataConnection": {"user": "airflow", "pass": "hunter2"}}},
            "metadataConnection",
        ),
        ({"env": [{"name": "AWS_SECRET_ACCESS_KEY", "value": "abc"}]}, "AWS_SECRET_ACCESS_KEY"),
        (
            {"config": {"database": {"sql_alchemy_conn": "postgresql://a:b@h/db"}}},
            "sql_alchemy_conn",
        ),
        ({"extraSecrets": {"x": {"data": "eA=="}}}, "extraSecrets"),
    ],
)
def test_secret_values_in_chart_values_fail(override: dict[str, Any], what: str) -> None:
    found = chart_values_no_secrets(release(values(**override)))
    assert found and any(what in m for m in found), found
    assert all(m.startswith("airflow-chart") for m in found)


def test_only_the_airflow_chart_is_judged() -> None:
    other = res(
        "kubernetes:helm.sh/v3:Release", "minio", chart="minio", values={"rootPassword": "x"}
    )
    assert chart_values_no_secrets(other) == [] and chart_bundled_postgres_off(other) == []


@pytest.mark.parametrize("pg", [{}, {"enabled": True}])
def test_bundled_postgres_must_be_off_explicitly(pg: dict[str, Any]) -> None:
    assert chart_bundled_postgres_off(release(values(postgresql=pg)))


def test_public_load_balancer_for_the_ui_fails_internal_passes() -> None:
    public = values(apiServer={"service": {"type": "LoadBalancer"}})
    internal = values(apiServer={"service": {"type": "LoadBalancer", "annotations": {
        "service.beta.kubernetes.io/aws-load-balancer-scheme": "internal"}}})  # fmt: skip
    assert ui_not_public(release(public))
    assert ui_not_public(release(internal)) == []


def test_ingress_for_the_ui_must_be_internal() -> None:
    public = values(ingress={"apiServer": {"enabled": True}})
    internal = values(ingress={"apiServer": {"enabled": True, "annotations": {
        "alb.ingress.kubernetes.io/scheme": "internal"}}})  # fmt: skip
    assert ui_not_public(release(public))
    assert ui_not_public(release(internal)) == []


def test_pgbouncer_off_is_advisory() -> None:
    found = evaluate([release(values(pgbouncer={"enabled": False}))])
    assert [(v.rule, v.level.value) for v in found] == [("chart-pgbouncer", "advisory")]


def test_minio_deployment_is_the_local_logs_advisory() -> None:
    container = {"name": "minio", "image": "quay.io/minio/minio:RELEASE.2025-04-22"}
    minio = res(
        "kubernetes:apps/v1:Deployment",
        "airflow-minio",
        spec={"template": {"spec": {"containers": [container]}}},
    )
    assert rule_names([minio]) == {"task-logs-in-s3"}
    chart = res("kubernetes:helm.sh/v3:Release", "minio", chart="minio", values={})
    assert rule_names([chart]) == {"task-logs-in-s3"}


# --- EKS, network, RDS edge cases --------------------------------------------------------------


def cluster(**props: Any) -> Res:
    return res("eks:index:Cluster", "cluster-eks", "airflow-platform:cluster:Cluster", **props)


@pytest.mark.parametrize(
    ("props", "ok"),
    [
        ({"endpointPublicAccess": False}, True),
        ({"endpointPublicAccess": True, "publicAccessCidrs": ["203.0.113.0/24"]}, True),
        ({"endpointPublicAccess": True}, False),
        ({}, False),
        (
            {"endpointPublicAccess": True, "publicAccessCidrs": ["203.0.113.0/24", "0.0.0.0/0"]},
            False,
        ),
        ({"endpointPublicAccess": True, "publicAccessCidrs": UNKNOWN}, True),
    ],
)
def test_eks_endpoint(props: dict[str, Any], ok: bool) -> None:
    assert (eks_endpoint_restricted(cluster(**props)) == []) is ok


def test_eks_endpoint_on_the_raw_aws_cluster() -> None:
    raw = res(
        "aws:eks/cluster:Cluster",
        "c",
        vpcConfig={"endpointPublicAccess": True, "publicAccessCidrs": ["0.0.0.0/0"]},
    )
    assert eks_endpoint_restricted(raw)


@pytest.mark.parametrize(
    ("rule", "ok"),
    [
        ({"fromPort": 22, "toPort": 22, "ipProtocol": "tcp", "cidrIpv4": "0.0.0.0/0"}, False),
        ({"fromPort": 0, "toPort": 0, "ipProtocol": "-1", "cidrIpv6": "::/0"}, False),
        ({"fromPort": 22, "toPort": 22, "ipProtocol": "tcp", "cidrIpv4": "10.0.0.0/8"}, True),
        ({"fromPort": 443, "toPort": 443, "ipProtocol": "tcp", "cidrIpv4": "0.0.0.0/0"}, True),
    ],
)
def test_ssh_from_anywhere_by_ingress_rule(rule: dict[str, Any], ok: bool) -> None:
    r = res("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule", "sg-in", **rule)
    assert (nodes_no_ssh_from_anywhere(r) == []) is ok


def test_ssh_from_anywhere_inline_in_a_security_group() -> None:
    ingress = {"protocol": "tcp", "fromPort": 20, "toPort": 25, "cidrBlocks": ["0.0.0.0/0"]}
    sg = res("aws:ec2/securityGroup:SecurityGroup", "nodes", ingress=[ingress])
    assert nodes_no_ssh_from_anywhere(sg)


def test_node_group_remote_access_limited_to_a_security_group_passes() -> None:
    ng = res(
        "eks:index:ManagedNodeGroup",
        "ng",
        remoteAccess={"ec2SshKey": "k", "sourceSecurityGroupIds": ["sg-1"]},
    )
    assert nodes_no_ssh_from_anywhere(ng) == []


def test_flow_log_matched_by_vpc_id_when_dependencies_are_missing() -> None:
    vpc = res("aws:ec2/vpc:Vpc", "vpc", id="vpc-123", tags=TAGS)
    log = res("aws:ec2/flowLog:FlowLog", "fl", vpcId="vpc-123", trafficType="ALL", tags=TAGS)
    assert vpc_flow_logs([vpc, log]) == []
    assert [r.name for r, _ in vpc_flow_logs([vpc])] == ["vpc"]


def test_database_without_a_parameter_group_fails_tls() -> None:
    db = res("aws:rds/instance:Instance", "db", engine="postgres", tags=TAGS)
    assert [r.name for r, _ in rds_tls_enforced([db])] == ["db"]


# --- tags --------------------------------------------------------------------------------------


def test_tags_missing_or_different_from_the_stack_fail() -> None:
    a = res("aws:ec2/vpc:Vpc", "a", tags=TAGS)
    b = res("aws:ec2/subnet:Subnet", "b", tags=TAGS)
    c = res("aws:kms/key:Key", "c", tags={**TAGS, "environment": "staging"})
    d = res("aws:ec2/eip:Eip", "d")
    found = {r.name: m for r, m in aws_tags([a, b, c, d])}
    assert set(found) == {"c", "d"}
    assert "staging" in found["c"] and "missing tags project, environment, owner" in found["d"]


def test_untaggable_and_pulumi_eks_children_are_exempt() -> None:
    attach = res("aws:iam/rolePolicyAttachment:RolePolicyAttachment", "x")
    child = res("aws:iam/role:Role", "y", "airflow-platform:cluster:Cluster$eks:index:Cluster")
    assert aws_tags([attach, child]) == []


def test_every_rule_is_registered_once() -> None:
    assert len(RULES_BY_NAME) >= 20
