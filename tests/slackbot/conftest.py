"""Fixtures for the Slack bot tests: a recording Slack Web API, a fake runner, the live bot."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.slackbot.slackbot_support import (
    BotHarness,
    FakeRunner,
    SlackApiRecorder,
    start_bot,
)


@pytest.fixture
def slack_api() -> Iterator[SlackApiRecorder]:
    recorder = SlackApiRecorder()
    try:
        yield recorder
    finally:
        recorder.close()


@pytest.fixture
def runner() -> FakeRunner:
    return FakeRunner()


@pytest.fixture
def bot(tmp_path: Path, slack_api: SlackApiRecorder, runner: FakeRunner) -> Iterator[BotHarness]:
    harness = start_bot(tmp_path, slack_api, runner)
    try:
        yield harness
    finally:
        harness.close()


@pytest.fixture(autouse=True)
def no_threads_left_behind() -> Iterator[None]:
    """Every test stops the servers, pools and timers it started."""
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + 5
    while True:
        left = [t for t in threading.enumerate() if t not in before and t.is_alive()]
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    assert not left, f"threads left running: {sorted(t.name for t in left)}"
