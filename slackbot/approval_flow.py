"""Operations that need a second person: a preview first, then Approve or Cancel.

The preview saves a plan (when the SDK can) and the stack's fingerprint; an approval runs the
operation held to that plan, and is refused when the stack or the program changed since.
"""

from __future__ import annotations

from pathlib import Path

from slackbot.access import may_approve, may_cancel
from slackbot.approvals import PendingApproval, new_approval_id
from slackbot.audit import OperationRecord
from slackbot.blocks import approval_blocks
from slackbot.core import REFUSED, BotCore, new_op_id, operation_name, record_of
from slackbot.execution import Executor
from slackbot.locks import Holder
from slackbot.operations import Operation
from slackbot.runner import RunnerError, RunRequest
from slackbot.summary import format_duration


class ApprovalFlow:
    def __init__(self, core: BotCore, executor: Executor) -> None:
        self._core = core
        self._executor = executor

    def request(
        self,
        user: str,
        channel: str,
        stack: str,
        operation: Operation,
        branch: str | None,
        holder: Holder,
    ) -> str:
        """Start the preview an approver will look at; the stack is already held."""
        core = self._core
        record = OperationRecord(
            new_op_id(), user, channel, stack, Operation.PREVIEW.value, branch=branch
        )
        name = operation_name(operation, stack, branch)
        return core.submit(
            lambda: self._preview_job(record, operation, holder),
            f"preview for {name}",
            f"`{name}` needs approval: running a preview first; its summary will be posted here.",
            on_refused=lambda: core.locks.release(stack, holder),
            channel=channel,
        )

    def approve(self, approval_id: str, user: str) -> str:
        """The Approve button; the returned text is shown to the person who clicked."""
        core = self._core
        pending = core.approvals.get(approval_id)
        if pending is None:
            return "This request is no longer pending (approved, cancelled or expired)."
        now = core.clock()
        decision = may_approve(
            core.access, user, pending.requester, pending.stack, pending.requested_at, now
        )
        if not decision.allowed:
            core.audit.note(
                "approval_refused", record_of(pending, approver=user), reason=decision.reason
            )
            if now - pending.requested_at > core.access.approval_window_seconds:
                expired = core.approvals.take(approval_id)
                if expired is not None:
                    core.close_approval(expired, ":hourglass: Expired without approval.")
            return f":no_entry: {decision.reason}"
        taken = core.approvals.take(approval_id)
        if taken is None:
            return "This request has just been handled by someone else."
        name = operation_name(taken.operation, taken.stack, taken.branch)
        holder = Holder(taken.requester, f"`{name}` (approved)", core.now())
        busy = core.locks.try_acquire(taken.stack, holder)
        if busy is not None:
            core.approvals.add(taken)
            return core.busy_text(taken.stack, busy)
        core.close_approval(taken, f":white_check_mark: Approved by <@{user}>.", delete_plan=False)
        return core.submit(
            lambda: self._approved_job(taken, user, holder),
            name,
            f"Approved: running `{name}`.",
            on_refused=lambda: core.locks.release(taken.stack, holder),
            channel=taken.channel,
        )

    def cancel(self, approval_id: str, user: str) -> str:
        """The Cancel button: the requester or an approver withdraws the request."""
        core = self._core
        pending = core.approvals.get(approval_id)
        if pending is None:
            return "This request is no longer pending."
        if not may_cancel(core.access, user, pending.requester, pending.stack):
            return ":no_entry: Only the requester or an approver can cancel this request."
        taken = core.approvals.take(approval_id)
        if taken is None:
            return "This request has just been handled by someone else."
        core.audit.note("cancelled", record_of(taken, approver=None), by=user)
        core.close_approval(taken, f":no_entry_sign: Cancelled by <@{user}>.")
        return "Cancelled."

    def _preview_job(self, record: OperationRecord, operation: Operation, holder: Holder) -> None:
        core = self._core
        approval_id = new_approval_id()
        plan: Path | None = None
        name = operation_name(operation, record.stack, record.branch)
        try:
            approvers = core.approvers_text(record.stack)
            thread_ts = core.poster.post(
                record.channel,
                f":mag: <@{record.user}> asked for `{name}`, which needs "
                f"approval by {approvers}. Running a preview first…",
            )
            try:
                fingerprint = core.runner.fingerprint(record.stack)
            except RunnerError as error:
                core.poster.post(record.channel, f":x: {error}", thread_ts)
                return
            if operation.deploys and core.runner.supports_plans:
                plan = core.options.plan_dir / f"{approval_id}.json"
            request = RunRequest(
                stack=record.stack,
                operation=Operation.PREVIEW,
                preview_of=operation,
                save_plan=plan,
                clear_pending_creates=(
                    operation is Operation.REFRESH and core.needs_refresh(record.stack)
                ),
            )
            with self._executor.config_applied(
                record, operation, thread_ts, temporary=True
            ) as ready:
                if not ready:
                    return
                result = self._executor.execute(
                    record, request, thread_ts, holder, preview_of=operation
                )
            if result is None:
                return
            pending = PendingApproval(
                approval_id=approval_id,
                stack=record.stack,
                operation=operation,
                requester=record.user,
                channel=record.channel,
                requested_at=core.clock(),
                fingerprint=fingerprint,
                plan_path=plan,
                thread_ts=thread_ts,
                branch=record.branch,
            )
            core.approvals.add(pending)
            plan = None
            window = format_duration(core.access.approval_window_seconds)
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
            ts = core.poster.post(
                record.channel, text, thread_ts, blocks=approval_blocks(text, approval_id)
            )
            core.approvals.attach_message(approval_id, ts)
        finally:
            if plan is not None:
                plan.unlink(missing_ok=True)
            core.locks.release(record.stack, holder)

    def _approved_job(self, pending: PendingApproval, approver: str, holder: Holder) -> None:
        core = self._core
        record = OperationRecord(
            new_op_id(),
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
                current = core.runner.fingerprint(pending.stack)
            except RunnerError as error:
                core.poster.post(pending.channel, f":x: {error}", pending.thread_ts)
                return
            if current != pending.fingerprint:
                core.audit.start(record)
                core.audit.finish(record, f"{REFUSED}: changed since preview", 0.0, {})
                core.poster.post(
                    pending.channel,
                    f":warning: `{pending.operation} {pending.stack}` was *not* run: the stack "
                    "or the program changed after the preview, so the approval no longer "
                    "matches. Ask for a new preview.",
                    pending.thread_ts,
                )
                return
            released = True
            self._executor.operation_job(record, holder, pending.thread_ts, pending.plan_path)
        finally:
            if not released:
                core.locks.release(pending.stack, holder)
            if pending.plan_path is not None:
                pending.plan_path.unlink(missing_ok=True)
