"""Where an `up` spends its time on a guarded upgrade: the steps timed from the engine's events.

The engine announces each resource step with a `resourcePreEvent` and ends it with a
`resOutputsEvent` (done) or a `resOpFailedEvent` (failed); each carries the step's `op`, `urn`
and `type` (pulumi/pulumi `sdk/go/common/apitype/events.go`; the Automation API hands them to
`on_event` as `pulumi.automation.events.EngineEvent`). `PhaseTimer` watches for the steps a
guarded upgrade consists of and times them with its own clock; the events' `timestamp` has only
whole seconds.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final


@dataclass(frozen=True)
class Phase:
    """A kind of step worth timing: a resource type, optionally only names ending so."""

    label: str
    type: str
    name_suffix: str = ""

    def matches(self, type_: str, name: str) -> bool:
        return type_ == self.type and name.endswith(self.name_suffix)


PHASES: Final = (
    Phase("pre-upgrade snapshot", "aws:rds/snapshot:Snapshot"),
    Phase("database restore", "aws:rds/instance:Instance", "-restored"),
    Phase("chart upgrade (migrations)", "kubernetes:helm.sh/v3:Release", "-chart"),
    Phase("canary", "kubernetes:batch/v1:Job", "-canary"),
)
WORKING_OPS: Final = frozenset({"create", "update", "replace", "create-replacement"})
"""Steps that do something in the cloud; `same`, reads and deletions are not timed."""


@dataclass(frozen=True)
class PhaseTime:
    label: str
    seconds: float
    result: str
    """"ok", "failed", or "unfinished" (the update ended before the step did)."""


def _name(urn: str) -> str:
    return urn.rsplit("::", 1)[-1]


class PhaseTimer:
    """Collects `PhaseTime`s from engine events, in the order the steps started."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._started: dict[str, tuple[Phase, float]] = {}
        self._order: list[str] = []
        self._done: dict[str, PhaseTime] = {}

    def on_event(self, event: Any) -> None:
        """Feed one `EngineEvent` (anything with the three step-event attributes)."""
        for attribute, kind in (
            ("resource_pre_event", "pre"),
            ("res_outputs_event", "done"),
            ("res_op_failed_event", "failed"),
        ):
            step = getattr(event, attribute, None)
            if step is not None:
                meta = step.metadata
                self.observe(kind, meta.urn, meta.type, str(getattr(meta.op, "value", meta.op)))

    def observe(self, kind: str, urn: str, type_: str, op: str) -> None:
        now = self._clock()
        if kind == "pre":
            phase = next((p for p in PHASES if p.matches(type_, _name(urn))), None)
            if phase is not None and op in WORKING_OPS and urn not in self._started:
                self._started[urn] = (phase, now)
                self._order.append(urn)
            return
        if urn in self._started and urn not in self._done:
            phase, began = self._started[urn]
            result = "ok" if kind == "done" else "failed"
            self._done[urn] = PhaseTime(phase.label, now - began, result)

    def timings(self) -> list[PhaseTime]:
        now = self._clock()
        found = []
        for urn in self._order:
            if urn in self._done:
                found.append(self._done[urn])
            else:
                phase, began = self._started[urn]
                found.append(PhaseTime(phase.label, now - began, "unfinished"))
        return found
