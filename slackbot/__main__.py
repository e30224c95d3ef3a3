"""`python -m slackbot`: start the bot in HTTP mode, or Socket Mode when SLACK_APP_TOKEN is set."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import MutableMapping
from pathlib import Path
from types import FrameType

from slack_sdk import WebClient

from slackbot.access import AccessError, load_access_config
from slackbot.app import build_app
from slackbot.audit import AuditLog
from slackbot.http_server import BoltHTTPServer
from slackbot.jobs import JobPool
from slackbot.poster import SlackPoster
from slackbot.redact import Redactor
from slackbot.runner import PulumiStackRunner
from slackbot.service import BotOptions, ChatOps
from slackbot.settings import SettingsError, load_settings
from slackbot.stacks import discover_stacks

logger = logging.getLogger("slackbot")

_SLACK_SECRETS = ("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "SLACK_APP_TOKEN")


def main(environ: MutableMapping[str, str] = os.environ) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        settings = load_settings(environ)
        access = load_access_config(settings.access_file)
    except (SettingsError, AccessError) as error:
        print(f"slackbot: {error}", file=sys.stderr)
        return 2
    for name in _SLACK_SECRETS:
        environ.pop(name, None)

    stacks = discover_stacks(settings.project_dir)
    for name in sorted(set(access.stacks) - set(stacks)):
        logger.warning("access file names stack %r, which has no Pulumi.%s.yaml", name, name)
    client = (
        WebClient(token=settings.bot_token, base_url=settings.slack_api_url)
        if settings.slack_api_url
        else WebClient(token=settings.bot_token)
    )
    redactor = Redactor()
    poster = SlackPoster(client, redactor)
    audit = AuditLog(settings.audit_log)
    plan_dir = Path(tempfile.mkdtemp(prefix="slackbot-plans-"))
    jobs = JobPool()
    runner = PulumiStackRunner(
        settings.project_dir,
        backend_url=settings.backend_url,
        secrets_provider=settings.secrets_provider,
        fingerprint_ignores=(settings.audit_log,),
    )
    chatops = ChatOps(
        stacks=stacks,
        access=access,
        runner=runner,
        poster=poster,
        audit=audit,
        jobs=jobs,
        redactor=redactor,
        options=BotOptions(
            plan_dir=plan_dir,
            command=settings.command,
            progress_interval=settings.progress_interval,
            notify_channel=settings.notify_channel,
        ),
    )
    app = build_app(
        chatops,
        poster,
        jobs,
        client=client,
        signing_secret=settings.signing_secret or "",
        command=settings.command,
    )
    for record in chatops.report_unfinished():
        logger.warning(
            "interrupted operation reported: %s %s by %s",
            record.operation,
            record.stack,
            record.user,
        )
    logger.info("stacks: %s; policy pack: %s", ", ".join(stacks), runner.policy_pack)
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    try:
        if settings.app_token is not None:
            from slack_bolt.adapter.socket_mode import SocketModeHandler

            logger.info("starting in Socket Mode")
            SocketModeHandler(app, settings.app_token).start()  # type: ignore[no-untyped-call]
        else:
            server = BoltHTTPServer((settings.host, settings.port), app)
            logger.info("listening on http://%s:%d/slack/events", settings.host, settings.port)
            server.serve_forever()
    except KeyboardInterrupt:
        logger.info("stopping; waiting for running operations to finish")
    finally:
        jobs.shutdown(wait_for_jobs=True)
        shutil.rmtree(plan_dir, ignore_errors=True)
    return 0


def _stop_on_sigterm(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
