"""Masking secret values in every piece of text the bot posts."""

from __future__ import annotations

import string
import threading
from collections.abc import Iterable

MASK = "[secret]"
MIN_SECRET_LENGTH = 8
"""Values at least this long are always masked."""
MIN_MIXED_LENGTH = 6
"""Shorter values are masked only when they mix three kinds of character (`aB3$x9`)."""

_CLASSES = (string.ascii_lowercase, string.ascii_uppercase, string.digits)


def worth_masking(value: str) -> bool:
    """True for values that look like secrets rather than words (`admin`, `yes`, `8080`).

    Masking a common short value would blank it out in every message (an `admin` password
    turns every `admin_username` into `[secret]`), so short values need character variety.
    """
    value = value.strip()
    if len(value) >= MIN_SECRET_LENGTH:
        return True
    if len(value) < MIN_MIXED_LENGTH:
        return False
    kinds = sum(any(ch in chars for ch in value) for chars in _CLASSES)
    kinds += any(not ch.isalnum() for ch in value)
    return kinds >= 3


class Redactor:
    """Remembers secret values and replaces them in outgoing text.

    Values also known as public (plain config values and plain outputs) are never masked:
    they are shown elsewhere anyway, and masking them would only hide ordinary words.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._known: set[str] = set()
        self._public: set[str] = set()
        self._secrets: tuple[str, ...] = ()

    def add(self, values: Iterable[str]) -> None:
        with self._lock:
            for value in values:
                self._known.add(value)
                self._known.update(line for line in value.splitlines() if line != value)
            self._rebuild()

    def add_public(self, values: Iterable[str]) -> None:
        with self._lock:
            self._public.update(values)
            self._rebuild()

    def knows(self, value: str) -> bool:
        return value in self._secrets

    def scrub(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        return text

    def _rebuild(self) -> None:
        masked = {
            value.strip()
            for value in self._known
            if worth_masking(value) and value.strip() not in self._public
        }
        self._secrets = tuple(sorted(masked, key=len, reverse=True))

    def __repr__(self) -> str:
        return f"Redactor({len(self._secrets)} values)"
