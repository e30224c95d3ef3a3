"""The pipeline watch: the bot checks every stack's Alertmanager on a timer and tells the
stack's channel, once, when the alerting pipeline is broken (Alertmanager unreachable or the
Watchdog missing on two checks in a row), and once when it works again.

The decisions are tested on `advance` and `render` directly; the wiring against a real
Alertmanager (Debian's `prometheus-alertmanager` on 127.0.0.1) and the bot's own timer.
"""

from __future__ import annotations

import copy
import socket
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from slackbot.alerts import AlertmanagerClient
from slackbot.pipeline_watch import (
    CONSECUTIVE_BAD_CHECKS,
    REMINDER_SECONDS,
    RUNBOOK_URL,
    Broken,
    Check,
    Fault,
    Notice,
    Recovered,
    WatchState,
    advance,
    read_pipeline,
    render,
)
from slackbot.redact import MASK
from tests.slackbot.alertmanager_support import Alertmanager, alert, require_alertmanager
from tests.slackbot.slackbot_support import (
    ACCESS,
    DEPLOY_CHANNEL,
    OPS_CHANNEL,
    FakeRunner,
    SlackApiRecorder,
    start_bot,
)

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC).timestamp()
INTERVAL = 300.0
URL = "http://alertmanager.monitoring.svc:9093"
ALERTS_CHANNEL = "CALERTS"

GOOD = None
DOWN = Fault.UNREACHABLE
NO_WATCHDOG = Fault.NO_WATCHDOG

WATCH_ACCESS: dict[str, Any] = copy.deepcopy(ACCESS)
WATCH_ACCESS["stacks"]["production"]["channel"] = ALERTS_CHANNEL


def notices(*faults: Fault | None) -> list[Notice | None]:
    """Feed one check per interval to a fresh watch; what it would post after each."""
    state = WatchState()
    said: list[Notice | None] = []
    for index, fault in enumerate(faults):
        reason = "the connection was refused" if fault is DOWN else ""
        state, notice = advance(state, Check(T0 + index * INTERVAL, fault, reason))
        said.append(notice)
    return said


def posted(said: Iterable[Notice | None]) -> list[Notice]:
    return [notice for notice in said if notice is not None]


# ---- the decisions ---------------------------------------------------------------------------


def test_a_healthy_pipeline_stays_silent():
    assert posted(notices(*[GOOD] * 20)) == []


def test_one_bad_check_stays_silent():
    assert posted(notices(GOOD, NO_WATCHDOG)) == []
    assert posted(notices(DOWN)) == []


def test_two_bad_checks_in_a_row_post_once_and_more_bad_checks_post_nothing():
    assert CONSECUTIVE_BAD_CHECKS == 2
    said = notices(GOOD, NO_WATCHDOG, NO_WATCHDOG, *[NO_WATCHDOG] * 10)

    assert said[:2] == [None, None]
    assert said[2] == Broken(Check(T0 + 2 * INTERVAL, NO_WATCHDOG), since=T0 + INTERVAL)
    assert posted(said[3:]) == [], "no repeated posts while it stays broken"


def test_recovery_is_posted_once_with_how_long_it_was_broken():
    said = notices(DOWN, DOWN, DOWN, GOOD, GOOD, GOOD)

    assert isinstance(said[1], Broken)
    assert said[3] == Recovered(since=T0, at=T0 + 3 * INTERVAL)
    assert said[3].broken_for == 3 * INTERVAL
    assert said[4:] == [None, None]
    text = render("production", URL, said[3])
    assert text == (
        ":white_check_mark: The alerting pipeline of `production` works again: the `Watchdog` "
        "alert reaches Alertmanager. It was broken for 15m 0s."
    )


def test_a_flapping_pipeline_posts_nothing():
    assert posted(notices(NO_WATCHDOG, GOOD, NO_WATCHDOG, GOOD, DOWN, GOOD, NO_WATCHDOG)) == []


def test_the_count_starts_again_after_a_good_check():
    said = notices(DOWN, GOOD, DOWN, DOWN)

    assert said[:3] == [None, None, None]
    assert isinstance(said[3], Broken)
    assert said[3].since == T0 + 2 * INTERVAL, "since the first check of the current run"


def test_a_change_of_fault_during_an_outage_posts_nothing_new():
    said = notices(DOWN, DOWN, NO_WATCHDOG, NO_WATCHDOG, GOOD)

    assert [type(n).__name__ for n in posted(said)] == ["Broken", "Recovered"]
    assert isinstance(said[1], Broken) and said[1].check.fault is DOWN


def test_a_long_outage_is_recalled_once_a_day():
    per_day = int(REMINDER_SECONDS // INTERVAL)
    said = notices(*[NO_WATCHDOG] * (2 * per_day + 2))

    broken = [n for n in posted(said) if isinstance(n, Broken)]
    assert [n.reminder for n in broken] == [False, True, True]
    assert broken[1].check.at - broken[0].check.at == REMINDER_SECONDS
    text = render("production", URL, broken[1])
    assert "*The alerting pipeline of `production` is still broken*" in text
    assert "(since 2026-03-01 12:00 UTC, 24h 5m 0s)" in text


def test_an_unreachable_alertmanager_is_named_with_the_reason():
    (notice,) = posted(notices(DOWN, DOWN))

    text = render("production", URL + "/", notice)

    assert text.startswith(
        ":rotating_light: *The alerting pipeline of `production` is broken* since "
        "2026-03-01 12:00 UTC: its Alertmanager (http://alertmanager.monitoring.svc:9093) "
        "cannot be read: the connection was refused;"
    )
    assert "Prometheus is not sending" not in text
    assert "whether the Alertmanager pods run" in text
    assert f"<{RUNBOOK_URL}|Watchdog runbook>" in text
    assert RUNBOOK_URL == (
        "https://github.com/acme-data/airflow-platform/blob/main/monitoring/runbooks.md#watchdog"
    )


def test_a_missing_watchdog_says_prometheus_is_not_sending_alerts():
    (notice,) = posted(notices(GOOD, NO_WATCHDOG, NO_WATCHDOG))

    text = render("integration", URL, notice)

    assert text.startswith(
        ":rotating_light: *The alerting pipeline of `integration` is broken* since "
        "2026-03-01 12:05 UTC: Prometheus is not sending alerts to Alertmanager: the "
        "always-firing `Watchdog` alert of `integration` is missing from "
        "http://alertmanager.monitoring.svc:9093."
    )
    assert "cannot be read" not in text
    assert "whether Prometheus runs, evaluates its rules and reaches Alertmanager" in text
    assert f"<{RUNBOOK_URL}|Watchdog runbook>" in text


def test_a_reason_cannot_break_out_of_the_message():
    notice = Broken(Check(T0, DOWN, "<!channel> answered"), since=T0)

    assert "<!channel>" not in render("local", URL, notice)


# ---- against a real Alertmanager ---------------------------------------------------------------


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[Alertmanager]:
    server = Alertmanager(require_alertmanager(), tmp_path / "alertmanager")
    try:
        yield server
    finally:
        server.close()


def closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_a_real_alertmanager_says_whether_the_watchdog_is_firing(alertmanager):
    now = datetime.now(UTC)
    resolved = alert("Watchdog", "local", "none", started=now - timedelta(minutes=10))
    resolved["endsAt"] = (now - timedelta(seconds=1)).isoformat()
    alertmanager.post_alerts(
        [
            alert("Watchdog", "production", "none"),
            alert("AirflowPodCrashLooping", "integration", "page", "no Watchdog here"),
            resolved,
        ]
    )
    client = AlertmanagerClient(alertmanager.url, timeout=3)

    assert read_pipeline(client.fetch, "production", T0) == Check(T0)
    assert read_pipeline(client.fetch, "integration", T0) == Check(T0, NO_WATCHDOG)
    assert read_pipeline(client.fetch, "local", T0) == Check(T0, NO_WATCHDOG), "expired"

    alertmanager.close()
    assert read_pipeline(client.fetch, "production", T0) == Check(
        T0, DOWN, "the connection was refused"
    )


def test_the_bot_posts_a_broken_pipeline_once_and_its_recovery(tmp_path, slack_api, alertmanager):
    alertmanager.post_alerts([alert("Watchdog", "production", "none")])
    bot = start_bot(
        tmp_path,
        slack_api,
        FakeRunner(),
        access=WATCH_ACCESS,
        alertmanager_urls={"production": alertmanager.url, "integration": alertmanager.url},
        alerts_timeout=1.0,
        pipeline_check_interval=INTERVAL,
    )

    def check() -> list[str]:
        """One housekeeping tick; the pipeline posts it caused."""
        before = len(slack_api.posts())
        bot.chatops.run_housekeeping()
        bot.idle()
        return [call.params["text"] for call in slack_api.posts()[before:]]

    try:
        assert check() == [], "integration has no Watchdog: one bad check"
        assert check() == [], "not due again yet"
        bot.clock.offset += INTERVAL
        (broken,) = check()
        bot.clock.offset += INTERVAL
        assert check() == [], "no repeated posts"

        alertmanager.post_alerts([alert("Watchdog", "integration", "none")])
        bot.clock.offset += INTERVAL
        (recovered,) = check()

        alertmanager.close()
        bot.clock.offset += INTERVAL
        assert check() == [], "one failed call is not an outage"
        bot.clock.offset += INTERVAL
        unreachable = check()
        bot.clock.offset += INTERVAL
        assert check() == []
    finally:
        bot.close()

    assert "The alerting pipeline of `integration` is broken" in broken
    assert "Prometheus is not sending alerts to Alertmanager" in broken
    assert "works again" in recovered and "It was broken for 15m" in recovered
    assert [call.params["channel"] for call in slack_api.posts()[:2]] == [OPS_CHANNEL] * 2
    assert len(unreachable) == 2, "both stacks read the same, stopped, Alertmanager"
    production = next(text for text in unreachable if "`production`" in text)
    assert "cannot be read: the connection was refused" in production
    channels = {call.params["channel"] for call in slack_api.posts()[2:]}
    assert channels == {ALERTS_CHANNEL, OPS_CHANNEL}, "each stack's own channel"


def test_the_housekeeping_timer_runs_the_watch(tmp_path):
    slack = SlackApiRecorder()
    bot = start_bot(
        tmp_path,
        slack,
        FakeRunner(),
        alertmanager_urls={"production": f"http://127.0.0.1:{closed_port()}"},
        housekeeping_interval=0.05,
        pipeline_check_interval=0.05,
    )
    try:
        call = slack.wait_for_text("alerting pipeline of `production` is broken", timeout=5)
    finally:
        bot.close()
        slack.close()

    assert call.params["channel"] == DEPLOY_CHANNEL, "the first channel of its rules"
    assert "the connection was refused" in call.params["text"]
    assert sum("is broken" in text for text in slack.texts()) == 1


def test_an_interval_of_zero_turns_the_watch_off(tmp_path, slack_api):
    bot = start_bot(
        tmp_path,
        slack_api,
        FakeRunner(),
        alertmanager_urls={"production": f"http://127.0.0.1:{closed_port()}"},
        pipeline_check_interval=0,
    )
    try:
        for _ in range(4):
            bot.chatops.run_housekeeping()
            bot.clock.offset += 3600
        bot.idle()
    finally:
        bot.close()

    assert slack_api.posts() == []


def test_the_report_is_masked_like_every_post(tmp_path, slack_api):
    secret = "s3cr3t-path-0123456789"
    bot = start_bot(
        tmp_path,
        slack_api,
        FakeRunner(),
        alertmanager_urls={"local": f"http://127.0.0.1:{closed_port()}/{secret}"},
        pipeline_check_interval=INTERVAL,
    )
    try:
        bot.chatops.core.redactor.add([secret])
        bot.chatops.run_housekeeping()
        bot.idle()
        bot.clock.offset += INTERVAL
        bot.chatops.run_housekeeping()
        call = slack_api.wait_for_text("alerting pipeline of `local` is broken")
        bot.idle()
    finally:
        bot.close()

    assert secret not in call.text
    assert MASK in call.params["text"]


def test_a_slow_alertmanager_is_never_asked_twice_at_once(tmp_path, slack_api):
    silent = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    bot = start_bot(
        tmp_path,
        slack_api,
        FakeRunner(),
        alertmanager_urls={"local": f"http://127.0.0.1:{silent.getsockname()[1]}"},
        alerts_timeout=0.5,
        pipeline_check_interval=INTERVAL,
    )
    try:
        bot.chatops.run_housekeeping()
        bot.clock.offset += INTERVAL
        bot.chatops.run_housekeeping()
        bot.idle()
        assert slack_api.posts() == [], "the second tick found the first check still running"
        bot.clock.offset += INTERVAL
        bot.chatops.run_housekeeping()
        call = slack_api.wait_for_text("alerting pipeline of `local` is broken")
        bot.idle()
    finally:
        bot.close()
        silent.close()

    assert "it did not answer within 0.5s" in call.params["text"]
