"""Find secret test values where they must not be: in plaintext inputs or outputs."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from tests.harness import SECRET_SIG, SIG_KEY, Run

SECRET_MARK = "TESTSECRET-"


def plaintext_strings(value: Any) -> Iterator[str]:
    """Strings in a raw engine value that are not inside a secret wrapper."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        if value.get(SIG_KEY) == SECRET_SIG:
            return
        for k, v in value.items():
            yield str(k)
            yield from plaintext_strings(v)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from plaintext_strings(v)


def plaintext_leaks(run: Run) -> list[str]:
    """`type name: text` for every recorded input or public output carrying a test secret."""
    leaks = [
        f"{r.type} {r.name}: {s[:80]}"
        for r in run.resources
        for s in plaintext_strings(r.raw_inputs)
        if SECRET_MARK in s
    ]
    for name, value in run.outputs.items():
        if name in run.secret_outputs:
            continue
        leaks += [f"output {name}: {s[:80]}" for s in plaintext_strings(value) if SECRET_MARK in s]
    return leaks
