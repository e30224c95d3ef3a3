"""The program evaluates quickly under the mock engine: each stack < 3 s including imports."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.harness import ROOT_DIR, STACKS

MEASURE = """
import time
start = time.perf_counter()
from tests.harness import run_stack
run = run_stack({stack!r})
print(f"{{len(run.resources)}} {{time.perf_counter() - start:.3f}}")
"""


@pytest.mark.parametrize("stack", STACKS)
def test_stack_evaluates_in_under_three_seconds(stack: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", MEASURE.format(stack=stack)],
        cwd=ROOT_DIR,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    resources, seconds = proc.stdout.split()
    print(f"\n{stack}: {resources} resources in {seconds} s (fresh interpreter)")
    assert int(resources) > 0
    assert float(seconds) < 3.0
