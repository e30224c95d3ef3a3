"""`status <stack>` shows the stack's firing alerts from its Alertmanager, and says when the
alert pipeline itself is broken (no Watchdog), not configured, or unreachable.

The API facts come from prometheus/alertmanager `api/v2/openapi.yaml` (`getAlerts`: query
parameters `active`, `silenced`, `inhibited` default to true, `filter` is a repeated label
matcher; the answer is `gettableAlerts`) and `api/v2/api.go` (`alertFilter` applies silences
and inhibitions when the alerts are read). The tests check them against the real binary.
"""

from __future__ import annotations

import socket
import time
import urllib.parse
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import tests.slackbot.alertmanager_support as support
from slackbot.alerts import (
    MAX_ALERTS_SHOWN,
    AlertmanagerClient,
    AlertSnapshot,
    AlertsUnavailableError,
    FiringAlert,
    alerts_url,
    parse_alerts,
    render_alerts,
)
from tests.slackbot.alertmanager_support import Alertmanager, alert, require_alertmanager
from tests.slackbot.slackbot_support import (
    DEPLOY_CHANNEL,
    OPS_CHANNEL,
    FakeRunner,
    SlackApiRecorder,
    start_bot,
)

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
RUNBOOK = "https://github.com/acme-data/airflow-platform/blob/main/monitoring/runbooks.md"


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[Alertmanager]:
    binary = require_alertmanager()
    server = Alertmanager(binary, tmp_path / "alertmanager")
    try:
        yield server
    finally:
        server.close()


def firing(name: str, severity: str, minutes_ago: float = 5) -> FiringAlert:
    return FiringAlert(name, severity, NOW - timedelta(minutes=minutes_ago), f"{name} fires", None)


# ---- the query and the rendering -----------------------------------------------------------


def test_the_query_asks_for_firing_unsilenced_uninhibited_alerts_of_one_stack():
    """Every `getAlerts` boolean defaults to true (openapi.yaml), so silenced and inhibited
    alerts are only left out when the query says false."""
    url = urllib.parse.urlsplit(alerts_url("http://am.monitoring:9093/prefix/", "production"))

    assert url.path == "/prefix/api/v2/alerts"
    assert urllib.parse.parse_qs(url.query) == {
        "active": ["true"],
        "silenced": ["false"],
        "inhibited": ["false"],
        "filter": ['stack="production"'],
    }


def test_alerts_are_sorted_page_warning_info_and_bounded():
    snapshot = parse_alerts(
        [
            {"labels": {"alertname": f"Info{i}", "severity": "info"}, "annotations": {}}
            for i in range(MAX_ALERTS_SHOWN)
        ]
        + [
            {
                "labels": {"alertname": "TaskFailures", "severity": "warning"},
                "annotations": {"summary": "many tasks fail"},
                "startsAt": "2026-03-01T11:00:00.123456789Z",
            },
            {
                "labels": {"alertname": "SchedulerDown", "severity": "page"},
                "annotations": {"summary": "no heartbeat", "runbook_url": RUNBOOK + "#scheduler"},
                "startsAt": "2026-03-01T11:30:00Z",
            },
            {"labels": {"alertname": "Watchdog", "severity": "none"}, "annotations": {}},
            {"labels": {"alertname": "InfoInhibitor", "severity": "none"}, "annotations": {}},
        ]
    )

    assert snapshot.watchdog
    assert [a.name for a in snapshot.alerts[:3]] == ["SchedulerDown", "TaskFailures", "Info0"]
    assert len(snapshot.alerts) == MAX_ALERTS_SHOWN + 2, "severity none is never a problem"
    text = render_alerts(snapshot, NOW)
    lines = text.splitlines()
    assert lines[0] == f"*Alerts:* {MAX_ALERTS_SHOWN + 2} firing"
    assert lines[1].startswith("• :red_circle: `SchedulerDown` (page) since 2026-03-01 11:30 UTC")
    assert "(30m 0s): no heartbeat" in lines[1]
    assert f"<{RUNBOOK}#scheduler|runbook>" in lines[1]
    assert "`TaskFailures` (warning) since 2026-03-01 11:00 UTC (1h 0m 0s)" in lines[2]
    assert len(lines) == 1 + MAX_ALERTS_SHOWN + 1
    assert lines[-1] == "• … and 2 more"
    assert "Watchdog" not in text and "InfoInhibitor" not in text


def test_a_missing_watchdog_means_the_pipeline_is_broken_even_with_no_alerts():
    quiet = render_alerts(AlertSnapshot((), watchdog=True), NOW)
    broken = render_alerts(AlertSnapshot((), watchdog=False), NOW)
    broken_with_alerts = render_alerts(AlertSnapshot((firing("A", "page"),), False), NOW)

    assert quiet == "*Alerts:* none firing."
    assert broken.startswith(":rotating_light: *The alert pipeline is broken:*")
    assert "proves nothing" in broken
    assert "alert pipeline is broken" in broken_with_alerts and "`A` (page)" in broken_with_alerts


def test_alert_text_cannot_break_out_of_the_message():
    snapshot = AlertSnapshot(
        (FiringAlert("X<!channel>", "page", None, "<@U123> & co", "javascript:alert(1)|<!here>"),),
        watchdog=True,
    )

    text = render_alerts(snapshot, NOW)

    assert "<!channel>" not in text and "<@U123>" not in text and "<!here>" not in text
    assert "|runbook>" not in text, "only http(s) runbook links become links"


@pytest.mark.parametrize("payload", [{"alerts": []}, [{"annotations": {}}], ["x"]])
def test_an_answer_that_is_not_an_alert_list_is_unavailable(payload):
    with pytest.raises(AlertsUnavailableError):
        parse_alerts(payload)


# ---- against a real Alertmanager --------------------------------------------------------------


def production_alerts(server: Alertmanager) -> None:
    started = datetime.now(UTC) - timedelta(minutes=42)
    server.post_alerts(
        [
            alert("Watchdog", "production", "none"),
            alert(
                "AirflowSchedulerHeartbeatMissing",
                "production",
                "page",
                "no heartbeat",
                started,
                RUNBOOK + "#scheduler-heartbeat-missing",
            ),
            alert("AirflowTaskFailureRatioHigh", "production", "warning", "tasks fail"),
            alert("AirflowDagImportErrors", "production", "warning", "import errors"),
            alert("AirflowExecutorSlotsLow", "production", "info", "inhibited by the page"),
            alert("AirflowPodCrashLooping", "integration", "page", "another stack"),
        ]
    )
    server.silence({"alertname": "AirflowDagImportErrors", "stack": "production"})


def test_the_client_reads_what_the_real_alertmanager_says_is_firing(alertmanager):
    production_alerts(alertmanager)

    snapshot = AlertmanagerClient(alertmanager.url, timeout=3).fetch("production")

    assert snapshot.watchdog
    assert [a.name for a in snapshot.alerts] == [
        "AirflowSchedulerHeartbeatMissing",
        "AirflowTaskFailureRatioHigh",
    ], "silenced, inhibited, other stacks' and severity-none alerts are left out"
    page = snapshot.alerts[0]
    assert page.summary == "no heartbeat"
    assert page.runbook_url == RUNBOOK + "#scheduler-heartbeat-missing"
    assert page.since is not None
    assert timedelta(minutes=41) < datetime.now(UTC) - page.since < timedelta(minutes=43)
    other = AlertmanagerClient(alertmanager.url, timeout=3).fetch("integration")
    assert [a.name for a in other.alerts] == ["AirflowPodCrashLooping"]
    assert not other.watchdog


def test_status_shows_firing_alerts_and_a_broken_pipeline(tmp_path, slack_api, alertmanager):
    production_alerts(alertmanager)
    bot = start_bot(
        tmp_path,
        slack_api,
        FakeRunner(),
        alertmanager_urls={"production": alertmanager.url, "integration": alertmanager.url},
    )
    try:
        bot.command("status production", channel=DEPLOY_CHANNEL)
        production = slack_api.wait_for_text("Stack `production`")
        bot.command("status integration", channel=OPS_CHANNEL)
        integration = slack_api.wait_for_text("Stack `integration`")
        bot.idle()
    finally:
        bot.close()

    text = production.params["text"]
    assert "*Alerts:* 2 firing" in text
    assert text.index("AirflowSchedulerHeartbeatMissing") < text.index(
        "AirflowTaskFailureRatioHigh"
    )
    assert f"<{RUNBOOK}#scheduler-heartbeat-missing|runbook>" in text
    assert "(42m" in text or "(41m" in text
    for hidden in (
        "AirflowDagImportErrors",
        "AirflowExecutorSlotsLow",
        "AirflowPodCrashLooping",
        "Watchdog",
        "pipeline is broken",
    ):
        assert hidden not in text
    other = integration.params["text"]
    assert ":rotating_light: *The alert pipeline is broken:*" in other
    assert "AirflowPodCrashLooping" in other and "AirflowSchedulerHeartbeatMissing" not in other


def test_status_says_when_alerts_are_not_configured(bot, slack_api):
    bot.command("status local", channel=OPS_CHANNEL)
    call = slack_api.wait_for_text("Stack `local`")
    bot.idle()

    assert "*Alerts:* not configured for `local`" in call.params["text"]
    assert "SLACKBOT_ALERTMANAGER_URL_LOCAL" in call.params["text"]


def closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def silent_server() -> Iterator[str]:
    """Accepts connections (the kernel's backlog) and never answers."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        listener.close()


def test_status_says_quickly_when_alertmanager_is_unreachable(tmp_path, silent_server):
    refused = f"http://127.0.0.1:{closed_port()}"
    slack = SlackApiRecorder()
    bot = start_bot(
        tmp_path,
        slack,
        FakeRunner(),
        alertmanager_urls={"local": refused, "integration": silent_server},
        alerts_timeout=0.5,
    )
    try:
        started = time.monotonic()
        ack = bot.command("status integration", channel=OPS_CHANNEL)
        hung = slack.wait_for_text("Stack `integration`", timeout=5)
        answered = time.monotonic() - started
        bot.command("status local", channel=OPS_CHANNEL)
        down = slack.wait_for_text("Stack `local`", timeout=5)
        bot.idle()
    finally:
        bot.close()
        slack.close()

    assert ack.seconds < 1.0 and "Fetching the status" in ack.text
    assert answered < 2.5, f"status waited {answered:.2f}s for a silent Alertmanager"
    assert "could not read the Alertmanager of `integration`" in hung.params["text"]
    assert "it did not answer within 0.5s" in hung.params["text"]
    assert "*Last update:*" in hung.params["text"] or "No update" in hung.params["text"]
    assert "the connection was refused" in down.params["text"]


def test_without_the_binary_ci_fails_and_elsewhere_the_tests_skip(monkeypatch):
    monkeypatch.setattr(support, "BINARY", None)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="prometheus-alertmanager is not installed"):
        support.require_alertmanager()
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception):
        support.require_alertmanager()
