"""The pipeline watch: a dead man's switch on each stack's alerting pipeline.

Prometheus fires the `Watchdog` alert all the time and Alertmanager routes it to nobody, so a
Prometheus or an Alertmanager that is down cannot say so itself. Every `pipeline_check_interval`
(`SLACKBOT_PIPELINE_CHECK_MINUTES`) the bot reads the Alertmanager of every stack that has one
configured, with the query `status` uses. The pipeline is broken when Alertmanager cannot be
read or answers badly, or answers without a firing Watchdog (a silenced one counts as missing:
the runbook forbids silencing it).

After `CONSECUTIVE_BAD_CHECKS` broken checks in a row the bot posts once to the stack's channel,
where scheduled drift reports go (the access file's `channel`, else the first channel of the
stack's rules, else `SLACKBOT_NOTIFY_CHANNEL`), through the masking poster. It posts again when
the pipeline works again, and a reminder every `REMINDER_SECONDS` while it stays broken.

`advance` (one stack's state and one check in; the next state and at most one notice out) and
`render` make every decision; `PipelineWatch` only schedules the checks, reads Alertmanager on
the status pool (never in a Slack listener) and posts.

The state is in memory. A restart starts fresh: a pipeline still broken is announced again
after `CONSECUTIVE_BAD_CHECKS` checks, and a recovery while the bot was down is not announced.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum

from slackbot.access import report_channel
from slackbot.alerts import (
    WATCHDOG,
    AlertmanagerClient,
    AlertSnapshot,
    AlertsUnavailableError,
    display_address,
)
from slackbot.core import BotCore
from slackbot.summary import format_duration
from slackbot.text import escape

logger = logging.getLogger(__name__)

CONSECUTIVE_BAD_CHECKS = 2
"""Broken checks in a row before the bot posts; a good check in between starts the count again.

One check proves too little. A single failed HTTP call (an Alertmanager pod being rescheduled,
a network blip) is not an outage. And the Watchdog does not vanish the moment Prometheus stops:
an alert stays active in Alertmanager until its `endsAt`, which Prometheus sets
4 * max(evaluation interval, resend delay of 1m) ahead (`rules/alerting.go`), and Alertmanager
sets `resolve_timeout` (5m by default) ahead for senders that set none. Two checks one interval
apart mean the problem has lasted at least that interval.
"""
REMINDER_SECONDS = 24 * 3600.0
"""While a pipeline stays broken, the bot reminds the channel this often (the first post may
have scrolled away); nothing else is posted until it works again."""
RUNBOOK_URL = (
    "https://github.com/acme-data/airflow-platform/blob/main/monitoring/runbooks.md#watchdog"
)
"""The Watchdog's runbook, in the form the alert rules use for `runbook_url`."""


class Fault(Enum):
    UNREACHABLE = "unreachable"
    """Alertmanager could not be read or gave no usable answer."""
    NO_WATCHDOG = "no watchdog"
    """Alertmanager answered, without a firing Watchdog for the stack."""


@dataclass(frozen=True)
class Check:
    """One reading of a stack's pipeline, at `at` (epoch seconds)."""

    at: float
    fault: Fault | None = None
    """None: the Watchdog is firing, the pipeline works."""
    reason: str = ""
    """Why Alertmanager could not be read (`UNREACHABLE` only); safe to show."""


@dataclass(frozen=True)
class WatchState:
    """What the watch remembers about one stack between checks."""

    bad_checks: int = 0
    """Broken checks in a row, up to the latest."""
    broken_since: float | None = None
    """When the first of those checks ran."""
    announced_at: float | None = None
    """When the outage (or its latest reminder) was posted; None while nothing was posted."""


@dataclass(frozen=True)
class Broken:
    """Post: the pipeline is broken (or, as a reminder, still broken)."""

    check: Check
    """The latest check: what is wrong now."""
    since: float
    reminder: bool = False


@dataclass(frozen=True)
class Recovered:
    """Post: the pipeline works again after an outage that was posted."""

    since: float
    at: float

    @property
    def broken_for(self) -> float:
        """From the first broken check to the first good one (each up to an interval late)."""
        return self.at - self.since


Notice = Broken | Recovered


def advance(
    state: WatchState, check: Check, reminder_every: float = REMINDER_SECONDS
) -> tuple[WatchState, Notice | None]:
    """The next state of one stack's watch, and what to post about `check` (usually nothing)."""
    if check.fault is None:
        if state.announced_at is not None and state.broken_since is not None:
            return WatchState(), Recovered(state.broken_since, check.at)
        return WatchState(), None
    since = state.broken_since if state.broken_since is not None else check.at
    bad_checks = state.bad_checks + 1
    if state.announced_at is None:
        if bad_checks < CONSECUTIVE_BAD_CHECKS:
            return WatchState(bad_checks, since), None
        return WatchState(bad_checks, since, check.at), Broken(check, since)
    if check.at - state.announced_at >= reminder_every:
        return WatchState(bad_checks, since, check.at), Broken(check, since, reminder=True)
    return WatchState(bad_checks, since, state.announced_at), None


def read_pipeline(fetch: Callable[[str], AlertSnapshot], stack: str, at: float) -> Check:
    """One check: ask Alertmanager (`fetch`, e.g. `AlertmanagerClient.fetch`) about `stack`."""
    try:
        snapshot = fetch(stack)
    except AlertsUnavailableError as error:
        return Check(at, Fault.UNREACHABLE, str(error))
    return Check(at, None if snapshot.watchdog else Fault.NO_WATCHDOG)


def render(stack: str, base_url: str, notice: Notice) -> str:
    """The message for `notice` about `stack`, whose Alertmanager is at `base_url`."""
    if isinstance(notice, Recovered):
        return (
            f":white_check_mark: The alerting pipeline of `{stack}` works again: the "
            f"`{WATCHDOG}` alert reaches Alertmanager. It was broken for "
            f"{format_duration(notice.broken_for)}."
        )
    address = escape(display_address(base_url), 120)
    check = notice.check
    if check.fault is Fault.UNREACHABLE:
        problem = (
            f"its Alertmanager ({address}) cannot be read: {escape(check.reason, 200)}; "
            "while it is down, no alert of the stack reaches anyone"
        )
        what_to_check = "whether the Alertmanager pods run and the bot can reach that address"
    else:
        problem = (
            "Prometheus is not sending alerts to Alertmanager: the always-firing "
            f"`{WATCHDOG}` alert of `{stack}` is missing from {address}"
        )
        what_to_check = (
            "whether Prometheus runs, evaluates its rules and reaches Alertmanager, "
            f"and that nobody silenced the `{WATCHDOG}`"
        )
    since = datetime.fromtimestamp(notice.since, UTC)
    if notice.reminder:
        lasted = format_duration(check.at - notice.since)
        head = (
            f":rotating_light: *The alerting pipeline of `{stack}` is still broken* "
            f"(since {since:%Y-%m-%d %H:%M} UTC, {lasted})"
        )
    else:
        head = (
            f":rotating_light: *The alerting pipeline of `{stack}` is broken* "
            f"since {since:%Y-%m-%d %H:%M} UTC"
        )
    return (
        f"{head}: {problem}. Alerts of `{stack}` may be firing without anyone being told.\n"
        f"Check {what_to_check}; see the <{RUNBOOK_URL}|{WATCHDOG} runbook>."
    )


class PipelineWatch:
    """Checks every configured stack each `pipeline_check_interval` and posts what `advance`
    decides. `schedule` is called by the housekeeping timer; the checks run on the status pool,
    at most one per stack at a time."""

    def __init__(self, core: BotCore) -> None:
        self._core = core
        self._lock = threading.Lock()
        self._states: dict[str, WatchState] = {}
        self._checking: set[str] = set()
        self._next_due: float | None = None

    def schedule(self) -> None:
        """Start the checks when due; the first one on the first call."""
        core = self._core
        interval = core.options.pipeline_check_interval
        urls = core.options.alertmanager_urls
        if interval <= 0 or not urls:
            return
        now = core.clock()
        due = self._next_due
        if due is not None and now < due:
            return
        if due is not None and due + interval > now:
            self._next_due = due + interval
        else:
            self._next_due = now + interval
        for stack, url in sorted(urls.items()):
            with self._lock:
                if stack in self._checking:
                    continue
                self._checking.add(stack)
            try:
                core.submit_status(functools.partial(self._check, stack, url), f"pipeline {stack}")
            except RuntimeError:
                with self._lock:
                    self._checking.discard(stack)

    def _check(self, stack: str, url: str) -> None:
        core = self._core
        try:
            client = AlertmanagerClient(url, core.options.alerts_timeout)
            at = core.clock()
            try:
                check = read_pipeline(client.fetch, stack, at)
            except Exception as error:
                logger.warning("reading the alerts of %s failed: %s", stack, core.one(error))
                check = Check(at, Fault.UNREACHABLE, "the bot hit an internal error reading it")
            if check.fault is not None:
                logger.info("pipeline of %s: %s %s", stack, check.fault.value, check.reason)
            with self._lock:
                state, notice = advance(self._states.get(stack, WatchState()), check)
                self._states[stack] = state
            if notice is not None:
                self._post(stack, url, notice)
        finally:
            with self._lock:
                self._checking.discard(stack)

    def _post(self, stack: str, url: str, notice: Notice) -> None:
        core = self._core
        if isinstance(notice, Recovered):
            logger.info("alerting pipeline of %s works again", stack)
        else:
            logger.warning("alerting pipeline of %s is broken", stack)
        channel = report_channel(core.access, stack) or core.options.notify_channel
        if not channel:
            logger.warning(
                "no channel for the pipeline report of %s: set its `channel` in the access "
                "file or SLACKBOT_NOTIFY_CHANNEL",
                stack,
            )
            return
        core.poster.post(channel, render(stack, url, notice))
