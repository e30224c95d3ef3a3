"""The task-log IAM documents: exact service accounts, only the bucket and prefix."""

from __future__ import annotations

import re
from typing import Any

import pytest

from components.iam import (
    access_log_bucket_name,
    access_log_bucket_policy,
    dns_suffix,
    ecr_key_policy,
    eks_secrets_key_policy,
    flow_logs_key_policy,
    irsa_trust_policy,
    task_logs_key_policy,
    task_logs_policy,
    tls_only_bucket_policy,
)

ARN = "arn:aws:iam::123456789012:oidc-provider/oidc.eks.eu-west-1.amazonaws.com/id/ABC"
URL = "https://oidc.eks.eu-west-1.amazonaws.com/id/ABC"


def test_trust_allows_exactly_the_named_service_accounts_in_the_namespace() -> None:
    doc = irsa_trust_policy(ARN, URL, "airflow", ["airflow-scheduler", "airflow-worker"])
    [statement] = doc["Statement"]
    assert statement["Effect"] == "Allow"
    assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
    assert statement["Principal"] == {"Federated": ARN}
    cond = statement["Condition"]
    assert set(cond) == {"StringEquals"}  # no StringLike wildcards
    assert cond["StringEquals"] == {
        "oidc.eks.eu-west-1.amazonaws.com/id/ABC:sub": [
            "system:serviceaccount:airflow:airflow-scheduler",
            "system:serviceaccount:airflow:airflow-worker",
        ],
        "oidc.eks.eu-west-1.amazonaws.com/id/ABC:aud": "sts.amazonaws.com",
    }


def test_trust_needs_a_service_account() -> None:
    with pytest.raises(ValueError, match="at least one service account"):
        irsa_trust_policy(ARN, URL, "airflow", [])


def test_s3_policy_grants_only_the_bucket_and_prefix() -> None:
    doc = task_logs_policy("logs-bucket", "/task-logs/")
    objects, listing = doc["Statement"]
    assert objects["Effect"] == listing["Effect"] == "Allow"
    assert sorted(objects["Action"]) == ["s3:GetObject", "s3:PutObject"]
    assert objects["Resource"] == "arn:aws:s3:::logs-bucket/task-logs/*"
    assert listing["Action"] == "s3:ListBucket"
    assert listing["Resource"] == "arn:aws:s3:::logs-bucket"
    assert listing["Condition"] == {"StringLike": {"s3:prefix": ["task-logs", "task-logs/*"]}}
    text = str(doc)
    assert "s3:*" not in text and "'*'" not in text and "DeleteObject" not in text


def test_tls_only_policy_denies_plain_http_on_bucket_and_objects() -> None:
    [statement] = tls_only_bucket_policy("logs-bucket")["Statement"]
    assert statement["Effect"] == "Deny"
    assert statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert statement["Resource"] == ["arn:aws:s3:::logs-bucket", "arn:aws:s3:::logs-bucket/*"]


# --- KMS key policies --------------------------------------------------------------------------

ACCOUNT = "123456789012"
ROOT_STATEMENT = {
    "Sid": "EnableIamPolicies",
    "Effect": "Allow",
    "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
    "Action": "kms:*",
    "Resource": "*",
}
LOG_GROUP = "/aws/vpc-flow-logs/airflow-platform-production"


def test_flow_log_key_admits_the_account_and_cloudwatch_logs_for_one_log_group() -> None:
    """CloudWatch Logs User Guide, "Encrypt log data in CloudWatch Logs using AWS KMS": the key
    policy lets the regional `logs.<region>.amazonaws.com` principal use the key, conditioned
    on `kms:EncryptionContext:aws:logs:arn` naming the log group."""
    doc = flow_logs_key_policy("aws", "eu-west-1", ACCOUNT, LOG_GROUP)
    root, logs = doc["Statement"]
    assert root == ROOT_STATEMENT
    assert logs["Principal"] == {"Service": "logs.eu-west-1.amazonaws.com"}
    assert logs["Effect"] == "Allow" and logs["Resource"] == "*"
    assert sorted(logs["Action"]) == sorted(
        ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"]
    )
    assert logs["Condition"] == {
        "ArnEquals": {
            "kms:EncryptionContext:aws:logs:arn": (
                f"arn:aws:logs:eu-west-1:{ACCOUNT}:log-group:{LOG_GROUP}"
            )
        }
    }
    assert "kms:*" not in logs["Action"] and "kms:CreateGrant" not in logs["Action"]


def test_service_principals_follow_the_partition() -> None:
    """Service principals and kms:ViaService carry the partition's DNS suffix (botocore
    `endpoints.json`): China regions use amazonaws.com.cn."""
    doc = flow_logs_key_policy("aws-cn", "cn-north-1", ACCOUNT, LOG_GROUP)
    assert doc["Statement"][1]["Principal"] == {"Service": "logs.cn-north-1.amazonaws.com.cn"}
    assert doc["Statement"][0]["Principal"] == {"AWS": f"arn:aws-cn:iam::{ACCOUNT}:root"}
    key = "arn:aws-cn:kms:cn-north-1:123456789012:key/k"
    statement = task_logs_policy("b", "p", key, "cn-north-1")["Statement"][-1]
    assert statement["Condition"] == {
        "StringEquals": {"kms:ViaService": "s3.cn-north-1.amazonaws.com.cn"}
    }
    with pytest.raises(ValueError, match="no partition"):
        dns_suffix("xx-nowhere-9")


@pytest.mark.parametrize("policy", [eks_secrets_key_policy, ecr_key_policy, task_logs_key_policy])
def test_grant_and_caller_keys_name_only_the_account(policy: Any) -> None:
    """EKS and ECR use their keys through grants the deploying principal creates (EKS User
    Guide, secrets encryption: kms:CreateGrant and kms:DescribeKey; ECR User Guide,
    "Encryption at rest"), and S3 uses the caller's own permissions: none needs a service
    principal in the key policy, only the account statement that makes IAM policies count."""
    assert policy("aws", ACCOUNT) == {"Version": "2012-10-17", "Statement": [ROOT_STATEMENT]}


def test_key_policies_need_a_real_account_id() -> None:
    with pytest.raises(ValueError, match="account id"):
        eks_secrets_key_policy("aws", "unknown")


def test_task_log_role_uses_its_key_through_s3_only() -> None:
    """Amazon S3 User Guide, SSE-KMS: writing needs kms:GenerateDataKey, reading kms:Decrypt;
    `kms:ViaService` keeps the role from using the key outside S3 (AWS KMS Developer Guide)."""
    key = "arn:aws:kms:eu-west-1:123456789012:key/1234"
    doc = task_logs_policy("logs-bucket", "task-logs", key, "eu-west-1")
    *_, statement = doc["Statement"]
    assert statement == {
        "Sid": "UseTaskLogKeyThroughS3",
        "Effect": "Allow",
        "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
        "Resource": key,
        "Condition": {"StringEquals": {"kms:ViaService": "s3.eu-west-1.amazonaws.com"}},
    }
    assert len(task_logs_policy("logs-bucket", "task-logs")["Statement"]) == 2
    with pytest.raises(ValueError, match="region"):
        task_logs_policy("logs-bucket", "task-logs", key)


def test_access_log_bucket_admits_s3_log_delivery_for_the_source_bucket_only() -> None:
    """Amazon S3 User Guide, server access logging permissions: `logging.s3.amazonaws.com`
    gets s3:PutObject under the target prefix, with aws:SourceArn and aws:SourceAccount."""
    doc = access_log_bucket_policy("logs-access", "task-logs/", "logs", "aws", ACCOUNT)
    deny, deliver = doc["Statement"]
    assert deny == tls_only_bucket_policy("logs-access")["Statement"][0]
    assert deliver["Principal"] == {"Service": "logging.s3.amazonaws.com"}
    assert deliver["Action"] == "s3:PutObject"
    assert deliver["Resource"] == "arn:aws:s3:::logs-access/task-logs/*"
    assert deliver["Condition"] == {
        "ArnLike": {"aws:SourceArn": "arn:aws:s3:::logs"},
        "StringEquals": {"aws:SourceAccount": ACCOUNT},
    }


@pytest.mark.parametrize("source", ["logs", "a" * 63, "a" * 50 + ".b-c" + "d" * 9])
def test_access_log_bucket_name_is_a_valid_bucket_name(source: str) -> None:
    """S3 bucket naming rules: 3-63 characters, lower case, starting and ending with a letter
    or digit, no '..', '.-' or '-.'."""
    name = access_log_bucket_name(source)
    assert name != source and name.endswith("-access-logs")
    assert 3 <= len(name) <= 63
    assert re.fullmatch(r"[a-z0-9][a-z0-9.-]*[a-z0-9]", name)
    assert not {"..", ".-", "-."} & {name[i : i + 2] for i in range(len(name) - 1)}
