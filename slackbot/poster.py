"""Posting to Slack. Every text and block passes through the redactor first."""

from __future__ import annotations

import logging
from typing import Any, Protocol

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from slackbot.blocks import Blocks
from slackbot.redact import Redactor

logger = logging.getLogger(__name__)


class Poster(Protocol):
    def post(
        self, channel: str, text: str, thread_ts: str | None = None, blocks: Blocks | None = None
    ) -> str | None:
        """Post a message (or a thread reply); return its `ts`, or None if Slack refused it."""
        ...

    def update(self, channel: str, ts: str, text: str, blocks: Blocks | None = None) -> None: ...

    def ephemeral(self, channel: str, user: str, text: str) -> None: ...


class SlackPoster:
    """`Poster` on the Slack Web API. Slack errors are logged; they never stop an operation."""

    def __init__(self, client: WebClient, redactor: Redactor) -> None:
        self._client = client
        self._redactor = redactor

    def post(
        self, channel: str, text: str, thread_ts: str | None = None, blocks: Blocks | None = None
    ) -> str | None:
        try:
            response = self._client.chat_postMessage(
                channel=channel,
                text=self._redactor.scrub(text),
                thread_ts=thread_ts,
                blocks=self._scrub_blocks(blocks),
                unfurl_links=False,
                unfurl_media=False,
            )
        except (SlackApiError, SlackClientError, OSError) as error:
            logger.warning("chat.postMessage to %s failed: %s", channel, type(error).__name__)
            return None
        ts = response.get("ts")
        return ts if isinstance(ts, str) else None

    def update(self, channel: str, ts: str, text: str, blocks: Blocks | None = None) -> None:
        try:
            self._client.chat_update(
                channel=channel,
                ts=ts,
                text=self._redactor.scrub(text),
                blocks=self._scrub_blocks(blocks) if blocks is not None else [],
            )
        except (SlackApiError, SlackClientError, OSError) as error:
            logger.warning("chat.update in %s failed: %s", channel, type(error).__name__)

    def ephemeral(self, channel: str, user: str, text: str) -> None:
        try:
            self._client.chat_postEphemeral(
                channel=channel, user=user, text=self._redactor.scrub(text)
            )
        except (SlackApiError, SlackClientError, OSError) as error:
            logger.warning("chat.postEphemeral in %s failed: %s", channel, type(error).__name__)

    def _scrub_blocks(self, blocks: Blocks | None) -> Blocks | None:
        if blocks is None:
            return None
        return [self._scrub_value(block) for block in blocks]

    def _scrub_value(self, value: Any) -> Any:
        if isinstance(value, str):
            return self._redactor.scrub(value)
        if isinstance(value, dict):
            return {key: self._scrub_value(item) for key, item in value.items()}
        if isinstance(value, list):
            return [self._scrub_value(item) for item in value]
        return value
