"""The text the bot posts: progress lines, final summaries and stack status.

Pure functions of plain data. Secret outputs are always shown as `[secret]`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from slackbot.operations import Operation
from slackbot.progress import ProgressSnapshot
from slackbot.redact import MASK
from slackbot.runner import StackOutput, StackStatus
from slackbot.text import escape

MAIN_CHANGES = ("create", "update", "delete", "replace")
_NOT_CHANGES = frozenset({"same", "create-replacement", "delete-replaced"})
MAX_OUTPUTS = 25


@dataclass(frozen=True)
class Outcome:
    """How one operation ended."""

    operation: Operation
    stack: str
    user: str
    succeeded: bool
    duration: float
    changes: Mapping[str, int]
    outputs: Sequence[StackOutput] = ()
    error: str | None = None
    approver: str | None = None
    preview_of: Operation | None = None
    stop_reason: str | None = None
    """Set when the operation was cancelled or timed out (`cancelled by <@U1>`)."""
    refresh_hint: str | None = None


def format_duration(seconds: float) -> str:
    total = max(0, round(seconds))
    minutes, secs = divmod(total, 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}h {minutes}m {secs}s"
    if minutes:
        return f"{minutes}m {secs}s"
    return f"{secs}s"


def render_counts(changes: Mapping[str, int]) -> str:
    """`create 2 · update 1 · delete 0 · replace 0`, then other non-zero kinds and unchanged."""
    parts = [f"{kind} {changes.get(kind, 0)}" for kind in MAIN_CHANGES]
    for kind in sorted(changes):
        if kind not in MAIN_CHANGES and kind not in _NOT_CHANGES and changes[kind]:
            parts.append(f"{kind} {changes[kind]}")
    if changes.get("same"):
        parts.append(f"unchanged {changes['same']}")
    return " · ".join(parts)


def render_progress(snapshot: ProgressSnapshot, elapsed: float) -> str:
    text = f":hourglass_flowing_sand: {format_duration(elapsed)}: done so far: "
    text += render_counts(snapshot.done)
    if snapshot.failed:
        text += f" · failed {snapshot.failed}"
    if snapshot.current_step:
        text += f"\nNow: {escape(snapshot.current_step)}"
    return text


def render_outputs(outputs: Sequence[StackOutput]) -> str:
    if not outputs:
        return "_no outputs_"
    lines = [
        f"• `{escape(item.name, 80)}`: {MASK if item.secret else _value(item.value)}"
        for item in outputs[:MAX_OUTPUTS]
    ]
    if len(outputs) > MAX_OUTPUTS:
        lines.append(f"• … and {len(outputs) - MAX_OUTPUTS} more")
    return "\n".join(lines)


def render_outcome(outcome: Outcome) -> str:
    """The final summary posted when an operation ends."""
    name = _display_name(outcome)
    if outcome.stop_reason is not None:
        lines = [
            f":octagonal_sign: `{name}` was {outcome.stop_reason} after "
            f"{format_duration(outcome.duration)} (requested by <@{outcome.user}>)",
            f"*Changes so far:* {render_counts(outcome.changes)}",
        ]
        if outcome.refresh_hint:
            lines.append(f"The stack may hold pending operations: run `{outcome.refresh_hint}`.")
        return "\n".join(lines)
    icon, verdict = (":white_check_mark:", "succeeded") if outcome.succeeded else (":x:", "failed")
    lines = [
        f"{icon} `{name}` {verdict} in {format_duration(outcome.duration)} "
        f"(requested by <@{outcome.user}>"
        + (f", approved by <@{outcome.approver}>)" if outcome.approver else ")"),
        f"*Changes:* {render_counts(outcome.changes)}",
    ]
    if not outcome.succeeded:
        lines.append(f"*First error:* {escape(outcome.error or 'no error detail was reported')}")
    if outcome.succeeded and outcome.operation.deploys:
        lines.append("*Outputs:*\n" + render_outputs(outcome.outputs))
    return "\n".join(lines)


def render_status(
    status: StackStatus, last_via_bot: Mapping[str, Any] | None, now: datetime
) -> str:
    """The reply to `status <stack>`."""
    lines = [f"*Stack `{status.stack}`*"]
    update = status.last_update
    if update is None:
        lines.append("No update has been recorded yet.")
    else:
        who = update.message or update.author or "unknown"
        when = update.ended or update.started
        lines.append(
            f"*Last update:* `{update.kind}` {update.result}, "
            f"{_ago(when, now)} ({when:%Y-%m-%d %H:%M} UTC), by {escape(who, 120)}"
            + (f", version {update.version}" if update.version is not None else "")
        )
        lines.append(f"*Resource changes:* {render_counts(update.changes)}")
    if last_via_bot is not None:
        lines.append(
            f"*Last via the bot:* `{last_via_bot.get('operation')}` by "
            f"<@{last_via_bot.get('user')}>: {last_via_bot.get('result')} "
            f"at {last_via_bot.get('time')}"
        )
    lines.append("*Outputs:*\n" + render_outputs(status.outputs))
    return "\n".join(lines)


def _display_name(outcome: Outcome) -> str:
    if outcome.operation is Operation.PREVIEW and outcome.preview_of not in (None, Operation.UP):
        return f"preview of {outcome.preview_of} {outcome.stack}"
    return f"{outcome.operation} {outcome.stack}"


def _value(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    return f"`{escape(text, 200)}`"


def _ago(when: datetime, now: datetime) -> str:
    if when.tzinfo is None and now.tzinfo is not None:
        now = now.replace(tzinfo=None)
    return format_duration((now - when).total_seconds()) + " ago"
