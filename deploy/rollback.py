"""What `make rollback STACK=x` sets: the stack config that makes the next `up` roll back.

A rollback restores the newest pre-upgrade snapshot into a new database instance (the old one
is kept, protected, until an operator lets it go: `database.keepOriginal`), points Airflow at
it, and pins the image, Airflow and chart versions that ran before that upgrade. All of it
comes from what the program recorded at the time of the upgrade: the `upgrade_history` and
`platform_versions` outputs, and for an upgrade whose update failed before it could write its
outputs (pulumi/pulumi#15754 keeps a failed update's outputs as they were), the snapshot's
record in the stack's state (`pulumi stack export`).
"""

from __future__ import annotations

import getpass
import os
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from components.settings import PROJECT
from components.upgrades import (
    NothingToRollBack,
    RollbackTarget,
    UpgradeRecordError,
    records_from_state,
    rollback_target,
)
from deploy.backend import LOCAL_STATE_DIR
from slackbot.audit import AuditLog, OperationRecord

AUDIT_DIR = "audit"
CLI_CHANNEL = "cli"

RESTORED_FROM = f"{PROJECT}:database.restoredFrom"
ROLLBACK_IMAGE = f"{PROJECT}:rollback.image"
ROLLBACK_AIRFLOW = f"{PROJECT}:rollback.airflowVersion"
ROLLBACK_CHART = f"{PROJECT}:rollback.chartVersion"
FORCE_CANARY_FAILURE = f"{PROJECT}:upgrades.canaryForceFailure"
ROLLBACK_KEYS = (RESTORED_FROM, ROLLBACK_IMAGE, ROLLBACK_AIRFLOW, ROLLBACK_CHART)


class RollbackError(Exception):
    """There is nothing (sound) to roll back to; the message says why and what to do."""


@dataclass(frozen=True)
class RollbackPlan:
    """The config a rollback sets and what it means, in words."""

    target: RollbackTarget
    config: dict[str, str]

    def lines(self, stack: str) -> list[str]:
        record, versions = self.target.record, self.target.versions
        running = self.target.running
        lines = [f"Rollback of {stack}:"]
        if running is not None:
            lines.append(f"  running now:   {running.describe()}")
        lines += [
            f"  upgrade #{record.seq}:   {record.previous.describe()}"
            + (
                f"  ->  Airflow {record.target.airflow}, chart {record.target.chart}"
                if record.target
                else ""
            ),
            f"  restore:       RDS snapshot {record.snapshot} into a new instance"
            " (the current one is kept, protected)",
            f"  pin:           {versions.describe()}",
            "  then:          the canary runs against the restored database",
        ]
        return lines


def rollback_plan(
    outputs: Mapping[str, Any], state: Mapping[str, Any] | None = None
) -> RollbackPlan:
    """The rollback to the newest pre-upgrade snapshot, or a RollbackError."""
    try:
        target = rollback_target(outputs, records_from_state(state) if state else ())
    except (NothingToRollBack, UpgradeRecordError) as err:
        raise RollbackError(str(err)) from None
    versions = target.versions
    config = {
        RESTORED_FROM: target.record.snapshot,
        ROLLBACK_IMAGE: versions.image,
        ROLLBACK_AIRFLOW: versions.airflow,
        ROLLBACK_CHART: versions.chart,
        # A rollback runs the real canary; a forced failure is refused beside a rollback.
        FORCE_CANARY_FAILURE: "false",
    }
    return RollbackPlan(target, config)


def rollback_config(
    outputs: Mapping[str, Any], state: Mapping[str, Any] | None = None
) -> dict[str, str]:
    """The stack config (full `project:key` names) that makes the next `up` a rollback.

    `outputs` are the stack's outputs (`pulumi stack output --json`); `state`, optional, is
    `pulumi stack export`, which also knows the snapshot of an upgrade that failed.
    """
    return rollback_plan(outputs, state).config


def audit_path(project_dir: Path, stack: str) -> Path:
    """Where the CLI appends its audit lines: `.pulumi-state/audit/<stack>.jsonl`.

    Beside the local state, never committed (`.pulumi-state/` is ignored); one file per
    stack, in the Slack bot's format (slackbot/audit.py), so one reader serves both.
    """
    return project_dir / LOCAL_STATE_DIR / AUDIT_DIR / f"{stack}.jsonl"


def operator() -> str:
    """Who runs the command: the login name, as the audit log records it."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return os.environ.get("USER", "unknown")


class AuditTrail:
    """Prints every step of a CLI operation and appends it to the stack's audit log.

    Lines: `start`, one `step` per step (`step`, `detail`), `end` (`result`, `duration_s`).
    """

    def __init__(
        self,
        path: Path,
        stack: str,
        operation: str,
        user: str | None = None,
        say: Callable[[str], None] = print,
    ) -> None:
        self.log = AuditLog(path)
        self.record = OperationRecord(
            op_id=uuid.uuid4().hex,
            user=user or operator(),
            channel=CLI_CHANNEL,
            stack=stack,
            operation=operation,
        )
        self._say = say

    def start(self) -> None:
        self.log.start(self.record)
        self._say(f"[{self.record.operation} {self.record.stack}] started ({self.log.path})")

    def step(self, step: str, detail: str) -> None:
        self.log.note("step", self.record, step=step, detail=detail)
        self._say(f"[{self.record.operation} {self.record.stack}] {step}: {detail}")

    def finish(self, result: str, duration: float) -> None:
        self.log.finish(self.record, result, duration, {})
        self._say(f"[{self.record.operation} {self.record.stack}] {result} after {duration:.1f} s")
