"""Running each Slack delivery once: replays of a signed request and Slack's retries.

Slack retries a delivery it thinks failed (`X-Slack-Retry-Num`) with a fresh timestamp and
signature but the same payload; anyone who captured a signed request can replay it within
the 5-minute signature window. Bolt checks signatures but keeps no memory of deliveries, so
the bot remembers, for longer than that window, the hash of every accepted body and the
identity Slack gives each invocation (`trigger_id` of a command or a click, `event_id`).
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
import urllib.parse
from collections import OrderedDict
from collections.abc import Callable, Iterable

DEFAULT_WINDOW_SECONDS = 15 * 60.0
"""Longer than the signature window plus Slack's retry schedule (about 5 minutes)."""
MAX_REMEMBERED = 100_000


def delivery_keys(body: str) -> list[str]:
    """The keys that identify one delivery, whichever copy of it arrives."""
    keys = ["body:" + hashlib.sha256(body.encode("utf-8", "surrogatepass")).hexdigest()]
    identity = _identity(body)
    if identity:
        keys.append(identity)
    return keys


class DeliveryLog:
    """Remembers deliveries for `window` seconds; `first` is atomic across threads."""

    def __init__(
        self,
        window: float = DEFAULT_WINDOW_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        limit: int = MAX_REMEMBERED,
    ) -> None:
        self._window = window
        self._clock = clock
        self._limit = limit
        self._lock = threading.Lock()
        self._seen: OrderedDict[str, float] = OrderedDict()

    def first(self, keys: Iterable[str]) -> bool:
        """True (and remember `keys`) unless any of them was seen within the window."""
        wanted = list(keys)
        now = self._clock()
        with self._lock:
            self._forget_before(now - self._window)
            if any(key in self._seen for key in wanted):
                return False
            for key in wanted:
                self._seen[key] = now
            while len(self._seen) > self._limit:
                self._seen.popitem(last=False)
            return True

    def _forget_before(self, cutoff: float) -> None:
        while self._seen:
            key, seen_at = next(iter(self._seen.items()))
            if seen_at >= cutoff:
                return
            del self._seen[key]


def _identity(body: str) -> str | None:
    stripped = body.lstrip()
    if stripped.startswith("{"):
        return _identity_of(_json_object(stripped))
    fields = dict(urllib.parse.parse_qsl(body, keep_blank_values=True))
    if "payload" in fields:
        return _identity_of(_json_object(fields["payload"]))
    trigger = fields.get("trigger_id")
    return f"trigger:{trigger}" if trigger else None


def _identity_of(payload: dict[str, object]) -> str | None:
    for name, prefix in (("event_id", "event"), ("trigger_id", "trigger")):
        value = payload.get(name)
        if isinstance(value, str) and value:
            return f"{prefix}:{value}"
    envelope = payload.get("envelope_id")
    if isinstance(envelope, str) and envelope:
        return f"envelope:{envelope}"
    return None


def _json_object(text: str) -> dict[str, object]:
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
