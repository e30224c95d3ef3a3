"""Branch deploys: which branch git-sync follows, checked with git itself.

The branch is stack config (`airflow-platform:airflow.gitSync.branch`, with `rev` = `HEAD` so
git-sync follows the branch's head). A name is accepted only if `git check-ref-format --branch`
accepts it, and only if `git ls-remote` finds it on the stack's repository, using the same
credentials git-sync uses (the stack's `gitSyncUsername`/`gitSyncToken` or `gitSyncSshKey`).
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from components.settings import PROJECT
from slackbot.runner import ConfigEntry

DEFAULT_BRANCH = "main"
BRANCH_KEY = f"{PROJECT}:airflow.gitSync.branch"
REV_KEY = f"{PROJECT}:airflow.gitSync.rev"
REPO_KEY = f"{PROJECT}:airflow.gitSync.repo"
FOLLOW_HEAD = "HEAD"
MAX_BRANCH_LENGTH = 200
GIT_TIMEOUT_SECONDS = 20.0

_CREDENTIAL_HELPER = (
    '!f() { test "$1" = get || exit 0; '
    'printf "username=%s\\npassword=%s\\n" "$SLACKBOT_GIT_USER" "$SLACKBOT_GIT_TOKEN"; }; f'
)


class BranchError(Exception):
    """The branch cannot be deployed; the message is safe to show in Slack."""


@dataclass(frozen=True)
class GitRemote:
    """The stack's DAG repository and the credentials git-sync uses for it."""

    url: str
    username: str | None = None
    token: str | None = field(default=None, repr=False)
    ssh_key: str | None = field(default=None, repr=False)
    known_hosts: str | None = None


def branch_config(branch: str) -> dict[str, str | None]:
    """The config that makes git-sync follow `branch`."""
    return {BRANCH_KEY: branch, REV_KEY: FOLLOW_HEAD}


def current_branch(config: Mapping[str, ConfigEntry]) -> str:
    entry = config.get(BRANCH_KEY)
    return entry.value if entry is not None else DEFAULT_BRANCH


def check_branch_name(name: str) -> None:
    """Raise `BranchError` unless git accepts `name` as a branch name."""
    if not name or len(name) > MAX_BRANCH_LENGTH or name.startswith("-"):
        raise BranchError("That is not a valid branch name.")
    try:
        result = subprocess.run(
            ["git", "check-ref-format", "--branch", name],
            capture_output=True,
            timeout=GIT_TIMEOUT_SECONDS,
            check=False,
            env=_git_env(),
            cwd=os.path.abspath(os.sep),
            text=True,
        )
    except (OSError, subprocess.TimeoutExpired):
        raise BranchError("git is not available on the bot's host.") from None
    if result.returncode != 0 or result.stdout.strip() != name:
        raise BranchError("That is not a valid branch name (git's ref-name rules).")


def remote_of(config: Mapping[str, ConfigEntry]) -> GitRemote | None:
    """The stack's git-sync repository and credentials, from its config (None: not set)."""
    repo = config.get(REPO_KEY)
    if repo is None or not repo.value:
        return None

    def value(key: str) -> str | None:
        entry = config.get(f"{PROJECT}:{key}")
        return entry.value if entry is not None and entry.value else None

    return GitRemote(
        url=repo.value,
        username=value("gitSyncUsername"),
        token=value("gitSyncToken"),
        ssh_key=value("gitSyncSshKey"),
        known_hosts=value("gitSyncKnownHosts"),
    )


def branch_head(remote: GitRemote, branch: str, timeout: float = GIT_TIMEOUT_SECONDS) -> str:
    """The commit `branch` points to on the remote; `BranchError` if it is not there."""
    if remote.url.startswith("-"):
        raise BranchError("The stack's git-sync repository URL is not usable.")
    with tempfile.TemporaryDirectory(prefix="slackbot-git-") as scratch:
        env = _git_env()
        command = ["git", "-c", "credential.helper=", "-c", "protocol.ext.allow=never"]
        if remote.username and remote.token:
            command += ["-c", f"credential.helper={_CREDENTIAL_HELPER}"]
            env["SLACKBOT_GIT_USER"] = remote.username
            env["SLACKBOT_GIT_TOKEN"] = remote.token
        if remote.ssh_key:
            env["GIT_SSH_COMMAND"] = _ssh_command(Path(scratch), remote)
        command += ["ls-remote", "--heads", remote.url, f"refs/heads/{branch}"]
        try:
            result = subprocess.run(
                command,
                capture_output=True,
                timeout=timeout,
                check=False,
                env=env,
                cwd=scratch,
                text=True,
            )
        except subprocess.TimeoutExpired:
            raise BranchError("The DAG repository did not answer in time.") from None
        except OSError:
            raise BranchError("git is not available on the bot's host.") from None
    if result.returncode != 0:
        raise BranchError("Could not list the DAG repository's branches (git ls-remote failed).")
    for line in result.stdout.splitlines():
        commit, _, ref = line.partition("\t")
        if ref == f"refs/heads/{branch}":
            return commit
    raise BranchError(f"Branch `{branch}` does not exist on the DAG repository.")


def _ssh_command(scratch: Path, remote: GitRemote) -> str:
    key = scratch / "key"
    key.write_text((remote.ssh_key or "").rstrip("\n") + "\n", encoding="utf-8")
    key.chmod(0o600)
    hosts = scratch / "known_hosts"
    hosts.write_text(remote.known_hosts or "", encoding="utf-8")
    return (
        f"ssh -i {key} -o IdentitiesOnly=yes -o BatchMode=yes "
        f"-o StrictHostKeyChecking=yes -o UserKnownHostsFile={hosts}"
    )


def _git_env() -> dict[str, str]:
    env = {
        name: value
        for name, value in os.environ.items()
        if name in ("PATH", "HOME", "LANG", "LC_ALL", "SSL_CERT_FILE", "SSL_CERT_DIR")
        or name.startswith(("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy"))
    }
    env.update({"GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "true", "GIT_CONFIG_NOSYSTEM": "1"})
    return env
