"""Masking secret values in every piece of text the bot posts."""

from __future__ import annotations

import threading
from collections.abc import Iterable

MASK = "[secret]"
_MIN_LENGTH = 4
"""Shorter values (e.g. `1`, `yes`) would mask ordinary words; secrets are longer than this."""


class Redactor:
    """Remembers secret values seen at run time and replaces them in outgoing text."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._secrets: tuple[str, ...] = ()

    def add(self, values: Iterable[str]) -> None:
        with self._lock:
            known = set(self._secrets)
            known.update(value for value in values if len(value) >= _MIN_LENGTH)
            self._secrets = tuple(sorted(known, key=len, reverse=True))

    def scrub(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        return text

    def __repr__(self) -> str:
        return f"Redactor({len(self._secrets)} values)"
