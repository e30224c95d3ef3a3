"""`python -m slackbot`: start the bot in HTTP mode, or Socket Mode when SLACK_APP_TOKEN is set."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import MutableMapping
from concurrent.futures import ThreadPoolExecutor
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
from slackbot.settings import SettingsError, alertmanager_variable, load_settings
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
    alertmanagers = settings.alertmanagers(stacks)
    known = {alertmanager_variable(stack) for stack in stacks}
    for variable in sorted(set(settings.alertmanager_urls) - known):
        logger.warning("%s names no stack of this project; ignored", variable)
    client = (
        WebClient(token=settings.bot_token, base_url=settings.slack_api_url)
        if settings.slack_api_url
        else WebClient(token=settings.bot_token)
    )
    redactor = Redactor()
    poster = SlackPoster(client, redactor)
    audit = AuditLog(settings.audit_log)
    state_dir = settings.state_dir or settings.audit_log.parent / "state"
    _remove_legacy_plan_dirs()
    jobs = JobPool()
    status_jobs = JobPool(workers=4, name="slackbot-status")
    runner = PulumiStackRunner(
        settings.project_dir,
        backend_url=settings.backend_url,
        secrets_provider=settings.secrets_provider,
        fingerprint_ignores=(settings.audit_log, state_dir),
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
            state_dir=state_dir,
            command=settings.command,
            progress_interval=settings.progress_interval,
            notify_channel=settings.notify_channel,
            operation_timeout=settings.operation_timeout,
            cancel_grace=settings.cancel_grace,
            alertmanager_urls=alertmanagers,
            alerts_timeout=settings.alerts_timeout,
            pipeline_check_interval=settings.pipeline_check_minutes * 60,
        ),
        status_jobs=status_jobs,
    )
    listeners = ThreadPoolExecutor(max_workers=32, thread_name_prefix="slackbot-listener")
    app = build_app(
        chatops,
        poster,
        jobs,
        client=client,
        signing_secret=settings.signing_secret or "",
        command=settings.command,
        listener_executor=listeners,
    )
    for record in chatops.report_unfinished():
        logger.warning(
            "interrupted operation reported: %s %s by %s",
            record.operation,
            record.stack,
            record.user,
        )
    chatops.start()
    logger.info("stacks: %s; policy pack: %s", ", ".join(stacks), runner.policy_pack)
    logger.info("alerts in status: %s", ", ".join(sorted(alertmanagers)) or "none configured")
    if alertmanagers and settings.pipeline_check_minutes > 0:
        logger.info("alerting pipeline checked every %g min", settings.pipeline_check_minutes)
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    try:
        if settings.app_token is not None:
            from slack_bolt.adapter.socket_mode import SocketModeHandler

            logger.info("starting in Socket Mode")
            SocketModeHandler(app, settings.app_token).start()  # type: ignore[no-untyped-call]
        else:
            server = BoltHTTPServer(
                (settings.host, settings.port), app, signing_secret=settings.signing_secret or ""
            )
            logger.info("listening on http://%s:%d/slack/events", settings.host, settings.port)
            server.serve_forever()
    except KeyboardInterrupt:
        logger.info("stopping; waiting for running operations to finish")
    finally:
        chatops.close()
        jobs.shutdown(wait_for_jobs=True)
        status_jobs.shutdown(wait_for_jobs=False)
        listeners.shutdown(wait=False)
    return 0


def _remove_legacy_plan_dirs() -> None:
    """Earlier versions kept plans in the system temp directory; a SIGKILL left them there."""
    for path in Path(tempfile.gettempdir()).glob("slackbot-plans-*"):
        try:
            if path.is_dir() and path.stat().st_uid == os.getuid():
                shutil.rmtree(path, ignore_errors=True)
        except OSError:
            continue


def _stop_on_sigterm(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
