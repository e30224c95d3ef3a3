"""What a probe of the running bot demanded: each delivery runs once, secrets are masked from
the first message on (and ordinary words are not), every fault answers in Slack with one log
line, rejected requests log one short line, status never delays a deploy."""

from __future__ import annotations

import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from slackbot.dedup import DeliveryLog, delivery_keys
from slackbot.redact import MASK, Redactor, worth_masking
from slackbot.runner import (
    ConfigEntry,
    OperationFailedError,
    PulumiStackRunner,
    RunnerError,
    StackOutput,
    StackStatus,
)
from tests.slackbot.slackbot_support import (
    ALICE,
    DEPLOY_CHANNEL,
    OPS_CHANNEL,
    WAIT,
    Script,
    command_body,
    diagnostic,
    sign,
)

CONFIG_SECRET = "db-Pa55word-from-config"
OUTPUT_SECRET = "0utput-secret-token-77"


# ---- one run per delivery ---------------------------------------------------------------------


def test_a_signed_request_replayed_within_the_window_runs_once(bot, runner, slack_api):
    """Before: 3 of 3 copies ran. Bolt checks signatures and age but remembers nothing."""
    body = command_body("up local", ALICE, OPS_CHANNEL)
    now = int(time.time())
    headers = {"X-Slack-Request-Timestamp": str(now), "X-Slack-Signature": sign(body, now)}

    replies = [bot.post(body, headers) for _ in range(3)]
    bot.idle()

    assert [reply.status for reply in replies] == [200, 200, 200]
    assert "Starting `up local`" in replies[0].text
    assert replies[1].body == replies[2].body == ""
    assert len(runner.requests_for("local")) == 1
    assert len([e for e in bot.audit.entries() if e["event"] == "start"]) == 1


def test_slack_retries_with_a_fresh_signature_run_once(bot, runner, slack_api):
    """real-world.md: Slack retries with `X-Slack-Retry-Num`, a new timestamp and signature."""
    body = command_body("up local", ALICE, OPS_CHANNEL)
    first = bot.signed(body)
    retries = []
    for number in (1, 2):
        ts = int(time.time()) + number
        retries.append(
            bot.post(
                body,
                {
                    "X-Slack-Request-Timestamp": str(ts),
                    "X-Slack-Signature": sign(body, ts),
                    "X-Slack-Retry-Num": str(number),
                    "X-Slack-Retry-Reason": "http_timeout",
                },
            )
        )
    bot.idle()

    assert first.status == 200 and "Starting" in first.text
    assert [r.status for r in retries] == [200, 200]
    assert len(runner.requests_for("local")) == 1


def test_concurrent_copies_of_one_delivery_run_once(bot, runner, slack_api):
    body = command_body("up local", ALICE, OPS_CHANNEL)
    with ThreadPoolExecutor(max_workers=8) as pool:
        replies = list(pool.map(lambda _i: bot.signed(body), range(8)))
    bot.idle()

    assert all(reply.status == 200 for reply in replies)
    assert len(runner.requests_for("local")) == 1


def test_two_invocations_with_the_same_text_both_run(bot, runner, slack_api):
    bot.command("preview local")
    bot.idle()
    bot.command("preview local")
    bot.idle()

    assert len(runner.requests_for("local")) == 2


def test_the_delivery_log_forgets_after_its_window():
    now = [0.0]
    log = DeliveryLog(window=10, clock=lambda: now[0])
    keys = delivery_keys(command_body("up local", ALICE, OPS_CHANNEL))

    assert log.first(keys)
    assert not log.first(keys)
    now[0] = 11
    assert log.first(keys)


# ---- masking ------------------------------------------------------------------------------


def secret_stack(runner) -> None:
    runner.configs["local"] = {
        "airflow-platform:databasePassword": ConfigEntry(CONFIG_SECRET, secret=True),
        "airflow-platform:owner": ConfigEntry("data-platform", secret=False),
    }
    runner.statuses["local"] = StackStatus(
        "local",
        None,
        (
            StackOutput("admin_password", None, True),
            StackOutput("admin_username", "admin", False),
        ),
        secret_values=frozenset({OUTPUT_SECRET, "admin"}),
    )


def test_secrets_in_a_first_error_line_are_masked_before_the_first_operation(
    bot, runner, slack_api
):
    """Before: the config secret and the output secret were posted in clear; "admin" (a
    secret output that is also the plain `admin_username`) became `[secret]` everywhere."""
    secret_stack(runner)
    runner.scripts["local"] = Script(
        events=[
            diagnostic(
                1,
                f"login as admin failed: password {CONFIG_SECRET} rejected, token {OUTPUT_SECRET}",
            )
        ],
        error=OperationFailedError("failed"),
    )

    bot.command("up local")
    call = slack_api.wait_for_text("First error")
    bot.idle()

    assert CONFIG_SECRET not in call.text and OUTPUT_SECRET not in call.text
    assert f"password {MASK} rejected, token {MASK}" in call.text
    assert "login as admin failed" in call.text
    everything = "\n".join(slack_api.texts())
    assert CONFIG_SECRET not in everything and OUTPUT_SECRET not in everything


def test_status_shows_the_plain_admin_username(bot, runner, slack_api):
    secret_stack(runner)

    bot.command("status local")
    call = slack_api.wait_for_text("admin_username")
    bot.idle()

    assert "`admin_username`: `admin`" in call.text
    assert f"`admin_password`: {MASK}" in call.text


@pytest.mark.parametrize(
    ("value", "masked"),
    [
        ("admin", False),
        ("airflow", False),
        ("yes", False),
        ("8080", False),
        ("hunter2", False),
        ("aB3$x9", True),
        ("correcthorse", True),
        ("s3cr3t-Pa55word-0f-the-db", True),
    ],
)
def test_what_is_worth_masking(value, masked):
    assert worth_masking(value) is masked


def test_public_values_are_never_masked_and_multi_line_secrets_are_masked_by_line():
    redactor = Redactor()
    redactor.add(["-----BEGIN KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END KEY-----"])
    redactor.add(["shared-value-123"])
    redactor.add_public(["shared-value-123"])

    text = redactor.scrub("key line MIIEvQIBADANBgkqhkiG9w0BAQEFAASC and shared-value-123")

    assert text == f"key line {MASK} and shared-value-123"


# ---- every fault answers ------------------------------------------------------------------


def slackbot_records(caplog):
    return [
        r for r in caplog.records if r.name.startswith("slackbot") and r.levelno >= logging.ERROR
    ]


@pytest.mark.parametrize(
    ("command", "channel", "fault"),
    [
        ("up production", DEPLOY_CHANNEL, "fingerprint"),
        ("up local", OPS_CHANNEL, "run"),
        ("up local", OPS_CHANNEL, "config"),
        ("status local", OPS_CHANNEL, "status"),
    ],
)
def test_every_fault_inside_an_operation_answers_in_slack_with_one_log_line(
    bot, runner, slack_api, caplog, command, channel, fault
):
    """Before: a non-runner exception (a dangling symlink in the fingerprint) posted nothing."""
    bot.idle()
    caplog.clear()
    caplog.set_level(logging.INFO)
    crash = FileNotFoundError(2, "No such file or directory", "dags/dangling.py")
    if fault == "fingerprint":
        runner.fingerprint_error = crash
    elif fault == "run":
        runner.scripts["local"] = Script(error=ValueError("unexpected"))
    else:
        runner.errors[fault] = KeyError("boom")

    reply = bot.command(command, channel=channel)
    call = slack_api.wait_for(lambda calls: any(":x:" in c.text for c in calls))
    bot.idle()

    assert reply.status == 200
    del call
    failures = [c for c in slack_api.posts() if ":x:" in c.text]
    assert failures and failures[0].params["channel"] == channel
    errors = slackbot_records(caplog)
    assert len(errors) == 1, [r.getMessage() for r in errors]
    assert errors[0].exc_info is None and "\n" not in errors[0].getMessage()
    assert bot.chatops.core.locks.holder(command.split()[1]) is None, "the stack is released"


def test_a_dangling_symlink_in_the_program_is_a_runner_error(tmp_path, monkeypatch):
    (tmp_path / "__main__.py").write_text("x = 1\n")
    os.symlink(tmp_path / "gone.py", tmp_path / "dangling.py")
    runner = PulumiStackRunner(tmp_path)

    class Selected:
        def info(self, show_secrets: bool = False):
            return None

    monkeypatch.setattr(runner, "_select", lambda _name: Selected())

    with pytest.raises(RunnerError, match=r"Cannot read `dangling\.py`"):
        runner.fingerprint("local")


# ---- rejected requests --------------------------------------------------------------------


def test_a_large_unsigned_body_with_a_newline_logs_one_short_line(bot, runner, slack_api, caplog):
    """Before: the 1 MiB body went to the log (bolt logs it), and its newline forged a line."""
    caplog.set_level(logging.DEBUG)
    forged = "\n2026-01-01 00:00:00 INFO slackbot approved by UADMIN\n"
    body = "command=/airflow&text=up+production" + forged
    body += "x" * (1024 * 1024 - len(body.encode()))
    now = int(time.time())

    reply = bot.post(body, {"X-Slack-Request-Timestamp": str(now), "X-Slack-Signature": "v0=00"})

    assert reply.status == 401
    bot.idle()
    warnings = [r for r in caplog.records if r.levelno >= logging.INFO]
    assert len(warnings) == 1, [r.getMessage()[:80] for r in warnings]
    message = warnings[0].getMessage()
    assert "\n" not in message and len(message) < 200 and "approved by" not in message
    assert all("xxxxxxxx" not in r.getMessage() for r in caplog.records)
    assert runner.requests == []


@pytest.mark.parametrize("timestamp", ["abc", "12e3", "", "-1", "1" * 40])
def test_a_malformed_timestamp_gets_401(bot, runner, slack_api, timestamp):
    """Before: `int(timestamp)` inside bolt raised and the request got 500."""
    body = command_body("up local", ALICE, OPS_CHANNEL)

    reply = bot.post(
        body, {"X-Slack-Request-Timestamp": timestamp, "X-Slack-Signature": sign(body, 0)}
    )

    assert reply.status == 401
    bot.idle()
    assert runner.requests == []


# ---- status never delays a deploy ---------------------------------------------------------


def test_forty_status_calls_do_not_delay_an_acked_up(bot, runner, slack_api):
    """Before: 40 status calls filled the job pool and an acked `up` started 10 s late.
    The `up` itself reads the stack's status once (its secrets) before it runs."""
    bot.idle()
    runner.status_delay = 0.25
    started: dict[str, float] = {}
    original = runner.run

    def timed_run(request, on_event):
        started.setdefault(request.stack, time.perf_counter())
        return original(request, on_event)

    runner.run = timed_run
    runner.statuses["integration"] = StackStatus("integration", None, ())
    with ThreadPoolExecutor(max_workers=40) as pool:
        statuses = list(pool.map(lambda _i: bot.command("status integration"), range(40)))
    acked = time.perf_counter()
    up = bot.command("up local", channel=DEPLOY_CHANNEL)
    deadline = time.monotonic() + WAIT
    while "local" not in started and time.monotonic() < deadline:
        time.sleep(0.01)
    bot.idle(timeout=60)

    assert all(reply.status == 200 for reply in statuses)
    assert "Starting `up local`" in up.text
    delay = started["local"] - acked
    print(f"up started {delay * 1000:.0f} ms after its ack behind 40 status calls")
    assert delay < 2.0


def test_no_plan_files_in_the_system_temp_directory(bot, runner, slack_api, tmp_path: Path):
    assert bot.chatops.core.options.plan_dir.is_relative_to(tmp_path)
