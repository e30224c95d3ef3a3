"""The task-log IAM documents: exact service accounts, only the bucket and prefix."""

from __future__ import annotations

import pytest

from components.iam import irsa_trust_policy, task_logs_policy, tls_only_bucket_policy

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
