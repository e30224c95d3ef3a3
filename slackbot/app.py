"""Wiring the bot into a slack-bolt `App`: the slash command and the buttons."""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any

from slack_bolt import Ack, App, BoltRequest, BoltResponse
from slack_sdk import WebClient

from slackbot.blocks import (
    ACTION_APPROVE,
    ACTION_CANCEL,
    ACTION_DRIFT_REFRESH,
    ACTION_DRIFT_UP,
    ACTION_REFRESH,
    ACTION_ROLLBACK,
)
from slackbot.dedup import DeliveryLog, delivery_keys
from slackbot.http_server import one_line
from slackbot.jobs import JobPool
from slackbot.poster import Poster
from slackbot.service import ChatOps

logger = logging.getLogger(__name__)

INTERNAL_ERROR = (
    "Something went wrong inside the bot; its operators can find the details in its log."
)


def build_app(
    chatops: ChatOps,
    poster: Poster,
    jobs: JobPool,
    *,
    client: WebClient,
    signing_secret: str,
    command: str = "/airflow",
    token_verification: bool = True,
    deliveries: DeliveryLog | None = None,
    listener_executor: Executor | None = None,
) -> App:
    """A bolt app with request signature verification on; listeners only ack and hand off."""
    app = App(
        client=client,
        signing_secret=signing_secret,
        request_verification_enabled=True,
        token_verification_enabled=token_verification,
        name="airflow-platform-slackbot",
        listener_executor=listener_executor,
    )
    seen = deliveries if deliveries is not None else DeliveryLog()

    @app.middleware
    def run_each_delivery_once(
        req: BoltRequest, resp: BoltResponse, next: Callable[[], BoltResponse]
    ) -> BoltResponse:
        """After bolt's signature check: a replayed or retried delivery is acked, not run."""
        if seen.first(delivery_keys(req.raw_body)):
            return next()
        retry = (req.headers.get("x-slack-retry-num") or [""])[0]
        reason = (req.headers.get("x-slack-retry-reason") or [""])[0]
        logger.info(
            "duplicate delivery ignored (retry %s, %s)",
            one_line(retry, 8) or "none",
            one_line(reason, 40) or "replay",
        )
        return BoltResponse(status=200, body="")

    @app.command(command)
    def on_command(ack: Ack, command: dict[str, Any]) -> None:
        try:
            reply = chatops.handle_command(
                user=str(command.get("user_id", "")),
                channel=str(command.get("channel_id", "")),
                text=str(command.get("text", "")),
            )
        except Exception:
            logger.exception("handling %s failed", command.get("command"))
            reply = INTERNAL_ERROR
        ack(text=reply, response_type="ephemeral")

    def button(handle: Callable[[str, str, str], str]) -> Callable[[Ack, dict[str, Any]], None]:
        def listener(ack: Ack, body: dict[str, Any]) -> None:
            user = str(body.get("user", {}).get("id", ""))
            channel = str(
                body.get("channel", {}).get("id") or body.get("container", {}).get("channel_id", "")
            )
            actions = body.get("actions") or [{}]
            value = str(actions[0].get("value", ""))
            try:
                reply = handle(value, user, channel)
            except Exception:
                logger.exception("handling a button failed")
                reply = INTERNAL_ERROR
            ack()
            if channel and user:
                jobs.submit(lambda: poster.ephemeral(channel, user, reply), "ephemeral reply")

        return listener

    app.action(ACTION_APPROVE)(button(chatops.handle_approve))
    app.action(ACTION_CANCEL)(
        button(lambda approval_id, user, _channel: chatops.handle_cancel(approval_id, user))
    )
    app.action(ACTION_REFRESH)(
        button(lambda stack, user, channel: chatops.handle_refresh_offer(user, channel, stack))
    )
    app.action(ACTION_DRIFT_REFRESH)(
        button(lambda stack, user, channel: chatops.handle_refresh_offer(user, channel, stack))
    )
    app.action(ACTION_DRIFT_UP)(
        button(lambda stack, user, channel: chatops.handle_up_offer(user, channel, stack))
    )
    app.action(ACTION_ROLLBACK)(
        button(lambda stack, user, channel: chatops.handle_rollback_offer(user, channel, stack))
    )
    return app
