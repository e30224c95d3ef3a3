"""Progress and summaries built from real `pulumi.automation` engine events; no secrets shown."""

from __future__ import annotations

from slackbot.operations import Operation
from slackbot.progress import ProgressReporter, ProgressTracker, Throttle
from slackbot.runner import OperationFailedError, RunResult, StackOutput, StackStatus
from slackbot.summary import Outcome, render_outcome, render_progress
from tests.slackbot.slackbot_support import (
    MALLORY,
    RANDOM_CHANNEL,
    FakeRunner,
    Script,
    diagnostic,
    event,
    start_bot,
    summary,
    typical_events,
)

SECRET = "s3cr3t-Pa55word-0f-the-db"


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_tracker_counts_completed_steps_and_follows_the_current_one():
    tracker = ProgressTracker()
    for engine_event in typical_events("local")[:6]:
        tracker.on_event(engine_event)

    midway = tracker.snapshot()
    for engine_event in typical_events("local")[6:]:
        tracker.on_event(engine_event)
    final = tracker.snapshot()

    assert midway.done == {"create": 2}
    assert midway.current_step == "updating kubernetes:helm.sh/v3:Release `airflow`"
    assert final.done == {"create": 2, "update": 1, "same": 2}
    assert final.summary_changes == {"create": 2, "update": 1, "same": 2}
    assert final.first_error is None


def test_the_first_engine_error_line_is_kept_without_colours():
    tracker = ProgressTracker()
    tracker.on_event(diagnostic(1, "warning: deprecated field", severity="warning"))
    tracker.on_event(
        diagnostic(2, "\x1b[31m  creating EKS cluster: AccessDenied\x1b[0m\n  at provider.go:12\n")
    )
    tracker.on_event(diagnostic(3, "update failed"))
    metadata = {
        "op": "create",
        "urn": "urn:pulumi:local::airflow-platform::aws:eks/cluster:Cluster::main",
        "type": "aws:eks/cluster:Cluster",
        "provider": "",
    }
    tracker.on_event(event(4, resOpFailedEvent={"metadata": metadata, "status": 1, "steps": 1}))

    snapshot = tracker.snapshot()

    assert snapshot.first_error == "creating EKS cluster: AccessDenied"
    assert snapshot.failed == 1


def test_a_mandatory_policy_violation_is_counted_and_reported():
    tracker = ProgressTracker()
    tracker.on_event(
        event(
            1,
            policyEvent={
                "message": "RDS must be encrypted",
                "color": "never",
                "policyName": "rds-encrypted",
                "policyPackName": "airflow-platform",
                "policyPackVersion": "0.1.0",
                "policyPackVersionTag": "0.1.0",
                "enforcementLevel": "mandatory",
            },
        )
    )

    snapshot = tracker.snapshot()

    assert snapshot.mandatory_policy_violations == 1
    assert snapshot.first_error == "policy rds-encrypted: RDS must be encrypted"


def test_the_throttle_lets_one_action_through_per_interval():
    clock = FakeClock()
    throttle = Throttle(10, clock)

    results = []
    for now in (100, 105, 110, 111, 119.9, 120):
        clock.now = now
        results.append(throttle.ready())

    assert results == [False, False, True, False, False, True]


def test_progress_is_posted_at_most_once_per_interval_and_only_when_changed():
    clock = FakeClock()
    posted: list[str] = []
    reporter = ProgressReporter(ProgressTracker(), posted.append, render_progress, 30, clock)

    events = typical_events("local")
    for index, engine_event in enumerate(events):
        clock.now = 100 + index * 10  # one event every 10 s
        reporter.on_event(engine_event)
    clock.now += 60
    reporter.maybe_post()  # nothing new since the last post

    assert len(posted) == 3  # at 130 s, 160 s and 190 s of a 100 s run
    assert posted[0].startswith(":hourglass_flowing_sand: 30s: done so far: create 1 · update 0")
    assert posted[0].endswith("Now: creating aws:iam/role:Role `logs-role`")
    assert "create 2 · update 1 · delete 0 · replace 0\n" in posted[1]
    assert "create 2 · update 1 · delete 0 · replace 0 · unchanged 2" in posted[2]


def test_progress_replies_go_to_the_operation_s_thread(tmp_path, slack_api):
    runner = FakeRunner()
    runner.scripts["local"] = Script(events=typical_events("local"), event_delay=0.03)
    bot = start_bot(tmp_path, slack_api, runner, progress_interval=0.05)
    try:
        bot.command("up local")
        bot.idle()
    finally:
        bot.close()

    posts = [c for c in slack_api.posts() if c.method == "chat.postMessage"]
    root = posts[0]
    progress = [c for c in posts if "done so far" in c.text]
    assert progress, "no progress was posted"
    assert all(c.params.get("thread_ts") for c in posts[1:])
    assert len(progress) <= len(typical_events("local")) * 0.03 / 0.05 + 2
    assert "started `up local`" in root.text


def test_the_final_summary_has_result_duration_counts_and_outputs_without_secrets(
    bot, runner, slack_api
):
    runner.scripts["local"] = Script(
        events=typical_events("local"),
        result=RunResult(
            changes={"create": 2, "update": 1, "same": 2},
            outputs=(
                StackOutput("logBucket", "airflow-logs-123", False),
                StackOutput("dbPassword", None, True),
            ),
            secret_values=frozenset({SECRET}),
        ),
    )

    bot.command("up local")
    bot.idle()

    final = slack_api.wait_for_text("succeeded in")
    assert "create 2 · update 1 · delete 0 · replace 0 · unchanged 2" in final.text
    assert "`logBucket`: `airflow-logs-123`" in final.text
    assert "`dbPassword`: [secret]" in final.text
    (end,) = [e for e in bot.audit.entries() if e["event"] == "end"]
    assert end["counts"] == {"create": 2, "update": 1, "same": 2}
    assert end["result"] == "succeeded"


def test_a_secret_value_never_appears_in_posted_text_or_the_audit_log(bot, runner, slack_api):
    runner.statuses["local"] = StackStatus(
        "local",
        None,
        (StackOutput("dbPassword", None, True), StackOutput("host", "db.local", False)),
        secret_values=frozenset({SECRET}),
    )
    runner.scripts["local"] = Script(
        events=[diagnostic(1, f"connecting with password {SECRET} failed"), summary(2, {})],
        error=OperationFailedError("The Pulumi operation on `local` failed.", SECRET),
    )

    bot.command("status local")
    bot.idle()
    bot.command("up local")
    bot.idle()

    slack_api.wait_for_text("failed in")
    everything = "\n".join(slack_api.texts())
    assert "connecting with password [secret] failed" in everything
    assert SECRET not in everything
    assert SECRET not in bot.audit.path.read_text(encoding="utf-8")


def test_a_failure_shows_the_first_engine_error_line_never_exception_text(bot, runner, slack_api):
    runner.scripts["local"] = Script(
        events=[diagnostic(1, "creating RDS instance: InvalidParameterCombination\ndetails")],
        error=OperationFailedError("The Pulumi operation on `local` failed.", "error: cli"),
    )
    runner.scripts["integration"] = Script(error=KeyError("Traceback (most recent call last)"))

    bot.command("up local")
    bot.command("up integration")
    bot.idle()

    local = slack_api.wait_for_text("`up local` failed")
    assert "*First error:* creating RDS instance: InvalidParameterCombination" in local.text
    assert "details" not in local.text
    integration = slack_api.wait_for_text("`up integration` failed")
    assert "internal error" in integration.text
    assert "Traceback" not in "\n".join(slack_api.texts())


def test_status_reports_the_last_update_and_outputs(bot, runner, slack_api):
    from datetime import datetime

    from slackbot.runner import UpdateRecord

    runner.statuses["production"] = StackStatus(
        "production",
        UpdateRecord(
            kind="update",
            result="succeeded",
            started=datetime(2024, 5, 1, 10, 0),
            ended=datetime(2024, 5, 1, 10, 7),
            version=42,
            message="Slack: up by UALICE, approved by UBOB",
            author=None,
            changes={"create": 1, "same": 30},
        ),
        (StackOutput("kubeconfig", None, True),),
        secret_values=frozenset({SECRET}),
    )

    reply = bot.command("status production", user=MALLORY, channel=RANDOM_CHANNEL)
    bot.idle()

    assert "Fetching the status" in reply.text
    status = slack_api.wait_for_text("*Last update:*")
    assert "`update` succeeded" in status.text
    assert "by Slack: up by UALICE, approved by UBOB, version 42" in status.text
    assert "create 1 · update 0 · delete 0 · replace 0 · unchanged 30" in status.text
    assert "`kubeconfig`: [secret]" in status.text


def test_render_outcome_names_the_previewed_operation():
    text = render_outcome(
        Outcome(
            operation=Operation.PREVIEW,
            stack="production",
            user="UALICE",
            succeeded=True,
            duration=75,
            changes={"delete": 40},
            preview_of=Operation.DESTROY,
        )
    )

    assert text.startswith(":white_check_mark: `preview of destroy production` succeeded in 1m 15s")
    assert "delete 40" in text
