"""Who may do what: the access file and the decisions made from it."""

from __future__ import annotations

import pytest

from slackbot.access import (
    AccessConfig,
    AccessError,
    authorise,
    load_access_config,
    may_approve,
    needs_approval,
)
from slackbot.operations import Operation
from tests.slackbot.slackbot_support import (
    ACCESS,
    ALICE,
    BOB,
    CAROL,
    DEPLOY_CHANNEL,
    MALLORY,
    OPS_CHANNEL,
    RANDOM_CHANNEL,
)

CONFIG = AccessConfig.model_validate(ACCESS)

MATRIX = [
    # user, channel, stack, subcommand, allowed
    (MALLORY, OPS_CHANNEL, "local", "up", True),  # anyone, listed channel
    (MALLORY, RANDOM_CHANNEL, "local", "up", False),  # channel not listed
    (ALICE, OPS_CHANNEL, "local", "destroy", True),
    (ALICE, OPS_CHANNEL, "integration", "up", True),
    (ALICE, OPS_CHANNEL, "integration", "destroy", False),  # subcommand not listed
    (CAROL, OPS_CHANNEL, "integration", "preview", False),  # user not listed
    (ALICE, DEPLOY_CHANNEL, "integration", "preview", False),  # wrong channel for the stack
    (ALICE, DEPLOY_CHANNEL, "production", "up", True),
    (ALICE, OPS_CHANNEL, "production", "up", False),
    (MALLORY, RANDOM_CHANNEL, "production", "status", True),  # second rule, any channel
    (MALLORY, DEPLOY_CHANNEL, "production", "preview", False),
    (ALICE, DEPLOY_CHANNEL, "production", "destroy", False),  # destroy production is off
    (ALICE, OPS_CHANNEL, "staging", "preview", False),  # stack without rules
]


@pytest.mark.parametrize(("user", "channel", "stack", "subcommand", "allowed"), MATRIX)
def test_authorisation_matrix(user, channel, stack, subcommand, allowed):
    decision = authorise(CONFIG, user, channel, stack, Operation(subcommand))

    assert decision.allowed is allowed
    assert bool(decision.reason) is not allowed


def test_production_up_rollback_and_destroy_need_approval_by_default_and_nothing_else_does():
    needing = {
        (stack, op)
        for stack in ("local", "integration", "production")
        for op in Operation
        if needs_approval(CONFIG, stack, op)
    }

    assert needing == {
        ("production", Operation.UP),
        ("production", Operation.ROLLBACK),
        ("production", Operation.DESTROY),
    }


def test_rollback_follows_up_wherever_up_needs_approval():
    config = AccessConfig.model_validate(
        {
            "stacks": {
                "integration": {"approvers": [BOB], "require_approval": ["up"]},
                "production": {"approvers": [BOB], "require_approval": ["destroy"]},
            }
        }
    )

    assert needs_approval(config, "integration", Operation.ROLLBACK)
    assert not needs_approval(config, "production", Operation.ROLLBACK)
    assert not needs_approval(config, "production", Operation.UP)


def test_whoever_may_run_up_may_roll_back_and_rollback_alone_grants_no_up():
    config = AccessConfig.model_validate(
        {
            "stacks": {
                "integration": {
                    "allow": [
                        {"users": [ALICE], "channels": ["*"], "commands": ["up"]},
                        {"users": [BOB], "channels": ["*"], "commands": ["rollback"]},
                        {"users": ["UCAROL"], "channels": ["*"], "commands": ["preview"]},
                    ]
                }
            }
        }
    )

    assert authorise(config, ALICE, "C1", "integration", Operation.ROLLBACK).allowed
    assert authorise(config, BOB, "C1", "integration", Operation.ROLLBACK).allowed
    assert not authorise(config, BOB, "C1", "integration", Operation.UP).allowed
    assert not authorise(config, "UCAROL", "C1", "integration", Operation.ROLLBACK).allowed


def test_destroy_production_can_be_enabled_and_approval_reconfigured():
    config = AccessConfig.model_validate(
        {
            "stacks": {
                "production": {
                    "allow": [{"users": [ALICE], "channels": ["*"], "commands": ["destroy"]}],
                    "approvers": [BOB],
                    "destroy_enabled": True,
                    "require_approval": ["destroy", "refresh"],
                },
                "local": {"destroy_enabled": False},
            }
        }
    )

    assert authorise(config, ALICE, DEPLOY_CHANNEL, "production", Operation.DESTROY).allowed
    assert needs_approval(config, "production", Operation.REFRESH)
    assert not needs_approval(config, "production", Operation.UP)
    assert not config.destroy_enabled("local")


def test_an_approver_other_than_the_requester_may_approve_within_the_window():
    assert may_approve(CONFIG, BOB, ALICE, "production", requested_at=1000, now=1060).allowed


def test_self_approval_is_refused_even_for_an_approver():
    decision = may_approve(CONFIG, BOB, BOB, "production", requested_at=1000, now=1001)

    assert not decision.allowed
    assert "own request" in decision.reason


def test_someone_not_listed_as_approver_cannot_approve():
    assert not may_approve(CONFIG, ALICE, CAROL, "production", 1000, 1001).allowed


def test_approval_after_the_window_is_refused():
    window = CONFIG.approval_window_seconds

    assert may_approve(CONFIG, BOB, ALICE, "production", 1000, 1000 + window).allowed
    late = may_approve(CONFIG, BOB, ALICE, "production", 1000, 1000 + window + 1)
    assert not late.allowed
    assert "expired" in late.reason


def test_the_access_file_is_read_from_yaml(tmp_path):
    path = tmp_path / "access.yaml"
    path.write_text(
        "approval_window_minutes: 5\n"
        "stacks:\n"
        "  local:\n"
        "    allow:\n"
        "      - {users: ['*'], channels: [COPS], commands: [preview, status]}\n",
        encoding="utf-8",
    )

    config = load_access_config(path)

    assert config.approval_window_seconds == 300
    assert authorise(config, MALLORY, OPS_CHANNEL, "local", Operation.PREVIEW).allowed
    assert not authorise(config, MALLORY, OPS_CHANNEL, "local", Operation.UP).allowed


def test_an_invalid_access_file_lists_every_problem_with_its_location(tmp_path):
    path = tmp_path / "access.yaml"
    path.write_text(
        "stacks:\n"
        "  production:\n"
        "    allow:\n"
        "      - {users: [alice], channels: [COPS], commands: [deploy]}\n"
        "    typo: true\n",
        encoding="utf-8",
    )

    with pytest.raises(AccessError) as raised:
        load_access_config(path)

    message = str(raised.value)
    assert "stacks.production.allow.0.users.0" in message
    assert "stacks.production.allow.0.commands.0" in message
    assert "stacks.production.typo" in message


def test_approval_without_approvers_is_rejected():
    with pytest.raises(ValueError, match="approvers: approval is required but none listed"):
        AccessConfig.model_validate({"stacks": {"production": {"allow": []}}})


def test_a_missing_or_broken_access_file_is_a_clear_error(tmp_path):
    with pytest.raises(AccessError, match="cannot read"):
        load_access_config(tmp_path / "absent.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("stacks: [unclosed\n", encoding="utf-8")
    with pytest.raises(AccessError, match="not valid YAML"):
        load_access_config(broken)
