"""Parsing `/airflow <subcommand> <stack>` and the help reply."""

from __future__ import annotations

import pytest

from slackbot.commands import HelpRequest, StackCommand, help_text, parse_command
from slackbot.operations import Operation
from tests.slackbot.slackbot_support import OPS_CHANNEL, STACKS


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("preview production", StackCommand(Operation.PREVIEW, "production")),
        ("  UP   local ", StackCommand(Operation.UP, "local")),
        ("refresh integration", StackCommand(Operation.REFRESH, "integration")),
        ("destroy local", StackCommand(Operation.DESTROY, "local")),
        ("status production", StackCommand(Operation.STATUS, "production")),
        ("rollback production", StackCommand(Operation.ROLLBACK, "production")),
        ("", HelpRequest()),
        ("help", HelpRequest()),
    ],
)
def test_commands_are_parsed(text, expected):
    assert parse_command(text, STACKS) == expected


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("deploy production", "Unknown subcommand `deploy`."),
        ("up", "`up` needs a stack: `integration`, `local`, `production`."),
        ("up staging", "Unknown stack `staging`. Stacks: `integration`, `local`, `production`."),
        ("up local production", "`up` takes exactly one stack"),
        ("up <!channel>", "Unknown stack `&lt;!channel&gt;`."),
    ],
)
def test_unusable_commands_explain_what_exists(text, problem):
    parsed = parse_command(text, STACKS)

    assert isinstance(parsed, HelpRequest)
    assert parsed.problem is not None and parsed.problem.startswith(problem)


def test_help_lists_every_subcommand_and_stack():
    text = help_text("/airflow", STACKS)

    for word in ("preview", "up", "rollback", "refresh", "destroy", "status", "cancel", "drift"):
        assert f"`{word} <stack>`" in text
    for word in ("help", *STACKS):
        assert f"`{word}" in text or f"`{word}`" in text


def test_an_unknown_stack_gets_a_helpful_reply_and_runs_nothing(bot, runner):
    reply = bot.command("up staging", channel=OPS_CHANNEL)
    bot.idle()

    assert reply.status == 200
    assert "Unknown stack `staging`" in reply.text
    assert "*Usage:* `/airflow <subcommand> <stack>`" in reply.text
    assert runner.requests == []
