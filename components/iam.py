"""IAM, bucket and KMS key policy documents (pure functions)."""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from typing import Any

from components.aws_catalog import dns_suffix_of

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


def task_logs_policy(
    bucket: str, prefix: str, kms_key_arn: str | None = None, region: str | None = None
) -> Document:
    """Least privilege for Airflow's S3 task handler: objects under the prefix, and listing it.

    With `kms_key_arn` (the bucket's SSE-KMS key), also kms:GenerateDataKey and kms:Decrypt
    on that key, only when S3 calls KMS for the role (`kms:ViaService` s3.<region>): Amazon
    S3 User Guide, "Using server-side encryption with AWS KMS keys (SSE-KMS)", and AWS KMS
    Developer Guide, "kms:ViaService".
    """
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
            *([task_logs_key_statement(kms_key_arn, region)] if kms_key_arn else []),
        ],
    }


def task_logs_key_statement(kms_key_arn: str, region: str | None) -> Document:
    """The task-log role's use of the bucket key: through S3 only."""
    if not region:
        raise ValueError("the key statement needs the bucket's region (kms:ViaService)")
    return {
        "Sid": "UseTaskLogKeyThroughS3",
        "Effect": "Allow",
        "Action": S3_OBJECT_KEY_ACTIONS,
        "Resource": kms_key_arn,
        "Condition": {"StringEquals": {"kms:ViaService": f"s3.{region}.{dns_suffix(region)}"}},
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


# --- KMS key policies ------------------------------------------------------------------------

KEY_POLICY_ROOT_SID = "EnableIamPolicies"
LOGS_KEY_ACTIONS = [
    "kms:Encrypt*",
    "kms:Decrypt*",
    "kms:ReEncrypt*",
    "kms:GenerateDataKey*",
    "kms:Describe*",
]
"""What CloudWatch Logs needs on a log group's key (CloudWatch Logs User Guide, "Encrypt log
data in CloudWatch Logs using AWS Key Management Service", step 2: the key policy)."""
S3_OBJECT_KEY_ACTIONS = ["kms:Decrypt", "kms:GenerateDataKey"]
"""What a principal needs to write and read SSE-KMS objects (Amazon S3 User Guide,
"Using server-side encryption with AWS KMS keys (SSE-KMS)", permissions)."""


@functools.cache
def dns_suffix(region: str) -> str:
    """The DNS suffix of `region`'s partition (amazonaws.com, amazonaws.com.cn, ...).

    Service principals and `kms:ViaService` values are spelt with it. Read from
    botocore's `endpoints.json`, the same data the region check uses.
    """
    return dns_suffix_of(region)


def account_root(partition: str, account_id: str) -> str:
    return f"arn:{partition}:iam::{account_id}:root"


def key_policy(partition: str, account_id: str, *service: Document) -> Document:
    """The account's own statement first, then exactly the given service statements.

    The account statement is the one AWS puts in every default key policy (AWS KMS
    Developer Guide, "Default key policy": "Allows access to the AWS account and enables
    IAM policies"). It keeps the key manageable (without it the key can become
    unmanageable and only AWS Support can recover it) and lets IAM policies in the
    account grant the use of the key; it gives no principal outside the account anything.
    """
    if not re.fullmatch(r"\d{12}", account_id):
        raise ValueError(f"{account_id!r} is not an AWS account id")
    root: Document = {
        "Sid": KEY_POLICY_ROOT_SID,
        "Effect": "Allow",
        "Principal": {"AWS": account_root(partition, account_id)},
        "Action": "kms:*",
        "Resource": "*",
    }
    return {"Version": "2012-10-17", "Statement": [root, *service]}


def log_group_arn(partition: str, region: str, account_id: str, name: str) -> str:
    return f"arn:{partition}:logs:{region}:{account_id}:log-group:{name}"


def flow_logs_key_policy(partition: str, region: str, account_id: str, log_group: str) -> Document:
    """The flow-log group's key: the account, and CloudWatch Logs for that one log group.

    CloudWatch Logs User Guide, "Encrypt log data in CloudWatch Logs using AWS KMS", key
    policy: the regional service principal `logs.<region>.amazonaws.com` gets the
    encrypt/decrypt family, conditioned on `kms:EncryptionContext:aws:logs:arn` naming
    the log group, so the key serves no other log group.
    """
    arn = log_group_arn(partition, region, account_id, log_group)
    logs = logs_key_statement("CloudWatchLogsForTheFlowLogGroup", region, arn)
    return key_policy(partition, account_id, logs)


def logs_key_statement(sid: str, region: str, log_group_arns: str | list[str]) -> Document:
    """CloudWatch Logs may use the key for these log groups only.

    CloudWatch Logs User Guide, "Encrypt log data in CloudWatch Logs using AWS KMS", key
    policy: the regional service principal `logs.<region>.amazonaws.com` gets the
    encrypt/decrypt family, conditioned on `kms:EncryptionContext:aws:logs:arn` naming the
    log group (ArnEquals on a list matches any of them).
    """
    return {
        "Sid": sid,
        "Effect": "Allow",
        "Principal": {"Service": f"logs.{region}.{dns_suffix(region)}"},
        "Action": LOGS_KEY_ACTIONS,
        "Resource": "*",
        "Condition": {"ArnEquals": {"kms:EncryptionContext:aws:logs:arn": log_group_arns}},
    }


def eks_secrets_key_policy(partition: str, account_id: str) -> Document:
    """The EKS secrets key: the account only.

    EKS needs no statement of its own. The principal that creates the cluster calls
    kms:DescribeKey and kms:CreateGrant (Amazon EKS User Guide, "Encrypt Kubernetes
    secrets with KMS on existing clusters": the principal needs both on the key), and EKS
    uses the key through that grant. Both are granted by the deployer's IAM policy, which
    the account statement makes effective.
    """
    return key_policy(partition, account_id)


def ecr_key_policy(partition: str, account_id: str) -> Document:
    """The ECR repository's key: the account only.

    Amazon ECR User Guide, "Encryption at rest": ECR calls kms:DescribeKey and creates
    grants on the key on behalf of the principal that creates the repository, and uses
    the key only through those grants (the repository is the grantee); that principal
    needs kms:CreateGrant, kms:RetireGrant and kms:DescribeKey through IAM, which the
    account statement makes effective. Pushing and pulling need no KMS permission.
    """
    return key_policy(partition, account_id)


def task_logs_key_policy(partition: str, account_id: str) -> Document:
    """The task-log bucket's key: the account only.

    S3 encrypts with the requester's own permissions (Amazon S3 User Guide, "Using
    SSE-KMS": the requester needs kms:GenerateDataKey and kms:Decrypt), so the task-log
    role's policy (`task_logs_policy` with a key) carries them, limited to S3 by
    `kms:ViaService`. No service principal needs the key.
    """
    return key_policy(partition, account_id)


# --- S3 server access logging ----------------------------------------------------------------


def access_log_bucket_policy(
    target_bucket: str, target_prefix: str, source_bucket: str, partition: str, account_id: str
) -> Document:
    """The access-log bucket: TLS only, and S3's log delivery for the source bucket only.

    Amazon S3 User Guide, "Enabling Amazon S3 server access logging", permissions for log
    delivery: the `logging.s3.amazonaws.com` service principal gets s3:PutObject under the
    target prefix, with `aws:SourceArn` (the source bucket) and `aws:SourceAccount`
    conditions so no other bucket or account can deliver into it.
    """
    deliver: Document = {
        "Sid": "S3ServerAccessLogsPolicy",
        "Effect": "Allow",
        "Principal": {"Service": "logging.s3.amazonaws.com"},
        "Action": "s3:PutObject",
        "Resource": f"arn:{partition}:s3:::{target_bucket}/{target_prefix}*",
        "Condition": {
            "ArnLike": {"aws:SourceArn": f"arn:{partition}:s3:::{source_bucket}"},
            "StringEquals": {"aws:SourceAccount": account_id},
        },
    }
    tls = tls_only_bucket_policy(target_bucket)
    return {"Version": "2012-10-17", "Statement": [*tls["Statement"], deliver]}


def access_log_bucket_name(source_bucket: str) -> str:
    """`<source>-access-logs`, shortened to S3's 63 characters where needed."""
    suffix = "-access-logs"
    return source_bucket[: 63 - len(suffix)].rstrip(".-") + suffix
