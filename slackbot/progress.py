"""Following an operation through its engine events, and posting throttled progress."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from pulumi.automation import EngineEvent, OpType

from slackbot.text import first_line

Clock = Callable[[], float]
_MAX_CHANGED = 200
_MAX_ERROR_TEXT = 64 * 1024
"""Error diagnostics kept whole (to find reports in them), up to this many characters."""

_VERB = {
    OpType.CREATE: "creating",
    OpType.UPDATE: "updating",
    OpType.DELETE: "deleting",
    OpType.REPLACE: "replacing",
    OpType.CREATE_REPLACEMENT: "creating replacement for",
    OpType.DELETE_REPLACED: "deleting replaced",
    OpType.READ: "reading",
    OpType.REFRESH: "refreshing",
    OpType.IMPORT: "importing",
    OpType.SAME: "checking",
}


@dataclass(frozen=True)
class ProgressSnapshot:
    """What the engine has reported so far."""

    done: dict[str, int] = field(default_factory=dict)
    """Completed steps by operation (`create`, `update`, `same`, ...)."""
    failed: int = 0
    current_step: str | None = None
    first_error: str | None = None
    mandatory_policy_violations: int = 0
    summary_changes: dict[str, int] | None = None
    """The engine's own totals, once its summary event has arrived."""
    changed: tuple[tuple[str, str, str], ...] = ()
    """(op, type, name) of every resource with a step other than `same`, in order."""
    errors: tuple[str, ...] = ()
    """The whole text of each error diagnostic (never posted as it is; searched for reports)."""


class ProgressTracker:
    """Collects engine events (thread-safe: the engine delivers them on its own threads)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._done: Counter[str] = Counter()
        self._failed = 0
        self._current: str | None = None
        self._first_error: str | None = None
        self._violations = 0
        self._summary: dict[str, int] | None = None
        self._changed: list[tuple[str, str, str]] = []
        self._errors: list[str] = []
        self._error_chars = 0

    def on_event(self, event: EngineEvent) -> None:
        with self._lock:
            if event.resource_pre_event is not None:
                meta = event.resource_pre_event.metadata
                if meta.op is not OpType.SAME:
                    verb = _VERB.get(meta.op, str(meta.op.value))
                    self._current = f"{verb} {meta.type} `{_resource_name(meta.urn)}`"
                    if len(self._changed) < _MAX_CHANGED:
                        self._changed.append(
                            (str(meta.op.value), meta.type, _resource_name(meta.urn))
                        )
            if event.res_outputs_event is not None:
                self._done[str(event.res_outputs_event.metadata.op.value)] += 1
            if event.res_op_failed_event is not None:
                self._failed += 1
            diagnostic = event.diagnostic_event
            if diagnostic is not None and diagnostic.severity == "error":
                line = first_line(diagnostic.message)
                if line and self._first_error is None:
                    self._first_error = line
                if self._error_chars + len(diagnostic.message) <= _MAX_ERROR_TEXT:
                    self._errors.append(diagnostic.message)
                    self._error_chars += len(diagnostic.message)
            policy = event.policy_event
            if policy is not None and policy.enforcement_level == "mandatory":
                self._violations += 1
                if self._first_error is None:
                    self._first_error = first_line(f"policy {policy.policy_name}: {policy.message}")
            if event.summary_event is not None:
                changes = event.summary_event.resource_changes or {}
                self._summary = {
                    str(getattr(op, "value", op)): int(count) for op, count in changes.items()
                }

    def snapshot(self) -> ProgressSnapshot:
        with self._lock:
            return ProgressSnapshot(
                done=dict(self._done),
                failed=self._failed,
                current_step=self._current,
                first_error=self._first_error,
                mandatory_policy_violations=self._violations,
                summary_changes=dict(self._summary) if self._summary is not None else None,
                changed=tuple(self._changed),
                errors=tuple(self._errors),
            )


class Throttle:
    """Lets an action through at most once per `interval` seconds."""

    def __init__(self, interval: float, clock: Clock = time.monotonic) -> None:
        self._interval = interval
        self._clock = clock
        self._last = clock()
        self._lock = threading.Lock()

    def ready(self) -> bool:
        with self._lock:
            now = self._clock()
            if now - self._last < self._interval:
                return False
            self._last = now
            return True


class ProgressReporter:
    """Posts a progress line when something changed, at most once per interval.

    Events drive it; a ticker thread also wakes it so a long silent step (an EKS control
    plane takes minutes) still gets reported once the throttle allows.
    """

    def __init__(
        self,
        tracker: ProgressTracker,
        post: Callable[[str], None],
        render: Callable[[ProgressSnapshot, float], str],
        interval: float,
        clock: Clock = time.monotonic,
    ) -> None:
        self._tracker = tracker
        self._post = post
        self._render = render
        self._interval = interval
        self._clock = clock
        self._started = clock()
        self._throttle = Throttle(interval, clock)
        self._last_posted: ProgressSnapshot | None = None
        self._post_lock = threading.Lock()
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None
        self.posts = 0

    def on_event(self, event: EngineEvent) -> None:
        self._tracker.on_event(event)
        self.maybe_post()

    def maybe_post(self) -> None:
        if not self._throttle.ready():
            return
        with self._post_lock:
            snapshot = self._tracker.snapshot()
            if snapshot == self._last_posted or snapshot == ProgressSnapshot():
                return
            self._last_posted = snapshot
            self.posts += 1
            self._post(self._render(snapshot, self._clock() - self._started))

    def start(self) -> None:
        self._ticker = threading.Thread(target=self._tick, name="slackbot-progress", daemon=True)
        self._ticker.start()

    def stop(self) -> None:
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join(timeout=5)

    def _tick(self) -> None:
        while not self._stop.wait(self._interval):
            self.maybe_post()


def _resource_name(urn: str) -> str:
    return urn.rsplit("::", 1)[-1] if "::" in urn else urn
