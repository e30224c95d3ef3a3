"""The audit log brackets every operation; an interrupted one is reported at start-up."""

from __future__ import annotations

import json
import shutil
import threading

from slackbot.audit import AuditLog, OperationRecord
from slackbot.blocks import ACTION_REFRESH
from slackbot.operations import Operation
from slackbot.runner import OperationFailedError
from tests.slackbot.slackbot_support import (
    ALICE,
    BOB,
    DEPLOY_CHANNEL,
    OPS_CHANNEL,
    FakeRunner,
    Script,
    start_bot,
    typical_events,
)

FIELDS = {"time", "user", "channel", "stack", "operation", "approver", "op_id", "event"}


def test_every_operation_leaves_a_start_and_an_end_line(bot, runner, slack_api):
    runner.scripts["local"] = Script(events=typical_events("local"))
    runner.scripts["integration"] = Script(error=OperationFailedError("failed", None))

    for text, user, channel in [
        ("preview local", ALICE, OPS_CHANNEL),
        ("up local", BOB, DEPLOY_CHANNEL),
        ("refresh local", ALICE, OPS_CHANNEL),
        ("up integration", ALICE, OPS_CHANNEL),
    ]:
        bot.command(text, user=user, channel=channel)
        bot.idle()

    entries = bot.audit.entries()
    starts = [e for e in entries if e["event"] == "start"]
    ends = {e["op_id"]: e for e in entries if e["event"] == "end"}
    assert [(s["operation"], s["stack"], s["user"]) for s in starts] == [
        ("preview", "local", ALICE),
        ("up", "local", BOB),
        ("refresh", "local", ALICE),
        ("up", "integration", ALICE),
    ]
    for start in starts:
        assert start.keys() >= FIELDS
        end = ends[start["op_id"]]
        assert {"result", "duration_s", "counts"} <= end.keys()
        assert end["time"] >= start["time"]
        assert (end["user"], end["channel"], end["stack"]) == (
            start["user"],
            start["channel"],
            start["stack"],
        )
    assert [ends[s["op_id"]]["result"] for s in starts] == [
        "succeeded",
        "succeeded",
        "succeeded",
        "failed",
    ]
    assert ends[starts[1]["op_id"]]["counts"] == {"create": 2, "update": 1, "same": 2}
    assert bot.audit.unfinished() == []


def test_the_start_line_is_written_before_the_operation_runs(bot, runner, slack_api):
    gate = threading.Event()
    runner.scripts["local"] = Script(gate=gate)

    bot.command("up local")
    assert runner.started.wait(5)
    during = bot.audit.unfinished()
    gate.set()
    bot.idle()

    assert [(e["operation"], e["stack"]) for e in during] == [("up", "local")]
    assert bot.audit.unfinished() == []


def test_an_operation_interrupted_by_a_crash_is_reported_at_start_up(
    tmp_path, bot, runner, slack_api
):
    gate = threading.Event()
    runner.scripts["production"] = Script(gate=gate)
    bot.command("refresh production", user=BOB, channel=DEPLOY_CHANNEL)
    assert runner.started.wait(5)
    crashed = tmp_path / "after-crash"
    (crashed / "audit").mkdir(parents=True)
    shutil.copy(bot.audit.path, crashed / "audit" / "audit.jsonl")  # the log as a crash left it
    gate.set()
    bot.idle()

    restarted_runner = FakeRunner()
    restarted = start_bot(crashed, slack_api, restarted_runner)
    try:
        reported = restarted.chatops.report_unfinished()
        offer = slack_api.wait_for_text("never finished")
        assert [(r.operation, r.stack, r.user) for r in reported] == [
            ("refresh", "production", BOB)
        ]
        assert offer.params["channel"] == DEPLOY_CHANNEL
        assert ACTION_REFRESH in offer.text
        assert restarted.chatops.needs_refresh("production")
        assert restarted.audit.unfinished() == [], "the interruption is recorded once"

        restarted.click(ACTION_REFRESH, "production", user=BOB, channel=DEPLOY_CHANNEL)
        restarted.idle()
        (refresh,) = restarted_runner.requests_for("production")
        assert refresh.operation is Operation.REFRESH
        assert refresh.clear_pending_creates is True
        assert not restarted.chatops.needs_refresh("production")
        assert restarted.chatops.report_unfinished() == []
    finally:
        restarted.close()


def test_the_need_to_refresh_survives_another_restart(tmp_path, slack_api):
    audit = AuditLog(tmp_path / "audit" / "audit.jsonl")
    record = OperationRecord("op1", ALICE, OPS_CHANNEL, "local", "up")
    audit.start(record)
    audit.finish(record, "interrupted", 0.0, {})

    runner = FakeRunner()
    bot = start_bot(tmp_path, slack_api, runner)
    try:
        assert bot.chatops.needs_refresh("local")
        bot.command("refresh local")
        bot.idle()
        assert runner.requests_for("local")[0].clear_pending_creates is True
        assert not bot.chatops.needs_refresh("local")
    finally:
        bot.close()


def test_a_torn_last_line_does_not_hide_the_rest(tmp_path):
    audit = AuditLog(tmp_path / "audit.jsonl")
    record = OperationRecord("op1", ALICE, OPS_CHANNEL, "local", "up")
    audit.start(record)
    with audit.path.open("a", encoding="utf-8") as handle:
        handle.write('{"event": "end", "op_id": "op1", "res')

    assert [e["op_id"] for e in audit.unfinished()] == ["op1"]
    assert all(json.loads(line) for line in audit.path.read_text().splitlines()[:1])
    assert oct(audit.path.stat().st_mode & 0o777) == "0o600"
