"""Operations waiting for a second person's approval."""

from __future__ import annotations

import secrets
import threading
from dataclasses import dataclass, replace
from pathlib import Path

from slackbot.operations import Operation


@dataclass(frozen=True)
class PendingApproval:
    """A previewed operation that runs once an approver accepts it."""

    approval_id: str
    stack: str
    operation: Operation
    requester: str
    channel: str
    requested_at: float
    fingerprint: str
    plan_path: Path | None
    thread_ts: str | None
    message_ts: str | None = None


def new_approval_id() -> str:
    return secrets.token_urlsafe(12)


class ApprovalBook:
    """Pending approvals by id; `take` removes atomically so one click wins."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: dict[str, PendingApproval] = {}

    def add(self, pending: PendingApproval) -> None:
        with self._lock:
            self._pending[pending.approval_id] = pending

    def attach_message(self, approval_id: str, message_ts: str | None) -> None:
        with self._lock:
            pending = self._pending.get(approval_id)
            if pending is not None:
                self._pending[approval_id] = replace(pending, message_ts=message_ts)

    def get(self, approval_id: str) -> PendingApproval | None:
        with self._lock:
            return self._pending.get(approval_id)

    def take(self, approval_id: str) -> PendingApproval | None:
        with self._lock:
            return self._pending.pop(approval_id, None)

    def take_expired(self, now: float, window: float) -> list[PendingApproval]:
        with self._lock:
            expired = [p for p in self._pending.values() if now - p.requested_at > window]
            for pending in expired:
                del self._pending[pending.approval_id]
            return expired
