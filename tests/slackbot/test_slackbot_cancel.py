"""`cancel <stack>` and the per-operation time-out stop the Pulumi operation through the runner
(`stack.cancel()` in the real one) and release the stack; a hung run never holds it forever."""

from __future__ import annotations

import threading
import time

from slackbot.operations import Operation
from tests.slackbot.slackbot_support import (
    ALICE,
    BOB,
    CAROL,
    DEPLOY_CHANNEL,
    MALLORY,
    OPS_CHANNEL,
    FakeRunner,
    Script,
    start_bot,
)


def ends(bot):
    return [e for e in bot.audit.entries() if e["event"] == "end"]


def wait_until(predicate, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return False


def test_the_requester_cancels_a_running_up(bot, runner, slack_api):
    runner.scripts["local"] = Script(hang=True)
    bot.command("up local", user=ALICE)
    assert runner.started.wait(5)

    reply = bot.command("cancel local", user=ALICE)
    slack_api.wait_for_text("was cancelled by <@UALICE>")
    bot.idle()

    assert "Cancelling `up local`" in reply.text
    assert runner.cancels == ["local"]
    assert [e["result"] for e in ends(bot)] == ["cancelled"]
    assert bot.chatops.needs_refresh("local"), "a cancelled update may leave pending operations"
    runner.scripts["local"] = Script()
    again = bot.command("preview local")
    assert "Starting" in again.text, "the stack is free again"
    bot.idle()


def test_an_approver_may_cancel_and_others_may_not(bot, runner, slack_api):
    runner.scripts["production"] = Script(hang=True)
    bot.command("refresh production", user=ALICE, channel=DEPLOY_CHANNEL)
    assert runner.started.wait(5)

    refused = bot.command("cancel production", user=MALLORY, channel=DEPLOY_CHANNEL)
    assert refused.text.startswith(":no_entry:")
    assert runner.cancels == []
    allowed = bot.command("cancel production", user=CAROL, channel=DEPLOY_CHANNEL)
    slack_api.wait_for_text("was cancelled by <@UCAROL>")
    bot.idle()

    assert "Cancelling" in allowed.text
    assert runner.cancels == ["production"]
    assert any(e["event"] == "cancel" and e["by"] == CAROL for e in bot.audit.entries())


def test_cancel_with_nothing_running_says_so(bot, runner, slack_api):
    reply = bot.command("cancel local", user=BOB)

    assert reply.text == "Nothing is running on `local`."


def test_a_hung_operation_is_cancelled_by_the_time_out(tmp_path, slack_api):
    runner = FakeRunner()
    runner.scripts["local"] = Script(hang=True)
    bot = start_bot(tmp_path, slack_api, runner, operation_timeout=0.3)
    try:
        started = time.monotonic()
        bot.command("up local")
        slack_api.wait_for_text("timed out after")
        bot.idle()
        elapsed = time.monotonic() - started

        assert runner.cancels == ["local"]
        assert [e["result"] for e in ends(bot)] == ["timed out"]
        assert elapsed < 5
        assert bot.chatops.core.locks.holder("local") is None
    finally:
        bot.close()


def test_a_run_that_ignores_the_cancel_loses_its_stack_after_the_grace(tmp_path, slack_api):
    runner = FakeRunner()
    gate = threading.Event()
    runner.scripts["local"] = Script(gate=gate, ignore_cancel=True)
    bot = start_bot(tmp_path, slack_api, runner, operation_timeout=0.2, cancel_grace=0.2)
    try:
        bot.command("up local")
        slack_api.wait_for_text("has not stopped")
        assert wait_until(lambda: bot.chatops.core.locks.holder("local") is None)
        busy_elsewhere = bot.command("preview local")
        assert "Starting" in busy_elsewhere.text, "the bot released the stack"
        assert any(e["event"] == "abandoned" for e in bot.audit.entries())
    finally:
        gate.set()
        bot.idle()
        bot.close()
    assert Operation.PREVIEW in [r.operation for r in runner.requests_for("local")]


def test_the_time_out_does_not_touch_an_operation_that_finished(tmp_path, slack_api):
    runner = FakeRunner()
    bot = start_bot(tmp_path, slack_api, runner, operation_timeout=0.2)
    try:
        bot.command("up local", channel=OPS_CHANNEL)
        bot.idle()
        time.sleep(0.4)
        assert runner.cancels == []
        assert [e["result"] for e in ends(bot)] == ["succeeded"]
    finally:
        bot.close()
