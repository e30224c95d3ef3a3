"""UpgradeGuard: an RDS snapshot before every update that runs schema migrations.

The guard reads the versions the stack ran at its last successful update (its own previous
outputs, through a StackReference to itself), compares them with what this update deploys
(`components/upgrades.py` decides), says so in the preview, and declares the pre-upgrade
snapshots the stack keeps. The Helm release waits for `snapshot`, so migrations start only
once the snapshot is available.

Why a StackReference to the stack itself works: the engine reads a reference by asking the
backend for the named stack's latest checkpoint (pulumi/pulumi
`pkg/resource/deploy/builtins.go`, `readStackReference` -> `backendClient.GetStackOutputs` in
`pkg/backend/backend.go`), nothing forbids naming the stack being updated, and the engine
writes new stack outputs only once an update has succeeded (pulumi/pulumi#15754), so what the
reference returns is the previous update's outputs. The fully qualified name is
`<organization>/<project>/<stack>`; the DIY (file/S3) backend accepts only the literal
organization `organization` (`pkg/backend/diy/store.go`, `ParseReference`), which is what
`pulumi.get_organization()` reports there.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws
from pulumi.runtime.sync_await import _sync_await

from components import upgrades
from components.chart_values import AIRFLOW_VERSION
from components.naming import resource_prefix, tags
from components.settings import Settings

PLATFORM_VERSIONS = "platform_versions"
UPGRADE_HISTORY = "upgrade_history"
SNAPSHOT_IGNORED_CHANGES = ["db_instance_identifier", "db_snapshot_identifier", "tags"]
"""A snapshot is a point in time: once taken, nothing about it is updated or replaced.

`db_instance_identifier` and `db_snapshot_identifier` force a replacement of an
`aws.rds.Snapshot` (delete + create). Without this, a restored or replaced database instance
(a new identifier) would replace, that is delete, every retained snapshot, and a retry of a
failed upgrade would replace the snapshot taken before its first attempt. `retain_on_delete`
is not used: pruning *is* dropping a snapshot from the program, and it must delete it."""


SNAPSHOT_CREATE_TIMEOUT = "2h"
"""How long `up` waits for a pre-upgrade snapshot. The provider's default is 20 minutes
(terraform-provider-aws internal/service/rds/snapshot.go, `Timeouts.Create`), and a first
manual snapshot of a large instance copies the whole volume (RDS User Guide, "Creating a DB
snapshot": the time "varies with the size of your databases"). A create that times out leaves
the snapshot recorded as failed, and the next `up` would replace, that is delete, it."""


def own_stack_name() -> str:
    """This stack's fully qualified name, as a StackReference needs it."""
    return f"{pulumi.get_organization()}/{pulumi.get_project()}/{pulumi.get_stack()}"


@dataclass(frozen=True)
class UpgradeGuardArgs:
    settings: Settings
    image: pulumi.Input[str]
    """The image this update deploys (the build's reference); recorded, not compared."""
    db_instance_identifier: pulumi.Input[str] | None
    """The RDS instance to snapshot (eks); None on minikube."""
    airflow_version: str = AIRFLOW_VERSION


class UpgradeGuard(pulumi.ComponentResource):
    """Pre-upgrade RDS snapshots: one before each migrating update, the newest N kept.

    `snapshot` is this update's pre-upgrade snapshot (the Helm release must depend on it) or
    None; `platform_versions` and `upgrade_history` are to be exported as stack outputs under
    those names: the next update and `make rollback` read them.
    """

    snapshot: aws.rds.Snapshot | None
    plan: upgrades.SnapshotPlan | None
    platform_versions: pulumi.Output[dict[str, str]]
    upgrade_history: pulumi.Output[list[dict[str, Any]]]

    def __init__(
        self, name: str, args: UpgradeGuardArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(upgrades.GUARD_TYPE, name, None, opts)
        s = args.settings
        pinned = s.rollback
        if pinned.active:
            current = upgrades.PlatformVersions(
                pinned.airflow_version, pinned.chart_version, pinned.image
            )
            image: pulumi.Input[str] = pinned.image
        else:
            current = upgrades.PlatformVersions(args.airflow_version, s.airflow.chart_version)
            image = args.image
        self.platform_versions = pulumi.Output.from_input(image).apply(
            lambda ref: upgrades.PlatformVersions(current.airflow, current.chart, ref).to_output()
        )
        self.snapshot = None
        self.plan = None
        history: list[pulumi.Output[dict[str, Any]]] = []
        if s.is_eks and args.db_instance_identifier is not None:
            history = self._snapshots(name, args, current, image)
        else:
            pulumi.log.info(
                "Pre-upgrade snapshots are taken of RDS only; this stack's database runs in the"
                " cluster, so upgrades here are not snapshotted.",
                resource=self,
            )
        self.upgrade_history = pulumi.Output.all(*history).apply(list)
        self.register_outputs(
            {PLATFORM_VERSIONS: self.platform_versions, UPGRADE_HISTORY: self.upgrade_history}
        )

    def _previous(self, name: str) -> tuple[upgrades.PlatformVersions | None, list[Any]]:
        ref = pulumi.StackReference(
            f"{name}-previous",
            stack_name=own_stack_name(),
            opts=pulumi.ResourceOptions(parent=self),
        )
        # The decision names resources, so it needs plain values: wait for the read here, the
        # way a synchronous invoke waits (`pulumi.runtime.invoke` uses the same helper).
        versions = _sync_await(ref.get_output_details(PLATFORM_VERSIONS)).value
        history = _sync_await(ref.get_output_details(UPGRADE_HISTORY)).value
        return (
            upgrades.PlatformVersions.from_output(versions),
            upgrades.history_from_output(history),
        )

    def _snapshots(
        self,
        name: str,
        args: UpgradeGuardArgs,
        current: upgrades.PlatformVersions,
        image: pulumi.Input[str],
    ) -> list[pulumi.Output[dict[str, Any]]]:
        s = args.settings
        previous, history = self._previous(name)
        plan = upgrades.plan_snapshots(
            previous=previous,
            history=history,
            current=current,
            resource_prefix=resource_prefix(s),
            enabled=s.upgrades.snapshot_before_migration,
            keep=s.upgrades.keep_snapshots,
            rollback_active=s.rollback.active,
            restored_from=s.database.restored_from,
        )
        self.plan = plan
        for level, text in plan.messages:
            (pulumi.log.warn if level == upgrades.WARN else pulumi.log.info)(text, resource=self)
        exported: list[pulumi.Output[dict[str, Any]]] = []
        for record in plan.retained:
            snap = aws.rds.Snapshot(
                f"{name}-pre-upgrade-{record.seq}",
                db_instance_identifier=args.db_instance_identifier,
                db_snapshot_identifier=record.snapshot,
                tags={
                    **tags(s, f"{name}-pre-upgrade-{record.seq}"),
                    **upgrades.snapshot_tags(record),
                },
                opts=pulumi.ResourceOptions(
                    parent=self,
                    ignore_changes=list(SNAPSHOT_IGNORED_CHANGES),
                    custom_timeouts=pulumi.CustomTimeouts(create=SNAPSHOT_CREATE_TIMEOUT),
                ),
            )
            if record is plan.new:
                self.snapshot = snap
                exported.append(
                    pulumi.Output.all(snap.db_snapshot_identifier, image).apply(
                        functools.partial(_entry_of, record)
                    )
                )
            else:
                exported.append(
                    snap.db_snapshot_identifier.apply(functools.partial(_entry, record, image=None))
                )
        return exported


def _entry_of(record: upgrades.UpgradeRecord, resolved: list[Any]) -> dict[str, Any]:
    return _entry(record, str(resolved[0]), image=str(resolved[1]))


def _entry(record: upgrades.UpgradeRecord, snapshot_id: str, image: str | None) -> dict[str, Any]:
    """The history entry as recorded: the snapshot's real identifier (a retry keeps the first)."""
    target = record.target
    if target is not None and image is not None:
        target = upgrades.PlatformVersions(target.airflow, target.chart, image)
    entry = upgrades.UpgradeRecord(
        record.seq, snapshot_id, record.previous, target, record.rolled_back
    )
    return entry.to_output()
