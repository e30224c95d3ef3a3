"""Running one operation: its audit lines, progress, time-out and cancel, and the summary.

A cancelled or timed-out operation is asked to stop through the runner, and its stack is
released even if Pulumi never stops. Before an operation, a DAG branch (`branch=`) or the
rollback config is set on the stack; after a failed deploy, the canary's report is posted
with the offer to roll back.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from slackbot.audit import OperationRecord
from slackbot.blocks import rollback_offer_blocks
from slackbot.branches import (
    BRANCH_KEY,
    REV_KEY,
    BranchError,
    branch_config,
    branch_head,
    remote_of,
)
from slackbot.canary_post import find_canary_failure, render_canary_failure
from slackbot.core import (
    BUSY,
    CANCELLED,
    FAILED,
    SUCCEEDED,
    TIMED_OUT,
    BotCore,
    Running,
    operation_name,
)
from slackbot.locks import Holder
from slackbot.operations import Operation
from slackbot.progress import ProgressReporter, ProgressSnapshot, ProgressTracker
from slackbot.runner import (
    NothingToRollBackError,
    OperationFailedError,
    RunnerError,
    RunRequest,
    RunResult,
    StackBusyError,
)
from slackbot.summary import Outcome, format_duration, render_outcome, render_progress

logger = logging.getLogger(__name__)

Report = Callable[[Outcome, ProgressSnapshot], None]


class Executor:
    """Runs operations for the request handlers, one job per operation."""

    def __init__(self, core: BotCore) -> None:
        self._core = core
        self._stoppers_lock = threading.Lock()
        self._stoppers: list[threading.Thread] = []

    def join_stoppers(self, timeout: float) -> None:
        with self._stoppers_lock:
            stoppers = list(self._stoppers)
        for thread in stoppers:
            thread.join(timeout)

    # ---- an operation, start to end -------------------------------------------------------

    def operation_job(
        self,
        record: OperationRecord,
        holder: Holder,
        thread_ts: str | None = None,
        plan: Path | None = None,
    ) -> None:
        """Run `record`'s operation (after its approval, if it needed one); release its stack."""
        core = self._core
        try:
            operation = Operation(record.operation)
            name = operation_name(operation, record.stack, record.branch)
            if thread_ts is None:
                thread_ts = core.poster.post(
                    record.channel, f":arrow_forward: <@{record.user}> started `{name}`."
                )
            clear = operation is Operation.REFRESH and core.needs_refresh(record.stack)
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
            with self.config_applied(record, operation, thread_ts, temporary) as ready:
                if not ready:
                    return
                result = self.execute(record, request, thread_ts, holder)
            if result is not None and operation is Operation.REFRESH:
                core.mark_refreshed(record.stack)
        finally:
            core.locks.release(record.stack, holder)

    @contextmanager
    def config_applied(
        self,
        record: OperationRecord,
        operation: Operation,
        thread_ts: str | None,
        temporary: bool,
    ) -> Iterator[bool]:
        """The stack config `operation` needs: a DAG branch, or the rollback keys.

        Yields False (after saying why) when it cannot be set. A temporary change (for a
        preview) is undone afterwards; an `up` or a rollback keeps it.
        """
        if operation is Operation.ROLLBACK:
            with self._rollback_applied(record, thread_ts, temporary) as ready:
                yield ready
        else:
            with self._branch_applied(record, thread_ts, temporary) as ready:
                yield ready

    def execute(
        self,
        record: OperationRecord,
        request: RunRequest,
        thread_ts: str | None,
        holder: Holder,
        preview_of: Operation | None = None,
        report: Report | None = None,
    ) -> RunResult | None:
        """Run one operation between its audit lines; post progress and the final summary."""
        core = self._core
        try:
            core.learn_secrets(record.stack)
        except RunnerError as unreadable:
            core.poster.post(record.channel, f":x: {unreadable}", thread_ts)
            return None
        core.audit.start(record)
        started = core.clock()
        tracker = ProgressTracker()

        def post_progress(text: str) -> None:
            core.poster.post(record.channel, text, thread_ts)

        reporter = ProgressReporter(
            tracker, post_progress, render_progress, core.options.progress_interval
        )
        running = Running(record, holder, thread_ts)
        core.add_running(running)
        timeout = core.options.operation_timeout
        timer = threading.Timer(
            timeout,
            lambda: self.stop(running, f"timed out after {format_duration(timeout)}", TIMED_OUT),
        )
        timer.daemon = True
        result: RunResult | None = None
        verdict = FAILED
        error: str | None = None
        failure_output = ""
        reporter.start()
        timer.start()
        try:
            result = core.runner.run(request, reporter.on_event)
            core.redactor.add(result.secret_values)
            verdict = SUCCEEDED
        except StackBusyError as busy:
            verdict, error = BUSY, str(busy)
        except OperationFailedError as failed:
            error = tracker.snapshot().first_error or failed.detail or str(failed)
            failure_output = failed.output
        except RunnerError as runner_error:
            error = str(runner_error)
        except Exception as crash:
            logger.error(
                "operation %s on %s crashed: %s", record.operation, record.stack, core.one(crash)
            )
            error = "The bot hit an internal error; its log has the details."
        finally:
            timer.cancel()
            reporter.stop()
            stopped = core.finish_running(running, succeeded=result is not None)
            if stopped is not None and running.stop_verdict is not None:
                verdict = running.stop_verdict
                if request.operation.changes_stack:
                    core.mark_needs_refresh(record.stack)
            duration = core.clock() - started
            snapshot = tracker.snapshot()
            counts = dict(result.changes) if result is not None else {}
            if not counts:
                counts = snapshot.summary_changes or snapshot.done
            core.audit.finish(record, verdict, duration, counts)
        if verdict == BUSY:
            core.poster.post(
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
                core.refresh_command(record.stack)
                if stopped is not None and request.operation.changes_stack
                else None
            ),
        )
        if report is not None:
            report(outcome, snapshot)
        else:
            core.poster.post(record.channel, render_outcome(outcome), thread_ts)
        if verdict == FAILED and request.operation.deploys:
            self._post_canary_failure(record, thread_ts, [failure_output, *snapshot.errors])
        return result

    def _post_canary_failure(
        self, record: OperationRecord, thread_ts: str | None, texts: Sequence[str]
    ) -> None:
        """After a failed deploy: the canary's report, if the failure carries one, and the
        offer to roll back."""
        core = self._core
        try:
            failure = find_canary_failure(texts)
        except Exception as error:
            logger.error("reading the canary report failed: %s", core.one(error))
            return
        if failure is None:
            return
        core.audit.note(
            "canary_failed",
            record,
            outcome=failure.outcome,
            state=failure.state or "unknown",
            run_id=failure.run_id or "unknown",
        )
        text = render_canary_failure(record.operation, record.stack, failure)
        core.poster.post(
            record.channel, text, thread_ts, blocks=rollback_offer_blocks(text, record.stack)
        )

    # ---- stopping -------------------------------------------------------------------------

    def stop(self, running: Running, reason: str, verdict: str) -> bool:
        """Ask the runner to cancel; release the stack if it has not stopped after the grace."""
        if not self._core.request_stop(running, reason, verdict):
            return False
        logger.warning(
            "stopping %s on %s: %s", running.record.operation, running.record.stack, reason
        )
        thread = threading.Thread(
            target=self._enforce_stop, args=(running,), name="slackbot-stop", daemon=True
        )
        with self._stoppers_lock:
            self._stoppers = [t for t in self._stoppers if t.is_alive()]
            self._stoppers.append(thread)
        thread.start()
        return True

    def cancel(self, running: Running, user: str) -> bool:
        return self.stop(running, f"cancelled by <@{user}>", CANCELLED)

    def _enforce_stop(self, running: Running) -> None:
        core = self._core
        record = running.record
        try:
            core.runner.cancel(record.stack)
        except Exception as error:
            logger.warning("cancelling %s failed: %s", record.stack, core.one(error))
        grace = core.options.cancel_grace
        if running.done.wait(grace):
            return
        core.locks.release(record.stack, running.holder)
        core.mark_needs_refresh(record.stack)
        core.audit.note("abandoned", record, reason=running.stop_reason or "")
        logger.warning("%s on %s did not stop; stack released", record.operation, record.stack)
        core.poster.post(
            record.channel,
            f":warning: `{record.operation} {record.stack}` has not stopped "
            f"{format_duration(grace)} after it was {running.stop_reason}. The bot released "
            f"`{record.stack}`; Pulumi may still hold the backend's lock. Check the stack, "
            f"then run `{core.refresh_command(record.stack)}`.",
            running.thread_ts,
        )

    # ---- config an operation needs --------------------------------------------------------

    @contextmanager
    def _branch_applied(
        self, record: OperationRecord, thread_ts: str | None, temporary: bool
    ) -> Iterator[bool]:
        """Point git-sync at the record's branch (checked on the remote) for the operation."""
        core = self._core
        branch = record.branch
        if branch is None:
            yield True
            return
        try:
            config = core.runner.config(record.stack)
        except RunnerError as error:
            core.poster.post(record.channel, f":x: {error}", thread_ts)
            yield False
            return
        remote = remote_of(config)
        if remote is None:
            core.poster.post(
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
            core.poster.post(record.channel, f":x: {error}", thread_ts)
            core.audit.note("branch_refused", record, branch=branch, reason=str(error))
            yield False
            return
        previous = {
            key: config[key].value if key in config else None for key in (BRANCH_KEY, REV_KEY)
        }
        core.audit.note("branch", record, branch=branch, commit=commit)
        core.runner.set_config(record.stack, branch_config(branch))
        try:
            yield True
        finally:
            if temporary:
                core.runner.set_config(record.stack, previous)

    @contextmanager
    def _rollback_applied(
        self, record: OperationRecord, thread_ts: str | None, temporary: bool
    ) -> Iterator[bool]:
        """Set the rollback keys computed from the stack's outputs; each step is audited."""
        core = self._core
        try:
            rollback = core.runner.rollback_config(record.stack)
            current = core.runner.config(record.stack)
        except NothingToRollBackError as nothing:
            core.audit.note("rollback_refused", record, reason=str(nothing))
            core.poster.post(
                record.channel,
                f":information_source: Nothing to roll back on `{record.stack}`: {nothing}",
                thread_ts,
            )
            yield False
            return
        except RunnerError as error:
            core.audit.note("rollback_refused", record, reason=str(error))
            core.poster.post(record.channel, f":x: {error}", thread_ts)
            yield False
            return
        if not rollback:
            reason = "the rollback computed no config to set"
            core.audit.note("rollback_refused", record, reason=reason)
            core.poster.post(
                record.channel, f":x: Cannot roll back `{record.stack}`: {reason}.", thread_ts
            )
            yield False
            return
        previous = {key: current[key].value if key in current else None for key in rollback}
        core.audit.note(
            "rollback_config",
            record,
            config=json.dumps(rollback, sort_keys=True),
            purpose="preview" if temporary else "rollback",
        )
        try:
            core.runner.set_config(record.stack, dict(rollback))
        except RunnerError as error:
            core.audit.note("rollback_refused", record, reason=str(error))
            core.poster.post(record.channel, f":x: {error}", thread_ts)
            yield False
            return
        try:
            yield True
        finally:
            if temporary:
                core.runner.set_config(record.stack, previous)
