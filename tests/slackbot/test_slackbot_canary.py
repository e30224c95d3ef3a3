"""A deploy stopped by the post-deploy canary: the bot posts the smoke DAG run's state and log
excerpt (masked like everything it posts) and offers a "Roll back" button that follows the
usual access and approval rules.

The report line is made by `canary.report.format_report`, the canary's own formatter. It
reaches the bot inside the CLI's error text (pulumi-kubernetes puts a failed Job pod's
termination message into the error of `pulumi up`) or inside an error diagnostic event.
"""

from __future__ import annotations

import json

from canary.report import CanaryReport, format_report
from slackbot.blocks import ACTION_ROLLBACK
from slackbot.operations import Operation
from slackbot.redact import MASK
from slackbot.runner import ConfigEntry, OperationFailedError, StackStatus
from tests.slackbot.slackbot_support import (
    ALICE,
    DEPLOY_CHANNEL,
    MALLORY,
    OPS_CHANNEL,
    ApiCall,
    Script,
    SlackApiRecorder,
    diagnostic,
)
from tests.slackbot.test_slackbot_rollback import UPGRADED

SECRET = "pg-Secret-Value-8c1f2e"
RUN_ID = "manual__2026-03-01T12:00:00+00:00"


def report_line(**changes: object) -> str:
    fields: dict[str, object] = {
        "outcome": "failed",
        "dag_id": "platform_canary",
        "run_id": RUN_ID,
        "state": "failed",
        "seconds": 41.2,
        "failed_tasks": ("log_marker",),
        "log_excerpt": "ERROR - forced failure requested by the run conf\nTask failed",
    }
    fields.update(changes)
    return format_report(CanaryReport(**fields))  # type: ignore[arg-type]


def cli_failure(line: str) -> OperationFailedError:
    """What the runner raises when `pulumi up` fails on the canary Job."""
    output = (
        "Updating (local):\n"
        "error: 1 error occurred:\n"
        "\t* Job 'airflow/platform-canary-1a2b3c' failed\n"
        f"\t* [Pod airflow/platform-canary-1a2b3c-x7k2p]: [Error] {line}\n"
    )
    return OperationFailedError(
        "The Pulumi operation on `local` failed.", "error: 1 error occurred:", output=output
    )


def canary_post(slack_api: SlackApiRecorder) -> ApiCall:
    return slack_api.wait_for_text("post-deploy canary failed")


def rollback_button(call: ApiCall) -> dict[str, object]:
    for block in call.params.get("blocks") or []:
        for element in block.get("elements", []):
            if element.get("action_id") == ACTION_ROLLBACK:
                return dict(element)
    raise AssertionError(f"no Roll back button in {call.text}")


def test_a_failed_canary_is_posted_with_its_run_state_log_and_a_roll_back_button(
    bot, runner, slack_api
):
    runner.scripts["local"] = Script(error=cli_failure(report_line()))

    bot.command("up local")
    post = canary_post(slack_api)
    bot.idle()

    text = post.params["text"]
    assert "after `up local`. The smoke DAG run ended `failed`." in text
    assert RUN_ID in text and "Failed tasks: log_marker" in text
    assert "forced failure requested by the run conf" in text
    button = rollback_button(post)
    assert button["value"] == "local"
    assert post.params.get("thread_ts"), "under the operation's thread"
    texts = "\n".join(slack_api.texts())
    assert "`up local` failed" in texts, "the usual summary is still posted"
    (noted,) = [e for e in bot.audit.entries() if e["event"] == "canary_failed"]
    assert (noted["outcome"], noted["state"], noted["run_id"]) == ("failed", "failed", RUN_ID)


def test_the_log_excerpt_is_masked_and_cannot_ping_the_channel(bot, runner, slack_api):
    runner.configs["local"] = {"airflow-platform:dbPassword": ConfigEntry(SECRET, secret=True)}
    excerpt = f"connecting with password {SECRET}\n<!channel> <@U0ADMIN> it broke"
    runner.scripts["local"] = Script(error=cli_failure(report_line(log_excerpt=excerpt)))

    bot.command("up local")
    post = canary_post(slack_api)
    bot.idle()

    assert SECRET not in post.text and f"password {MASK}" in post.params["text"]
    assert "<!channel>" not in post.text and "<@U0ADMIN>" not in post.text
    assert SECRET not in "\n".join(slack_api.texts())


def test_a_report_in_an_error_diagnostic_is_found_and_a_timeout_is_worded_as_one(
    bot, runner, slack_api
):
    line = report_line(outcome="timeout", state="running", failed_tasks=(), log_excerpt="")
    runner.scripts["local"] = Script(
        events=[diagnostic(1, f"kubernetes:batch/v1:Job platform-canary failed: {line}")],
        error=OperationFailedError("The Pulumi operation on `local` failed."),
    )

    bot.command("up local")
    post = canary_post(slack_api)
    bot.idle()

    assert "did not finish in time (last state `running`)" in post.params["text"]
    assert rollback_button(post)["value"] == "local"


def test_no_report_no_offer_and_previews_or_passing_canaries_offer_nothing(bot, runner, slack_api):
    runner.scripts["local"] = Script(error=cli_failure("some other error"))
    bot.command("up local")
    slack_api.wait_for_text("`up local` failed")
    bot.idle()
    runner.scripts["local"] = Script(error=cli_failure(report_line(outcome="success")))
    bot.command("up local")
    bot.idle()
    runner.scripts["local"] = Script(error=cli_failure(report_line()))
    bot.command("preview local")
    bot.idle()

    assert len([r for r in runner.requests if r.operation is Operation.UP]) == 2
    assert "post-deploy canary failed" not in "\n".join(slack_api.texts())
    assert ACTION_ROLLBACK not in "\n".join(slack_api.texts())
    assert not any(e["event"] == "canary_failed" for e in bot.audit.entries())


def test_roll_back_on_production_asks_for_approval_and_others_are_refused(bot, runner, slack_api):
    runner.outputs["production"] = UPGRADED
    runner.statuses["production"] = StackStatus("production", None, ())

    bot.click(ACTION_ROLLBACK, "production", user=MALLORY, channel=DEPLOY_CHANNEL)
    slack_api.wait_for(
        lambda calls: any(
            c.method == "chat.postEphemeral" and "may not run `rollback`" in c.text for c in calls
        )
    )
    bot.idle()
    assert runner.requests == []

    bot.click(ACTION_ROLLBACK, "production", user=ALICE, channel=DEPLOY_CHANNEL)
    approval = slack_api.wait_for_text("airflow_approve")
    bot.idle()

    (preview,) = runner.requests
    assert preview.operation is Operation.PREVIEW and preview.preview_of is Operation.ROLLBACK
    assert "Approve `rollback production`" in approval.params["text"]
    denied = [e for e in bot.audit.entries() if e["event"] == "denied"]
    assert [(e["user"], e["operation"]) for e in denied] == [(MALLORY, "rollback")]


def test_the_roll_back_button_of_a_stack_that_no_longer_exists(bot, runner, slack_api):
    bot.click(ACTION_ROLLBACK, "staging", user=ALICE, channel=OPS_CHANNEL)
    call = slack_api.wait_for_text("That stack no longer exists.")
    bot.idle()

    assert call.method == "chat.postEphemeral"
    assert runner.requests == []
    assert json.dumps(call.params).count("staging") == 0
