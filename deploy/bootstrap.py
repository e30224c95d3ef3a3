"""One-time bootstrap of the shared Pulumi state for the eks stacks.

The eks stacks keep their state in an S3 bucket (Pulumi's DIY backend, which locks every
stack update with lock files under `.pulumi/locks/`) and encrypt their secrets with a KMS
key (Pulumi's `awskms://` secrets provider), so nothing depends on one machine's files or
on a passphrase that can be lost.

`bootstrap_state` creates the bucket and the key, or verifies and repairs them when they
already exist: running it again is safe. It never deletes or recreates anything, and it
refuses, before creating anything, when the names cannot be used (bucket owned by another
account or in another region, alias on a disabled key or one pending deletion).

    python -m deploy.bootstrap --region eu-west-1 [--bucket NAME] [--key-alias alias/NAME]

writes `state-backend.yaml` (`render_backend_file`), which the rest of the project reads.
With `--github-repo OWNER/NAME` it also creates or verifies GitHub's OIDC provider and the
roles the workflows in `.github/workflows/` assume (`deploy/github_oidc.py`), and prints
the variables to set in the repository.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import yaml
from botocore.exceptions import BotoCoreError, ClientError

from components.iam import tls_only_bucket_policy
from components.settings import PROJECT

BACKEND_FILE = "state-backend.yaml"
PROJECT_DIR = Path(__file__).resolve().parents[1]
BACKEND_FILE_HEADER = (
    "# Shared Pulumi state for the eks stacks, written by `make bootstrap`. Commit this file."
)
BACKEND_KEYS = ("backend_url", "secrets_provider", "region", "bucket", "key_alias")

NONCURRENT_VERSION_DAYS = 90
"""Superseded state files stay recoverable this long."""
ABORT_MULTIPART_DAYS = 7
LIFECYCLE_RULE_ID = "pulumi-state-history"
PUBLIC_ACCESS_BLOCK = {
    "BlockPublicAcls": True,
    "IgnorePublicAcls": True,
    "BlockPublicPolicy": True,
    "RestrictPublicBuckets": True,
}
OBJECT_OWNERSHIP = "BucketOwnerEnforced"
MANAGED_BY = "deploy/bootstrap"
"""Tag value on what the bootstrap creates (state bucket, key, CI roles)."""

_REGION_RE = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d{1,2}$")
_ACCOUNT_RE = re.compile(r"^\d{12}$")
_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")
_ALIAS_RE = re.compile(r"^alias/[A-Za-z0-9/_-]{1,250}$")
_RESERVED_BUCKET_PREFIXES = ("xn--", "sthree-", "amzn-s3-demo-")
_RESERVED_BUCKET_SUFFIXES = ("-s3alias", "--ol-s3", "--x-s3", "--table-s3")


class BootstrapError(Exception):
    """A problem the user has to resolve; the message says what is wrong and what to do."""


@dataclass(frozen=True)
class StateBackend:
    """Where the eks stacks keep their state and which key encrypts their secrets.

    Exactly what `state-backend.yaml` records; the key's ARN is not part of it (the alias
    is what Pulumi is given, so the key behind it can be found from any machine).
    """

    bucket: str
    region: str
    key_alias: str

    @property
    def backend_url(self) -> str:
        """For `pulumi login` / PULUMI_BACKEND_URL."""
        return f"s3://{self.bucket}?region={self.region}"

    @property
    def secrets_provider(self) -> str:
        """For `pulumi stack init --secrets-provider` / PULUMI_SECRETS_PROVIDER."""
        return f"awskms://{self.key_alias}?region={self.region}"


@dataclass(frozen=True)
class BootstrapResult:
    """What `bootstrap_state` left in place, and one line per thing it created, set or checked.

    Each line starts with `created`, `set` (a setting of something just created),
    `repaired` (an existing setting that was wrong) or `ok` (verified, untouched).
    """

    backend: StateBackend
    key_arn: str
    lines: tuple[str, ...]

    @property
    def changes(self) -> tuple[str, ...]:
        """The lines that record a change: empty when the run found everything in place."""
        return tuple(line for line in self.lines if not line.startswith("ok "))


# --- names -------------------------------------------------------------------------------


def _bucket_problem(name: str) -> str | None:
    if not _BUCKET_RE.match(name):
        return (
            f"bucket name {name!r} is not valid: 3-63 characters, lowercase letters, digits"
            " and hyphens, starting and ending with a letter or digit (no dots: they break"
            " HTTPS on virtual-hosted addresses)"
        )
    if name.startswith(_RESERVED_BUCKET_PREFIXES) or name.endswith(_RESERVED_BUCKET_SUFFIXES):
        return f"bucket name {name!r} uses a prefix or suffix S3 reserves"
    return None


def _region_problem(region: str) -> str | None:
    if not _REGION_RE.match(region):
        return f"region {region!r} is not an AWS region name (like eu-west-1)"
    return None


def _alias_problem(alias: str) -> str | None:
    if not alias.startswith("alias/"):
        return f"key alias {alias!r} must start with 'alias/' (like alias/{alias or 'name'})"
    if not _ALIAS_RE.match(alias):
        return (
            f"key alias {alias!r} is not valid: after 'alias/', 1-250 letters, digits,"
            " '/', '_' or '-'"
        )
    if alias.startswith("alias/aws/"):
        return f"key alias {alias!r} is reserved for AWS managed keys"
    return None


def _slug(text: str) -> str:
    return re.sub(r"-{2,}", "-", re.sub(r"[^a-z0-9]+", "-", text.lower())).strip("-")


def default_names(project: str, account_id: str, region: str) -> tuple[str, str]:
    """The default bucket name and key alias for `project` in one account and region.

    Bucket names are global across every AWS account, so the account id and the region are
    part of it; the project part is shortened if needed to stay within 63 characters.
    Aliases are per account and region, so the project name is enough.
    """
    problems = [p for p in (_region_problem(region),) if p]
    if not _ACCOUNT_RE.match(account_id):
        problems.append(f"account id {account_id!r} is not 12 digits")
    slug = _slug(project)
    if not slug:
        problems.append(f"project name {project!r} has no letters or digits")
    if problems:
        raise BootstrapError("; ".join(problems))
    suffix = f"-pulumi-state-{account_id}-{region}"
    bucket = f"{slug[: 63 - len(suffix)].strip('-')}{suffix}"
    return bucket, f"alias/{slug}-pulumi-secrets"


# --- the backend file --------------------------------------------------------------------


def _yaml_scalar(value: str) -> str:
    """`value` as a YAML scalar: plain when YAML reads it back as this string, else quoted."""
    try:
        plain_ok = yaml.safe_load(value) == value
    except yaml.YAMLError:
        plain_ok = False
    return value if plain_ok and value.strip() == value else json.dumps(value)


def render_backend_file(backend: StateBackend) -> str:
    """The text of `state-backend.yaml` for `backend`."""
    values = {
        "backend_url": backend.backend_url,
        "secrets_provider": backend.secrets_provider,
        "region": backend.region,
        "bucket": backend.bucket,
        "key_alias": backend.key_alias,
    }
    body = "".join(f"{key}: {_yaml_scalar(values[key])}\n" for key in BACKEND_KEYS)
    return f"{BACKEND_FILE_HEADER}\n{body}"


def _url_problems(
    key: str, url: str, scheme: str, target: tuple[str, str | None], region: str | None
) -> list[str]:
    """Problems with `url`, expected to be `<scheme>://<target>?region=<region>`.

    `target` is the key naming what the URL should point at and its value (None if unknown).
    """
    parts = urlsplit(url)
    if parts.scheme != scheme:
        got = f"{parts.scheme}://" if parts.scheme else "no scheme"
        return [f"`{key}`: {url!r} must be an {scheme}:// URL, not {got}"]
    problems = []
    url_target = f"{parts.netloc}{parts.path}"
    if not url_target:
        problems.append(f"`{key}`: {url!r} names nothing after {scheme}://")
    elif target[1] is not None and url_target != target[1]:
        problems.append(
            f"`{key}`: {url!r} names {url_target!r}, but `{target[0]}` is {target[1]!r}"
        )
    url_regions = parse_qs(parts.query).get("region", [])
    if len(url_regions) != 1:
        problems.append(f"`{key}`: {url!r} must end with ?region=<region>")
    elif region is not None and url_regions[0] != region:
        problems.append(
            f"`{key}`: {url!r} is for region {url_regions[0]!r}, but `region` is {region!r}"
        )
    return problems


def parse_backend_file(text: str, source: str = BACKEND_FILE) -> StateBackend:
    """Read `state-backend.yaml`; every problem in it is reported in one BootstrapError."""
    try:
        data = yaml.load(text, Loader=yaml.BaseLoader)  # noqa: S506 - BaseLoader builds only str/list/dict
    except yaml.YAMLError as exc:
        raise BootstrapError(f"{source} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise BootstrapError(
            f"{source} must be a mapping with the keys {', '.join(BACKEND_KEYS)};"
            " run `make bootstrap` to write it"
        )
    problems: list[str] = []
    values: dict[str, str] = {}
    for key in BACKEND_KEYS:
        value = data.get(key)
        if value is None:
            problems.append(f"`{key}` is missing")
        elif not isinstance(value, str) or not value.strip():
            problems.append(f"`{key}` must be a non-empty string")
        else:
            values[key] = value.strip()
    problems += [f"`{key}` is not a known key" for key in data if key not in BACKEND_KEYS]

    checks: list[tuple[str, Callable[[str], str | None]]] = [
        ("region", _region_problem),
        ("bucket", _bucket_problem),
        ("key_alias", _alias_problem),
    ]
    valid: dict[str, str] = {}
    for key, check in checks:
        if key in values:
            problem = check(values[key])
            if problem:
                problems.append(f"`{key}`: {problem}")
            else:
                valid[key] = values[key]
    region = valid.get("region")
    if "backend_url" in values:
        problems += _url_problems(
            "backend_url", values["backend_url"], "s3", ("bucket", valid.get("bucket")), region
        )
    if "secrets_provider" in values:
        problems += _url_problems(
            "secrets_provider",
            values["secrets_provider"],
            "awskms",
            ("key_alias", valid.get("key_alias")),
            region,
        )
        target = "".join(urlsplit(values["secrets_provider"])[1:3])
        if values["secrets_provider"].startswith("awskms://") and not target.startswith("alias/"):
            problems.append(
                f"`secrets_provider`: {values['secrets_provider']!r} must name a key alias"
                " (awskms://alias/<name>?region=<region>)"
            )

    if problems:
        listed = "\n".join(f"  - {problem}" for problem in problems)
        raise BootstrapError(
            f"{source} is not a valid state-backend file:\n{listed}\n"
            "Fix it, or run `make bootstrap` again to rewrite it."
        )
    return StateBackend(
        bucket=values["bucket"], region=values["region"], key_alias=values["key_alias"]
    )


# --- AWS ---------------------------------------------------------------------------------


def _error(exc: ClientError) -> tuple[str, int]:
    response: Mapping[str, Any] = exc.response
    code = str(response.get("Error", {}).get("Code", ""))
    status = int(response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
    return code, status


class _Report:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def add(self, action: str, what: str) -> None:
        self.lines.append(f"{action:<8} {what}")

    def setting(
        self,
        what: str,
        current: object,
        desired: object,
        apply: Callable[[], None],
        *,
        fresh: bool,
        was: str,
    ) -> None:
        """Apply `desired` unless `current` already equals it, and record which it was."""
        if current == desired:
            self.add("ok", what)
            return
        apply()
        if fresh:
            self.add("set", what)
        else:
            self.add("repaired", f"{what} (was: {was})")


def _bucket_region(s3: Any, bucket: str, region: str, account: str) -> str | None:
    """The region of `bucket` if this account owns it, None if there is no such bucket."""
    taken = BootstrapError(
        f"the bucket name {bucket!r} is taken by another AWS account (or these credentials"
        f" of account {account} may not read it). Bucket names are global: pick another one"
        " with BUCKET=<name> (--bucket)."
    )
    try:
        response = s3.head_bucket(Bucket=bucket, ExpectedBucketOwner=account)
    except ClientError as exc:
        code, status = _error(exc)
        if status == 404 or code in ("404", "NoSuchBucket", "NotFound"):
            return None
        if status == 403:
            raise taken from None
        headers = exc.response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
        if "x-amz-bucket-region" in headers:
            return str(headers["x-amz-bucket-region"])
        raise
    headers = response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
    found = response.get("BucketRegion") or headers.get("x-amz-bucket-region")
    if not found:
        location = s3.get_bucket_location(Bucket=bucket, ExpectedBucketOwner=account)
        found = {None: "us-east-1", "": "us-east-1", "EU": "eu-west-1"}.get(
            location.get("LocationConstraint"), location.get("LocationConstraint")
        )
    return str(found)


def _existing_key(kms: Any, key_alias: str) -> dict[str, Any] | None:
    """The metadata of the key `key_alias` points at, None if there is no such alias.

    Refuses a key Pulumi cannot use: not Enabled, AWS managed, or not a symmetric
    encryption key.
    """
    try:
        meta: dict[str, Any] = kms.describe_key(KeyId=key_alias)["KeyMetadata"]
    except ClientError as exc:
        if _error(exc)[0] == "NotFoundException":
            return None
        raise
    key_id, state = meta["KeyId"], meta.get("KeyState")
    other = "or choose another alias with KEY_ALIAS=alias/<name> (--key-alias)"
    if state == "PendingDeletion":
        raise BootstrapError(
            f"{key_alias} points at KMS key {key_id}, which is scheduled for deletion. Cancel it"
            f" (aws kms cancel-key-deletion --key-id {key_id}, then aws kms enable-key --key-id"
            f" {key_id}) if the stacks' secrets were encrypted with it, {other}."
        )
    if state == "Disabled":
        raise BootstrapError(
            f"{key_alias} points at KMS key {key_id}, which is disabled. Enable it"
            f" (aws kms enable-key --key-id {key_id}), {other}."
        )
    if state != "Enabled":
        raise BootstrapError(
            f"{key_alias} points at KMS key {key_id} in state {state}, not Enabled; {other}."
        )
    if meta.get("KeyManager") != "CUSTOMER":
        raise BootstrapError(f"{key_alias} points at an AWS managed key; {other}.")
    if meta.get("KeySpec") != "SYMMETRIC_DEFAULT" or meta.get("KeyUsage") != "ENCRYPT_DECRYPT":
        raise BootstrapError(
            f"{key_alias} points at KMS key {key_id}, which is not a symmetric encryption key"
            f" ({meta.get('KeySpec')}, {meta.get('KeyUsage')}); {other}."
        )
    return meta


def _ensure_key(
    kms: Any,
    report: _Report,
    existing: dict[str, Any] | None,
    key_alias: str,
    tags: Mapping[str, str],
    project: str,
) -> str:
    """The ARN of the key behind `key_alias`, created if needed, with rotation and tags.

    The key gets KMS's default key policy, not a custom one: that policy lets the account's
    IAM policies control who may use and manage the key, so access is granted in IAM like
    everything else, and nobody can lock the account out of its own key.
    """
    if existing is None:
        meta = kms.create_key(
            Description=f"Pulumi secrets of the {project} eks stacks (written by deploy/bootstrap)",
            KeyUsage="ENCRYPT_DECRYPT",
            KeySpec="SYMMETRIC_DEFAULT",
            Tags=[{"TagKey": k, "TagValue": v} for k, v in sorted(tags.items())],
        )["KeyMetadata"]
        key_id, key_arn = str(meta["KeyId"]), str(meta["Arn"])
        report.add("created", f"KMS key {key_arn}")
        kms.enable_key_rotation(KeyId=key_id)
        report.add("set", "KMS key rotation enabled")
        try:
            kms.create_alias(AliasName=key_alias, TargetKeyId=key_id)
        except ClientError as exc:
            if _error(exc)[0] != "AlreadyExistsException":
                raise
            raise BootstrapError(
                f"{key_alias} was created by someone else while this ran. Key {key_id}, just"
                " created, is unused: schedule its deletion (aws kms schedule-key-deletion"
                f" --key-id {key_id}) and run the bootstrap again."
            ) from None
        report.add("created", f"alias {key_alias} -> {key_id}")
        return key_arn

    key_id, key_arn = str(existing["KeyId"]), str(existing["Arn"])
    report.add("ok", f"alias {key_alias} -> KMS key {key_arn} (Enabled)")
    rotation = bool(kms.get_key_rotation_status(KeyId=key_id)["KeyRotationEnabled"])
    report.setting(
        "KMS key rotation enabled",
        rotation,
        True,
        lambda: kms.enable_key_rotation(KeyId=key_id),
        fresh=False,
        was="disabled",
    )
    current_tags: dict[str, str] = {}
    for page in kms.get_paginator("list_resource_tags").paginate(KeyId=key_id):
        current_tags.update({t["TagKey"]: t["TagValue"] for t in page.get("Tags", [])})
    missing = {k: v for k, v in tags.items() if current_tags.get(k) != v}
    report.setting(
        f"KMS key tags: {', '.join(f'{k}={v}' for k, v in sorted(tags.items()))}",
        missing,
        {},
        lambda: kms.tag_resource(
            KeyId=key_id,
            Tags=[{"TagKey": k, "TagValue": v} for k, v in sorted(missing.items())],
        ),
        fresh=False,
        was=f"missing or different: {', '.join(sorted(missing))}",
    )
    return key_arn


def _shown(value: object) -> str:
    return "not set" if value is None else json.dumps(value, default=str)


def _read(call: Callable[[], Any], missing_code: str) -> Any:
    """The response of `call`, or None when it fails with `missing_code`."""
    try:
        return call()
    except ClientError as exc:
        if _error(exc)[0] == missing_code:
            return None
        raise


def lifecycle_rules() -> list[dict[str, Any]]:
    """Old state versions kept 90 days; abandoned multipart uploads dropped after 7."""
    return [
        {
            "ID": LIFECYCLE_RULE_ID,
            "Status": "Enabled",
            "Filter": {},
            "NoncurrentVersionExpiration": {"NoncurrentDays": NONCURRENT_VERSION_DAYS},
            "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": ABORT_MULTIPART_DAYS},
        }
    ]


def _normal_rule(rule: Mapping[str, Any]) -> dict[str, Any]:
    """A lifecycle rule with an empty filter spelled one way (S3 may return {"Prefix": ""})."""
    normal = {k: v for k, v in rule.items() if k not in ("Filter", "Prefix")}
    prefix = rule.get("Prefix") or rule.get("Filter", {}).get("Prefix") or ""
    other_filter = {k: v for k, v in rule.get("Filter", {}).items() if k != "Prefix"}
    normal["Filter"] = {**other_filter, **({"Prefix": prefix} if prefix else {})}
    return normal


def _sse_summary(rules: list[dict[str, Any]] | None) -> list[tuple[str, str, bool]] | None:
    """The parts of default-encryption rules this bootstrap sets (S3 may add other fields)."""
    if rules is None:
        return None
    return [
        (
            str(rule.get("ApplyServerSideEncryptionByDefault", {}).get("SSEAlgorithm")),
            str(rule.get("ApplyServerSideEncryptionByDefault", {}).get("KMSMasterKeyID")),
            bool(rule.get("BucketKeyEnabled", False)),
        )
        for rule in rules
    ]


def _configure_bucket(
    s3: Any,
    report: _Report,
    *,
    bucket: str,
    account: str,
    key_arn: str,
    tags: Mapping[str, str],
    fresh: bool,
) -> None:
    """Verify every setting of the state bucket, applying the ones that differ.

    The bucket holds nothing but Pulumi state, so its policy and lifecycle configuration
    belong to this bootstrap: when they differ they are replaced, and the line reporting the
    repair shows what was there.
    """
    b = {"Bucket": bucket, "ExpectedBucketOwner": account}

    pab = _read(lambda: s3.get_public_access_block(**b), "NoSuchPublicAccessBlockConfiguration")
    current_pab = pab["PublicAccessBlockConfiguration"] if pab else None
    report.setting(
        "public access block: all four flags on",
        current_pab,
        PUBLIC_ACCESS_BLOCK,
        lambda: s3.put_public_access_block(**b, PublicAccessBlockConfiguration=PUBLIC_ACCESS_BLOCK),
        fresh=fresh,
        was=_shown(current_pab),
    )

    own = _read(lambda: s3.get_bucket_ownership_controls(**b), "OwnershipControlsNotFoundError")
    rules = own["OwnershipControls"]["Rules"] if own else []
    current_own = [r.get("ObjectOwnership") for r in rules]
    report.setting(
        f"object ownership: {OBJECT_OWNERSHIP} (ACLs disabled)",
        current_own,
        [OBJECT_OWNERSHIP],
        lambda: s3.put_bucket_ownership_controls(
            **b, OwnershipControls={"Rules": [{"ObjectOwnership": OBJECT_OWNERSHIP}]}
        ),
        fresh=fresh,
        was=", ".join(str(o) for o in current_own) or "not set",
    )

    desired_sse = [
        {
            "ApplyServerSideEncryptionByDefault": {
                "SSEAlgorithm": "aws:kms",
                "KMSMasterKeyID": key_arn,
            },
            "BucketKeyEnabled": True,
        }
    ]
    sse = _read(
        lambda: s3.get_bucket_encryption(**b), "ServerSideEncryptionConfigurationNotFoundError"
    )
    current_sse = sse["ServerSideEncryptionConfiguration"]["Rules"] if sse else None
    report.setting(
        f"default encryption: SSE-KMS with {key_arn}, bucket key on",
        _sse_summary(current_sse),
        _sse_summary(desired_sse),
        lambda: s3.put_bucket_encryption(
            **b, ServerSideEncryptionConfiguration={"Rules": desired_sse}
        ),
        fresh=fresh,
        was=_shown(current_sse),
    )

    versioning = s3.get_bucket_versioning(**b).get("Status", "never enabled")
    report.setting(
        "versioning: Enabled",
        versioning,
        "Enabled",
        lambda: s3.put_bucket_versioning(**b, VersioningConfiguration={"Status": "Enabled"}),
        fresh=fresh,
        was=str(versioning),
    )

    lifecycle = _read(
        lambda: s3.get_bucket_lifecycle_configuration(**b), "NoSuchLifecycleConfiguration"
    )
    current_rules = lifecycle["Rules"] if lifecycle else None
    desired_rules = lifecycle_rules()
    report.setting(
        f"lifecycle: noncurrent versions expire after {NONCURRENT_VERSION_DAYS} days,"
        f" incomplete uploads aborted after {ABORT_MULTIPART_DAYS}",
        [_normal_rule(r) for r in current_rules] if current_rules is not None else None,
        [_normal_rule(r) for r in desired_rules],
        lambda: s3.put_bucket_lifecycle_configuration(
            **b, LifecycleConfiguration={"Rules": desired_rules}
        ),
        fresh=fresh,
        was=_shown(current_rules),
    )

    policy = _read(lambda: s3.get_bucket_policy(**b), "NoSuchBucketPolicy")
    current_policy = json.loads(policy["Policy"]) if policy else None
    desired_policy = tls_only_bucket_policy(bucket)
    report.setting(
        "bucket policy: deny requests without TLS, allow nothing",
        current_policy,
        desired_policy,
        lambda: s3.put_bucket_policy(**b, Policy=json.dumps(desired_policy)),
        fresh=fresh,
        was=_shown(current_policy),
    )

    tagging = _read(lambda: s3.get_bucket_tagging(**b), "NoSuchTagSet")
    current_tags = {t["Key"]: t["Value"] for t in (tagging["TagSet"] if tagging else [])}
    wrong = sorted(k for k, v in tags.items() if current_tags.get(k) != v)
    merged = {**current_tags, **tags}
    report.setting(
        f"tags: {', '.join(f'{k}={v}' for k, v in sorted(tags.items()))}",
        wrong,
        [],
        lambda: s3.put_bucket_tagging(
            **b, Tagging={"TagSet": [{"Key": k, "Value": v} for k, v in sorted(merged.items())]}
        ),
        fresh=fresh,
        was=f"missing or different: {', '.join(wrong)}",
    )


def bootstrap_state(
    s3: Any,
    kms: Any,
    sts: Any,
    *,
    bucket: str,
    region: str,
    key_alias: str,
    tags: Mapping[str, str],
    project: str = PROJECT,
) -> BootstrapResult:
    """Create, or verify and repair, the state bucket and the secrets key.

    `s3`, `kms` and `sts` are boto3 clients for `region`. Everything that would make the
    run refuse is checked before anything is created.
    """
    problems = [
        p
        for p in (_bucket_problem(bucket), _region_problem(region), _alias_problem(key_alias))
        if p
    ]
    for service, client in (("s3", s3), ("kms", kms)):
        client_region = client.meta.region_name
        if client_region != region:
            problems.append(f"the {service} client is for region {client_region}, not {region}")
    if problems:
        raise BootstrapError("; ".join(problems))

    account = str(sts.get_caller_identity()["Account"])
    found_region = _bucket_region(s3, bucket, region, account)
    if found_region is not None and found_region != region:
        raise BootstrapError(
            f"bucket {bucket!r} already exists in {found_region}, not {region}. Run the"
            f" bootstrap with REGION={found_region} (--region) to keep using it, or pick"
            " another name with BUCKET=<name> (--bucket)."
        )
    existing_key = _existing_key(kms, key_alias)

    report = _Report()
    key_arn = _ensure_key(kms, report, existing_key, key_alias, tags, project)

    fresh = found_region is None
    if fresh:
        config = {} if region == "us-east-1" else {"LocationConstraint": region}
        try:
            s3.create_bucket(
                Bucket=bucket,
                ObjectOwnership=OBJECT_OWNERSHIP,
                **({"CreateBucketConfiguration": config} if config else {}),
            )
        except ClientError as exc:
            code = _error(exc)[0]
            if code == "BucketAlreadyExists":
                raise BootstrapError(
                    f"the bucket name {bucket!r} was just taken by another AWS account. Pick"
                    " another one with BUCKET=<name> (--bucket)."
                ) from None
            if code != "BucketAlreadyOwnedByYou":
                raise
            fresh = False
        else:
            s3.get_waiter("bucket_exists").wait(Bucket=bucket, ExpectedBucketOwner=account)
            report.add("created", f"bucket {bucket} in {region}")
    if not fresh:
        report.add("ok", f"bucket {bucket} in {region}, owned by account {account}")
    _configure_bucket(
        s3, report, bucket=bucket, account=account, key_arn=key_arn, tags=tags, fresh=fresh
    )
    backend = StateBackend(bucket=bucket, region=region, key_alias=key_alias)
    return BootstrapResult(backend=backend, key_arn=key_arn, lines=tuple(report.lines))


# --- command line ------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    from deploy.github_oidc import bootstrap_github, github_repo_problem

    parser = argparse.ArgumentParser(
        prog="python -m deploy.bootstrap",
        description="Create or verify the S3 bucket and KMS key that hold the eks stacks' state.",
    )
    parser.add_argument(
        "--region", required=True, help="AWS region of the bucket and the key (REGION=)"
    )
    parser.add_argument(
        "--bucket", help="state bucket (BUCKET=; default: derived from account and region)"
    )
    parser.add_argument(
        "--key-alias", help="KMS key alias, alias/<name> (KEY_ALIAS=; default: per project)"
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=PROJECT_DIR / BACKEND_FILE,
        help=f"file to write (default: {BACKEND_FILE} at the project root)",
    )
    parser.add_argument(
        "--github-repo",
        metavar="OWNER/NAME",
        help="also create or verify GitHub's OIDC provider and the CI roles for this repository",
    )
    args = parser.parse_args(argv)
    problem = _region_problem(args.region) or (
        github_repo_problem(args.github_repo) if args.github_repo else None
    )
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 1

    try:
        import boto3

        session = boto3.session.Session(region_name=args.region)
        s3, kms, sts = (session.client(name) for name in ("s3", "kms", "sts"))
        account = str(sts.get_caller_identity()["Account"])
        default_bucket, default_alias = default_names(PROJECT, account, args.region)
        result = bootstrap_state(
            s3,
            kms,
            sts,
            bucket=args.bucket or default_bucket,
            region=args.region,
            key_alias=args.key_alias or default_alias,
            tags={"project": PROJECT, "purpose": "pulumi-state", "managed-by": MANAGED_BY},
        )
        github = None
        if args.github_repo:
            github = bootstrap_github(
                session.client("iam"),
                sts,
                repo=args.github_repo,
                bucket=result.backend.bucket,
                key_arn=result.key_arn,
                tags={"project": PROJECT, "purpose": "github-actions"},
            )
    except BootstrapError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except (BotoCoreError, ClientError) as exc:
        print(f"error: AWS refused or could not be reached: {exc}", file=sys.stderr)
        return 1

    for line in result.lines:
        print(line)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(render_backend_file(result.backend))
    backend = result.backend
    print(f"wrote {args.output}")
    print(f"export PULUMI_BACKEND_URL='{backend.backend_url}'")
    print(f"export PULUMI_SECRETS_PROVIDER='{backend.secrets_provider}'")
    if github is not None:
        for line in github.lines:
            print(line)
        print(f"GitHub Actions variables of {args.github_repo} (README: Deploying from CI):")
        for name, value in (("AWS_REGION", args.region), *sorted(github.role_arns.items())):
            print(f"  gh variable set {name} --repo {args.github_repo} --body '{value}'")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
