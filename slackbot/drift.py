"""Drift checks: `drift <stack>` and a schedule from the access file run a refresh-preview and
report what changed outside Pulumi, with Refresh/Up buttons. Nothing is applied."""

from __future__ import annotations

from typing import Any

from slackbot.access import authorise, report_channel
from slackbot.audit import OperationRecord
from slackbot.blocks import drift_blocks
from slackbot.core import DRIFT, SCHEDULE_USER, BotCore, new_op_id
from slackbot.execution import Executor
from slackbot.locks import Holder
from slackbot.operations import Operation
from slackbot.progress import ProgressSnapshot
from slackbot.runner import RunRequest
from slackbot.summary import Outcome, render_counts
from slackbot.text import escape

DRIFT_RETRY_SECONDS = 600.0
"""A scheduled drift check that finds its stack busy is tried again this much later."""
MAX_DRIFTED_LISTED = 20
_NOT_DRIFT = frozenset({"same"})


class DriftChecks:
    def __init__(self, core: BotCore, executor: Executor) -> None:
        self._core = core
        self._executor = executor
        self._due: dict[str, float] = {}

    def request(self, user: str, channel: str, stack: str, scheduled: bool = False) -> str:
        core = self._core
        if not scheduled:
            decision = authorise(core.access, user, channel, stack, Operation.PREVIEW)
            if not decision.allowed:
                core.audit.denied(user, channel, stack, DRIFT, decision.reason)
                return f":no_entry: {decision.reason}"
        holder = Holder(user, f"a drift check of `{stack}`", core.now())
        busy = core.locks.try_acquire(stack, holder)
        if busy is not None:
            return core.busy_text(stack, busy)
        record = OperationRecord(new_op_id(), user, channel, stack, DRIFT)
        return core.submit(
            lambda: self._job(record, holder, scheduled),
            f"drift {stack}",
            f"Checking `{stack}` for drift (a refresh-preview; nothing is changed).",
            on_refused=lambda: core.locks.release(stack, holder),
            channel=channel,
        )

    def schedule(self) -> None:
        """Start the drift checks that are due (every `drift_interval_hours`)."""
        core = self._core
        interval = core.access.drift_interval_hours * 3600
        if interval <= 0:
            return
        now = core.clock()
        for stack, rules in core.access.stacks.items():
            if stack not in core.stacks or not rules.drift_check:
                continue
            due = self._due.setdefault(stack, now + interval)
            if now < due:
                continue
            if core.locks.holder(stack) is not None:
                self._due[stack] = now + min(interval, DRIFT_RETRY_SECONDS)
                continue
            self._due[stack] = now + interval
            channel = report_channel(core.access, stack) or core.options.notify_channel or ""
            self.request(SCHEDULE_USER, channel, stack, scheduled=True)

    def _job(self, record: OperationRecord, holder: Holder, scheduled: bool) -> None:
        core = self._core
        channel = report_channel(core.access, record.stack) or (
            core.options.notify_channel if scheduled else record.channel
        )
        try:
            request = RunRequest(
                stack=record.stack,
                operation=Operation.PREVIEW,
                preview_of=Operation.UP,
                refresh=True,
                message="Slack: drift check",
            )

            def report(outcome: Outcome, snapshot: ProgressSnapshot) -> None:
                text, blocks = drift_report(record, outcome, snapshot)
                if text and channel:
                    core.poster.post(channel, text, blocks=blocks)
                if not scheduled and channel != record.channel and text:
                    core.poster.post(record.channel, text.split("\n")[0])

            self._executor.execute(record, request, None, holder, report=report)
        finally:
            core.locks.release(record.stack, holder)


def drift_report(
    record: OperationRecord, outcome: Outcome, snapshot: ProgressSnapshot
) -> tuple[str, list[dict[str, Any]] | None]:
    """What a drift check posts: nothing for a quiet scheduled check, else the verdict."""
    stack = record.stack
    if not outcome.succeeded:
        if outcome.stop_reason:
            text = f":octagonal_sign: The drift check of `{stack}` was {outcome.stop_reason}."
            return text, None
        detail = escape(outcome.error or "no error detail was reported")
        return f":x: The drift check of `{stack}` could not run: {detail}", None
    drifted = {k: v for k, v in outcome.changes.items() if k not in _NOT_DRIFT and v}
    if not drifted:
        if record.user == SCHEDULE_USER:
            return "", None
        return f":white_check_mark: No drift on `{stack}`: the cloud matches the stack.", None
    lines = [
        f":warning: *Drift on `{stack}`*: a refresh-preview expected no changes and found "
        f"{render_counts(outcome.changes)}.",
    ]
    for op, kind, name in snapshot.changed[:MAX_DRIFTED_LISTED]:
        lines.append(f"• {op} {escape(kind, 80)} `{escape(name, 80)}`")
    if len(snapshot.changed) > MAX_DRIFTED_LISTED:
        lines.append(f"• … and {len(snapshot.changed) - MAX_DRIFTED_LISTED} more")
    lines.append(
        "Nothing was applied. *Refresh* takes the cloud's state into the stack; *Up* puts "
        "the program's configuration back. Both follow the usual access and approval rules."
    )
    text = "\n".join(lines)
    return text, drift_blocks(text, stack)
