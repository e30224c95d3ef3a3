"""`/airflow rollback <stack>`: the rollback config `deploy.rollback` computes from the stack's
outputs (and state) is set on the stack, then `up` runs, and its canary with it; approvals as
for `up`. The real `deploy.rollback` computes the config from outputs in the shape the program
writes (`components.upgrades`); only Pulumi is the test double (`FakeRunner`).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from pulumi import automation as auto

from components.upgrades import (
    GUARD_TYPE,
    SNAPSHOT_TYPE,
    PlatformVersions,
    UpgradeRecord,
    snapshot_tags,
)
from slackbot.blocks import ACTION_APPROVE
from slackbot.operations import Operation
from slackbot.runner import NothingToRollBackError, plain_outputs, rollback_settings
from tests.slackbot.slackbot_support import (
    ALICE,
    BOB,
    DEPLOY_CHANNEL,
    MALLORY,
    OPS_CHANNEL,
    approval_id_from,
)

SNAPSHOT = "airflow-production-pre-upgrade-1-0a1b2c"
OLD_IMAGE = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/airflow:3.2.1-abc"
UPGRADE = UpgradeRecord(
    1,
    SNAPSHOT,
    PlatformVersions("3.2.1", "1.21.0", OLD_IMAGE),
    PlatformVersions("3.2.2", "1.22.0"),
)
RUNNING = PlatformVersions("3.2.2", "1.22.0", "123456789012.dkr.ecr.eu-west-1.amazonaws.com/x:new")
UPGRADED = {"upgrade_history": [UPGRADE.to_output()], "platform_versions": RUNNING.to_output()}
KEYS = {
    "airflow-platform:database.restoredFrom": SNAPSHOT,
    "airflow-platform:rollback.image": OLD_IMAGE,
    "airflow-platform:rollback.airflowVersion": "3.2.1",
    "airflow-platform:rollback.chartVersion": "1.21.0",
}


def failed_upgrade_state() -> dict[str, Any]:
    """`pulumi stack export` after an upgrade whose `up` failed (its canary did): the snapshot
    is in the state; the outputs still describe the release before (pulumi/pulumi#15754)."""
    return {
        "version": 3,
        "deployment": {
            "resources": [
                {
                    "type": SNAPSHOT_TYPE,
                    "urn": f"urn:pulumi:production::airflow-platform::{GUARD_TYPE}"
                    f"${SNAPSHOT_TYPE}::pre-upgrade-1",
                    "outputs": {"dbSnapshotIdentifier": SNAPSHOT, "tags": snapshot_tags(UPGRADE)},
                }
            ]
        },
    }


def notes(bot, event: str) -> list[dict[str, Any]]:
    return [e for e in bot.audit.entries() if e["event"] == event]


def test_rollback_sets_the_computed_config_then_runs_up_and_audits_each_step(
    bot, runner, slack_api
):
    runner.outputs["integration"] = UPGRADED

    reply = bot.command("rollback integration", user=ALICE, channel=OPS_CHANNEL)
    slack_api.wait_for_text("`rollback integration` succeeded")
    bot.idle()

    assert "Starting `rollback integration`" in reply.text
    ((request, seen),) = runner.config_at_run
    assert request.operation is Operation.ROLLBACK
    assert all(seen.get(key) == value for key, value in KEYS.items()), "config set before up"
    assert runner.configs["integration"]["airflow-platform:database.restoredFrom"].value == SNAPSHOT
    assert runner.configs["integration"]["airflow-platform:upgrades.canaryForceFailure"].value == (
        "false"
    ), "a rollback runs the real canary"
    events = [e["event"] for e in bot.audit.entries()]
    assert events == ["rollback_config", "start", "end"]
    (planned,) = notes(bot, "rollback_config")
    assert KEYS.items() <= json.loads(planned["config"]).items()
    assert planned["purpose"] == "rollback"
    (end,) = notes(bot, "end")
    assert (end["operation"], end["result"]) == ("rollback", "succeeded")


def test_nothing_to_roll_back_is_said_audited_and_runs_nothing(bot, runner, slack_api):
    runner.outputs["integration"] = {"url": "http://airflow"}

    bot.command("rollback integration", user=ALICE, channel=OPS_CHANNEL)
    call = slack_api.wait_for_text("Nothing to roll back")
    bot.idle()

    assert "no pre-upgrade snapshot is recorded" in call.text
    assert runner.requests == [] and runner.config_writes == []
    (refused,) = notes(bot, "rollback_refused")
    assert "no pre-upgrade snapshot" in refused["reason"]
    assert bot.chatops.core.locks.holder("integration") is None
    assert not notes(bot, "start")


def test_production_rollback_previews_the_rolled_back_config_and_waits_for_approval(
    bot, runner, slack_api
):
    runner.outputs["production"] = UPGRADED

    reply = bot.command("rollback production", user=ALICE, channel=DEPLOY_CHANNEL)
    approval = slack_api.wait_for_text("airflow_approve")
    bot.idle()

    assert "needs approval" in reply.text
    ((preview, seen),) = runner.config_at_run
    assert preview.operation is Operation.PREVIEW and preview.preview_of is Operation.ROLLBACK
    assert preview.save_plan is not None
    assert seen.get("airflow-platform:database.restoredFrom") == SNAPSHOT, "previewed rolled back"
    assert "airflow-platform:database.restoredFrom" not in runner.configs.get("production", {}), (
        "the preview's config change is undone"
    )
    assert "preview of rollback production" in "\n".join(slack_api.texts())

    bot.click(ACTION_APPROVE, approval_id_from(approval), user=BOB, channel=DEPLOY_CHANNEL)
    slack_api.wait_for_text("`rollback production` succeeded")
    bot.idle()

    (_, (rollback, seen_then)) = runner.config_at_run
    assert rollback.operation is Operation.ROLLBACK
    assert rollback.use_plan == preview.save_plan, "held to the previewed plan"
    assert (
        seen_then.get("airflow-platform:rollback.image") == KEYS["airflow-platform:rollback.image"]
    )
    ends = [(e["operation"], e["approver"], e["result"]) for e in notes(bot, "end")]
    assert ends == [("preview", None, "succeeded"), ("rollback", BOB, "succeeded")]
    purposes = [n["purpose"] for n in notes(bot, "rollback_config")]
    assert purposes == ["preview", "rollback"]


def test_the_requester_cannot_approve_their_own_rollback(bot, runner, slack_api):
    runner.outputs["production"] = UPGRADED
    bot.command("rollback production", user=BOB, channel=DEPLOY_CHANNEL)
    approval = slack_api.wait_for_text("airflow_approve")
    bot.idle()

    bot.click(ACTION_APPROVE, approval_id_from(approval), user=BOB, channel=DEPLOY_CHANNEL)
    slack_api.wait_for_text("cannot approve your own request")
    bot.idle()

    assert [r.operation for r in runner.requests] == [Operation.PREVIEW]


def test_people_who_may_not_run_up_may_not_roll_back(bot, runner, slack_api):
    reply = bot.command("rollback production", user=MALLORY, channel=DEPLOY_CHANNEL)

    assert reply.text.startswith(":no_entry:")
    bot.idle()
    assert runner.requests == []
    assert [(e["event"], e["operation"]) for e in bot.audit.entries()] == [("denied", "rollback")]


def test_rollback_takes_no_branch(bot):
    reply = bot.command("rollback integration branch=main", user=ALICE, channel=OPS_CHANNEL)

    assert "`branch=` goes with `preview` and `up`" in reply.text


def test_an_upgrade_whose_up_failed_is_rolled_back_from_the_state(bot, runner, slack_api):
    """The Roll back offered under a failed canary: the failed `up` wrote no outputs, so only
    `pulumi stack export` knows the snapshot taken before it."""
    runner.outputs["integration"] = {"platform_versions": UPGRADE.previous.to_output()}
    runner.exports["integration"] = failed_upgrade_state()

    bot.command("rollback integration", user=ALICE, channel=OPS_CHANNEL)
    slack_api.wait_for_text("`rollback integration` succeeded")
    bot.idle()

    ((request, seen),) = runner.config_at_run
    assert request.operation is Operation.ROLLBACK
    assert seen["airflow-platform:database.restoredFrom"] == SNAPSHOT
    assert seen["airflow-platform:rollback.image"] == OLD_IMAGE


def test_only_plain_outputs_reach_the_rollback_computation():
    """Rollback config is written to the stack in plain text: secret outputs never feed it."""
    outputs = {
        "upgrade_history": auto.OutputValue([UPGRADE.to_output()], secret=False),
        "adminPassword": auto.OutputValue("s3cr3t-value", secret=True),
    }

    assert plain_outputs(outputs) == {"upgrade_history": [UPGRADE.to_output()]}


def test_the_rollback_error_becomes_the_runner_s_nothing_to_roll_back():
    assert KEYS.items() <= rollback_settings(UPGRADED).items()
    with pytest.raises(NothingToRollBackError, match="no pre-upgrade snapshot is recorded"):
        rollback_settings({})
    rolled_back = {"upgrade_history": [{**UPGRADE.to_output(), "rolled_back": True}]}
    with pytest.raises(NothingToRollBackError, match="already rolled back"):
        rollback_settings(rolled_back)
