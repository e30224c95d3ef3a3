"""The bot's behaviour, independent of how Slack delivers requests.

Handlers return the short text used to acknowledge the request at once; anything slow runs
as a background job that posts to the channel (progress as thread replies, then a summary).
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from slackbot.access import AccessConfig, authorise, may_approve, needs_approval
from slackbot.approvals import ApprovalBook, PendingApproval, new_approval_id
from slackbot.audit import END, AuditLog, OperationRecord, record_from_entry
from slackbot.blocks import approval_blocks, plain_blocks, refresh_offer_blocks
from slackbot.commands import HelpRequest, help_text, parse_command
from slackbot.jobs import JobPool
from slackbot.locks import Holder, StackLocks
from slackbot.operations import Operation
from slackbot.poster import Poster
from slackbot.progress import ProgressReporter, ProgressTracker
from slackbot.redact import Redactor
from slackbot.runner import (
    OperationFailedError,
    RunnerError,
    RunRequest,
    RunResult,
    StackBusyError,
    StackRunner,
)
from slackbot.summary import Outcome, format_duration, render_outcome, render_progress
from slackbot.summary import render_status as render_status_text

logger = logging.getLogger(__name__)

Clock = Callable[[], float]

SUCCEEDED = "succeeded"
FAILED = "failed"
BUSY = "busy"
REFUSED = "refused"
INTERRUPTED = "interrupted"


@dataclass(frozen=True)
class BotOptions:
    plan_dir: Path
    """A private directory for update plans saved by previews awaiting approval."""
    command: str = "/airflow"
    progress_interval: float = 30.0
    notify_channel: str | None = None
    """Where start-up recovery reports go, besides the channel of the interrupted operation."""


class ChatOps:
    """Everything the bot does in response to a slash command or a button."""

    def __init__(
        self,
        *,
        stacks: Sequence[str],
        access: AccessConfig,
        runner: StackRunner,
        poster: Poster,
        audit: AuditLog,
        jobs: JobPool,
        redactor: Redactor,
        options: BotOptions,
        clock: Clock = time.time,
    ) -> None:
        self._stacks = list(stacks)
        self._access = access
        self._runner = runner
        self._poster = poster
        self._audit = audit
        self._jobs = jobs
        self._redactor = redactor
        self._options = options
        self._clock = clock
        self._locks = StackLocks()
        self._approvals = ApprovalBook()
        self._refresh_lock = threading.Lock()
        self._needs_refresh = stacks_needing_refresh(audit.entries())

    @property
    def stacks(self) -> list[str]:
        return list(self._stacks)

    def needs_refresh(self, stack: str) -> bool:
        with self._refresh_lock:
            return stack in self._needs_refresh

    # ---- requests -------------------------------------------------------------------------

    def handle_command(self, user: str, channel: str, text: str) -> str:
        """Handle `/airflow <text>`; the returned text acknowledges the request."""
        self._expire_approvals()
        command = parse_command(text, self._stacks)
        if isinstance(command, HelpRequest):
            usage = help_text(self._options.command, self._stacks)
            return f"{command.problem}\n{usage}" if command.problem else usage
        return self._request(user, channel, command.stack, command.operation)

    def handle_refresh_offer(self, user: str, channel: str, stack: str) -> str:
        """The "Refresh" button of a recovery report: a `refresh <stack>` request."""
        if stack not in self._stacks:
            return "That stack no longer exists."
        return self._request(user, channel, stack, Operation.REFRESH)

    def _request(self, user: str, channel: str, stack: str, operation: Operation) -> str:
        decision = authorise(self._access, user, channel, stack, operation)
        if not decision.allowed:
            self._audit.denied(user, channel, stack, operation.value, decision.reason)
            return f":no_entry: {decision.reason}"
        if operation is Operation.STATUS:
            return self._submit(
                lambda: self._status_job(channel, stack),
                f"status {stack}",
                f"Fetching the status of `{stack}`…",
            )
        approval = needs_approval(self._access, stack, operation)
        activity = (
            f"a preview of `{operation} {stack}` for approval"
            if approval
            else f"`{operation} {stack}`"
        )
        holder = Holder(user, activity, self._now())
        busy = self._locks.try_acquire(stack, holder)
        if busy is not None:
            return self._busy_text(stack, busy)
        if approval:
            record = OperationRecord(_op_id(), user, channel, stack, Operation.PREVIEW.value)
            return self._submit(
                lambda: self._approval_preview_job(record, operation, holder),
                f"preview for {operation} {stack}",
                f"`{operation} {stack}` needs approval: running a preview first; "
                "its summary will be posted here.",
                on_refused=lambda: self._locks.release(stack, holder),
            )
        record = OperationRecord(_op_id(), user, channel, stack, operation.value)
        return self._submit(
            lambda: self._operation_job(record, holder),
            f"{operation} {stack}",
            f"Starting `{operation} {stack}`; progress follows in this channel.",
            on_refused=lambda: self._locks.release(stack, holder),
        )

    def handle_approve(self, approval_id: str, user: str, channel: str) -> str:
        """The Approve button; the returned text is shown to the person who clicked."""
        pending = self._approvals.get(approval_id)
        if pending is None:
            return "This request is no longer pending (approved, cancelled or expired)."
        now = self._clock()
        decision = may_approve(
            self._access, user, pending.requester, pending.stack, pending.requested_at, now
        )
        if not decision.allowed:
            self._audit.note(
                "approval_refused", _record_of(pending, approver=user), reason=decision.reason
            )
            if now - pending.requested_at > self._access.approval_window_seconds:
                expired = self._approvals.take(approval_id)
                if expired is not None:
                    self._close_approval(expired, ":hourglass: Expired without approval.")
            return f":no_entry: {decision.reason}"
        taken = self._approvals.take(approval_id)
        if taken is None:
            return "This request has just been handled by someone else."
        holder = Holder(
            taken.requester, f"`{taken.operation} {taken.stack}` (approved)", self._now()
        )
        busy = self._locks.try_acquire(taken.stack, holder)
        if busy is not None:
            self._approvals.add(taken)
            return self._busy_text(taken.stack, busy)
        self._close_approval(taken, f":white_check_mark: Approved by <@{user}>.", delete_plan=False)
        return self._submit(
            lambda: self._approved_job(taken, user, holder),
            f"{taken.operation} {taken.stack}",
            f"Approved: running `{taken.operation} {taken.stack}`.",
            on_refused=lambda: self._locks.release(taken.stack, holder),
        )

    def handle_cancel(self, approval_id: str, user: str) -> str:
        """The Cancel button: the requester or an approver withdraws the request."""
        pending = self._approvals.get(approval_id)
        if pending is None:
            return "This request is no longer pending."
        rules = self._access.stacks.get(pending.stack)
        approvers = rules.approvers if rules is not None else []
        if user != pending.requester and user not in approvers:
            return ":no_entry: Only the requester or an approver can cancel this request."
        taken = self._approvals.take(approval_id)
        if taken is None:
            return "This request has just been handled by someone else."
        self._audit.note("cancelled", _record_of(taken, approver=None), by=user)
        self._close_approval(taken, f":no_entry_sign: Cancelled by <@{user}>.")
        return "Cancelled."

    # ---- start-up recovery ----------------------------------------------------------------

    def report_unfinished(self) -> list[OperationRecord]:
        """Report operations whose audit `start` line has no `end` line, and offer a refresh."""
        interrupted = [record_from_entry(entry) for entry in self._audit.unfinished()]
        for record in interrupted:
            self._audit.finish(record, INTERRUPTED, 0.0, {})
            with self._refresh_lock:
                self._needs_refresh.add(record.stack)
            text = (
                f":warning: The bot stopped while `{record.operation} {record.stack}` "
                f"(requested by <@{record.user}>) was running; it never finished. "
                f"`{record.stack}` may hold pending operations, so do not trust its state yet: "
                f"run `{self._options.command} refresh {record.stack}` first "
                "(it also clears pending creates)."
            )
            channels = {record.channel, self._options.notify_channel} - {None, ""}
            for channel in sorted(c for c in channels if c is not None):
                self._poster.post(channel, text, blocks=refresh_offer_blocks(text, record.stack))
        return interrupted

    # ---- background jobs ------------------------------------------------------------------

    def _operation_job(
        self,
        record: OperationRecord,
        holder: Holder,
        thread_ts: str | None = None,
        plan: Path | None = None,
    ) -> None:
        try:
            operation = Operation(record.operation)
            if thread_ts is None:
                thread_ts = self._poster.post(
                    record.channel,
                    f":arrow_forward: <@{record.user}> started `{operation} {record.stack}`.",
                )
            clear = operation is Operation.REFRESH and self.needs_refresh(record.stack)
            message = f"Slack: {operation} by {record.user}" + (
                f", approved by {record.approver}" if record.approver else ""
            )
            request = RunRequest(
                stack=record.stack,
                operation=operation,
                use_plan=plan,
                clear_pending_creates=clear,
                message=message,
            )
            result = self._execute(record, request, thread_ts)
            if result is not None and operation is Operation.REFRESH:
                with self._refresh_lock:
                    self._needs_refresh.discard(record.stack)
        finally:
            self._locks.release(record.stack, holder)

    def _approval_preview_job(
        self, record: OperationRecord, operation: Operation, holder: Holder
    ) -> None:
        approval_id = new_approval_id()
        plan: Path | None = None
        try:
            approvers = self._approvers(record.stack)
            thread_ts = self._poster.post(
                record.channel,
                f":mag: <@{record.user}> asked for `{operation} {record.stack}`, which needs "
                f"approval by {approvers}. Running a preview first…",
            )
            try:
                fingerprint = self._runner.fingerprint(record.stack)
            except RunnerError as error:
                self._poster.post(record.channel, f":x: {error}", thread_ts)
                return
            if operation is Operation.UP and self._runner.supports_plans:
                plan = self._options.plan_dir / f"{approval_id}.json"
            request = RunRequest(
                stack=record.stack,
                operation=Operation.PREVIEW,
                preview_of=operation,
                save_plan=plan,
                clear_pending_creates=(
                    operation is Operation.REFRESH and self.needs_refresh(record.stack)
                ),
            )
            result = self._execute(record, request, thread_ts, preview_of=operation)
            if result is None:
                return
            pending = PendingApproval(
                approval_id=approval_id,
                stack=record.stack,
                operation=operation,
                requester=record.user,
                channel=record.channel,
                requested_at=self._clock(),
                fingerprint=fingerprint,
                plan_path=plan,
                thread_ts=thread_ts,
            )
            self._approvals.add(pending)
            plan = None
            window = format_duration(self._access.approval_window_seconds)
            text = (
                f":raised_hand: Approve `{operation} {record.stack}` as previewed above? "
                f"Requested by <@{record.user}>; one of {approvers} (not the requester) may "
                f"approve within {window}."
                + (
                    " The update will be held to the previewed plan."
                    if pending.plan_path
                    else " It will be refused if the stack or the program changes first."
                )
            )
            ts = self._poster.post(
                record.channel, text, thread_ts, blocks=approval_blocks(text, approval_id)
            )
            self._approvals.attach_message(approval_id, ts)
        finally:
            if plan is not None:
                plan.unlink(missing_ok=True)
            self._locks.release(record.stack, holder)

    def _approved_job(self, pending: PendingApproval, approver: str, holder: Holder) -> None:
        record = OperationRecord(
            _op_id(),
            pending.requester,
            pending.channel,
            pending.stack,
            pending.operation.value,
            approver,
        )
        released = False
        try:
            try:
                current = self._runner.fingerprint(pending.stack)
            except RunnerError as error:
                self._poster.post(pending.channel, f":x: {error}", pending.thread_ts)
                return
            if current != pending.fingerprint:
                self._audit.start(record)
                self._audit.finish(record, f"{REFUSED}: changed since preview", 0.0, {})
                self._poster.post(
                    pending.channel,
                    f":warning: `{pending.operation} {pending.stack}` was *not* run: the stack "
                    "or the program changed after the preview, so the approval no longer "
                    "matches. Ask for a new preview.",
                    pending.thread_ts,
                )
                return
            released = True
            self._operation_job(record, holder, pending.thread_ts, pending.plan_path)
        finally:
            if not released:
                self._locks.release(pending.stack, holder)
            if pending.plan_path is not None:
                pending.plan_path.unlink(missing_ok=True)

    def _status_job(self, channel: str, stack: str) -> None:
        try:
            status = self._runner.status(stack)
        except RunnerError as error:
            self._poster.post(channel, f":x: Could not read the status of `{stack}`: {error}")
            return
        self._redactor.add(status.secret_values)
        text = render_status_text(status, self._audit.last_finished(stack), self._now())
        if self.needs_refresh(stack):
            text += (
                f"\n:warning: An operation on `{stack}` was interrupted; "
                f"run `{self._options.command} refresh {stack}`."
            )
        self._poster.post(channel, text)

    def _execute(
        self,
        record: OperationRecord,
        request: RunRequest,
        thread_ts: str | None,
        preview_of: Operation | None = None,
    ) -> RunResult | None:
        """Run one operation between its audit lines; post progress and the final summary."""
        self._audit.start(record)
        started = self._clock()
        tracker = ProgressTracker()

        def post_progress(text: str) -> None:
            self._poster.post(record.channel, text, thread_ts)

        reporter = ProgressReporter(
            tracker, post_progress, render_progress, self._options.progress_interval
        )
        result: RunResult | None = None
        verdict = FAILED
        error: str | None = None
        reporter.start()
        try:
            result = self._runner.run(request, reporter.on_event)
            self._redactor.add(result.secret_values)
            verdict = SUCCEEDED
        except StackBusyError as busy:
            verdict, error = BUSY, str(busy)
        except OperationFailedError as failed:
            error = tracker.snapshot().first_error or failed.detail or str(failed)
        except RunnerError as runner_error:
            error = str(runner_error)
        except Exception:
            logger.exception("operation %s on %s crashed", record.operation, record.stack)
            error = "The bot hit an internal error; its log has the details."
        finally:
            reporter.stop()
            duration = self._clock() - started
            snapshot = tracker.snapshot()
            counts = dict(result.changes) if result is not None else {}
            if not counts:
                counts = snapshot.summary_changes or snapshot.done
            self._audit.finish(record, verdict, duration, counts)
        if verdict == BUSY:
            self._poster.post(
                record.channel,
                f":lock: {error} The bot changed nothing and will not retry; "
                "run it again once that update has finished.",
                thread_ts,
            )
            return None
        outcome = Outcome(
            operation=Operation(request.operation),
            stack=record.stack,
            user=record.user,
            succeeded=result is not None,
            duration=duration,
            changes=counts,
            outputs=result.outputs if result is not None else (),
            error=error,
            approver=record.approver,
            preview_of=preview_of,
        )
        self._poster.post(record.channel, render_outcome(outcome), thread_ts)
        return result

    # ---- helpers --------------------------------------------------------------------------

    def _submit(
        self,
        job: Callable[[], None],
        name: str,
        reply: str,
        on_refused: Callable[[], None] | None = None,
    ) -> str:
        try:
            self._jobs.submit(job, name)
        except RuntimeError:
            if on_refused is not None:
                on_refused()
            return "The bot is shutting down; try again in a minute."
        return reply

    def _expire_approvals(self) -> None:
        for pending in self._approvals.take_expired(
            self._clock(), self._access.approval_window_seconds
        ):
            self._audit.note("expired", _record_of(pending, approver=None))
            self._close_approval(pending, ":hourglass: Expired without approval.")

    def _close_approval(
        self, pending: PendingApproval, text: str, delete_plan: bool = True
    ) -> None:
        """Remove the buttons from the approval message (in the background: it calls Slack)."""
        if delete_plan and pending.plan_path is not None:
            pending.plan_path.unlink(missing_ok=True)
        message_ts = pending.message_ts
        if message_ts is not None:
            self._submit(
                lambda: self._poster.update(pending.channel, message_ts, text, plain_blocks(text)),
                "close approval message",
                "",
            )

    def _approvers(self, stack: str) -> str:
        rules = self._access.stacks.get(stack)
        people = rules.approvers if rules is not None else []
        return " or ".join(f"<@{user}>" for user in people) or "nobody (no approvers listed)"

    def _busy_text(self, stack: str, holder: Holder) -> str:
        since = holder.since
        waited = format_duration((self._now() - since).total_seconds())
        return (
            f":hourglass: `{stack}` is busy: <@{holder.user}> is running {holder.activity} "
            f"since {since:%H:%M:%S} UTC ({waited}). Try again when it has finished."
        )

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock(), UTC)


def stacks_needing_refresh(entries: Iterable[Mapping[str, Any]]) -> set[str]:
    """Stacks whose last interrupted operation has not been followed by a successful refresh."""
    needing: set[str] = set()
    for entry in entries:
        if entry.get("event") != END:
            continue
        stack = entry.get("stack")
        if not isinstance(stack, str):
            continue
        if entry.get("result") == INTERRUPTED:
            needing.add(stack)
        elif entry.get("operation") == Operation.REFRESH.value and entry.get("result") == SUCCEEDED:
            needing.discard(stack)
    return needing


def _op_id() -> str:
    return secrets.token_hex(8)


def _record_of(pending: PendingApproval, approver: str | None) -> OperationRecord:
    return OperationRecord(
        op_id=pending.approval_id,
        user=pending.requester,
        channel=pending.channel,
        stack=pending.stack,
        operation=pending.operation.value,
        approver=approver,
    )
