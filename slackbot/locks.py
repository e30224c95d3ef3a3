"""One operation per stack at a time inside the bot."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class Holder:
    """Who holds a stack, doing what, since when."""

    user: str
    activity: str
    since: datetime


class StackLocks:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._holders: dict[str, Holder] = {}

    def try_acquire(self, stack: str, holder: Holder) -> Holder | None:
        """Take the stack for `holder`; if someone already has it, return them instead."""
        with self._lock:
            current = self._holders.get(stack)
            if current is not None:
                return current
            self._holders[stack] = holder
            return None

    def release(self, stack: str, holder: Holder) -> None:
        with self._lock:
            if self._holders.get(stack) is holder:
                del self._holders[stack]

    def holder(self, stack: str) -> Holder | None:
        with self._lock:
            return self._holders.get(stack)
