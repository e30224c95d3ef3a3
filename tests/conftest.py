"""Shared fixtures: one mock-engine run per stack file, reused by every test that only reads it."""

from __future__ import annotations

import pytest

from tests.harness import STACKS, Run, run_stack


@pytest.fixture(scope="session")
def stack_runs() -> dict[str, Run]:
    return {stack: run_stack(stack) for stack in STACKS}
