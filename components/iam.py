"""IAM and bucket policy documents for task logs (pure functions)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

Document = dict[str, Any]


def service_assume_role_policy(service: str) -> Document:
    """Trust for an AWS service principal, e.g. `ec2.amazonaws.com` for EKS nodes."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}
        ],
    }


def oidc_issuer_host(oidc_provider_url: str) -> str:
    """The issuer as IAM condition keys spell it: no scheme, no trailing slash."""
    return oidc_provider_url.removeprefix("https://").rstrip("/")


def service_account_subjects(namespace: str, service_accounts: Sequence[str]) -> list[str]:
    return [f"system:serviceaccount:{namespace}:{sa}" for sa in service_accounts]


def irsa_trust_policy(
    oidc_provider_arn: str,
    oidc_provider_url: str,
    namespace: str,
    service_accounts: Sequence[str],
) -> Document:
    """Who may assume the task-log role: exactly these service accounts, via the cluster's OIDC."""
    if not service_accounts:
        raise ValueError("an IRSA trust needs at least one service account")
    issuer = oidc_issuer_host(oidc_provider_url)
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Federated": oidc_provider_arn},
                "Action": "sts:AssumeRoleWithWebIdentity",
                "Condition": {
                    "StringEquals": {
                        f"{issuer}:sub": service_account_subjects(namespace, service_accounts),
                        f"{issuer}:aud": "sts.amazonaws.com",
                    }
                },
            }
        ],
    }


def task_logs_policy(bucket: str, prefix: str) -> Document:
    """Least privilege for Airflow's S3 task handler: objects under the prefix, and listing it."""
    prefix = prefix.strip("/")
    objects = f"arn:aws:s3:::{bucket}/{prefix}/*" if prefix else f"arn:aws:s3:::{bucket}/*"
    listing: Document = {
        "Sid": "ListTaskLogs",
        "Effect": "Allow",
        "Action": "s3:ListBucket",
        "Resource": f"arn:aws:s3:::{bucket}",
    }
    if prefix:
        listing["Condition"] = {"StringLike": {"s3:prefix": [prefix, f"{prefix}/*"]}}
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "ReadWriteTaskLogs",
                "Effect": "Allow",
                "Action": ["s3:GetObject", "s3:PutObject"],
                "Resource": objects,
            },
            listing,
        ],
    }


def tls_only_bucket_policy(bucket: str) -> Document:
    """Refuse every request to the bucket that does not use TLS."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "DenyInsecureTransport",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:*",
                "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"],
                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            }
        ],
    }
