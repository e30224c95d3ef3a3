"""What every part of the bot shares: its dependencies, the stack locks, pending approvals,
the stacks that need a refresh, the operations running now, and the small helpers they all use.

The parts (`execution`, `approval_flow`, `drift`, `status_report`) each hold one `BotCore`;
`service.ChatOps` builds it and routes requests to them.
"""

from __future__ import annotations

import functools
import logging
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from slackbot.access import AccessConfig
from slackbot.approvals import ApprovalBook, PendingApproval, clean_plans
from slackbot.audit import END, AuditLog, OperationRecord
from slackbot.blocks import plain_blocks
from slackbot.http_server import one_line
from slackbot.jobs import JobPool
from slackbot.locks import Holder, StackLocks
from slackbot.operations import Operation
from slackbot.poster import Poster
from slackbot.redact import Redactor
from slackbot.runner import ConfigEntry, StackRunner, StackStatus
from slackbot.summary import format_duration

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
    """How often expired approvals are closed and drift and pipeline checks fall due."""
    alertmanager_urls: Mapping[str, str] = field(default_factory=dict)
    """Each stack's Alertmanager (base URL); a stack without one shows no alerts in `status`."""
    alerts_timeout: float = 3.0
    """How long `status` waits for Alertmanager before saying it did not answer."""
    pipeline_check_interval: float = 300.0
    """How often each stack with an Alertmanager has its alerting pipeline (the Watchdog)
    checked, in seconds; 0: never. Checks start on the housekeeping timer, so they are at most
    `housekeeping_interval` late."""

    @property
    def plan_dir(self) -> Path:
        return self.state_dir / "plans"

    @property
    def approvals_dir(self) -> Path:
        return self.state_dir / "approvals"


@dataclass
class Running:
    """An operation the runner is executing, and whether someone asked it to stop."""

    record: OperationRecord
    holder: Holder
    thread_ts: str | None
    done: threading.Event = field(default_factory=threading.Event)
    stop_reason: str | None = None
    stop_verdict: str | None = None


class BotCore:
    """The bot's dependencies and shared state; thread-safe where several jobs meet."""

    def __init__(
        self,
        *,
        stacks: Sequence[str],
        access: AccessConfig,
        runner: StackRunner,
        poster: Poster,
        audit: AuditLog,
        jobs: JobPool,
        status_jobs: JobPool,
        redactor: Redactor,
        options: BotOptions,
        clock: Clock = time.time,
    ) -> None:
        self.stacks = list(stacks)
        self.access = access
        self.runner = runner
        self.poster = poster
        self.audit = audit
        self.jobs = jobs
        self.status_jobs = status_jobs
        self.redactor = redactor
        self.options = options
        self.clock = clock
        self.locks = StackLocks()
        options.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.approvals = ApprovalBook(options.approvals_dir)
        removed = clean_plans(
            options.plan_dir,
            {p.plan_path for p in self.approvals.all() if p.plan_path is not None},
        )
        if removed:
            logger.info("removed %d plan file(s) left by an earlier run", len(removed))
        self._refresh_lock = threading.Lock()
        self._needs_refresh = stacks_needing_refresh(audit.entries())
        self._running_lock = threading.Lock()
        self._running: dict[str, Running] = {}

    # ---- stacks that need a refresh -------------------------------------------------------

    def needs_refresh(self, stack: str) -> bool:
        with self._refresh_lock:
            return stack in self._needs_refresh

    def mark_needs_refresh(self, stack: str) -> None:
        with self._refresh_lock:
            self._needs_refresh.add(stack)

    def mark_refreshed(self, stack: str) -> None:
        with self._refresh_lock:
            self._needs_refresh.discard(stack)

    # ---- operations running now -----------------------------------------------------------

    def running(self, stack: str) -> Running | None:
        with self._running_lock:
            return self._running.get(stack)

    def add_running(self, running: Running) -> None:
        with self._running_lock:
            self._running[running.record.stack] = running

    def finish_running(self, running: Running, succeeded: bool) -> str | None:
        """Forget `running`; the reason it was stopped, if it was stopped and did not succeed."""
        with self._running_lock:
            running.done.set()
            if self._running.get(running.record.stack) is running:
                del self._running[running.record.stack]
            return running.stop_reason if not succeeded else None

    def request_stop(self, running: Running, reason: str, verdict: str) -> bool:
        """Mark `running` as asked to stop; False when it is already stopping or has ended."""
        with self._running_lock:
            if running.stop_reason is not None or running.done.is_set():
                return False
            running.stop_reason = reason
            running.stop_verdict = verdict
            return True

    # ---- secrets --------------------------------------------------------------------------

    def learn_secrets(self, stack: str) -> tuple[Mapping[str, ConfigEntry], StackStatus]:
        """Teach the masker the stack's secret config and secret outputs, before anything runs.

        Plain config values and plain outputs are public: they are never masked.
        """
        config = self.runner.config(stack)
        status = self.runner.status(stack)
        self.redactor.add_public(
            [entry.value for entry in config.values() if not entry.secret]
            + [
                output.value
                for output in status.outputs
                if not output.secret and isinstance(output.value, str)
            ]
        )
        self.redactor.add([entry.value for entry in config.values() if entry.secret])
        self.redactor.add(status.secret_values)
        return config, status

    # ---- background jobs ------------------------------------------------------------------

    def submit(
        self,
        job: Callable[[], None],
        name: str,
        reply: str,
        on_refused: Callable[[], None] | None = None,
        channel: str | None = None,
        pool: JobPool | None = None,
    ) -> str:
        """Run `job` in the background and return `reply`; a crash is told in `channel`."""

        def guarded() -> None:
            try:
                job()
            except Exception as error:
                logger.error("%s failed: %s", name, self.one(error))
                if channel:
                    self.poster.post(
                        channel,
                        f":x: `{name}` stopped: the bot hit an internal error "
                        f"({type(error).__name__}). Nothing more will happen for this request; "
                        "the bot's log has the details.",
                    )

        try:
            (pool or self.jobs).submit(guarded, name)
        except RuntimeError:
            if on_refused is not None:
                on_refused()
            return "The bot is shutting down; try again in a minute."
        return reply

    def submit_status(self, job: Callable[[], None], name: str) -> None:
        """Run a read-only job on the status pool (never queued behind an operation)."""
        self.status_jobs.submit(functools.partial(self._guarded_quietly, job, name), name)

    def _guarded_quietly(self, job: Callable[[], None], name: str) -> None:
        try:
            job()
        except Exception as error:
            logger.warning("%s failed: %s", name, self.one(error))

    # ---- approvals ------------------------------------------------------------------------

    def expire_approvals(self) -> None:
        for pending in self.approvals.take_expired(
            self.clock(), self.access.approval_window_seconds
        ):
            self.audit.note("expired", record_of(pending, approver=None))
            self.close_approval(pending, ":hourglass: Expired without approval.")

    def close_approval(self, pending: PendingApproval, text: str, delete_plan: bool = True) -> None:
        """Remove the buttons from the approval message (in the background: it calls Slack)."""
        if delete_plan and pending.plan_path is not None:
            pending.plan_path.unlink(missing_ok=True)
        message_ts = pending.message_ts
        if message_ts is not None:
            self.submit(
                lambda: self.poster.update(pending.channel, message_ts, text, plain_blocks(text)),
                "close approval message",
                "",
            )

    def approvers_text(self, stack: str) -> str:
        rules = self.access.stacks.get(stack)
        people = rules.approvers if rules is not None else []
        return " or ".join(f"<@{user}>" for user in people) or "nobody (no approvers listed)"

    # ---- wording --------------------------------------------------------------------------

    def one(self, error: BaseException) -> str:
        """An error as one masked log line."""
        return one_line(self.redactor.scrub(f"{type(error).__name__}: {error}"), 200)

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), UTC)

    def holder_text(self, stack: str, holder: Holder) -> str:
        since = holder.since
        waited = format_duration((self.now() - since).total_seconds())
        who = "the drift schedule" if holder.user == SCHEDULE_USER else f"<@{holder.user}>"
        return (
            f":hourglass: `{stack}` is busy: {who} is running {holder.activity} "
            f"since {since:%H:%M:%S} UTC ({waited})."
        )

    def busy_text(self, stack: str, holder: Holder) -> str:
        return self.holder_text(stack, holder) + " Try again when it has finished."

    def refresh_command(self, stack: str) -> str:
        return f"{self.options.command} refresh {stack}"


def operation_name(operation: Operation | str, stack: str, branch: str | None = None) -> str:
    """`up production`, `preview integration branch=feature/x`."""
    return f"{operation} {stack}" + (f" branch={branch}" if branch else "")


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


def new_op_id() -> str:
    return secrets.token_hex(8)


def record_of(pending: PendingApproval, approver: str | None) -> OperationRecord:
    return OperationRecord(
        op_id=pending.approval_id,
        user=pending.requester,
        channel=pending.channel,
        stack=pending.stack,
        operation=pending.operation.value,
        approver=approver,
        branch=pending.branch,
    )
