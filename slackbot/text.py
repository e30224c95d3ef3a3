"""Small helpers for putting untrusted or long strings into Slack messages."""

from __future__ import annotations

import re

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]|<\{%[^%]*%\}>")


def escape(value: str, limit: int = 200) -> str:
    """Escape Slack's control characters and cut the value to `limit` characters."""
    cut = value if len(value) <= limit else value[: limit - 1] + "…"
    return cut.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def strip_colors(value: str) -> str:
    """Remove terminal colour codes and Pulumi's colour tags such as `<{%fg 1%}>`."""
    return _ANSI.sub("", value)


def first_line(value: str) -> str:
    """The first non-blank line of a message, without colour codes."""
    for line in strip_colors(value).splitlines():
        if line.strip():
            return line.strip()
    return ""
