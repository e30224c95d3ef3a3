"""The drill's step timer, fed with engine events as the Automation API parses them.

The events are built as JSON in the engine's format and parsed by the SDK's own
`EngineEvent.from_json`; the URNs and types are those of the program's real resources
(the integration stack under the mock engine, upgrading and then restoring).
"""

from __future__ import annotations

from typing import Any

import pytest
from pulumi.automation.events import EngineEvent

from deploy.phases import PhaseTime, PhaseTimer
from tests.harness import Resource, Run, run_stack
from tests.test_upgrade_guard import outputs

SNAPSHOT = "aws:rds/snapshot:Snapshot"
RELEASE = "kubernetes:helm.sh/v3:Release"
JOB = "kubernetes:batch/v1:Job"
INSTANCE = "aws:rds/instance:Instance"


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def event(kind: str, res: Resource, op: str = "create") -> EngineEvent:
    key = {"pre": "resourcePreEvent", "done": "resOutputsEvent", "failed": "resOpFailedEvent"}
    meta = {"op": op, "urn": res.urn, "type": res.type, "provider": ""}
    return EngineEvent.from_json({"sequence": 1, "timestamp": 0, key[kind]: {"metadata": meta}})


def named(run: Run, type_: str, name: str) -> Resource:
    [found] = [r for r in run.of_type(type_) if r.name == name]
    return found


@pytest.fixture(scope="module")
def upgrade() -> Run:
    return run_stack("integration", previous_outputs=outputs("3.1.0", "1.21.0"))


def play(timer: PhaseTimer, clock: Clock, script: list[tuple[float, str, Resource, str]]) -> None:
    for at, kind, res, op in script:
        clock.now = at
        timer.on_event(event(kind, res, op))


def test_an_upgrade_is_timed_snapshot_chart_canary(upgrade: Run) -> None:
    clock = Clock()
    timer = PhaseTimer(clock)
    snapshot = upgrade.one(SNAPSHOT)
    chart = named(upgrade, RELEASE, "airflow-chart")
    canary = named(upgrade, JOB, "airflow-canary")
    monitoring = named(upgrade, RELEASE, "monitoring-chart")
    play(
        timer,
        clock,
        [
            (0.0, "pre", snapshot, "create"),
            (5.0, "pre", monitoring, "same"),  # not a guarded-upgrade step
            (181.5, "done", snapshot, "create"),
            (181.5, "pre", chart, "update"),
            (300.0, "done", chart, "update"),
            (300.0, "pre", canary, "replace"),
            (366.0, "failed", canary, "replace"),
        ],
    )
    clock.now = 400.0
    assert timer.timings() == [
        PhaseTime("pre-upgrade snapshot", 181.5, "ok"),
        PhaseTime("chart upgrade (migrations)", 118.5, "ok"),
        PhaseTime("canary", 66.0, "failed"),
    ]


def test_a_rollback_times_the_restore_and_an_unfinished_step_says_so() -> None:
    run = run_stack(
        "integration",
        set_values={"database.restoredFrom": "airflow-platform-integration-pre-upgrade-1"},
    )
    clock = Clock()
    timer = PhaseTimer(clock)
    restored = named(run, INSTANCE, "database-instance-restored")
    original = named(run, INSTANCE, "database-instance")
    chart = named(run, RELEASE, "airflow-chart")
    play(
        timer,
        clock,
        [
            (0.0, "pre", original, "same"),
            (0.0, "pre", restored, "create"),
            (612.0, "done", restored, "create"),
            (612.0, "pre", chart, "update"),
        ],
    )
    clock.now = 700.0
    assert timer.timings() == [
        PhaseTime("database restore", 612.0, "ok"),
        PhaseTime("chart upgrade (migrations)", 88.0, "unfinished"),
    ]


@pytest.mark.parametrize("op", ["same", "read", "delete", "refresh"])
def test_steps_that_change_nothing_are_not_timed(upgrade: Run, op: str) -> None:
    clock = Clock()
    timer = PhaseTimer(clock)
    chart = named(upgrade, RELEASE, "airflow-chart")
    play(timer, clock, [(0.0, "pre", chart, op), (9.0, "done", chart, op)])
    assert timer.timings() == []


def test_other_events_are_ignored() -> None:
    timer = PhaseTimer(Clock())
    data: dict[str, Any] = {"sequence": 3, "timestamp": 0, "summaryEvent": None}
    timer.on_event(EngineEvent.from_json(data))
    timer.on_event(EngineEvent.from_json({"sequence": 4, "timestamp": 0, "cancelEvent": {}}))
    assert timer.timings() == []
