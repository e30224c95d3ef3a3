"""The bot's behaviour, independent of how Slack delivers requests.

Handlers return the short text used to acknowledge the request at once; anything slow runs
as a background job that posts to the channel (progress as thread replies, then a summary).
Status requests run on their own pool so they never queue in front of an operation.

`ChatOps` routes each request to the part that owns it: `execution` (running, cancelling,
time-outs, branch and rollback config, canary reports), `approval_flow` (preview, Approve,
Cancel), `drift` (checks and their schedule) and `status_report` (status and alerts); the
housekeeping timer also runs `pipeline_watch` (the alerting pipeline's dead man's switch). They
share one `core.BotCore`. The names callers import from here stay importable from here.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Sequence

from slackbot.access import (
    AccessConfig,
    authorise,
    branch_deploys_allowed,
    may_cancel,
    needs_approval,
)
from slackbot.approval_flow import ApprovalFlow
from slackbot.audit import AuditLog, OperationRecord, record_from_entry
from slackbot.blocks import refresh_offer_blocks
from slackbot.branches import BranchError, check_branch_name
from slackbot.commands import CancelCommand, DriftCommand, HelpRequest, help_text, parse_command
from slackbot.core import (
    BUSY,
    CANCELLED,
    DRIFT,
    FAILED,
    INTERRUPTED,
    REFUSED,
    SCHEDULE_USER,
    SUCCEEDED,
    TIMED_OUT,
    BotCore,
    BotOptions,
    Clock,
    new_op_id,
    operation_name,
    stacks_needing_refresh,
)
from slackbot.drift import DRIFT_RETRY_SECONDS, DriftChecks
from slackbot.execution import Executor
from slackbot.jobs import JobPool
from slackbot.locks import Holder
from slackbot.operations import Operation
from slackbot.pipeline_watch import PipelineWatch
from slackbot.poster import Poster
from slackbot.redact import Redactor
from slackbot.runner import RunnerError, StackRunner
from slackbot.status_report import StatusReporter

__all__ = [
    "BUSY",
    "CANCELLED",
    "DRIFT",
    "DRIFT_RETRY_SECONDS",
    "FAILED",
    "INTERRUPTED",
    "REFUSED",
    "SCHEDULE_USER",
    "SUCCEEDED",
    "TIMED_OUT",
    "BotOptions",
    "ChatOps",
    "stacks_needing_refresh",
]

logger = logging.getLogger(__name__)


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
        self._own_status_jobs = status_jobs is None
        self.core = BotCore(
            stacks=stacks,
            access=access,
            runner=runner,
            poster=poster,
            audit=audit,
            jobs=jobs,
            status_jobs=status_jobs or JobPool(workers=4, name="slackbot-status"),
            redactor=redactor,
            options=options,
            clock=clock,
        )
        self._executor = Executor(self.core)
        self._approval = ApprovalFlow(self.core, self._executor)
        self._drift = DriftChecks(self.core, self._executor)
        self._status = StatusReporter(self.core)
        self._pipeline = PipelineWatch(self.core)
        self._stopping = threading.Event()
        self._housekeeper: threading.Thread | None = None

    @property
    def stacks(self) -> list[str]:
        return list(self.core.stacks)

    def needs_refresh(self, stack: str) -> bool:
        return self.core.needs_refresh(stack)

    # ---- life cycle -----------------------------------------------------------------------

    def start(self) -> None:
        """Close approvals that expired while the bot was down, learn every stack's secrets
        (so they are masked from the first message on) and start the housekeeping timer."""
        self.core.expire_approvals()
        for stack in self.core.stacks:
            self.core.submit_status(functools.partial(self._prime, stack), f"secrets {stack}")
        self._housekeeper = threading.Thread(
            target=self._housekeeping_loop, name="slackbot-housekeeping", daemon=True
        )
        self._housekeeper.start()

    def close(self, timeout: float = 10.0) -> None:
        self._stopping.set()
        if self._housekeeper is not None:
            self._housekeeper.join(timeout)
        self._executor.join_stoppers(timeout)
        self.core.status_jobs.wait_idle(timeout)
        self._status.close()
        if self._own_status_jobs:
            self.core.status_jobs.shutdown()

    def wait_idle(self, timeout: float) -> bool:
        return self.core.status_jobs.wait_idle(timeout) and self.core.jobs.wait_idle(timeout)

    def run_housekeeping(self) -> None:
        """Expire approvals and start the drift and alerting-pipeline checks that are due."""
        self.core.expire_approvals()
        self._drift.schedule()
        self._pipeline.schedule()

    # ---- requests -------------------------------------------------------------------------

    def handle_command(self, user: str, channel: str, text: str) -> str:
        """Handle `/airflow <text>`; the returned text acknowledges the request."""
        self.core.expire_approvals()
        command = parse_command(text, self.core.stacks)
        if isinstance(command, HelpRequest):
            usage = help_text(self.core.options.command, self.core.stacks)
            return f"{command.problem}\n{usage}" if command.problem else usage
        if isinstance(command, CancelCommand):
            return self._cancel(user, command.stack)
        if isinstance(command, DriftCommand):
            return self._drift.request(user, channel, command.stack)
        return self._request(user, channel, command.stack, command.operation, command.branch)

    def handle_refresh_offer(self, user: str, channel: str, stack: str) -> str:
        """The "Refresh" button of a recovery or drift report: a `refresh <stack>` request."""
        return self._offer(user, channel, stack, Operation.REFRESH)

    def handle_up_offer(self, user: str, channel: str, stack: str) -> str:
        """The "Up" button of a drift report: an `up <stack>` request, approvals as usual."""
        return self._offer(user, channel, stack, Operation.UP)

    def handle_rollback_offer(self, user: str, channel: str, stack: str) -> str:
        """The "Roll back" button of a canary failure: a `rollback <stack>` request."""
        return self._offer(user, channel, stack, Operation.ROLLBACK)

    def handle_approve(self, approval_id: str, user: str, channel: str) -> str:
        """The Approve button; the returned text is shown to the person who clicked."""
        return self._approval.approve(approval_id, user)

    def handle_cancel(self, approval_id: str, user: str) -> str:
        """The Cancel button: the requester or an approver withdraws the request."""
        return self._approval.cancel(approval_id, user)

    def _offer(self, user: str, channel: str, stack: str, operation: Operation) -> str:
        if stack not in self.core.stacks:
            return "That stack no longer exists."
        return self._request(user, channel, stack, operation)

    def _request(
        self,
        user: str,
        channel: str,
        stack: str,
        operation: Operation,
        branch: str | None = None,
    ) -> str:
        core = self.core
        decision = authorise(core.access, user, channel, stack, operation)
        if not decision.allowed:
            core.audit.denied(user, channel, stack, operation.value, decision.reason)
            return f":no_entry: {decision.reason}"
        if operation is Operation.STATUS:
            return core.submit(
                lambda: self._status.job(channel, stack),
                f"status {stack}",
                f"Fetching the status of `{stack}`…",
                channel=channel,
                pool=core.status_jobs,
            )
        if branch is not None:
            problem = self._branch_problem(stack, branch)
            if problem is not None:
                core.audit.denied(user, channel, stack, operation.value, problem)
                return f":no_entry: {problem}"
        approval = needs_approval(core.access, stack, operation)
        name = operation_name(operation, stack, branch)
        activity = f"a preview of `{name}` for approval" if approval else f"`{name}`"
        holder = Holder(user, activity, core.now())
        busy = core.locks.try_acquire(stack, holder)
        if busy is not None:
            return core.busy_text(stack, busy)
        if approval:
            return self._approval.request(user, channel, stack, operation, branch, holder)
        record = OperationRecord(new_op_id(), user, channel, stack, operation.value, branch=branch)
        return core.submit(
            lambda: self._executor.operation_job(record, holder),
            name,
            f"Starting `{name}`; progress follows in this channel.",
            on_refused=lambda: core.locks.release(stack, holder),
            channel=channel,
        )

    def _branch_problem(self, stack: str, branch: str) -> str | None:
        if not branch_deploys_allowed(self.core.access, stack):
            return f"`{stack}` does not take branch deploys."
        try:
            check_branch_name(branch)
        except BranchError as error:
            return str(error)
        return None

    def _cancel(self, user: str, stack: str) -> str:
        """`cancel <stack>`: stop the running operation (its requester or an approver)."""
        core = self.core
        running = core.running(stack)
        if running is None:
            holder = core.locks.holder(stack)
            if holder is None:
                return f"Nothing is running on `{stack}`."
            return (
                f"{core.holder_text(stack, holder)} "
                "It has not reached Pulumi yet; try `cancel` again in a moment."
            )
        record = running.record
        if not may_cancel(core.access, user, record.user, stack):
            return (
                f":no_entry: Only <@{record.user}> (who asked for it) or an approver of "
                f"`{stack}` can cancel `{record.operation} {stack}`."
            )
        if not self._executor.cancel(running, user):
            return f"`{record.operation} {stack}` is already being stopped."
        core.audit.note("cancel", record, by=user)
        return (
            f":octagonal_sign: Cancelling `{record.operation} {stack}` (requested by "
            f"<@{record.user}>); `{stack}` is released once Pulumi has stopped."
        )

    # ---- start-up recovery ----------------------------------------------------------------

    def report_unfinished(self) -> list[OperationRecord]:
        """Report operations whose audit `start` line has no `end` line, and offer a refresh."""
        core = self.core
        interrupted = [record_from_entry(entry) for entry in core.audit.unfinished()]
        for record in interrupted:
            core.audit.finish(record, INTERRUPTED, 0.0, {})
            core.mark_needs_refresh(record.stack)
            text = (
                f":warning: The bot stopped while `{record.operation} {record.stack}` "
                f"(requested by <@{record.user}>) was running; it never finished. "
                f"`{record.stack}` may hold pending operations, so do not trust its state yet: "
                f"run `{core.refresh_command(record.stack)}` first "
                "(it also clears pending creates)."
            )
            channels = {record.channel, core.options.notify_channel} - {None, ""}
            for channel in sorted(c for c in channels if c is not None):
                core.poster.post(channel, text, blocks=refresh_offer_blocks(text, record.stack))
        return interrupted

    # ---- housekeeping ---------------------------------------------------------------------

    def _prime(self, stack: str) -> None:
        try:
            self.core.learn_secrets(stack)
        except RunnerError as error:
            logger.warning("could not read the secrets of %s: %s", stack, self.core.one(error))

    def _housekeeping_loop(self) -> None:
        while not self._stopping.wait(self.core.options.housekeeping_interval):
            try:
                self.run_housekeeping()
            except Exception as error:
                logger.error("housekeeping failed: %s", self.core.one(error))
