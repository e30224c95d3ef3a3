"""Customer-managed KMS keys: one way to make them, each with an explicit key policy."""

from __future__ import annotations

import json
from collections.abc import Callable

import pulumi
import pulumi_aws as aws

from components.aws_catalog import partition_of
from components.iam import Document
from components.naming import resource_prefix, tags
from components.settings import Settings

KEY_DELETION_WINDOW_DAYS = 30


def customer_key(
    name: str,
    settings: Settings,
    purpose: str,
    policy: Callable[[str, str], Document],
    parent: pulumi.Resource,
) -> aws.kms.Key:
    """A symmetric key with rotation on, whose policy is `policy(partition, account_id)`.

    The account comes from the caller's identity, so the policy names the account the
    stack deploys into (the key's root principal keeps the key manageable through IAM).
    """
    partition = partition_of(settings.region)
    account = aws.get_caller_identity_output(opts=pulumi.InvokeOptions(parent=parent))
    return aws.kms.Key(
        name,
        description=f"{resource_prefix(settings)}: {purpose}",
        enable_key_rotation=True,
        deletion_window_in_days=KEY_DELETION_WINDOW_DAYS,
        policy=account.account_id.apply(lambda a: json.dumps(policy(partition, a))),
        tags=tags(settings, name),
        opts=pulumi.ResourceOptions(parent=parent),
    )
