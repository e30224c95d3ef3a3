"""GitHub Actions' way into AWS: the OIDC provider and one role per purpose (bootstrap).

The workflows in `.github/workflows/` assume these roles with GitHub's OIDC tokens, so no
static AWS keys exist anywhere. `make bootstrap ... GITHUB_REPO=owner/name` runs this
beside the state bootstrap (`deploy/bootstrap.py`); running it again is safe.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from components.settings import PROJECT
from deploy.bootstrap import (
    MANAGED_BY,
    BootstrapError,
    _bucket_problem,
    _read,
    _Report,
    _shown,
    _slug,
)

# --- GitHub Actions: OIDC provider and deploy roles --------------------------------------

GITHUB_OIDC_HOST = "token.actions.githubusercontent.com"
GITHUB_OIDC_URL = f"https://{GITHUB_OIDC_HOST}"
GITHUB_OIDC_AUDIENCE = "sts.amazonaws.com"
GITHUB_OIDC_THUMBPRINTS = (
    "6938fd4d98bab03faadb97b34396831e3780aea1",
    "1c58a3a8518e8759bf075b76b750d4f2df264fcd",
)
"""GitHub's published thumbprints. IAM trusts GitHub's certificate through its own CA
library and ignores them, but older API versions require a list."""
TRUST_STATEMENT_SID = "GitHubActionsOidc"
STATE_POLICY_NAME = "pulumi-state-access"
_GITHUB_REPO_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})/[A-Za-z0-9._-]{1,100}$")


@dataclass(frozen=True)
class GitHubRole:
    """One IAM role GitHub Actions assumes, for one purpose.

    `subjects` are the values of the token's `sub` claim the role trusts (GitHub's default
    format: `repo:<owner>/<name>:pull_request`, `...:ref:refs/heads/<branch>`,
    `...:ref:refs/tags/<tag>`, `...:environment:<name>`); `*` matches within one claim.
    """

    purpose: str
    name: str
    variable: str
    """The repository (or environment) variable the workflows read the role ARN from."""
    subjects: tuple[str, ...]
    managed_policy: str
    """The AWS managed policy attached, by name (`ReadOnlyAccess`, `AdministratorAccess`)."""
    state_write: bool
    max_session_seconds: int
    denied_stacks: tuple[str, ...] = ()
    """Stacks whose state this role may not write (a guard, not a boundary: see README)."""

    @property
    def description(self) -> str:
        return f"GitHub Actions {self.purpose} of {', '.join(self.subjects)} ({MANAGED_BY})"


@dataclass(frozen=True)
class GitHubResult:
    """What `bootstrap_github` left in place; `lines` as in BootstrapResult."""

    provider_arn: str
    role_arns: Mapping[str, str]
    """Variable name -> role ARN."""
    lines: tuple[str, ...]

    @property
    def changes(self) -> tuple[str, ...]:
        return tuple(line for line in self.lines if not line.startswith("ok "))


def github_repo_problem(repo: str) -> str | None:
    if not _GITHUB_REPO_RE.match(repo) or ".." in repo:
        return f"GitHub repository {repo!r} must be given as <owner>/<name>"
    return None


def github_roles(project: str, repo: str) -> tuple[GitHubRole, ...]:
    """The three roles, least privilege first.

    - preview: pull requests of branches in this repository (GitHub issues no OIDC token to
      workflows of forks' pull requests), the drift check on main and the production plan
      of a tag. Read-only in AWS, reads the state, writes only lock files.
    - deploy-integration: pushes to main only. Denied writing production's state.
    - deploy-production: jobs in the `production` environment only, whose required reviewers
      gate every run, whatever branch or tag started it.
    """
    problem = github_repo_problem(repo)
    if problem:
        raise BootstrapError(problem)
    slug = _slug(project)
    base = f"repo:{repo}"
    return (
        GitHubRole(
            purpose="preview",
            name=f"{slug}-github-preview",
            variable="AWS_PREVIEW_ROLE_ARN",
            subjects=(
                f"{base}:pull_request",
                f"{base}:ref:refs/heads/main",
                f"{base}:ref:refs/tags/*",
            ),
            managed_policy="ReadOnlyAccess",
            state_write=False,
            max_session_seconds=3600,
        ),
        GitHubRole(
            purpose="deploy-integration",
            name=f"{slug}-github-deploy-integration",
            variable="AWS_INTEGRATION_ROLE_ARN",
            subjects=(f"{base}:ref:refs/heads/main",),
            managed_policy="AdministratorAccess",
            state_write=True,
            max_session_seconds=7200,
            denied_stacks=("production",),
        ),
        GitHubRole(
            purpose="deploy-production",
            name=f"{slug}-github-deploy-production",
            variable="AWS_PRODUCTION_ROLE_ARN",
            subjects=(f"{base}:environment:production",),
            managed_policy="AdministratorAccess",
            state_write=True,
            max_session_seconds=7200,
        ),
    )


def github_trust_policy(provider_arn: str, subjects: tuple[str, ...]) -> dict[str, Any]:
    """Trust GitHub's OIDC tokens for this audience and exactly these subjects.

    `sub` is matched with StringLike so that a subject may end in `*` (tags); subjects
    without `*` match only themselves. Both conditions must hold.
    """
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": TRUST_STATEMENT_SID,
                "Effect": "Allow",
                "Principal": {"Federated": provider_arn},
                "Action": "sts:AssumeRoleWithWebIdentity",
                "Condition": {
                    "StringEquals": {f"{GITHUB_OIDC_HOST}:aud": GITHUB_OIDC_AUDIENCE},
                    "StringLike": {f"{GITHUB_OIDC_HOST}:sub": list(subjects)},
                },
            }
        ],
    }


def state_access_policy(
    role: GitHubRole, *, bucket: str, key_arn: str, project: str = PROJECT, partition: str = "aws"
) -> dict[str, Any]:
    """The role's rights on the state bucket and the secrets key, stated on their own.

    Explicit even beside AdministratorAccess, so that the roles keep working if a team
    replaces the broad policy with a narrower one. Pulumi's DIY backend keeps a stack under
    `.pulumi/{stacks,history,backups,locks}/<project>/<stack>...`.
    """
    bucket_arn = f"arn:{partition}:s3:::{bucket}"
    objects = f"{bucket_arn}/*"
    statements: list[dict[str, Any]] = [
        {
            "Sid": "StateBucket",
            "Effect": "Allow",
            "Action": ["s3:ListBucket", "s3:GetBucketLocation", "s3:GetBucketVersioning"],
            "Resource": bucket_arn,
        },
        {
            "Sid": "StateRead",
            "Effect": "Allow",
            "Action": ["s3:GetObject", "s3:GetObjectVersion"],
            "Resource": objects,
        },
        {
            "Sid": "StateWrite" if role.state_write else "StateLocks",
            "Effect": "Allow",
            "Action": ["s3:PutObject", "s3:DeleteObject"],
            "Resource": objects if role.state_write else f"{bucket_arn}/.pulumi/locks/*",
        },
        {
            "Sid": "SecretsKey",
            "Effect": "Allow",
            "Action": [
                "kms:Decrypt",
                "kms:DescribeKey",
                "kms:Encrypt",
                "kms:GenerateDataKey",
            ],
            "Resource": key_arn,
        },
    ]
    if role.denied_stacks:
        statements.append(
            {
                "Sid": "OtherStacksReadOnly",
                "Effect": "Deny",
                "Action": ["s3:PutObject", "s3:DeleteObject"],
                "Resource": [
                    f"{bucket_arn}/.pulumi/*/{project}/{stack}*" for stack in role.denied_stacks
                ],
            }
        )
    return {"Version": "2012-10-17", "Statement": statements}


def _partition(arn: str) -> str:
    parts = arn.split(":")
    return parts[1] if len(parts) > 1 and parts[1] else "aws"


def _ensure_github_provider(iam: Any, report: _Report, account: str, partition: str) -> str:
    """The ARN of the account's GitHub OIDC provider, created if missing.

    The provider is shared by every repository of the account: an existing one is only
    verified, and `sts.amazonaws.com` added to its audiences if it lacks it.
    """
    arn = f"arn:{partition}:iam::{account}:oidc-provider/{GITHUB_OIDC_HOST}"
    existing = _read(
        lambda: iam.get_open_id_connect_provider(OpenIDConnectProviderArn=arn), "NoSuchEntity"
    )
    if existing is None:
        iam.create_open_id_connect_provider(
            Url=GITHUB_OIDC_URL,
            ClientIDList=[GITHUB_OIDC_AUDIENCE],
            ThumbprintList=list(GITHUB_OIDC_THUMBPRINTS),
            Tags=[{"Key": "managed-by", "Value": MANAGED_BY}],
        )
        report.add("created", f"OIDC provider {arn}")
        return arn
    report.add("ok", f"OIDC provider {arn}")
    audiences = list(existing.get("ClientIDList", []))
    report.setting(
        f"OIDC provider audience {GITHUB_OIDC_AUDIENCE}",
        GITHUB_OIDC_AUDIENCE in audiences,
        True,
        lambda: iam.add_client_id_to_open_id_connect_provider(
            OpenIDConnectProviderArn=arn, ClientID=GITHUB_OIDC_AUDIENCE
        ),
        fresh=False,
        was=", ".join(audiences) or "no audience",
    )
    return arn


def _existing_role(iam: Any, name: str) -> dict[str, Any] | None:
    """The role `name`; refuses a role this bootstrap did not create."""
    found = _read(lambda: iam.get_role(RoleName=name), "NoSuchEntity")
    if found is None:
        return None
    role: dict[str, Any] = found["Role"]
    tags = {t["Key"]: t["Value"] for t in role.get("Tags", [])}
    if tags.get("managed-by") != MANAGED_BY:
        raise BootstrapError(
            f"IAM role {name} exists but was not created by this bootstrap (no tag"
            f" managed-by={MANAGED_BY}). Rename or delete it, or tag it if it is yours and"
            " may be rewritten: the bootstrap owns its trust and permissions."
        )
    return role


def _document(value: Any) -> Any:
    """A policy document as boto3 returns it (a dict, or URL-encoded JSON)."""
    if isinstance(value, str):
        from urllib.parse import unquote

        return json.loads(unquote(value))
    return value


def _ensure_role(
    iam: Any,
    report: _Report,
    role: GitHubRole,
    existing: dict[str, Any] | None,
    *,
    trust: dict[str, Any],
    access: dict[str, Any],
    managed_arn: str,
    tags: Mapping[str, str],
) -> str:
    fresh = existing is None
    all_tags = {**tags, "managed-by": MANAGED_BY}
    if existing is None:
        created = iam.create_role(
            RoleName=role.name,
            AssumeRolePolicyDocument=json.dumps(trust),
            Description=role.description,
            MaxSessionDuration=role.max_session_seconds,
            Tags=[{"Key": k, "Value": v} for k, v in sorted(all_tags.items())],
        )["Role"]
        arn = str(created["Arn"])
        report.add("created", f"IAM role {arn}")
        current_trust: Any = trust
        current_session: Any = role.max_session_seconds
    else:
        arn = str(existing["Arn"])
        report.add("ok", f"IAM role {arn}")
        current_trust = _document(existing.get("AssumeRolePolicyDocument"))
        current_session = existing.get("MaxSessionDuration")
        report.setting(
            f"{role.name} trust: aud {GITHUB_OIDC_AUDIENCE}, sub {', '.join(role.subjects)}",
            current_trust,
            trust,
            lambda: iam.update_assume_role_policy(
                RoleName=role.name, PolicyDocument=json.dumps(trust)
            ),
            fresh=False,
            was=_shown(current_trust),
        )
        report.setting(
            f"{role.name} maximum session {role.max_session_seconds} s",
            current_session,
            role.max_session_seconds,
            lambda: iam.update_role(
                RoleName=role.name, MaxSessionDuration=role.max_session_seconds
            ),
            fresh=False,
            was=str(current_session),
        )

    inline = sorted(
        name
        for page in iam.get_paginator("list_role_policies").paginate(RoleName=role.name)
        for name in page.get("PolicyNames", [])
    )
    for other in inline:
        if other != STATE_POLICY_NAME:
            iam.delete_role_policy(RoleName=role.name, PolicyName=other)
            report.add("repaired", f"{role.name}: inline policy {other} removed")
    current_access = None
    if STATE_POLICY_NAME in inline:
        current_access = _document(
            iam.get_role_policy(RoleName=role.name, PolicyName=STATE_POLICY_NAME)["PolicyDocument"]
        )
    report.setting(
        f"{role.name} inline policy {STATE_POLICY_NAME}: state bucket and secrets key"
        f" ({'read/write' if role.state_write else 'read, locks only'})",
        current_access,
        access,
        lambda: iam.put_role_policy(
            RoleName=role.name, PolicyName=STATE_POLICY_NAME, PolicyDocument=json.dumps(access)
        ),
        fresh=fresh,
        was=_shown(current_access),
    )

    attached = sorted(
        str(p["PolicyArn"])
        for page in iam.get_paginator("list_attached_role_policies").paginate(RoleName=role.name)
        for p in page.get("AttachedPolicies", [])
    )
    for other in attached:
        if other != managed_arn:
            iam.detach_role_policy(RoleName=role.name, PolicyArn=other)
            report.add("repaired", f"{role.name}: managed policy {other} detached")
    report.setting(
        f"{role.name} managed policy {managed_arn}",
        managed_arn in attached,
        True,
        lambda: iam.attach_role_policy(RoleName=role.name, PolicyArn=managed_arn),
        fresh=fresh,
        was="not attached",
    )

    if not fresh:
        current_tags = {t["Key"]: t["Value"] for t in (existing or {}).get("Tags", [])}
        wrong = {k: v for k, v in all_tags.items() if current_tags.get(k) != v}
        report.setting(
            f"{role.name} tags",
            wrong,
            {},
            lambda: iam.tag_role(
                RoleName=role.name, Tags=[{"Key": k, "Value": v} for k, v in sorted(wrong.items())]
            ),
            fresh=False,
            was=f"missing or different: {', '.join(sorted(wrong))}",
        )
    return arn


def bootstrap_github(
    iam: Any,
    sts: Any,
    *,
    repo: str,
    bucket: str,
    key_arn: str,
    tags: Mapping[str, str],
    project: str = PROJECT,
) -> GitHubResult:
    """Create, or verify and repair, GitHub's OIDC provider and the roles of `github_roles`.

    Refuses, before creating anything, a repository name that is not `<owner>/<name>` and a
    role name taken by a role this bootstrap did not create. Running it again is safe.
    """
    roles = github_roles(project, repo)
    bucket_problem = _bucket_problem(bucket)
    if bucket_problem:
        raise BootstrapError(bucket_problem)
    identity = sts.get_caller_identity()
    account = str(identity["Account"])
    partition = _partition(str(identity.get("Arn", "")))
    existing = {role.name: _existing_role(iam, role.name) for role in roles}

    report = _Report()
    provider_arn = _ensure_github_provider(iam, report, account, partition)
    arns: dict[str, str] = {}
    for role in roles:
        access = state_access_policy(
            role, bucket=bucket, key_arn=key_arn, project=project, partition=partition
        )
        arns[role.variable] = _ensure_role(
            iam,
            report,
            role,
            existing[role.name],
            trust=github_trust_policy(provider_arn, role.subjects),
            access=access,
            managed_arn=f"arn:{partition}:iam::aws:policy/{role.managed_policy}",
            tags=tags,
        )
    return GitHubResult(provider_arn=provider_arn, role_arns=arns, lines=tuple(report.lines))
