"""Operations waiting for a second person's approval, kept on disk so a restart keeps them.

Each pending approval is one JSON file in the state directory, written atomically (a temporary
file, fsync, rename); the plan its preview saved lives beside it. Loading skips unreadable
files, and plans that belong to no pending approval (a crash, a SIGKILL) are deleted.
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import threading
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from slackbot.operations import Operation

logger = logging.getLogger(__name__)

_ID = re.compile(r"^[A-Za-z0-9_-]{8,64}$")


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
    branch: str | None = None


def new_approval_id() -> str:
    return secrets.token_urlsafe(12)


class ApprovalBook:
    """Pending approvals by id; `take` removes atomically so one click wins."""

    def __init__(self, directory: Path | None = None) -> None:
        self._lock = threading.Lock()
        self._pending: dict[str, PendingApproval] = {}
        self._directory = directory
        if directory is not None:
            directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            self._pending = _load(directory)

    def add(self, pending: PendingApproval) -> None:
        with self._lock:
            self._pending[pending.approval_id] = pending
            self._save(pending)

    def attach_message(self, approval_id: str, message_ts: str | None) -> None:
        with self._lock:
            pending = self._pending.get(approval_id)
            if pending is not None:
                updated = replace(pending, message_ts=message_ts)
                self._pending[approval_id] = updated
                self._save(updated)

    def get(self, approval_id: str) -> PendingApproval | None:
        with self._lock:
            return self._pending.get(approval_id)

    def all(self) -> list[PendingApproval]:
        with self._lock:
            return list(self._pending.values())

    def take(self, approval_id: str) -> PendingApproval | None:
        with self._lock:
            pending = self._pending.pop(approval_id, None)
            if pending is not None:
                self._remove(approval_id)
            return pending

    def take_expired(self, now: float, window: float) -> list[PendingApproval]:
        with self._lock:
            expired = [p for p in self._pending.values() if now - p.requested_at > window]
            for pending in expired:
                del self._pending[pending.approval_id]
                self._remove(pending.approval_id)
            return expired

    def _save(self, pending: PendingApproval) -> None:
        if self._directory is None:
            return
        data = asdict(pending)
        data["operation"] = pending.operation.value
        data["plan_path"] = str(pending.plan_path) if pending.plan_path is not None else None
        write_atomically(self._directory / f"{pending.approval_id}.json", json.dumps(data))

    def _remove(self, approval_id: str) -> None:
        if self._directory is not None:
            (self._directory / f"{approval_id}.json").unlink(missing_ok=True)


def write_atomically(path: Path, text: str) -> None:
    """Replace `path` with `text` so that a crash leaves either the old or the new file."""
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, text.encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temporary, path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def clean_plans(plan_dir: Path, keep: set[Path]) -> list[Path]:
    """Delete every file in `plan_dir` that is not a plan of a pending approval."""
    plan_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    removed: list[Path] = []
    kept = {path.resolve() for path in keep}
    for path in plan_dir.iterdir():
        if path.is_file() and path.resolve() not in kept:
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def _load(directory: Path) -> dict[str, PendingApproval]:
    for leftover in directory.glob(".*.tmp"):
        leftover.unlink(missing_ok=True)
    loaded: dict[str, PendingApproval] = {}
    for path in sorted(directory.glob("*.json")):
        try:
            pending = _from_json(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError, KeyError):
            logger.warning("approval file %s is unreadable; removed", path.name)
            path.unlink(missing_ok=True)
            continue
        if pending.approval_id != path.stem:
            path.unlink(missing_ok=True)
            continue
        loaded[pending.approval_id] = pending
    return loaded


def _from_json(data: dict[str, Any]) -> PendingApproval:
    approval_id = str(data["approval_id"])
    if not _ID.match(approval_id):
        raise ValueError("bad approval id")
    plan = data.get("plan_path")
    return PendingApproval(
        approval_id=approval_id,
        stack=str(data["stack"]),
        operation=Operation(data["operation"]),
        requester=str(data["requester"]),
        channel=str(data["channel"]),
        requested_at=float(data["requested_at"]),
        fingerprint=str(data["fingerprint"]),
        plan_path=Path(plan) if isinstance(plan, str) else None,
        thread_ts=_optional(data.get("thread_ts")),
        message_ts=_optional(data.get("message_ts")),
        branch=_optional(data.get("branch")),
    )


def _optional(value: Any) -> str | None:
    return value if isinstance(value, str) else None
