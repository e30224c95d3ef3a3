"""Helpers for the policy tests: the mock engine's record as `Res`, and rule runs over it."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from functools import cache

from policy.rules import Level, Res, Violation, evaluate
from tests.harness import Resource, run_stack


def to_res(r: Resource) -> Res:
    """A recorded resource as the policies see it (inputs under camelCase names)."""
    return Res(
        type=r.type,
        name=r.name,
        urn=r.urn,
        props=copy.deepcopy(r.inputs),
        deps={k: tuple(v) for k, v in r.property_dependencies.items()},
    )


@cache
def recorded(stack: str) -> tuple[Res, ...]:
    """Every resource the program registers for `stack` under the mock engine (cached)."""
    return tuple(to_res(r) for r in run_stack(stack).resources)


def mandatory(violations: Sequence[Violation]) -> list[Violation]:
    return [v for v in violations if v.level is Level.MANDATORY]


def show(violations: Sequence[Violation]) -> str:
    return "\n".join(f"[{v.level.value}] {v.rule}: {v.message}" for v in violations) or "(none)"


def violations(stack: str) -> list[Violation]:
    return evaluate(recorded(stack))
