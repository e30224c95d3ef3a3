"""Drift: `drift <stack>` and a schedule from the access file run a refresh-preview and post
what drifted, with Refresh/Up buttons that follow the usual rules. Nothing is applied."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import yaml

from slackbot.blocks import ACTION_DRIFT_REFRESH, ACTION_DRIFT_UP
from slackbot.operations import Operation
from slackbot.runner import RunResult
from tests.slackbot.slackbot_support import (
    ACCESS,
    ALICE,
    BOB,
    DEPLOY_CHANNEL,
    MALLORY,
    OPS_CHANNEL,
    RANDOM_CHANNEL,
    FakeRunner,
    Script,
    start_bot,
    step,
    summary,
)

DRIFT_ACCESS: dict[str, Any] = copy.deepcopy(ACCESS)
DRIFT_ACCESS["drift_interval_hours"] = 1
DRIFT_ACCESS["stacks"]["local"]["channel"] = DEPLOY_CHANNEL


def drifted(stack: str) -> Script:
    return Script(
        events=[
            step(1, "pre", "update", "aws:s3/bucket:Bucket", "logs", stack),
            step(2, "pre", "same", "aws:iam/role:Role", "logs-role", stack),
            summary(3, {"update": 1, "same": 1}),
        ],
        result=RunResult(changes={"update": 1, "same": 1}),
    )


def test_drift_runs_a_refresh_preview_and_posts_what_drifted_with_buttons(tmp_path, slack_api):
    runner = FakeRunner()
    runner.scripts["local"] = drifted("local")
    bot = start_bot(tmp_path, slack_api, runner, access=DRIFT_ACCESS)
    try:
        reply = bot.command("drift local", user=MALLORY, channel=OPS_CHANNEL)
        report = slack_api.wait_for_text("Drift on `local`")
        bot.idle()

        assert "Checking `local` for drift" in reply.text
        (request,) = runner.requests_for("local")
        assert request.operation is Operation.PREVIEW and request.refresh
        assert report.params["channel"] == DEPLOY_CHANNEL, "the stack's channel"
        assert "update aws:s3/bucket:Bucket `logs`" in report.text
        assert "logs-role" not in report.text
        assert ACTION_DRIFT_REFRESH in report.text and ACTION_DRIFT_UP in report.text
        assert all(r.operation is Operation.PREVIEW for r in runner.requests)
        (end,) = [e for e in bot.audit.entries() if e["event"] == "end"]
        assert (end["operation"], end["result"]) == ("drift", "succeeded")
    finally:
        bot.close()


def test_no_drift_is_said_for_a_manual_check(bot, runner, slack_api):
    runner.scripts["local"] = Script(result=RunResult(changes={"same": 5}))

    bot.command("drift local")
    slack_api.wait_for_text("No drift on `local`")
    bot.idle()


def test_drift_needs_preview_rights(bot, runner, slack_api):
    reply = bot.command("drift integration", user=MALLORY, channel=RANDOM_CHANNEL)

    assert reply.text.startswith(":no_entry:")
    bot.idle()
    assert runner.requests == []


def test_the_schedule_checks_stacks_when_due_and_never_applies(tmp_path, slack_api):
    runner = FakeRunner()
    runner.scripts["local"] = drifted("local")
    bot = start_bot(tmp_path, slack_api, runner, access=DRIFT_ACCESS)
    try:
        bot.chatops.run_housekeeping()
        bot.idle()
        assert runner.requests == [], "not due yet"
        bot.clock.offset += 3600 + 1
        bot.chatops.run_housekeeping()
        slack_api.wait_for_text("Drift on `local`")
        bot.idle()
        checked = sorted(r.stack for r in runner.requests)
        assert checked == ["integration", "local", "production"]
        assert all(r.operation is Operation.PREVIEW and r.refresh for r in runner.requests)
        texts = "\n".join(slack_api.texts())
        assert "Drift on `integration`" not in texts, "quiet when nothing drifted"
    finally:
        bot.close()


def test_the_up_button_of_a_production_drift_report_asks_for_approval(bot, runner, slack_api):
    runner.scripts["production"] = drifted("production")
    bot.command("drift production", user=ALICE, channel=DEPLOY_CHANNEL)
    slack_api.wait_for_text("Drift on `production`")
    bot.idle()

    bot.click(ACTION_DRIFT_UP, "production", user=BOB, channel=DEPLOY_CHANNEL)
    slack_api.wait_for_text("airflow_approve")
    bot.idle()

    assert [r.operation for r in runner.requests_for("production")] == [
        Operation.PREVIEW,
        Operation.PREVIEW,
    ]
    assert runner.requests_for("production")[1].preview_of is Operation.UP


def test_the_refresh_button_runs_a_refresh_for_allowed_people(bot, runner, slack_api):
    runner.scripts["local"] = drifted("local")
    bot.command("drift local", channel=OPS_CHANNEL)
    slack_api.wait_for_text("Drift on `local`")
    bot.idle()

    bot.click(ACTION_DRIFT_REFRESH, "local", user=ALICE, channel=OPS_CHANNEL)
    bot.idle()

    assert [r.operation for r in runner.requests_for("local")][-1] is Operation.REFRESH


def test_the_manifest_asks_only_for_what_the_bot_uses():
    manifest = yaml.safe_load(
        (Path(__file__).resolve().parents[2] / "slackbot" / "manifest.yaml").read_text()
    )

    assert sorted(manifest["oauth_config"]["scopes"]["bot"]) == ["chat:write", "commands"]
    (command,) = manifest["features"]["slash_commands"]
    assert command["command"] == "/airflow"
    assert command["url"].endswith("/slack/events")
    for operation in Operation:
        assert operation.value in command["usage_hint"], "every subcommand is in the hint"
    assert manifest["settings"]["interactivity"]["request_url"] == command["url"]
    assert json.dumps(manifest).count("bot.example.com") == 2
