"""Fixtures for the Slack bot tests: a recording Slack Web API, a fake runner, the live bot."""

from __future__ import annotations

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
