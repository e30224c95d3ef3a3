"""One operation per stack at a time; different stacks run side by side."""

from __future__ import annotations

import threading

from pulumi.automation import CommandResult, ConcurrentUpdateError

from slackbot.runner import StackBusyError, _translated_errors
from tests.slackbot.slackbot_support import (
    ALICE,
    BOB,
    DEPLOY_CHANNEL,
    OPS_CHANNEL,
    Script,
    typical_events,
)


def test_two_ups_on_one_stack_one_runs_and_the_other_is_told(bot, runner, slack_api):
    gate = threading.Event()
    runner.scripts["local"] = Script(gate=gate, events=typical_events("local"))

    first = bot.command("up local", user=ALICE, channel=OPS_CHANNEL)
    second = bot.command("up local", user=BOB, channel=DEPLOY_CHANNEL)
    gate.set()
    bot.idle()

    assert "Starting `up local`" in first.text
    assert "`local` is busy: <@UALICE> is running `up local` since" in second.text
    assert len(runner.requests_for("local")) == 1
    starts = [e for e in bot.audit.entries() if e["event"] == "start"]
    assert [(e["user"], e["stack"]) for e in starts] == [(ALICE, "local")]


def test_the_stack_is_free_again_once_the_operation_ends(bot, runner, slack_api):
    runner.scripts["local"] = Script(events=typical_events("local"))

    bot.command("up local")
    bot.idle()
    again = bot.command("up local")
    bot.idle()

    assert "Starting" in again.text
    assert len(runner.requests_for("local")) == 2


def test_two_stacks_run_at_the_same_time(bot, runner, slack_api):
    gate = threading.Event()
    runner.scripts["local"] = Script(gate=gate)
    runner.scripts["integration"] = Script(gate=gate)

    local = bot.command("up local")
    integration = bot.command("up integration")
    both_running = _wait_until(
        lambda: runner.running.get("local") == 1 and runner.running.get("integration") == 1
    )
    gate.set()
    bot.idle()

    assert "Starting" in local.text and "Starting" in integration.text
    assert both_running, "the two stacks' operations were not running concurrently"


def test_a_concurrent_update_from_outside_the_bot_is_reported_not_retried(bot, runner, slack_api):
    runner.scripts["local"] = Script(
        error=StackBusyError(
            "`local` is locked by another update (perhaps someone deploying from a laptop)."
        )
    )

    bot.command("up local")
    bot.idle()

    call = slack_api.wait_for_text(":lock:")
    assert "will not retry" in call.text
    assert len(runner.requests_for("local")) == 1
    (end,) = [e for e in bot.audit.entries() if e["event"] == "end"]
    assert end["result"] == "busy"


def test_the_engine_s_concurrent_update_error_becomes_a_safe_busy_error():
    stderr = "error: the stack is currently locked by 1 lock(s): token=hunter2-secret"
    raised = None
    try:
        with _translated_errors("production"):
            raise ConcurrentUpdateError(CommandResult(stdout="", stderr=stderr, code=255))
    except StackBusyError as error:
        raised = error

    assert raised is not None
    assert "locked by another update" in str(raised)
    assert "hunter2" not in str(raised)


def _wait_until(predicate, timeout: float = 5.0) -> bool:
    event = threading.Event()
    deadline = 0.0
    while deadline < timeout:
        if predicate():
            return True
        event.wait(0.01)
        deadline += 0.01
    return False
