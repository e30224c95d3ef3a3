"""The append-only audit log: one JSON object per line.

Each operation writes a `start` line before it runs and an `end` line after it, so an
operation whose `end` line is missing was interrupted (the bot crashed or was killed).
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

START = "start"
END = "end"
DENIED = "denied"


@dataclass(frozen=True)
class OperationRecord:
    """Who asked for which operation on which stack, and who approved it."""

    op_id: str
    user: str
    channel: str
    stack: str
    operation: str
    approver: str | None = None
    branch: str | None = None
    """The DAG branch the operation deploys (`branch=`), when one was asked for."""


class AuditLog:
    """Appends JSON lines with a flush and an fsync per line; safe to call from many threads."""

    def __init__(self, path: Path, now: Callable[[], datetime] = lambda: datetime.now(UTC)):
        self.path = path
        self._now = now
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)

    def start(self, record: OperationRecord) -> None:
        self._append({"event": START, **_fields(record)})

    def finish(
        self,
        record: OperationRecord,
        result: str,
        duration: float,
        counts: Mapping[str, int],
    ) -> None:
        self._append(
            {
                "event": END,
                **_fields(record),
                "result": result,
                "duration_s": round(duration, 3),
                "counts": dict(counts),
            }
        )

    def denied(self, user: str, channel: str, stack: str, operation: str, reason: str) -> None:
        self._append(
            {
                "event": DENIED,
                "user": user,
                "channel": channel,
                "stack": stack,
                "operation": operation,
                "reason": reason,
            }
        )

    def note(self, event: str, record: OperationRecord, **details: str) -> None:
        """A line about an operation that is neither its start nor its end (e.g. cancelled)."""
        self._append({"event": event, **_fields(record), **details})

    def entries(self) -> list[dict[str, Any]]:
        """Every readable line; a torn last line (crash mid-write) is skipped with a warning."""
        if not self.path.exists():
            return []
        entries: list[dict[str, Any]] = []
        with self._lock, self.path.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    entry = json.loads(line)
                except json.JSONDecodeError:
                    logger.warning("audit log %s: line %d is not JSON; skipped", self.path, number)
                    continue
                if isinstance(entry, dict):
                    entries.append(entry)
        return entries

    def unfinished(self) -> list[dict[str, Any]]:
        """`start` lines that have no matching `end` line, oldest first."""
        started: dict[str, dict[str, Any]] = {}
        for entry in self.entries():
            op_id = entry.get("op_id")
            if entry.get("event") == START and isinstance(op_id, str):
                started[op_id] = entry
            elif entry.get("event") == END and isinstance(op_id, str):
                started.pop(op_id, None)
        return list(started.values())

    def last_finished(self, stack: str) -> dict[str, Any] | None:
        last = None
        for entry in self.entries():
            if entry.get("event") == END and entry.get("stack") == stack:
                last = entry
        return last

    def _append(self, entry: dict[str, Any]) -> None:
        line = json.dumps({"time": self._now().isoformat(), **entry}, sort_keys=True)
        with self._lock:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, (line + "\n").encode("utf-8"))
                os.fsync(fd)
            finally:
                os.close(fd)


def record_from_entry(entry: Mapping[str, Any]) -> OperationRecord:
    """Rebuild the record of an interrupted operation from its `start` line."""
    return OperationRecord(
        op_id=str(entry.get("op_id", "")),
        user=str(entry.get("user", "")),
        channel=str(entry.get("channel", "")),
        stack=str(entry.get("stack", "")),
        operation=str(entry.get("operation", "")),
        approver=entry.get("approver") if isinstance(entry.get("approver"), str) else None,
        branch=entry.get("branch") if isinstance(entry.get("branch"), str) else None,
    )


def _fields(record: OperationRecord) -> dict[str, Any]:
    return {
        "op_id": record.op_id,
        "user": record.user,
        "channel": record.channel,
        "stack": record.stack,
        "operation": record.operation,
        "approver": record.approver,
        **({"branch": record.branch} if record.branch else {}),
    }
