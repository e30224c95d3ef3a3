"""The canary's report line: written once, found in any text that carries it, told to people."""

from __future__ import annotations

import json

import pytest

from canary.report import (
    MAX_EXCERPT_CHARS,
    REPORT_PREFIX,
    TERMINATION_MESSAGE_LIMIT,
    CanaryReport,
    describe,
    format_report,
    parse_report,
    termination_message,
)
from canary.smoke import excerpt, is_remote_store, log_sources, redact, render_event

FAILED = CanaryReport(
    outcome="failed",
    dag_id="platform_canary",
    run_id="canary__20250101T000000Z__0123abcd",
    state="failed",
    seconds=42.04,
    failed_tasks=("verify_marker",),
    marker_found=True,
    marker_source="s3://logs/task-logs/dag_id=platform_canary/run_id=x/task_id=emit_marker/attempt=1.log",
    log_excerpt=(
        "[verify_marker try 1]\nERROR Task failed with exception AirflowFailException: forced"
    ),
    message="run ended failed; failed tasks: verify_marker",
    task_states={"emit_marker": "success", "verify_marker": "failed"},
)


def test_a_report_survives_format_and_parse() -> None:
    line = format_report(FAILED)
    assert line.startswith(REPORT_PREFIX) and "\n" not in line
    assert parse_report(line) == FAILED.bounded()
    assert parse_report(line) == FAILED.bounded()  # parsing has no side effects
    assert FAILED.bounded().seconds == 42.0


def test_the_report_is_found_in_a_failed_pulumi_up_error() -> None:
    """How the line reaches `pulumi up`'s error when the canary Job fails.

    pulumi/pulumi-kubernetes `provider/pkg/await/job.go` watches the Job's pods with a
    PodAggregator; `await/checker/pod/check.go` turns a terminated container into
    ``[Pod <ns>/<name>]: <ready condition message>[<reason>] <termination message>``
    (`podError`, `containerTerminatedError`), and `provider/pkg/provider/provider.go`
    `partialError` returns those as the reasons of ErrorResourceInitFailed, which the CLI
    prints as a multierror list (pulumi/pulumi `sdk/go/common/resource/plugin/
    provider_plugin.go`, `InitError`).
    """
    reason = "[Pod airflow/airflow-canary-0123456789ab-x7k2q]: [Error] " + termination_message(
        FAILED
    )
    error = (
        "error: 3 errors occurred:\n"
        '\t* resource "urn:pulumi:production::airflow-platform::kubernetes:batch/v1:Job::canary"'
        " was successfully created, but the Kubernetes API server reported that it failed to"
        " fully initialize or become live: Resource 'airflow-canary-0123456789ab' was created"
        " but failed to initialize\n"
        "\t* [BackoffLimitExceeded] Job has reached the specified backoff limit\n"
        f"\t* {reason}\n"
    )
    assert parse_report(error) == FAILED.bounded()


def test_the_last_valid_report_wins_and_junk_is_skipped() -> None:
    passed = CanaryReport(outcome="success", dag_id="platform_canary", run_id="r2", state="success")
    text = "\n".join(
        [
            "canary: triggered run r1",
            format_report(FAILED),
            format_report(passed),
            REPORT_PREFIX + "{not json",
            REPORT_PREFIX + json.dumps({"outcome": "exploded", "dag_id": "x"}),
            "trailing log line",
        ]
    )
    assert parse_report(text) == passed


@pytest.mark.parametrize(
    "text",
    ["", "no report here", REPORT_PREFIX, REPORT_PREFIX + "[]", REPORT_PREFIX + '{"outcome": 1}'],
)
def test_text_without_a_report_gives_none(text: str) -> None:
    assert parse_report(text) is None


def test_an_unknown_outcome_is_refused() -> None:
    with pytest.raises(ValueError, match="outcome"):
        CanaryReport(outcome="meh", dag_id="platform_canary")


def test_bounded_keeps_the_end_of_a_long_excerpt() -> None:
    long = CanaryReport(
        outcome="failed",
        dag_id="d",
        log_excerpt="start\n" + "x" * 5000 + "\nTHE ERROR",
        message="m" * 2000,
    )
    bounded = parse_report(format_report(long))
    assert bounded is not None
    assert len(bounded.log_excerpt) == MAX_EXCERPT_CHARS
    assert bounded.log_excerpt.endswith("THE ERROR") and bounded.log_excerpt.startswith("…")
    assert len(bounded.message) < 2000


@pytest.mark.parametrize("char", ["x", "é", "🔥"])
def test_the_termination_message_fits_kubernetes_and_keeps_the_line_whole(char: str) -> None:
    """The kubelet keeps at most 4096 bytes of a termination message (Kubernetes docs,
    "Customizing the termination message"); the report line must survive whole."""
    big = CanaryReport(
        outcome="failed",
        dag_id="platform_canary",
        run_id="r",
        state="failed",
        log_excerpt=(char * 80 + "\n") * 200 + "ERROR the real cause",
        message=char * 1000,
        task_states={f"task_{i}": "failed" for i in range(50)},
    )
    text = termination_message(big)
    assert len(text.encode()) <= TERMINATION_MESSAGE_LIMIT
    parsed = parse_report(text)
    assert parsed is not None and parsed.outcome == "failed" and parsed.run_id == "r"
    if parsed.log_excerpt:
        assert parsed.log_excerpt.endswith("ERROR the real cause")


def test_a_short_report_gets_summary_and_line_untouched() -> None:
    text = termination_message(FAILED)
    assert text == describe(FAILED.bounded()) + "\n" + format_report(FAILED) + "\n"


def test_describe_tells_each_outcome() -> None:
    failed = describe(FAILED)
    assert failed.splitlines()[0] == (
        "Canary FAILED: platform_canary run canary__20250101T000000Z__0123abcd"
    )
    assert "State: failed after 42.0 s" in failed
    assert "Failed tasks: verify_marker" in failed
    assert "  ERROR Task failed with exception AirflowFailException: forced" in failed
    assert "Log marker: found (read from s3://logs/" in failed

    timeout = describe(
        CanaryReport(
            outcome="timeout",
            dag_id="platform_canary",
            run_id="r",
            state="queued",
            seconds=600,
            message="deadline of 600 s passed: run r was queued when it passed",
            task_states={"emit_marker": "scheduled"},
        )
    )
    assert timeout.startswith("Canary TIMED OUT: platform_canary run r\nState: queued after 600")
    assert "Task states: emit_marker=scheduled" in timeout
    assert "Log marker" not in timeout

    error = describe(CanaryReport(outcome="error", dag_id="platform_canary", message="401"))
    assert error == "Canary ERROR: platform_canary run (no run)\n401"

    passed = describe(
        CanaryReport(outcome="success", dag_id="d", run_id="r", state="success", marker_found=True)
    )
    assert passed.startswith("Canary PASSED: d run r") and "Log marker: found" in passed


def test_log_events_render_with_their_error_detail() -> None:
    event = {
        "event": "Task failed with exception",
        "level": "error",
        "error_detail": [{"exc_type": "ValueError", "exc_value": "bad input"}],
    }
    assert render_event(event) == "ERROR Task failed with exception ValueError: bad input"
    assert render_event("a plain line") == "a plain line"


def test_log_sources_are_read_from_the_source_group() -> None:
    """airflow-core 3.2.2 `airflow/utils/log/file_task_handler.py` `_read` puts the sources
    in a "Log message source details" group before the log; the S3 handler
    (`providers/amazon/aws/log/s3_task_handler.py`, `S3RemoteLogIO.read`) lists
    ``s3://bucket/key`` entries."""
    content = [
        {"event": "::group::Log message source details"},
        {"event": "s3://logs/a/attempt=1.log"},
        {"event": "::endgroup::"},
        {"event": "hello", "level": "info"},
    ]
    assert log_sources(content) == ["s3://logs/a/attempt=1.log"]
    assert log_sources([{"event": "hello"}]) == []
    assert is_remote_store("s3://logs/a") and is_remote_store("wasb://c/a")
    for local in ("/opt/airflow/logs/a.log", "http://worker:8793/log/a", "file:///a", ""):
        assert not is_remote_store(local)


def test_excerpt_keeps_errors_and_the_end_without_noise() -> None:
    lines = [
        "::group::Log message source details",
        "/opt/airflow/logs/attempt=1.log",
        "::endgroup::",
        "INFO ::group::Pre Execute",
        "ERROR early failure",
        *[f"INFO line {i}" for i in range(100)],
        "INFO ::endgroup::",
    ]
    text = excerpt(lines, max_lines=10).splitlines()
    assert text[0] == "ERROR early failure"
    assert text[-1] == "INFO line 99" and len(text) == 10
    assert not any("::group::" in line or "/opt/airflow" in line for line in text)


def test_redact_removes_every_secret_longest_first() -> None:
    text = "token abc123xyz and password abc123 in one line"
    assert redact(text, ("abc123", "abc123xyz", "")) == "token *** and password *** in one line"
