"""`status <stack>`: the stack's last update, outputs and DAG branch, and its firing alerts.

Alertmanager is asked on a pool of its own, at the same time as Pulumi, and waited for at most
`alerts_timeout` seconds: an unreachable Alertmanager makes status say so, never slow.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout

from slackbot.alerts import (
    AlertmanagerClient,
    AlertSnapshot,
    AlertsUnavailableError,
    no_answer,
    render_alerts,
    render_not_configured,
    render_unavailable,
)
from slackbot.branches import REV_KEY, BranchError, branch_head, current_branch, remote_of
from slackbot.core import BotCore
from slackbot.runner import ConfigEntry, RunnerError
from slackbot.settings import alertmanager_variable
from slackbot.summary import render_status as render_status_text
from slackbot.text import escape

logger = logging.getLogger(__name__)

ALERT_WORKERS = 8
_GRACE = 0.25
"""Beyond the HTTP time-out, how long status waits for the alert query to hand its answer over."""


class StatusReporter:
    def __init__(self, core: BotCore) -> None:
        self._core = core
        self._alert_pool = ThreadPoolExecutor(
            max_workers=ALERT_WORKERS, thread_name_prefix="slackbot-alerts"
        )

    def close(self) -> None:
        self._alert_pool.shutdown(wait=False, cancel_futures=True)

    def job(self, channel: str, stack: str) -> None:
        """Post the status of `stack` to `channel`."""
        core = self._core
        pending = self._ask_alertmanager(stack)
        try:
            config, status = core.learn_secrets(stack)
        except RunnerError as error:
            text = f":x: Could not read the status of `{stack}`: {error}"
            core.poster.post(channel, text + "\n" + self._alerts_text(stack, pending))
            return
        text = render_status_text(status, core.audit.last_finished(stack), core.now())
        head, _, rest = text.partition("\n")
        lines = [head, self._alerts_text(stack, pending), rest]
        dags = dags_line(config)
        if dags:
            lines.append(dags)
        if core.needs_refresh(stack):
            lines.append(
                f":warning: An operation on `{stack}` was interrupted; "
                f"run `{core.refresh_command(stack)}`."
            )
        core.poster.post(channel, "\n".join(line for line in lines if line))

    def _ask_alertmanager(self, stack: str) -> Future[AlertSnapshot] | None:
        url = self._core.options.alertmanager_urls.get(stack)
        if url is None:
            return None
        client = AlertmanagerClient(url, self._core.options.alerts_timeout)
        try:
            return self._alert_pool.submit(client.fetch, stack)
        except RuntimeError:
            return None

    def _alerts_text(self, stack: str, pending: Future[AlertSnapshot] | None) -> str:
        options = self._core.options
        url = options.alertmanager_urls.get(stack)
        if url is None:
            return render_not_configured(stack, alertmanager_variable(stack))
        if pending is None:
            return render_unavailable(stack, url, "the bot is shutting down")
        try:
            snapshot = pending.result(timeout=options.alerts_timeout + _GRACE)
        except FutureTimeout:
            pending.cancel()
            return render_unavailable(stack, url, no_answer(options.alerts_timeout))
        except AlertsUnavailableError as error:
            return render_unavailable(stack, url, str(error))
        except Exception as error:
            logger.warning("reading the alerts of %s failed: %s", stack, self._core.one(error))
            return render_unavailable(stack, url, "the bot hit an internal error")
        return render_alerts(snapshot, self._core.now())


def dags_line(config: Mapping[str, ConfigEntry]) -> str | None:
    """Which branch git-sync follows, and its head on the remote (or the pinned revision)."""
    remote = remote_of(config)
    if remote is None:
        return None
    branch = current_branch(config)
    rev = config.get(REV_KEY)
    if rev is not None and rev.value not in ("", "HEAD"):
        return f"*DAGs:* branch `{escape(branch, 100)}`, pinned to `{escape(rev.value, 60)}`"
    try:
        commit = branch_head(remote, branch)
    except BranchError as error:
        return f"*DAGs:* branch `{escape(branch, 100)}` (head unknown: {error})"
    return (
        f"*DAGs:* branch `{escape(branch, 100)}`; git-sync follows its head, "
        f"now `{commit[:12]}` on the remote"
    )
