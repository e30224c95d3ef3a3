"""Branch deploys: `up|preview <stack> branch=<name>` points git-sync at a branch through stack
config. Names follow git's own rules (`git check-ref-format --branch`) and the branch must
exist on the stack's repository (`git ls-remote`, here against a real repository in a temp
directory)."""

from __future__ import annotations

import copy
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest

from slackbot.access import AccessConfig, branch_deploys_allowed
from slackbot.branches import (
    BRANCH_KEY,
    REPO_KEY,
    REV_KEY,
    BranchError,
    GitRemote,
    branch_head,
    check_branch_name,
)
from slackbot.commands import HelpRequest, StackCommand, parse_command
from slackbot.operations import Operation
from slackbot.runner import ConfigEntry
from tests.slackbot.slackbot_support import (
    ACCESS,
    ALICE,
    BOB,
    DEPLOY_CHANNEL,
    OPS_CHANNEL,
    STACKS,
    FakeRunner,
    Script,
    start_bot,
)

BRANCH_ACCESS: dict[str, Any] = copy.deepcopy(ACCESS)
BRANCH_ACCESS["stacks"]["integration"]["branch_deploys"] = True
BRANCH_ACCESS["stacks"]["production"]["branch_deploys"] = True


def git(*args: str, cwd: Path) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout.strip()


@pytest.fixture
def dag_repo(tmp_path: Path) -> Path:
    """A bare repository with `main` and `feature/new-dag`, as git-sync would clone it."""
    work = tmp_path / "work"
    work.mkdir()
    git("init", "-q", "-b", "main", cwd=work)
    git("config", "user.email", "t@example.com", cwd=work)
    git("config", "user.name", "t", cwd=work)
    (work / "dags").mkdir()
    (work / "dags" / "a.py").write_text("a = 1\n")
    git("add", ".", cwd=work)
    git("commit", "-q", "-m", "first", cwd=work)
    git("checkout", "-q", "-b", "feature/new-dag", cwd=work)
    (work / "dags" / "b.py").write_text("b = 2\n")
    git("add", ".", cwd=work)
    git("commit", "-q", "-m", "second", cwd=work)
    bare = tmp_path / "dags.git"
    git("clone", "-q", "--bare", str(work), str(bare), cwd=tmp_path)
    return bare


def head_of(repo: Path, branch: str) -> str:
    return git("rev-parse", f"refs/heads/{branch}", cwd=repo)


@pytest.fixture
def branch_bot(tmp_path, slack_api, dag_repo):
    runner = FakeRunner()
    runner.configs["integration"] = {
        REPO_KEY: ConfigEntry(str(dag_repo), secret=False),
        BRANCH_KEY: ConfigEntry("main", secret=False),
    }
    runner.configs["production"] = dict(runner.configs["integration"])
    harness = start_bot(tmp_path / "bot", slack_api, runner, access=BRANCH_ACCESS)
    try:
        yield harness, runner
    finally:
        harness.close()


@pytest.mark.parametrize(
    "name", ["feature/x", "fix-123", "release/2024.10", "main", "user/alice/dag_tweak"]
)
def test_git_accepts_these_branch_names(name):
    check_branch_name(name)


@pytest.mark.parametrize(
    "name",
    [
        "a..b",
        "-rf",
        "foo.lock",
        "bad name",
        "x~1",
        "a^b",
        "a:b",
        "ends/",
        "/starts",
        "a//b",
        "x?",
        "x*",
        "x[",
        "@{-1}",
        "HEAD",
        "a@{b",
        "trailing.",
        "back\\slash",
        "a" * 300,
    ],
)
def test_git_rejects_these_branch_names(name):
    with pytest.raises(BranchError, match="not a valid branch name"):
        check_branch_name(name)


def test_ls_remote_finds_a_branch_head_and_reports_a_missing_branch(dag_repo):
    remote = GitRemote(str(dag_repo))

    assert branch_head(remote, "feature/new-dag") == head_of(dag_repo, "feature/new-dag")
    assert branch_head(remote, "main") == head_of(dag_repo, "main")
    with pytest.raises(BranchError, match="does not exist"):
        branch_head(remote, "feature/gone")
    with pytest.raises(BranchError, match="ls-remote failed"):
        branch_head(GitRemote(str(dag_repo.parent / "nowhere.git")), "main")


def test_the_branch_option_is_parsed_for_preview_and_up_only():
    assert parse_command("up integration branch=feature/x", STACKS) == StackCommand(
        Operation.UP, "integration", "feature/x"
    )
    assert parse_command("preview integration branch=a", STACKS) == StackCommand(
        Operation.PREVIEW, "integration", "a"
    )
    refused = parse_command("refresh integration branch=a", STACKS)
    assert isinstance(refused, HelpRequest) and "`branch=` goes with" in (refused.problem or "")


def test_production_never_takes_branch_deploys_whatever_the_file_says():
    config = AccessConfig.model_validate(BRANCH_ACCESS)

    assert branch_deploys_allowed(config, "integration")
    assert not branch_deploys_allowed(config, "production")
    assert not branch_deploys_allowed(config, "local")


def test_up_with_a_branch_sets_the_stack_config_and_audits_it(branch_bot, dag_repo, slack_api):
    bot, runner = branch_bot

    reply = bot.command("up integration branch=feature/new-dag")
    slack_api.wait_for_text("succeeded")
    bot.idle()

    assert "Starting `up integration branch=feature/new-dag`" in reply.text
    assert runner.config_writes == [
        ("integration", {BRANCH_KEY: "feature/new-dag", REV_KEY: "HEAD"})
    ]
    (run,) = runner.requests_for("integration")
    assert run.operation is Operation.UP and "branch feature/new-dag" in (run.message or "")
    (note,) = [e for e in bot.audit.entries() if e["event"] == "branch"]
    assert note["branch"] == "feature/new-dag"
    assert note["commit"] == head_of(dag_repo, "feature/new-dag")
    start = next(e for e in bot.audit.entries() if e["event"] == "start")
    assert start["branch"] == "feature/new-dag"

    bot.command("status integration")
    status = slack_api.wait_for_text("*DAGs:*")
    assert "branch `feature/new-dag`" in status.text
    assert head_of(dag_repo, "feature/new-dag")[:12] in status.text


def test_branch_main_returns_to_the_default(branch_bot, dag_repo, slack_api):
    bot, runner = branch_bot
    bot.command("up integration branch=feature/new-dag")
    bot.idle()

    bot.command("up integration branch=main")
    bot.idle()

    assert runner.configs["integration"][BRANCH_KEY].value == "main"
    assert runner.configs["integration"][REV_KEY].value == "HEAD"


def test_a_preview_of_a_branch_leaves_the_stack_config_as_it_was(branch_bot, slack_api):
    bot, runner = branch_bot

    bot.command("preview integration branch=feature/new-dag")
    slack_api.wait_for_text("succeeded")
    bot.idle()

    assert runner.configs["integration"][BRANCH_KEY].value == "main"
    assert REV_KEY not in runner.configs["integration"]
    assert len(runner.requests_for("integration")) == 1


def test_a_branch_missing_on_the_remote_is_refused_before_anything_runs(branch_bot, slack_api):
    bot, runner = branch_bot

    bot.command("up integration branch=feature/gone")
    call = slack_api.wait_for_text("does not exist")
    bot.idle()

    assert "feature/gone" in call.text
    assert runner.requests == [] and runner.config_writes == []
    assert not [e for e in bot.audit.entries() if e["event"] == "start"]


@pytest.mark.parametrize(
    ("text", "channel", "reason"),
    [
        ("up integration branch=a..b", OPS_CHANNEL, "not a valid branch name"),
        ("up production branch=feature/new-dag", DEPLOY_CHANNEL, "does not take branch deploys"),
        ("up local branch=feature/new-dag", OPS_CHANNEL, "does not take branch deploys"),
    ],
)
def test_refused_branch_deploys_say_why_and_run_nothing(branch_bot, text, channel, reason):
    bot, runner = branch_bot

    reply = bot.command(text, channel=channel)
    bot.idle()

    assert reply.text.startswith(":no_entry:") and reason in reply.text
    assert runner.requests == [] and runner.config_writes == []


def test_two_branches_on_one_stack_are_serialised_and_the_reply_names_the_holder(
    branch_bot, slack_api
):
    bot, runner = branch_bot
    gate = threading.Event()
    runner.scripts["integration"] = Script(gate=gate)

    first = bot.command("up integration branch=feature/new-dag", user=ALICE)
    assert runner.started.wait(5)
    second = bot.command("up integration branch=main", user=BOB)
    gate.set()
    bot.idle()

    assert "Starting" in first.text
    assert "<@UALICE> is running `up integration branch=feature/new-dag`" in second.text
    assert len(runner.requests_for("integration")) == 1
