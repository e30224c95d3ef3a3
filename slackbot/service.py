"""The bot's behaviour, independent of how Slack delivers requests.

Handlers return the short text used to acknowledge the request at once; anything slow runs
as a background job that posts to the channel (progress as thread replies, then a summary).
Status requests run on their own pool so they never queue in front of an operation. Every
operation has a time-out and can be cancelled; a cancelled or timed-out operation is asked
to stop through the runner, and its stack is released even if Pulumi never stops.
"""

from __future__ import annotations

import functools
import logging
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from slackbot.access import (
    AccessConfig,
    authorise,
    branch_deploys_allowed,
    may_approve,
    may_cancel,
    needs_approval,
    report_channel,
)
from slackbot.approvals import ApprovalBook, PendingApproval, clean_plans, new_approval_id
from slackbot.audit import END, AuditLog, OperationRecord, record_from_entry
from slackbot.blocks import approval_blocks, drift_blocks, plain_blocks, refresh_offer_blocks
from slackbot.branches import (
    BRANCH_KEY,
    REV_KEY,
    BranchError,
    branch_config,
    branch_head,
    check_branch_name,
    current_branch,
    remote_of,
)
from slackbot.commands import (
    CancelCommand,
    DriftCommand,
    HelpRequest,
    help_text,
    parse_command,
)
from slackbot.http_server import one_line
from slackbot.jobs import JobPool
from slackbot.locks import Holder, StackLocks
from slackbot.operations import Operation
from slackbot.poster import Poster
from slackbot.progress import ProgressReporter, ProgressSnapshot, ProgressTracker
from slackbot.redact import Redactor
from slackbot.runner import (
    ConfigEntry,
    OperationFailedError,
    RunnerError,
    RunRequest,
    RunResult,
    StackBusyError,
    StackRunner,
    StackStatus,
)
from slackbot.summary import (
    Outcome,
    format_duration,
    render_counts,
    render_outcome,
    render_progress,
)
from slackbot.summary import render_status as render_status_text
from slackbot.text import escape

logger = logging.getLogger(__name__)

Clock = Callable[[], float]

SUCCEEDED = "succeeded"
FAILED = "failed"
BUSY = "busy"
REFUSED = "refused"
INTERRUPTED = "interrupted"
CANCELLED = "cancelled"
TIMED_OUT = "timed out"
DRIFT = "drift"
SCHEDULE_USER = "drift-schedule"
"""The requester recorded for scheduled drift checks."""
DRIFT_RETRY_SECONDS = 600.0
"""A scheduled drift check that finds its stack busy is tried again this much later."""
_NOT_DRIFT = frozenset({"same"})
_CHANGING = frozenset(op.value for op in Operation if op.changes_stack)


@dataclass(frozen=True)
class BotOptions:
    state_dir: Path
    """Private and durable: pending approvals and the plans their previews saved."""
    command: str = "/airflow"
    progress_interval: float = 30.0
    notify_channel: str | None = None
    """Where start-up recovery reports go, besides the channel of the interrupted operation."""
    operation_timeout: float = 2 * 3600.0
    """An operation still running after this long is cancelled."""
    cancel_grace: float = 120.0
    """How long a cancelled operation may take to stop before the bot releases its stack."""
    housekeeping_interval: float = 60.0
    """How often expired approvals are closed and drift checks fall due."""

    @property
    def plan_dir(self) -> Path:
        return self.state_dir / "plans"

    @property
    def approvals_dir(self) -> Path:
        return self.state_dir / "approvals"


@dataclass
class _Running:
    """An operation the runner is executing, and whether someone asked it to stop."""

    record: OperationRecord
    holder: Holder
    thread_ts: str | None
    done: threading.Event = field(default_factory=threading.Event)
    stop_reason: str | None = None
    stop_verdict: str | None = None


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
        status_jobs: JobPool | None = None,
    ) -> None:
        self._stacks = list(stacks)
        self._access = access
        self._runner = runner
        self._poster = poster
        self._audit = audit
        self._jobs = jobs
        self._own_status_jobs = status_jobs is None
        self._status_jobs = status_jobs or JobPool(workers=4, name="slackbot-status")
        self._redactor = redactor
        self._options = options
        self._clock = clock
        self._locks = StackLocks()
        options.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._approvals = ApprovalBook(options.approvals_dir)
        removed = clean_plans(
            options.plan_dir,
            {p.plan_path for p in self._approvals.all() if p.plan_path is not None},
        )
        if removed:
            logger.info("removed %d plan file(s) left by an earlier run", len(removed))
        self._refresh_lock = threading.Lock()
        self._needs_refresh = stacks_needing_refresh(audit.entries())
        self._running_lock = threading.Lock()
        self._running: dict[str, _Running] = {}
        self._stoppers: list[threading.Thread] = []
        self._drift_due: dict[str, float] = {}
        self._stopping = threading.Event()
        self._housekeeper: threading.Thread | None = None

    @property
    def stacks(self) -> list[str]:
        return list(self._stacks)

    def needs_refresh(self, stack: str) -> bool:
        with self._refresh_lock:
            return stack in self._needs_refresh

    # ---- life cycle -----------------------------------------------------------------------

    def start(self) -> None:
        """Close approvals that expired while the bot was down, learn every stack's secrets
        (so they are masked from the first message on) and start the housekeeping timer."""
        self._expire_approvals()
        for stack in self._stacks:
            self._status_jobs.submit(functools.partial(self._prime, stack), f"secrets {stack}")
        self._housekeeper = threading.Thread(
            target=self._housekeeping_loop, name="slackbot-housekeeping", daemon=True
        )
        self._housekeeper.start()

    def close(self, timeout: float = 10.0) -> None:
        self._stopping.set()
        if self._housekeeper is not None:
            self._housekeeper.join(timeout)
        for thread in list(self._stoppers):
            thread.join(timeout)
        self._status_jobs.wait_idle(timeout)
        if self._own_status_jobs:
            self._status_jobs.shutdown()

    def wait_idle(self, timeout: float) -> bool:
        return self._status_jobs.wait_idle(timeout) and self._jobs.wait_idle(timeout)

    def run_housekeeping(self) -> None:
        """Expire approvals and start drift checks that are due."""
        self._expire_approvals()
        self._schedule_drift()

    # ---- requests -------------------------------------------------------------------------

    def handle_command(self, user: str, channel: str, text: str) -> str:
        """Handle `/airflow <text>`; the returned text acknowledges the request."""
        self._expire_approvals()
        command = parse_command(text, self._stacks)
        if isinstance(command, HelpRequest):
            usage = help_text(self._options.command, self._stacks)
            return f"{command.problem}\n{usage}" if command.problem else usage
        if isinstance(command, CancelCommand):
            return self._cancel(user, command.stack)
        if isinstance(command, DriftCommand):
            return self._drift_request(user, channel, command.stack)
        return self._request(user, channel, command.stack, command.operation, command.branch)

    def handle_refresh_offer(self, user: str, channel: str, stack: str) -> str:
        """The "Refresh" button of a recovery or drift report: a `refresh <stack>` request."""
        if stack not in self._stacks:
            return "That stack no longer exists."
        return self._request(user, channel, stack, Operation.REFRESH)

    def handle_up_offer(self, user: str, channel: str, stack: str) -> str:
        """The "Up" button of a drift report: an `up <stack>` request, approvals as usual."""
        if stack not in self._stacks:
            return "That stack no longer exists."
        return self._request(user, channel, stack, Operation.UP)

    def _request(
        self,
        user: str,
        channel: str,
        stack: str,
        operation: Operation,
        branch: str | None = None,
    ) -> str:
        decision = authorise(self._access, user, channel, stack, operation)
        if not decision.allowed:
            self._audit.denied(user, channel, stack, operation.value, decision.reason)
            return f":no_entry: {decision.reason}"
        if operation is Operation.STATUS:
            return self._submit(
                lambda: self._status_job(channel, stack),
                f"status {stack}",
                f"Fetching the status of `{stack}`…",
                channel=channel,
                pool=self._status_jobs,
            )
        if branch is not None:
            problem = self._branch_problem(stack, branch)
            if problem is not None:
                self._audit.denied(user, channel, stack, operation.value, problem)
                return f":no_entry: {problem}"
        approval = needs_approval(self._access, stack, operation)
        name = f"{operation} {stack}" + (f" branch={branch}" if branch else "")
        activity = f"a preview of `{name}` for approval" if approval else f"`{name}`"
        holder = Holder(user, activity, self._now())
        busy = self._locks.try_acquire(stack, holder)
        if busy is not None:
            return self._busy_text(stack, busy)
        if approval:
            record = OperationRecord(
                _op_id(), user, channel, stack, Operation.PREVIEW.value, branch=branch
            )
            return self._submit(
                lambda: self._approval_preview_job(record, operation, holder),
                f"preview for {name}",
                f"`{name}` needs approval: running a preview first; "
                "its summary will be posted here.",
                on_refused=lambda: self._locks.release(stack, holder),
                channel=channel,
            )
        record = OperationRecord(_op_id(), user, channel, stack, operation.value, branch=branch)
        return self._submit(
            lambda: self._operation_job(record, holder),
            name,
            f"Starting `{name}`; progress follows in this channel.",
            on_refused=lambda: self._locks.release(stack, holder),
            channel=channel,
        )

    def _branch_problem(self, stack: str, branch: str) -> str | None:
        if not branch_deploys_allowed(self._access, stack):
            return f"`{stack}` does not take branch deploys."
        try:
            check_branch_name(branch)
        except BranchError as error:
            return str(error)
        return None

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
        name = f"{taken.operation} {taken.stack}" + (
            f" branch={taken.branch}" if taken.branch else ""
        )
        holder = Holder(taken.requester, f"`{name}` (approved)", self._now())
        busy = self._locks.try_acquire(taken.stack, holder)
        if busy is not None:
            self._approvals.add(taken)
            return self._busy_text(taken.stack, busy)
        self._close_approval(taken, f":white_check_mark: Approved by <@{user}>.", delete_plan=False)
        return self._submit(
            lambda: self._approved_job(taken, user, holder),
            name,
            f"Approved: running `{name}`.",
            on_refused=lambda: self._locks.release(taken.stack, holder),
            channel=taken.channel,
        )

    def handle_cancel(self, approval_id: str, user: str) -> str:
        """The Cancel button: the requester or an approver withdraws the request."""
        pending = self._approvals.get(approval_id)
        if pending is None:
            return "This request is no longer pending."
        if not may_cancel(self._access, user, pending.requester, pending.stack):
            return ":no_entry: Only the requester or an approver can cancel this request."
        taken = self._approvals.take(approval_id)
        if taken is None:
            return "This request has just been handled by someone else."
        self._audit.note("cancelled", _record_of(taken, approver=None), by=user)
        self._close_approval(taken, f":no_entry_sign: Cancelled by <@{user}>.")
        return "Cancelled."

    def _cancel(self, user: str, stack: str) -> str:
        """`cancel <stack>`: stop the running operation (its requester or an approver)."""
        with self._running_lock:
            running = self._running.get(stack)
        if running is None:
            holder = self._locks.holder(stack)
            if holder is None:
                return f"Nothing is running on `{stack}`."
            return (
                f"{self._holder_text(stack, holder)} "
                "It has not reached Pulumi yet; try `cancel` again in a moment."
            )
        record = running.record
        if not may_cancel(self._access, user, record.user, stack):
            return (
                f":no_entry: Only <@{record.user}> (who asked for it) or an approver of "
                f"`{stack}` can cancel `{record.operation} {stack}`."
            )
        if not self._stop(running, f"cancelled by <@{user}>", CANCELLED):
            return f"`{record.operation} {stack}` is already being stopped."
        self._audit.note("cancel", record, by=user)
        return (
            f":octagonal_sign: Cancelling `{record.operation} {stack}` (requested by "
            f"<@{record.user}>); `{stack}` is released once Pulumi has stopped."
        )

    def _drift_request(self, user: str, channel: str, stack: str, scheduled: bool = False) -> str:
        if not scheduled:
            decision = authorise(self._access, user, channel, stack, Operation.PREVIEW)
            if not decision.allowed:
                self._audit.denied(user, channel, stack, DRIFT, decision.reason)
                return f":no_entry: {decision.reason}"
        holder = Holder(user, f"a drift check of `{stack}`", self._now())
        busy = self._locks.try_acquire(stack, holder)
        if busy is not None:
            return self._busy_text(stack, busy)
        record = OperationRecord(_op_id(), user, channel, stack, DRIFT)
        return self._submit(
            lambda: self._drift_job(record, holder, scheduled),
            f"drift {stack}",
            f"Checking `{stack}` for drift (a refresh-preview; nothing is changed).",
            on_refused=lambda: self._locks.release(stack, holder),
            channel=channel,
        )

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
            name = f"{operation} {record.stack}" + (
                f" branch={record.branch}" if record.branch else ""
            )
            if thread_ts is None:
                thread_ts = self._poster.post(
                    record.channel, f":arrow_forward: <@{record.user}> started `{name}`."
                )
            clear = operation is Operation.REFRESH and self.needs_refresh(record.stack)
            message = f"Slack: {operation} by {record.user}" + (
                f", approved by {record.approver}" if record.approver else ""
            )
            if record.branch:
                message += f", DAGs from branch {record.branch}"
            request = RunRequest(
                stack=record.stack,
                operation=operation,
                use_plan=plan,
                clear_pending_creates=clear,
                message=message,
            )
            temporary = operation is Operation.PREVIEW
            with self._branch_applied(record, thread_ts, temporary) as ready:
                if not ready:
                    return
                result = self._execute(record, request, thread_ts, holder)
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
        name = f"{operation} {record.stack}" + (f" branch={record.branch}" if record.branch else "")
        try:
            approvers = self._approvers(record.stack)
            thread_ts = self._poster.post(
                record.channel,
                f":mag: <@{record.user}> asked for `{name}`, which needs "
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
            with self._branch_applied(record, thread_ts, temporary=True) as ready:
                if not ready:
                    return
                result = self._execute(record, request, thread_ts, holder, preview_of=operation)
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
                branch=record.branch,
            )
            self._approvals.add(pending)
            plan = None
            window = format_duration(self._access.approval_window_seconds)
            text = (
                f":raised_hand: Approve `{name}` as previewed above? "
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
            branch=pending.branch,
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
            config, status = self._learn_secrets(stack)
        except RunnerError as error:
            self._poster.post(channel, f":x: Could not read the status of `{stack}`: {error}")
            return
        text = render_status_text(status, self._audit.last_finished(stack), self._now())
        dags = self._dags_line(config)
        if dags:
            text += "\n" + dags
        if self.needs_refresh(stack):
            text += (
                f"\n:warning: An operation on `{stack}` was interrupted; "
                f"run `{self._options.command} refresh {stack}`."
            )
        self._poster.post(channel, text)

    def _drift_job(self, record: OperationRecord, holder: Holder, scheduled: bool) -> None:
        channel = report_channel(self._access, record.stack) or (
            self._options.notify_channel if scheduled else record.channel
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
                text, blocks = self._drift_report(record, outcome, snapshot)
                if text and channel:
                    self._poster.post(channel, text, blocks=blocks)
                if not scheduled and channel != record.channel and text:
                    self._poster.post(record.channel, text.split("\n")[0])

            self._execute(record, request, None, holder, report=report)
        finally:
            self._locks.release(record.stack, holder)

    def _drift_report(
        self, record: OperationRecord, outcome: Outcome, snapshot: ProgressSnapshot
    ) -> tuple[str, list[dict[str, Any]] | None]:
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
        for op, kind, name in snapshot.changed[:20]:
            lines.append(f"• {op} {escape(kind, 80)} `{escape(name, 80)}`")
        if len(snapshot.changed) > 20:
            lines.append(f"• … and {len(snapshot.changed) - 20} more")
        lines.append(
            "Nothing was applied. *Refresh* takes the cloud's state into the stack; *Up* puts "
            "the program's configuration back. Both follow the usual access and approval rules."
        )
        text = "\n".join(lines)
        return text, drift_blocks(text, stack)

    # ---- running an operation -------------------------------------------------------------

    def _execute(
        self,
        record: OperationRecord,
        request: RunRequest,
        thread_ts: str | None,
        holder: Holder,
        preview_of: Operation | None = None,
        report: Callable[[Outcome, ProgressSnapshot], None] | None = None,
    ) -> RunResult | None:
        """Run one operation between its audit lines; post progress and the final summary."""
        try:
            self._learn_secrets(record.stack)
        except RunnerError as unreadable:
            self._poster.post(record.channel, f":x: {unreadable}", thread_ts)
            return None
        self._audit.start(record)
        started = self._clock()
        tracker = ProgressTracker()

        def post_progress(text: str) -> None:
            self._poster.post(record.channel, text, thread_ts)

        reporter = ProgressReporter(
            tracker, post_progress, render_progress, self._options.progress_interval
        )
        running = _Running(record, holder, thread_ts)
        with self._running_lock:
            self._running[record.stack] = running
        timer = threading.Timer(
            self._options.operation_timeout,
            lambda: self._stop(
                running,
                f"timed out after {format_duration(self._options.operation_timeout)}",
                TIMED_OUT,
            ),
        )
        timer.daemon = True
        result: RunResult | None = None
        verdict = FAILED
        error: str | None = None
        reporter.start()
        timer.start()
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
        except Exception as crash:
            logger.error(
                "operation %s on %s crashed: %s", record.operation, record.stack, self._one(crash)
            )
            error = "The bot hit an internal error; its log has the details."
        finally:
            timer.cancel()
            reporter.stop()
            with self._running_lock:
                running.done.set()
                if self._running.get(record.stack) is running:
                    del self._running[record.stack]
                stopped = running.stop_reason if result is None else None
            if stopped is not None and running.stop_verdict is not None:
                verdict = running.stop_verdict
                if request.operation.changes_stack:
                    with self._refresh_lock:
                        self._needs_refresh.add(record.stack)
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
            stop_reason=stopped,
            refresh_hint=(
                f"{self._options.command} refresh {record.stack}"
                if stopped is not None and request.operation.changes_stack
                else None
            ),
        )
        if report is not None:
            report(outcome, snapshot)
        else:
            self._poster.post(record.channel, render_outcome(outcome), thread_ts)
        return result

    def _stop(self, running: _Running, reason: str, verdict: str) -> bool:
        """Ask the runner to cancel; release the stack if it has not stopped after the grace."""
        with self._running_lock:
            if running.stop_reason is not None or running.done.is_set():
                return False
            running.stop_reason = reason
            running.stop_verdict = verdict
        logger.warning(
            "stopping %s on %s: %s", running.record.operation, running.record.stack, reason
        )
        thread = threading.Thread(
            target=self._enforce_stop, args=(running,), name="slackbot-stop", daemon=True
        )
        with self._running_lock:
            self._stoppers = [t for t in self._stoppers if t.is_alive()]
            self._stoppers.append(thread)
        thread.start()
        return True

    def _enforce_stop(self, running: _Running) -> None:
        record = running.record
        try:
            self._runner.cancel(record.stack)
        except Exception as error:
            logger.warning("cancelling %s failed: %s", record.stack, self._one(error))
        if running.done.wait(self._options.cancel_grace):
            return
        self._locks.release(record.stack, running.holder)
        with self._refresh_lock:
            self._needs_refresh.add(record.stack)
        self._audit.note("abandoned", record, reason=running.stop_reason or "")
        logger.warning("%s on %s did not stop; stack released", record.operation, record.stack)
        self._poster.post(
            record.channel,
            f":warning: `{record.operation} {record.stack}` has not stopped "
            f"{format_duration(self._options.cancel_grace)} after it was "
            f"{running.stop_reason}. The bot released `{record.stack}`; Pulumi may still hold "
            f"the backend's lock. Check the stack, then run "
            f"`{self._options.command} refresh {record.stack}`.",
            running.thread_ts,
        )

    # ---- secrets and branches -------------------------------------------------------------

    def _learn_secrets(self, stack: str) -> tuple[Mapping[str, ConfigEntry], StackStatus]:
        """Teach the masker the stack's secret config and secret outputs, before anything runs.

        Plain config values and plain outputs are public: they are never masked.
        """
        config = self._runner.config(stack)
        status = self._runner.status(stack)
        self._redactor.add_public(
            [entry.value for entry in config.values() if not entry.secret]
            + [
                output.value
                for output in status.outputs
                if not output.secret and isinstance(output.value, str)
            ]
        )
        self._redactor.add([entry.value for entry in config.values() if entry.secret])
        self._redactor.add(status.secret_values)
        return config, status

    def _prime(self, stack: str) -> None:
        try:
            self._learn_secrets(stack)
        except RunnerError as error:
            logger.warning("could not read the secrets of %s: %s", stack, self._one(error))

    @contextmanager
    def _branch_applied(
        self, record: OperationRecord, thread_ts: str | None, temporary: bool
    ) -> Iterator[bool]:
        """Point git-sync at the record's branch (checked on the remote) for the operation.

        A preview puts the previous values back afterwards; an `up` keeps them.
        """
        branch = record.branch
        if branch is None:
            yield True
            return
        try:
            config = self._runner.config(record.stack)
        except RunnerError as error:
            self._poster.post(record.channel, f":x: {error}", thread_ts)
            yield False
            return
        remote = remote_of(config)
        if remote is None:
            self._poster.post(
                record.channel,
                f":x: `{record.stack}` has no git-sync repository configured; "
                "there is no branch to deploy.",
                thread_ts,
            )
            yield False
            return
        try:
            commit = branch_head(remote, branch)
        except BranchError as error:
            self._poster.post(record.channel, f":x: {error}", thread_ts)
            self._audit.note("branch_refused", record, branch=branch, reason=str(error))
            yield False
            return
        previous = {
            key: config[key].value if key in config else None for key in (BRANCH_KEY, REV_KEY)
        }
        self._audit.note("branch", record, branch=branch, commit=commit)
        self._runner.set_config(record.stack, branch_config(branch))
        try:
            yield True
        finally:
            if temporary:
                self._runner.set_config(record.stack, previous)

    def _dags_line(self, config: Mapping[str, ConfigEntry]) -> str | None:
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

    # ---- helpers --------------------------------------------------------------------------

    def _submit(
        self,
        job: Callable[[], None],
        name: str,
        reply: str,
        on_refused: Callable[[], None] | None = None,
        channel: str | None = None,
        pool: JobPool | None = None,
    ) -> str:
        def guarded() -> None:
            try:
                job()
            except Exception as error:
                logger.error("%s failed: %s", name, self._one(error))
                if channel:
                    self._poster.post(
                        channel,
                        f":x: `{name}` stopped: the bot hit an internal error "
                        f"({type(error).__name__}). Nothing more will happen for this request; "
                        "the bot's log has the details.",
                    )

        try:
            (pool or self._jobs).submit(guarded, name)
        except RuntimeError:
            if on_refused is not None:
                on_refused()
            return "The bot is shutting down; try again in a minute."
        return reply

    def _one(self, error: BaseException) -> str:
        return one_line(self._redactor.scrub(f"{type(error).__name__}: {error}"), 200)

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

    def _housekeeping_loop(self) -> None:
        while not self._stopping.wait(self._options.housekeeping_interval):
            try:
                self.run_housekeeping()
            except Exception as error:
                logger.error("housekeeping failed: %s", self._one(error))

    def _schedule_drift(self) -> None:
        interval = self._access.drift_interval_hours * 3600
        if interval <= 0:
            return
        now = self._clock()
        for stack, rules in self._access.stacks.items():
            if stack not in self._stacks or not rules.drift_check:
                continue
            due = self._drift_due.setdefault(stack, now + interval)
            if now < due:
                continue
            if self._locks.holder(stack) is not None:
                self._drift_due[stack] = now + min(interval, DRIFT_RETRY_SECONDS)
                continue
            self._drift_due[stack] = now + interval
            channel = report_channel(self._access, stack) or self._options.notify_channel or ""
            self._drift_request(SCHEDULE_USER, channel, stack, scheduled=True)

    def _approvers(self, stack: str) -> str:
        rules = self._access.stacks.get(stack)
        people = rules.approvers if rules is not None else []
        return " or ".join(f"<@{user}>" for user in people) or "nobody (no approvers listed)"

    def _holder_text(self, stack: str, holder: Holder) -> str:
        since = holder.since
        waited = format_duration((self._now() - since).total_seconds())
        who = "the drift schedule" if holder.user == SCHEDULE_USER else f"<@{holder.user}>"
        return (
            f":hourglass: `{stack}` is busy: {who} is running {holder.activity} "
            f"since {since:%H:%M:%S} UTC ({waited})."
        )

    def _busy_text(self, stack: str, holder: Holder) -> str:
        return self._holder_text(stack, holder) + " Try again when it has finished."

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
        result = entry.get("result")
        if result == INTERRUPTED or (
            result in (CANCELLED, TIMED_OUT) and entry.get("operation") in _CHANGING
        ):
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
        branch=pending.branch,
    )
