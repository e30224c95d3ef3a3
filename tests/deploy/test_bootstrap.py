"""deploy/bootstrap.py against moto's S3, KMS and STS over HTTP."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from botocore.exceptions import ClientError

from components.settings import PROJECT
from deploy.bootstrap import (
    MANAGED_BY,
    BootstrapError,
    BootstrapResult,
    StateBackend,
    bootstrap_state,
    default_names,
    main,
    parse_backend_file,
    render_backend_file,
)
from deploy.github_oidc import (
    GITHUB_OIDC_AUDIENCE,
    GITHUB_OIDC_HOST,
    STATE_POLICY_NAME,
    GitHubResult,
    bootstrap_github,
    github_roles,
)
from tests.deploy.conftest import DUMMY_ACCOUNT, REGION, Aws, Names

TAGS = {"project": PROJECT, "purpose": "pulumi-state"}


def run(aws: Aws, names: Names, region: str = REGION) -> BootstrapResult:
    return bootstrap_state(
        aws.client("s3", region),
        aws.client("kms", region),
        aws.client("sts", region),
        bucket=names.bucket,
        region=region,
        key_alias=names.key_alias,
        tags=TAGS,
    )


def error_code(call: Callable[[], Any]) -> str:
    with pytest.raises(ClientError) as info:
        call()
    return str(info.value.response["Error"]["Code"])


def bucket_settings(s3: Any, bucket: str) -> dict[str, Any]:
    """Every setting the bootstrap manages, read back through the S3 API."""
    return {
        "versioning": s3.get_bucket_versioning(Bucket=bucket).get("Status"),
        "encryption": s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"][
            "Rules"
        ],
        "public_access_block": s3.get_public_access_block(Bucket=bucket)[
            "PublicAccessBlockConfiguration"
        ],
        "ownership": s3.get_bucket_ownership_controls(Bucket=bucket)["OwnershipControls"]["Rules"],
        "policy": json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"]),
        "lifecycle": s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"],
        "tags": {t["Key"]: t["Value"] for t in s3.get_bucket_tagging(Bucket=bucket)["TagSet"]},
    }


def key_settings(kms: Any, key_alias: str) -> dict[str, Any]:
    meta = kms.describe_key(KeyId=key_alias)["KeyMetadata"]
    return {
        "meta": meta,
        "rotation": kms.get_key_rotation_status(KeyId=meta["KeyId"])["KeyRotationEnabled"],
        "aliases": [a["AliasName"] for a in kms.list_aliases(KeyId=meta["KeyId"])["Aliases"]],
        "tags": {
            t["TagKey"]: t["TagValue"] for t in kms.list_resource_tags(KeyId=meta["KeyId"])["Tags"]
        },
        "policy": json.loads(
            kms.get_key_policy(KeyId=meta["KeyId"], PolicyName="default")["Policy"]
        ),
    }


def assert_bucket_as_bootstrapped(settings: dict[str, Any], bucket: str, key_arn: str) -> None:
    assert settings["versioning"] == "Enabled"
    assert settings["encryption"] == [
        {
            "ApplyServerSideEncryptionByDefault": {
                "SSEAlgorithm": "aws:kms",
                "KMSMasterKeyID": key_arn,
            },
            "BucketKeyEnabled": True,
        }
    ]
    assert settings["public_access_block"] == {
        "BlockPublicAcls": True,
        "IgnorePublicAcls": True,
        "BlockPublicPolicy": True,
        "RestrictPublicBuckets": True,
    }
    assert settings["ownership"] == [{"ObjectOwnership": "BucketOwnerEnforced"}]
    statements = settings["policy"]["Statement"]
    assert statements == [
        {
            "Sid": "DenyInsecureTransport",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:*",
            "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"],
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        }
    ]
    assert not [s for s in statements if s["Effect"] == "Allow"]
    [rule] = settings["lifecycle"]
    assert rule["Status"] == "Enabled"
    assert rule["Filter"] in ({}, {"Prefix": ""})
    assert rule["NoncurrentVersionExpiration"] == {"NoncurrentDays": 90}
    assert rule["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 7}
    assert "Expiration" not in rule, "current state files must never expire"
    assert settings["tags"] == TAGS


# --- a fresh bootstrap ---------------------------------------------------------------------


def test_fresh_bootstrap_creates_bucket_and_key_with_every_setting(aws: Aws, names: Names):
    result = run(aws, names)
    s3, kms = aws.client("s3"), aws.client("kms")

    key = key_settings(kms, names.key_alias)
    meta = key["meta"]
    assert result.key_arn == meta["Arn"]
    assert meta["KeyState"] == "Enabled"
    assert meta["KeyManager"] == "CUSTOMER"
    assert (meta["KeySpec"], meta["KeyUsage"]) == ("SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT")
    assert PROJECT in meta["Description"]
    assert key["rotation"] is True
    assert key["aliases"] == [names.key_alias]
    assert key["tags"] == TAGS
    # No custom key policy: KMS's default, which hands control to the account's IAM.
    [statement] = key["policy"]["Statement"]
    assert statement["Principal"] == {"AWS": f"arn:aws:iam::{DUMMY_ACCOUNT}:root"}

    assert s3.get_bucket_location(Bucket=names.bucket)["LocationConstraint"] == REGION
    assert_bucket_as_bootstrapped(bucket_settings(s3, names.bucket), names.bucket, meta["Arn"])

    assert result.backend == StateBackend(
        bucket=names.bucket, region=REGION, key_alias=names.key_alias
    )
    assert result.backend.backend_url == f"s3://{names.bucket}?region={REGION}"
    assert result.backend.secrets_provider == f"awskms://{names.key_alias}?region={REGION}"
    created = [line for line in result.lines if line.startswith("created")]
    assert len(created) == 3, result.lines  # key, alias, bucket
    assert not [line for line in result.lines if line.startswith("repaired")]


def test_us_east_1_bucket_is_created_without_location_constraint(aws: Aws, names: Names):
    result = run(aws, names, region="us-east-1")
    s3 = aws.client("s3", "us-east-1")
    assert s3.get_bucket_location(Bucket=names.bucket).get("LocationConstraint") is None
    assert result.backend.secrets_provider.endswith("?region=us-east-1")
    assert result.key_arn.startswith("arn:aws:kms:us-east-1:")


# --- running again -------------------------------------------------------------------------


def test_second_run_changes_nothing_and_keeps_the_key(aws: Aws, names: Names):
    s3, kms = aws.client("s3"), aws.client("kms")
    first = run(aws, names)
    before = bucket_settings(s3, names.bucket)
    keys_before = kms.list_keys()["Keys"]

    second = run(aws, names)

    assert second.changes == (), second.lines
    assert all(line.startswith("ok ") for line in second.lines)
    assert second.key_arn == first.key_arn
    assert second.backend == first.backend
    assert bucket_settings(s3, names.bucket) == before
    assert kms.list_keys()["Keys"] == keys_before
    assert key_settings(kms, names.key_alias)["aliases"] == [names.key_alias]


def _public_read_policy(s3: Any, bucket: str) -> None:
    s3.put_bucket_policy(
        Bucket=bucket,
        Policy=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": "*",
                        "Action": "s3:GetObject",
                        "Resource": f"arn:aws:s3:::{bucket}/*",
                    }
                ],
            }
        ),
    )


def _lifecycle_expiring_state(s3: Any, bucket: str) -> None:
    s3.put_bucket_lifecycle_configuration(
        Bucket=bucket,
        LifecycleConfiguration={
            "Rules": [{"ID": "x", "Status": "Enabled", "Filter": {}, "Expiration": {"Days": 1}}]
        },
    )


SABOTAGE: dict[str, tuple[Callable[[Any, str], object], str]] = {
    "versioning suspended": (
        lambda s3, b: s3.put_bucket_versioning(
            Bucket=b, VersioningConfiguration={"Status": "Suspended"}
        ),
        "versioning",
    ),
    "public access block deleted": (
        lambda s3, b: s3.delete_public_access_block(Bucket=b),
        "public access block",
    ),
    "public access block partly off": (
        lambda s3, b: s3.put_public_access_block(
            Bucket=b,
            PublicAccessBlockConfiguration={
                "BlockPublicAcls": True,
                "IgnorePublicAcls": True,
                "BlockPublicPolicy": False,
                "RestrictPublicBuckets": False,
            },
        ),
        "public access block",
    ),
    "encryption switched to SSE-S3": (
        lambda s3, b: s3.put_bucket_encryption(
            Bucket=b,
            ServerSideEncryptionConfiguration={
                "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
            },
        ),
        "default encryption",
    ),
    "ownership controls to ObjectWriter": (
        lambda s3, b: s3.put_bucket_ownership_controls(
            Bucket=b, OwnershipControls={"Rules": [{"ObjectOwnership": "ObjectWriter"}]}
        ),
        "object ownership",
    ),
    "policy replaced by a public read": (_public_read_policy, "bucket policy"),
    "policy deleted": (lambda s3, b: s3.delete_bucket_policy(Bucket=b), "bucket policy"),
    "lifecycle expiring current state": (_lifecycle_expiring_state, "lifecycle"),
    "lifecycle deleted": (lambda s3, b: s3.delete_bucket_lifecycle(Bucket=b), "lifecycle"),
    "tags deleted": (lambda s3, b: s3.delete_bucket_tagging(Bucket=b), "tags"),
}


@pytest.mark.parametrize("sabotage", SABOTAGE, ids=list(SABOTAGE))
def test_rerun_repairs_a_bucket_setting_turned_off(aws: Aws, names: Names, sabotage: str):
    s3 = aws.client("s3")
    first = run(aws, names)
    damage, setting = SABOTAGE[sabotage]
    damage(s3, names.bucket)

    repaired = run(aws, names)

    assert len(repaired.changes) == 1, repaired.lines
    assert repaired.changes[0].startswith(f"repaired {setting}"), repaired.lines
    assert "(was: " in repaired.changes[0]
    assert repaired.key_arn == first.key_arn
    assert_bucket_as_bootstrapped(bucket_settings(s3, names.bucket), names.bucket, first.key_arn)
    assert run(aws, names).changes == ()


def test_rerun_enables_key_rotation_turned_off(aws: Aws, names: Names):
    kms = aws.client("kms")
    first = run(aws, names)
    kms.disable_key_rotation(KeyId=first.key_arn)

    repaired = run(aws, names)

    assert repaired.changes == ("repaired KMS key rotation enabled (was: disabled)",)
    assert kms.get_key_rotation_status(KeyId=first.key_arn)["KeyRotationEnabled"] is True
    assert repaired.key_arn == first.key_arn


def test_rerun_keeps_tags_someone_else_added(aws: Aws, names: Names):
    s3 = aws.client("s3")
    run(aws, names)
    s3.put_bucket_tagging(
        Bucket=names.bucket, Tagging={"TagSet": [{"Key": "cost-center", "Value": "data"}]}
    )

    repaired = run(aws, names)

    assert len(repaired.changes) == 1 and repaired.changes[0].startswith("repaired tags")
    assert bucket_settings(s3, names.bucket)["tags"] == {**TAGS, "cost-center": "data"}


def test_existing_alias_on_a_usable_key_is_reused(aws: Aws, names: Names):
    kms = aws.client("kms")
    key = kms.create_key(Description="made by hand", KeyUsage="ENCRYPT_DECRYPT")["KeyMetadata"]
    kms.create_alias(AliasName=names.key_alias, TargetKeyId=key["KeyId"])

    result = run(aws, names)

    assert result.key_arn == key["Arn"]
    assert "repaired KMS key rotation enabled (was: disabled)" in result.lines
    assert kms.get_key_rotation_status(KeyId=key["KeyId"])["KeyRotationEnabled"] is True
    assert kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]["Description"] == "made by hand"
    encryption = bucket_settings(aws.client("s3"), names.bucket)["encryption"]
    assert encryption[0]["ApplyServerSideEncryptionByDefault"]["KMSMasterKeyID"] == key["Arn"]


# --- refusals ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spoil", "message"),
    [
        (
            lambda kms, key_id: kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7),
            "scheduled for deletion",
        ),
        (lambda kms, key_id: kms.disable_key(KeyId=key_id), "is disabled"),
    ],
    ids=["pending-deletion", "disabled"],
)
def test_alias_on_an_unusable_key_is_refused(
    aws: Aws, names: Names, spoil: Callable[[Any, str], object], message: str
):
    kms = aws.client("kms")
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    kms.create_alias(AliasName=names.key_alias, TargetKeyId=key_id)
    spoil(kms, key_id)
    keys_before = kms.list_keys()["Keys"]

    with pytest.raises(BootstrapError, match=message) as info:
        run(aws, names)

    assert names.key_alias in str(info.value) and key_id in str(info.value)
    assert "KEY_ALIAS=" in str(info.value)
    assert kms.list_keys()["Keys"] == keys_before
    assert error_code(lambda: aws.client("s3").head_bucket(Bucket=names.bucket)) == "404"


def test_alias_on_an_asymmetric_key_is_refused(aws: Aws, names: Names):
    kms = aws.client("kms")
    key_id = kms.create_key(KeySpec="RSA_2048", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
    kms.create_alias(AliasName=names.key_alias, TargetKeyId=key_id)

    with pytest.raises(BootstrapError, match="not a symmetric encryption key"):
        run(aws, names)


def test_bucket_in_another_region_is_refused(aws: Aws, names: Names):
    aws.client("s3", "us-west-2").create_bucket(
        Bucket=names.bucket, CreateBucketConfiguration={"LocationConstraint": "us-west-2"}
    )

    with pytest.raises(BootstrapError, match="already exists in us-west-2, not eu-west-1"):
        run(aws, names)

    assert error_code(lambda: aws.client("kms").describe_key(KeyId=names.key_alias)) == (
        "NotFoundException"
    )
    s3 = aws.client("s3", "us-west-2")
    assert error_code(lambda: s3.get_bucket_policy(Bucket=names.bucket)) == "NoSuchBucketPolicy"


def test_bucket_of_another_account_is_refused(
    aws: Aws, names: Names, monkeypatch: pytest.MonkeyPatch
):
    aws.client("s3", account="111111111111").create_bucket(
        Bucket=names.bucket, CreateBucketConfiguration={"LocationConstraint": REGION}
    )
    # moto shares buckets across its accounts unless told to behave like S3.
    monkeypatch.setenv("MOTO_S3_ALLOW_CROSSACCOUNT_ACCESS", "false")

    with pytest.raises(BootstrapError, match="taken by another AWS account") as info:
        run(aws, names)

    assert "BUCKET=" in str(info.value)
    assert error_code(lambda: aws.client("kms").describe_key(KeyId=names.key_alias)) == (
        "NotFoundException"
    )


def test_invalid_names_are_refused_together(aws: Aws):
    with pytest.raises(BootstrapError) as info:
        run(aws, Names(bucket="Not_A.Bucket", key_alias="pulumi-secrets"))
    message = str(info.value)
    assert "'Not_A.Bucket' is not valid" in message
    assert "'pulumi-secrets' must start with 'alias/'" in message


def test_clients_for_another_region_are_refused(aws: Aws, names: Names):
    with pytest.raises(BootstrapError, match="kms client is for region us-west-2"):
        bootstrap_state(
            aws.client("s3"),
            aws.client("kms", "us-west-2"),
            aws.client("sts"),
            bucket=names.bucket,
            region=REGION,
            key_alias=names.key_alias,
            tags=TAGS,
        )


# --- names ---------------------------------------------------------------------------------


def test_default_names_are_valid_and_unique_per_account_and_region():
    bucket, alias = default_names(PROJECT, DUMMY_ACCOUNT, "eu-west-1")
    assert bucket == f"airflow-platform-pulumi-state-{DUMMY_ACCOUNT}-eu-west-1"
    assert alias == "alias/airflow-platform-pulumi-secrets"
    assert default_names(PROJECT, "210987654321", "eu-west-1")[0] != bucket
    assert default_names(PROJECT, DUMMY_ACCOUNT, "us-east-1")[0] != bucket

    long_bucket, long_alias = default_names("A Very_Long.Project Name " * 4, DUMMY_ACCOUNT, REGION)
    assert len(long_bucket) <= 63
    assert long_bucket.endswith(f"-pulumi-state-{DUMMY_ACCOUNT}-{REGION}")
    backend = StateBackend(bucket=long_bucket, region=REGION, key_alias=long_alias)
    assert parse_backend_file(render_backend_file(backend)) == backend


def test_default_names_refuse_a_bad_account_or_region():
    with pytest.raises(BootstrapError, match="account id 'acct' is not 12 digits"):
        default_names(PROJECT, "acct", REGION)
    with pytest.raises(BootstrapError, match="not an AWS region"):
        default_names(PROJECT, DUMMY_ACCOUNT, "Europe")


# --- the backend file ----------------------------------------------------------------------

BACKEND = StateBackend(
    bucket="airflow-platform-pulumi-state-123456789012-eu-west-1",
    region="eu-west-1",
    key_alias="alias/airflow-platform-pulumi-secrets",
)


def test_backend_file_text_and_round_trip():
    text = render_backend_file(BACKEND)
    assert text == (
        "# Shared Pulumi state for the eks stacks, written by `make bootstrap`. Commit this file.\n"
        "backend_url: s3://airflow-platform-pulumi-state-123456789012-eu-west-1?region=eu-west-1\n"
        "secrets_provider: awskms://alias/airflow-platform-pulumi-secrets?region=eu-west-1\n"
        "region: eu-west-1\n"
        "bucket: airflow-platform-pulumi-state-123456789012-eu-west-1\n"
        "key_alias: alias/airflow-platform-pulumi-secrets\n"
    )
    assert yaml.safe_load(text) == {
        "backend_url": BACKEND.backend_url,
        "secrets_provider": BACKEND.secrets_provider,
        "region": BACKEND.region,
        "bucket": BACKEND.bucket,
        "key_alias": BACKEND.key_alias,
    }
    assert parse_backend_file(text) == BACKEND


@pytest.mark.parametrize("bucket", ["123", "0x1f", "yes", "null", "0b101"])
def test_backend_file_quotes_names_yaml_would_misread(bucket: str):
    backend = StateBackend(bucket=bucket, region="us-east-1", key_alias="alias/true")
    text = render_backend_file(backend)
    assert yaml.safe_load(text)["bucket"] == bucket
    assert yaml.safe_load(text)["key_alias"] == "alias/true"
    assert parse_backend_file(text) == backend


def test_parse_lists_every_problem_naming_the_file():
    text = (
        "backend_url: file:///home/me/.pulumi-state\n"
        "secrets_provider: awskms://alias/other?region=eu-west-1\n"
        "region: eu-west-1\n"
        "key_alias: pulumi-secrets\n"
        "bukket: typo\n"
    )
    with pytest.raises(BootstrapError) as info:
        parse_backend_file(text, source="deploy/state-backend.yaml")
    message = str(info.value)
    problems = [line for line in message.splitlines() if line.startswith("  - ")]
    assert message.startswith("deploy/state-backend.yaml ")
    assert "`bucket` is missing" in message
    assert "`bukket` is not a known key" in message
    assert "`backend_url`: 'file:///home/me/.pulumi-state' must be an s3:// URL, not file://" in (
        message
    )
    assert "`key_alias`: key alias 'pulumi-secrets' must start with 'alias/'" in message
    assert len(problems) == 4, message


def test_parse_checks_the_urls_agree_with_the_names():
    text = render_backend_file(BACKEND).replace(
        "secrets_provider: awskms://alias/", "secrets_provider: awskms://"
    )
    text = text.replace("?region=eu-west-1\nsecrets", "?region=us-east-1\nsecrets")
    with pytest.raises(BootstrapError) as info:
        parse_backend_file(text)
    message = str(info.value)
    assert "`backend_url`" in message and "'us-east-1'" in message
    assert "`secrets_provider`" in message and "must name a key alias" in message


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "must be a mapping"),
        ("- a\n- b\n", "must be a mapping"),
        ("bucket: [unclosed\n", "not valid YAML"),
    ],
    ids=["empty", "list", "broken-yaml"],
)
def test_parse_refuses_a_file_that_is_not_a_mapping(text: str, message: str):
    with pytest.raises(BootstrapError, match=message) as info:
        parse_backend_file(text, source="x.yaml")
    assert str(info.value).startswith("x.yaml ")


# --- the command line ----------------------------------------------------------------------


def test_main_end_to_end_twice(
    aws: Aws, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    monkeypatch.setenv("AWS_ENDPOINT_URL", aws.endpoint_url)
    monkeypatch.chdir(tmp_path)
    output = tmp_path / "deploy" / "state-backend.yaml"
    argv = ["--region", "us-west-1", "--output", str(output)]

    assert main(argv) == 0
    first_out = capsys.readouterr().out
    bucket, alias = default_names(PROJECT, DUMMY_ACCOUNT, "us-west-1")
    backend = parse_backend_file(output.read_text(), source=str(output))
    assert backend == StateBackend(bucket=bucket, region="us-west-1", key_alias=alias)
    assert f"created  bucket {bucket} in us-west-1" in first_out
    assert f"export PULUMI_BACKEND_URL='s3://{bucket}?region=us-west-1'" in first_out
    assert f"export PULUMI_SECRETS_PROVIDER='awskms://{alias}?region=us-west-1'" in first_out
    s3 = aws.client("s3", "us-west-1")
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    first_text = output.read_text()

    assert main(argv) == 0
    second_out = capsys.readouterr().out
    assert "created" not in second_out and "repaired" not in second_out, second_out
    assert output.read_text() == first_text


def test_main_reports_a_refusal_without_traceback(
    aws: Aws, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    monkeypatch.setenv("AWS_ENDPOINT_URL", aws.endpoint_url)
    output = tmp_path / "state-backend.yaml"

    code = main(["--region", REGION, "--key-alias", "secrets", "--output", str(output)])

    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith("error: ") and "must start with 'alias/'" in err
    assert "Traceback" not in err
    assert not output.exists()

    assert main(["--region", "Europe", "--output", str(output)]) == 1
    assert capsys.readouterr().err == (
        "error: region 'Europe' is not an AWS region name (like eu-west-1)\n"
    )


# --- GitHub Actions: OIDC provider and roles (IAM on moto) ----------------------------------

REPO = "acme/airflow-platform"
KEY_ARN = "arn:aws:kms:eu-west-1:123456789012:key/11111111-2222-3333-4444-555555555555"
ROLE_NAMES = {
    "AWS_PREVIEW_ROLE_ARN": f"{PROJECT}-github-preview",
    "AWS_INTEGRATION_ROLE_ARN": f"{PROJECT}-github-deploy-integration",
    "AWS_PRODUCTION_ROLE_ARN": f"{PROJECT}-github-deploy-production",
}
SUB = f"{GITHUB_OIDC_HOST}:sub"
AUD = f"{GITHUB_OIDC_HOST}:aud"


class Account:
    """A fresh moto account with AWS's managed policies, so each test starts from nothing."""

    def __init__(self, aws: Aws) -> None:
        self.id = str(random.randrange(10**11, 10**12))
        self.iam = aws.client("iam", account=self.id)
        self.sts = aws.client("sts", account=self.id)

    def run(self, repo: str = REPO, bucket: str = "test-state-gh") -> GitHubResult:
        return bootstrap_github(
            self.iam, self.sts, repo=repo, bucket=bucket, key_arn=KEY_ARN, tags=TAGS
        )

    def trust(self, name: str) -> dict[str, Any]:
        document: dict[str, Any] = self.iam.get_role(RoleName=name)["Role"][
            "AssumeRolePolicyDocument"
        ]
        return document

    def access(self, name: str) -> dict[str, Any]:
        document: dict[str, Any] = self.iam.get_role_policy(
            RoleName=name, PolicyName=STATE_POLICY_NAME
        )["PolicyDocument"]
        return document

    def managed(self, name: str) -> list[str]:
        attached = self.iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"]
        return sorted(p["PolicyArn"] for p in attached)


@pytest.fixture
def account(aws: Aws, monkeypatch: pytest.MonkeyPatch) -> Account:
    monkeypatch.setenv("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")
    return Account(aws)


def subjects(trust: dict[str, Any]) -> list[str]:
    (statement,) = trust["Statement"]
    value = statement["Condition"]["StringLike"][SUB]
    return [value] if isinstance(value, str) else list(value)


def test_github_bootstrap_creates_the_provider_and_three_roles(account: Account):
    result = account.run()

    provider_arn = f"arn:aws:iam::{account.id}:oidc-provider/{GITHUB_OIDC_HOST}"
    assert result.provider_arn == provider_arn
    provider = account.iam.get_open_id_connect_provider(OpenIDConnectProviderArn=provider_arn)
    assert provider["ClientIDList"] == [GITHUB_OIDC_AUDIENCE]
    assert {
        variable: arn.rsplit("/", 1)[1] for variable, arn in result.role_arns.items()
    } == ROLE_NAMES
    for arn in result.role_arns.values():
        assert arn.startswith(f"arn:aws:iam::{account.id}:role/")
    for name in ROLE_NAMES.values():
        (statement,) = account.trust(name)["Statement"]
        assert statement["Principal"] == {"Federated": provider_arn}
        assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
        assert statement["Condition"]["StringEquals"] == {AUD: "sts.amazonaws.com"}
        tags = {t["Key"]: t["Value"] for t in account.iam.get_role(RoleName=name)["Role"]["Tags"]}
        assert tags["managed-by"] == MANAGED_BY
    assert result.lines[0].startswith("created  OIDC provider")
    assert all(line.split()[0] in ("created", "set") for line in result.lines)


def test_each_role_trusts_only_its_own_subjects(account: Account):
    account.run()
    base = f"repo:{REPO}"
    assert subjects(account.trust(ROLE_NAMES["AWS_PREVIEW_ROLE_ARN"])) == [
        f"{base}:pull_request",
        f"{base}:ref:refs/heads/main",
        f"{base}:ref:refs/tags/*",
    ]
    assert subjects(account.trust(ROLE_NAMES["AWS_INTEGRATION_ROLE_ARN"])) == [
        f"{base}:ref:refs/heads/main"
    ]
    assert subjects(account.trust(ROLE_NAMES["AWS_PRODUCTION_ROLE_ARN"])) == [
        f"{base}:environment:production"
    ]
    deploy_subjects = subjects(account.trust(ROLE_NAMES["AWS_INTEGRATION_ROLE_ARN"])) + subjects(
        account.trust(ROLE_NAMES["AWS_PRODUCTION_ROLE_ARN"])
    )
    assert not any("pull_request" in s or "*" in s for s in deploy_subjects)


def test_rights_follow_the_purpose(account: Account):
    account.run()
    preview, integration, production = (
        ROLE_NAMES[v]
        for v in ("AWS_PREVIEW_ROLE_ARN", "AWS_INTEGRATION_ROLE_ARN", "AWS_PRODUCTION_ROLE_ARN")
    )
    assert account.managed(preview) == ["arn:aws:iam::aws:policy/ReadOnlyAccess"]
    assert account.managed(integration) == ["arn:aws:iam::aws:policy/AdministratorAccess"]
    assert account.managed(production) == ["arn:aws:iam::aws:policy/AdministratorAccess"]

    def statements(name: str) -> dict[str, dict[str, Any]]:
        return {st["Sid"]: st for st in account.access(name)["Statement"]}

    read_only = statements(preview)
    assert read_only["StateLocks"]["Resource"] == "arn:aws:s3:::test-state-gh/.pulumi/locks/*"
    assert "StateWrite" not in read_only
    assert read_only["SecretsKey"]["Resource"] == KEY_ARN
    assert "kms:Decrypt" in read_only["SecretsKey"]["Action"]
    for name in (integration, production):
        assert statements(name)["StateWrite"]["Resource"] == "arn:aws:s3:::test-state-gh/*"
    guard = statements(integration)["OtherStacksReadOnly"]
    assert guard["Effect"] == "Deny"
    assert guard["Resource"] == [f"arn:aws:s3:::test-state-gh/.pulumi/*/{PROJECT}/production*"]
    assert "OtherStacksReadOnly" not in statements(production)
    sessions = {
        name: account.iam.get_role(RoleName=name)["Role"]["MaxSessionDuration"]
        for name in (preview, integration, production)
    }
    assert sessions == {preview: 3600, integration: 7200, production: 7200}


def test_github_bootstrap_second_run_changes_nothing(account: Account):
    first = account.run()
    second = account.run()
    assert second.changes == ()
    assert second.role_arns == first.role_arns
    assert len(account.iam.list_open_id_connect_providers()["OpenIDConnectProviderList"]) == 1


def test_github_bootstrap_repairs_what_was_changed(account: Account):
    account.run()
    preview = ROLE_NAMES["AWS_PREVIEW_ROLE_ARN"]
    production = ROLE_NAMES["AWS_PRODUCTION_ROLE_ARN"]
    loose = account.trust(production)
    loose["Statement"][0]["Condition"]["StringLike"][SUB] = f"repo:{REPO}:*"
    account.iam.update_assume_role_policy(RoleName=production, PolicyDocument=json.dumps(loose))
    account.iam.attach_role_policy(
        RoleName=preview, PolicyArn="arn:aws:iam::aws:policy/AdministratorAccess"
    )
    account.iam.put_role_policy(
        RoleName=preview,
        PolicyName="extra",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
            }
        ),
    )
    account.iam.delete_role_policy(RoleName=production, PolicyName=STATE_POLICY_NAME)
    account.iam.update_role(RoleName=production, MaxSessionDuration=43200)

    repairs = account.run().changes

    assert subjects(account.trust(production)) == [f"repo:{REPO}:environment:production"]
    assert account.managed(preview) == ["arn:aws:iam::aws:policy/ReadOnlyAccess"]
    assert account.iam.list_role_policies(RoleName=preview)["PolicyNames"] == [STATE_POLICY_NAME]
    assert account.access(production)["Statement"]
    assert account.iam.get_role(RoleName=production)["Role"]["MaxSessionDuration"] == 7200
    assert len(repairs) == 5, repairs
    assert all(line.startswith("repaired") for line in repairs), repairs
    assert any(f"repo:{REPO}:*" in line for line in repairs), repairs
    assert account.run().changes == ()


class AddsAudience:
    """The IAM client, with AddClientIDToOpenIDConnectProvider recorded (moto lacks it)."""

    def __init__(self, iam: Any) -> None:
        self.iam = iam
        self.added: list[dict[str, str]] = []

    def add_client_id_to_open_id_connect_provider(self, **kwargs: str) -> None:
        self.added.append(kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.iam, name)


def test_an_existing_provider_is_kept_and_given_the_audience(account: Account):
    arn = account.iam.create_open_id_connect_provider(
        Url=f"https://{GITHUB_OIDC_HOST}",
        ClientIDList=["https://github.com/acme"],
        ThumbprintList=["f" * 40],
    )["OpenIDConnectProviderArn"]
    iam = AddsAudience(account.iam)

    result = bootstrap_github(
        iam, account.sts, repo=REPO, bucket="test-state-gh", key_arn=KEY_ARN, tags=TAGS
    )

    assert result.provider_arn == arn
    assert f"ok       OIDC provider {arn}" in result.lines
    assert iam.added == [{"OpenIDConnectProviderArn": arn, "ClientID": GITHUB_OIDC_AUDIENCE}]
    assert any(line.startswith("repaired OIDC provider audience") for line in result.changes)
    provider = account.iam.get_open_id_connect_provider(OpenIDConnectProviderArn=arn)
    assert provider["ThumbprintList"] == ["f" * 40]


def test_an_existing_provider_with_the_audience_is_left_alone(account: Account):
    account.iam.create_open_id_connect_provider(
        Url=f"https://{GITHUB_OIDC_HOST}",
        ClientIDList=[GITHUB_OIDC_AUDIENCE],
        ThumbprintList=["f" * 40],
    )
    lines = account.run().lines
    assert [line for line in lines if "OIDC provider" in line][1].startswith("ok ")


def test_a_role_of_someone_else_is_refused_before_anything_is_created(account: Account):
    name = ROLE_NAMES["AWS_PRODUCTION_ROLE_ARN"]
    account.iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps({"Statement": []}))

    with pytest.raises(BootstrapError, match=f"IAM role {name} exists but was not created"):
        account.run()

    assert account.iam.list_open_id_connect_providers()["OpenIDConnectProviderList"] == []
    roles = [r["RoleName"] for r in account.iam.list_roles()["Roles"]]
    assert roles == [name]


@pytest.mark.parametrize(
    "repo", ["acme", "acme/", "/x", "acme/x/y", "acme/x y", "https://github.com/acme/x", "a/.."]
)
def test_a_repository_that_is_not_owner_slash_name_is_refused(repo: str):
    with pytest.raises(BootstrapError, match="must be given as <owner>/<name>"):
        github_roles(PROJECT, repo)


def test_main_with_github_repo_prints_the_variables(
    aws: Aws,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
):
    import boto3

    monkeypatch.setenv("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")
    monkeypatch.setenv("AWS_ENDPOINT_URL", aws.endpoint_url)
    fresh = Account(aws).id
    session_client = boto3.session.Session.client

    def client_in_fresh_account(self: Any, service: str, *args: Any, **kwargs: Any) -> Any:
        client = session_client(self, service, *args, **kwargs)

        def as_account(request: Any, **_: Any) -> None:
            request.headers["x-moto-account-id"] = fresh

        client.meta.events.register(f"before-sign.{service}", as_account)
        return client

    monkeypatch.setattr(boto3.session.Session, "client", client_in_fresh_account)
    argv = ["--region", "us-east-2", "--output", str(tmp_path / "s.yaml"), "--github-repo", REPO]

    assert main(argv) == 0
    out = capsys.readouterr().out
    for variable, name in ROLE_NAMES.items():
        assert (
            f"gh variable set {variable} --repo {REPO}"
            f" --body 'arn:aws:iam::{fresh}:role/{name}'" in out
        )
    assert f"gh variable set AWS_REGION --repo {REPO} --body 'us-east-2'" in out

    assert main(argv) == 0
    again = capsys.readouterr().out
    assert "created" not in again and "repaired" not in again, again

    assert main([*argv[:-1], "acme"]) == 1
    assert "must be given as <owner>/<name>" in capsys.readouterr().err
