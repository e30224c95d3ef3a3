"""Pending approvals and their plans survive a restart; expired ones are closed at start-up;
plans of nothing pending (a SIGKILL mid-preview) are removed; nothing lives in the system temp
directory."""

from __future__ import annotations

import json

from slackbot.approvals import ApprovalBook, PendingApproval, write_atomically
from slackbot.blocks import ACTION_APPROVE
from slackbot.operations import Operation
from tests.slackbot.slackbot_support import (
    ALICE,
    BOB,
    DEPLOY_CHANNEL,
    FakeRunner,
    Script,
    approval_id_from,
    start_bot,
    typical_events,
)


def request_approval(bot, slack_api, runner) -> str:
    runner.scripts["production"] = Script(events=typical_events("production"))
    reply = bot.command("up production", user=ALICE, channel=DEPLOY_CHANNEL)
    assert "needs approval" in reply.text
    call = slack_api.wait_for_text("airflow_approve")
    bot.idle()
    return approval_id_from(call)


def test_a_pending_approval_survives_a_restart_and_can_be_approved(tmp_path, slack_api):
    runner = FakeRunner()
    first = start_bot(tmp_path, slack_api, runner)
    try:
        approval_id = request_approval(first, slack_api, runner)
        plan = runner.requests_for("production")[0].save_plan
    finally:
        first.close()
    assert plan is not None and plan.exists()
    assert plan.is_relative_to(tmp_path / "state" / "plans")

    restarted_runner = FakeRunner()
    restarted = start_bot(tmp_path, slack_api, restarted_runner)
    try:
        assert plan.exists(), "the plan of a pending approval is kept"
        restarted.click(ACTION_APPROVE, approval_id, user=BOB, channel=DEPLOY_CHANNEL)
        slack_api.wait_for_text("approved by <@UBOB>)")
        restarted.idle()
        (up,) = [r for r in restarted_runner.requests if r.operation is Operation.UP]
        assert up.use_plan == plan
        assert not plan.exists()
        assert list((tmp_path / "state" / "approvals").iterdir()) == []
    finally:
        restarted.close()


def test_approvals_that_expired_while_the_bot_was_down_are_closed_at_start(tmp_path, slack_api):
    runner = FakeRunner()
    first = start_bot(tmp_path, slack_api, runner)
    try:
        approval_id = request_approval(first, slack_api, runner)
        plan = runner.requests_for("production")[0].save_plan
    finally:
        first.close()
    book = ApprovalBook(tmp_path / "state" / "approvals")
    (pending,) = book.all()
    book.add(_aged(pending, 11 * 60))

    restarted = start_bot(tmp_path, slack_api, FakeRunner())
    try:
        update = slack_api.wait_for_text("Expired without approval")
        restarted.idle()
        assert update.method == "chat.update"
        assert ACTION_APPROVE not in json.dumps(update.params.get("blocks"))
        assert plan is not None and not plan.exists()
        restarted.click(ACTION_APPROVE, approval_id, user=BOB, channel=DEPLOY_CHANNEL)
        slack_api.wait_for_text("no longer pending")
        assert any(e["event"] == "expired" for e in restarted.audit.entries())
    finally:
        restarted.close()


def test_expiry_also_runs_on_the_housekeeping_timer(tmp_path, slack_api):
    runner = FakeRunner()
    bot = start_bot(tmp_path, slack_api, runner, housekeeping_interval=0.05)
    try:
        request_approval(bot, slack_api, runner)
        bot.clock.offset += 11 * 60
        slack_api.wait_for_text("Expired without approval")
    finally:
        bot.close()


def test_plans_left_by_a_killed_bot_are_removed_at_start(tmp_path, slack_api):
    plans = tmp_path / "state" / "plans"
    plans.mkdir(parents=True)
    orphan = plans / "killed-mid-preview.json"
    orphan.write_text("{}")
    approvals = tmp_path / "state" / "approvals"
    approvals.mkdir()
    (approvals / ".x.json.1234.tmp").write_text("torn")
    (approvals / "garbage.json").write_text("{not json")

    bot = start_bot(tmp_path, slack_api, FakeRunner())
    try:
        assert not orphan.exists()
        assert list(approvals.iterdir()) == []
    finally:
        bot.close()


def test_approval_files_are_private_and_replaced_atomically(tmp_path):
    target = tmp_path / "a.json"
    write_atomically(target, '{"v": 1}')
    write_atomically(target, '{"v": 2}')

    assert json.loads(target.read_text()) == {"v": 2}
    assert oct(target.stat().st_mode & 0o777) == "0o600"
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


def _aged(pending: PendingApproval, seconds: float) -> PendingApproval:
    from dataclasses import replace

    return replace(pending, requested_at=pending.requested_at - seconds)
