"""The bolt app behind a real HTTP server: signature checks, acknowledgement speed."""

from __future__ import annotations

import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from tests.slackbot.slackbot_support import (
    ALICE,
    DEPLOY_CHANNEL,
    OPS_CHANNEL,
    SIGNING_SECRET,
    BotHarness,
    FakeRunner,
    Script,
    SlackApiRecorder,
    command_body,
    sign,
    typical_events,
)


def assert_nothing_ran(bot: BotHarness, runner: FakeRunner, slack_api: SlackApiRecorder) -> None:
    bot.idle()
    assert runner.requests == []
    assert slack_api.posts() == []
    assert bot.audit.entries() == []


def test_a_validly_signed_command_is_acknowledged_and_run(bot, runner, slack_api):
    runner.scripts["local"] = Script(events=typical_events("local"))

    reply = bot.command("preview local")

    assert reply.status == 200
    assert "Starting `preview local`" in reply.text
    slack_api.wait_for_text("succeeded")
    assert [r.stack for r in runner.requests] == ["local"]


def test_a_bad_signature_is_rejected_and_nothing_runs(bot, runner, slack_api):
    body = command_body("up local", ALICE, OPS_CHANNEL)
    now = int(time.time())

    reply = bot.post(
        body,
        {
            "X-Slack-Request-Timestamp": str(now),
            "X-Slack-Signature": sign(body, now, secret=SIGNING_SECRET + "-wrong"),
        },
    )

    assert reply.status == 401
    assert_nothing_ran(bot, runner, slack_api)


def test_a_body_changed_after_signing_is_rejected(bot, runner, slack_api):
    now = int(time.time())
    signature = sign(command_body("preview local", ALICE, OPS_CHANNEL), now)

    reply = bot.post(
        command_body("up local", ALICE, OPS_CHANNEL),
        {"X-Slack-Request-Timestamp": str(now), "X-Slack-Signature": signature},
    )

    assert reply.status == 401
    assert_nothing_ran(bot, runner, slack_api)


def test_missing_signature_headers_are_rejected(bot, runner, slack_api):
    body = command_body("up local", ALICE, OPS_CHANNEL)
    now = int(time.time())

    no_headers = bot.post(body, {})
    no_signature = bot.post(body, {"X-Slack-Request-Timestamp": str(now)})
    no_timestamp = bot.post(body, {"X-Slack-Signature": sign(body, now)})

    assert [no_headers.status, no_signature.status, no_timestamp.status] == [401, 401, 401]
    assert_nothing_ran(bot, runner, slack_api)


def test_a_replayed_request_older_than_five_minutes_is_rejected(bot, runner, slack_api):
    old = int(time.time()) - 5 * 60 - 30

    reply = bot.signed(command_body("up local", ALICE, OPS_CHANNEL), timestamp=old)

    assert reply.status == 401
    assert_nothing_ran(bot, runner, slack_api)


def test_health_and_unknown_paths(bot):
    import http.client

    host, port = bot.server.server_address[:2]
    connection = http.client.HTTPConnection(str(host), int(port), timeout=5)
    try:
        connection.request("GET", "/healthz")
        health = connection.getresponse()
        assert (health.status, health.read()) == (200, b"ok")
        connection.request("POST", "/elsewhere", body=b"x")
        elsewhere = connection.getresponse()
        elsewhere.read()
        assert elsewhere.status == 404
    finally:
        connection.close()


def test_twenty_concurrent_commands_are_acked_fast_while_an_operation_runs(bot, runner, slack_api):
    gate = threading.Event()
    runner.scripts["local"] = Script(gate=gate, events=typical_events("local"))
    first = bot.command("up local", channel=DEPLOY_CHANNEL)
    assert first.status == 200
    assert runner.started.wait(5), "the slow operation never started"

    texts = ["status integration", "preview integration", "up local", "help", "status local"]
    try:
        with ThreadPoolExecutor(max_workers=20) as pool:
            replies = list(pool.map(lambda i: bot.command(texts[i % len(texts)]), range(20)))
    finally:
        gate.set()

    latencies = sorted(reply.seconds for reply in replies)
    p50 = statistics.median(latencies)
    p99 = latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))]
    print(
        f"ack latency over {len(latencies)} concurrent commands: p50={p50 * 1000:.1f} ms "
        f"p99={p99 * 1000:.1f} ms max={latencies[-1] * 1000:.1f} ms"
    )
    assert all(reply.status == 200 for reply in replies)
    assert max(latencies) < 3.0
    assert p99 < 0.3
    sent = [texts[i % len(texts)] for i in range(20)]
    ups = [reply for text, reply in zip(sent, replies, strict=True) if text == "up local"]
    assert len(ups) == 4
    assert all("`local` is busy" in reply.text for reply in ups), "a second up is told, not run"
    bot.idle()
