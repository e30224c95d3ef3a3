"""Production `up` needs a preview, then another listed person's approval, in time."""

from __future__ import annotations

import json

import pytest

from slackbot.blocks import ACTION_APPROVE, ACTION_CANCEL
from slackbot.operations import Operation
from tests.slackbot.slackbot_support import (
    ALICE,
    BOB,
    CAROL,
    DEPLOY_CHANNEL,
    MALLORY,
    FakeRunner,
    Script,
    approval_id_from,
    start_bot,
    typical_events,
)


def request_approval(bot, slack_api, runner, user=ALICE) -> str:
    runner.scripts["production"] = Script(events=typical_events("production"))
    reply = bot.command("up production", user=user, channel=DEPLOY_CHANNEL)
    assert "needs approval" in reply.text
    call = slack_api.wait_for_text("airflow_approve")
    bot.idle()
    return approval_id_from(call)


def ups(runner):
    return [r for r in runner.requests_for("production") if r.operation is Operation.UP]


def test_up_production_runs_a_preview_and_waits_for_approval(bot, runner, slack_api):
    request_approval(bot, slack_api, runner)

    (preview,) = runner.requests_for("production")
    assert preview.operation is Operation.PREVIEW
    assert preview.preview_of is Operation.UP
    assert preview.save_plan is not None and preview.save_plan.exists()
    texts = "\n".join(slack_api.texts())
    assert "create 2 · update 1 · delete 0 · replace 0" in texts
    assert "<@UBOB> or <@UCAROL>" in texts
    assert ups(runner) == []


def test_another_approver_applies_exactly_the_previewed_plan(bot, runner, slack_api):
    approval_id = request_approval(bot, slack_api, runner)
    plan = runner.requests_for("production")[0].save_plan

    bot.click(ACTION_APPROVE, approval_id, user=BOB, channel=DEPLOY_CHANNEL)
    slack_api.wait_for_text("approved by <@UBOB>)")
    bot.idle()

    (up,) = ups(runner)
    assert up.use_plan == plan
    assert "approved by UBOB" in (up.message or "")
    assert not plan.exists(), "the plan file is removed once used"
    ends = [e for e in bot.audit.entries() if e["event"] == "end" and e["operation"] == "up"]
    assert [(e["user"], e["approver"], e["result"]) for e in ends] == [(ALICE, BOB, "succeeded")]


def test_self_approval_is_refused(bot, runner, slack_api):
    approval_id = request_approval(bot, slack_api, runner, user=BOB)

    bot.click(ACTION_APPROVE, approval_id, user=BOB, channel=DEPLOY_CHANNEL)

    slack_api.wait_for_text("cannot approve your own request")
    bot.idle()
    assert ups(runner) == []


def test_a_person_who_is_not_an_approver_cannot_approve(bot, runner, slack_api):
    approval_id = request_approval(bot, slack_api, runner)

    bot.click(ACTION_APPROVE, approval_id, user=MALLORY, channel=DEPLOY_CHANNEL)

    slack_api.wait_for_text("not an approver")
    bot.idle()
    assert ups(runner) == []


def test_approval_after_the_window_is_refused(bot, runner, slack_api):
    approval_id = request_approval(bot, slack_api, runner)
    bot.clock.offset += 10 * 60 + 1

    bot.click(ACTION_APPROVE, approval_id, user=BOB, channel=DEPLOY_CHANNEL)

    slack_api.wait_for_text("has expired")
    bot.idle()
    assert ups(runner) == []
    updates = [c for c in slack_api.posts() if c.method == "chat.update"]
    assert any("Expired without approval" in c.text for c in updates)
    assert not any(ACTION_APPROVE in json.dumps(c.params.get("blocks")) for c in updates)


def test_a_stack_changed_after_the_preview_is_refused(bot, runner, slack_api):
    approval_id = request_approval(bot, slack_api, runner)
    runner.fingerprints["production"] = "v2: someone ran up from a laptop"

    bot.click(ACTION_APPROVE, approval_id, user=CAROL, channel=DEPLOY_CHANNEL)

    slack_api.wait_for_text("was *not* run")
    bot.idle()
    assert ups(runner) == []
    refused = [e for e in bot.audit.entries() if e["event"] == "end" and e["operation"] == "up"]
    assert [e["result"] for e in refused] == ["refused: changed since preview"]


def test_without_plan_support_the_change_check_still_guards_the_up(tmp_path, slack_api):
    runner = FakeRunner(supports_plans=False)
    bot = start_bot(tmp_path, slack_api, runner)
    try:
        approval_id = request_approval(bot, slack_api, runner)
        assert runner.requests_for("production")[0].save_plan is None
        runner.fingerprints["production"] = "changed"
        bot.click(ACTION_APPROVE, approval_id, user=BOB, channel=DEPLOY_CHANNEL)
        slack_api.wait_for_text("was *not* run")
        bot.idle()
        assert ups(runner) == []
    finally:
        bot.close()


def test_one_approval_wins_and_a_second_click_does_nothing(bot, runner, slack_api):
    approval_id = request_approval(bot, slack_api, runner)

    bot.click(ACTION_APPROVE, approval_id, user=BOB, channel=DEPLOY_CHANNEL)
    bot.click(ACTION_APPROVE, approval_id, user=CAROL, channel=DEPLOY_CHANNEL)
    bot.idle()

    assert len(ups(runner)) == 1
    slack_api.wait_for_text("no longer pending")


def test_the_requester_can_cancel_and_a_later_approval_does_nothing(bot, runner, slack_api):
    approval_id = request_approval(bot, slack_api, runner)

    bot.click(ACTION_CANCEL, approval_id, user=ALICE, channel=DEPLOY_CHANNEL)
    slack_api.wait_for_text("Cancelled by <@UALICE>")
    bot.click(ACTION_APPROVE, approval_id, user=BOB, channel=DEPLOY_CHANNEL)
    bot.idle()

    slack_api.wait_for_text("no longer pending")
    assert ups(runner) == []
    assert any(e["event"] == "cancelled" for e in bot.audit.entries())


@pytest.mark.parametrize("command", ["destroy production", "up production"])
def test_people_without_the_subcommand_get_no_preview(bot, runner, slack_api, command):
    reply = bot.command(command, user=MALLORY, channel=DEPLOY_CHANNEL)

    assert reply.text.startswith(":no_entry:")
    bot.idle()
    assert runner.requests == []
    assert [e["event"] for e in bot.audit.entries()] == ["denied"]
