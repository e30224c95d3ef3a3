"""UpgradeGuard on the mock record: a snapshot before migrating, none otherwise.

The "second `up`" is simulated by seeding the stack's previous outputs into the StackReference
the guard reads of its own stack (tests/harness.py). That a stack may reference itself, under
which name, and that it then reads its last successful update's outputs, is the engine's
behaviour: pulumi/pulumi `pkg/resource/deploy/builtins.go` (`readStackReference` asks the
backend for the named stack's checkpoint), `pkg/backend/diy/store.go` (`ParseReference`: the
DIY backend's organization is always `organization`) and pulumi/pulumi#15754 (outputs of a
failed update are not written).

The first group builds the guard alone (so it is checked whatever `__main__.py` wires); the
second runs the whole program and checks the wiring: the Helm release waits for the snapshot,
the outputs are exported, and rollback settings restore the database and pin the versions.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

import pulumi
import pytest

from components import upgrades as up
from components.chart_values import AIRFLOW_VERSION, SECRETS, split_image_ref
from components.upgrade_guard import SNAPSHOT_IGNORED_CHANGES
from tests.chart_support import secrets_by_name, values_of
from tests.harness import ORGANIZATION, PROJECT, Resource, Run, go_duration_seconds, run_stack

SNAPSHOT = "aws:rds/snapshot:Snapshot"
RELEASE = "kubernetes:helm.sh/v3:Release"
INSTANCE = "aws:rds/instance:Instance"
NEW_IMAGE = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/airflow-platform:new"
OLD_IMAGE = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/airflow-platform:old@sha256:" + "c" * 64
CHART = "1.22.0"
"""The chart version the committed stack files deploy (the settings' default)."""


def guard_program() -> None:
    from components.settings import load_settings
    from components.upgrade_guard import UpgradeGuard, UpgradeGuardArgs

    settings = load_settings()
    guard = UpgradeGuard(
        "upgrades",
        UpgradeGuardArgs(settings, image=NEW_IMAGE, db_instance_identifier="metadata-db"),
    )
    pulumi.export("platform_versions", guard.platform_versions)
    pulumi.export("upgrade_history", guard.upgrade_history)


def outputs(airflow: str, chart: str, history: Sequence[up.UpgradeRecord] = ()) -> dict[str, Any]:
    return {
        "platform_versions": up.PlatformVersions(airflow, chart, OLD_IMAGE).to_output(),
        "upgrade_history": [r.to_output() for r in history],
    }


def guard(stack: str = "production", **kw: Any) -> Run:
    return run_stack(stack, program=guard_program, **kw)


def old_record(seq: int) -> up.UpgradeRecord:
    previous = up.PlatformVersions("3.0.0", "1.20.0", OLD_IMAGE)
    target = up.PlatformVersions("3.1.0", "1.21.0", OLD_IMAGE)
    change = up.migration_change(previous, target)
    assert change is not None
    snapshot = up.snapshot_identifier(f"{PROJECT}-production", seq, change)
    return up.UpgradeRecord(seq, snapshot, previous, target)


def test_a_version_change_takes_a_snapshot_named_after_it() -> None:
    run = guard(previous_outputs=outputs("3.1.0", "1.21.0"))
    ref = run.one("pulumi:pulumi:StackReference")
    assert ref.read and ref.inputs["name"] == f"{ORGANIZATION}/{PROJECT}/production"
    snap = run.one(SNAPSHOT)
    sid = snap.inputs["dbSnapshotIdentifier"]
    assert sid.startswith(
        f"{PROJECT}-production-pre-upgrade-1-airflow-3-1-0-to-{AIRFLOW_VERSION.replace('.', '-')}"
        f"-chart-1-21-0-to-{CHART.replace('.', '-')}-"
    )
    assert up.snapshot_identifier_problem(sid) is None
    assert snap.inputs["dbInstanceIdentifier"] == "metadata-db"
    assert snap.parent == run.one(up.GUARD_TYPE).urn
    assert snap.inputs["tags"]["airflow-platform:from-image"] == OLD_IMAGE
    assert run.messages("warning") == [
        f"Taking RDS snapshot {sid} before migrating: Airflow 3.1.0 -> {AIRFLOW_VERSION},"
        f" chart 1.21.0 -> {CHART} (schema migrations run)."
    ]
    (entry,) = run.outputs["upgrade_history"]
    assert entry["snapshot"] == sid and entry["to"]["image"] == NEW_IMAGE
    assert entry["from"] == {"airflow": "3.1.0", "chart": "1.21.0", "image": OLD_IMAGE}
    assert run.outputs["platform_versions"] == {
        "airflow": AIRFLOW_VERSION,
        "chart": CHART,
        "image": NEW_IMAGE,
    }


def test_a_taken_snapshot_is_never_updated_or_replaced_and_is_deleted_when_pruned() -> None:
    """`dbInstanceIdentifier`/`dbSnapshotIdentifier` force replacement of an aws.rds.Snapshot
    (pulumi-aws schema); ignoring changes keeps a snapshot when the instance is restored or
    replaced. Not retain_on_delete: pruning must really delete."""
    snap = guard(previous_outputs=outputs("3.1.0", "1.21.0")).one(SNAPSHOT)
    assert set(snap.ignore_changes) == {"dbInstanceIdentifier", "dbSnapshotIdentifier", "tags"}
    assert len(SNAPSHOT_IGNORED_CHANGES) == 3
    assert not snap.retain_on_delete and not snap.protect


def test_an_image_only_change_takes_no_snapshot() -> None:
    run = guard(previous_outputs=outputs(AIRFLOW_VERSION, CHART))
    assert run.of_type(SNAPSHOT) == []
    assert run.outputs["upgrade_history"] == []
    assert run.messages("warning") == []
    assert any("no schema migration, no snapshot" in m for m in run.messages("info"))


def test_a_first_deploy_takes_no_snapshot() -> None:
    run = guard()
    assert run.of_type(SNAPSHOT) == []
    assert any("First deploy" in m for m in run.messages("info"))


def test_the_history_keeps_the_newest_snapshots_only() -> None:
    history = [old_record(i) for i in range(1, 6)]
    run = guard(
        previous_outputs=outputs("3.1.0", "1.21.0", history),
        set_values={"upgrades.keepSnapshots": 3},
    )
    declared = {r.name: r.inputs["dbSnapshotIdentifier"] for r in run.of_type(SNAPSHOT)}
    assert sorted(declared) == [f"upgrades-pre-upgrade-{i}" for i in (4, 5, 6)]
    assert declared["upgrades-pre-upgrade-4"] == history[3].snapshot
    assert [e["seq"] for e in run.outputs["upgrade_history"]] == [4, 5, 6]
    assert any(history[0].snapshot in m for m in run.messages("info"))


def test_unchanged_versions_keep_the_history_declared() -> None:
    """Dropping a record from the program deletes its snapshot: an ordinary update must not."""
    history = [old_record(1), old_record(2)]
    run = guard(previous_outputs=outputs(AIRFLOW_VERSION, CHART, history))
    assert sorted(r.inputs["dbSnapshotIdentifier"] for r in run.of_type(SNAPSHOT)) == sorted(
        r.snapshot for r in history
    )


def rollback_values(snapshot: str) -> dict[str, Any]:
    return {
        "rollback.image": OLD_IMAGE,
        "rollback.airflowVersion": "3.1.0",
        "rollback.chartVersion": "1.21.0",
        "database.restoredFrom": snapshot,
    }


def test_a_rollback_takes_no_snapshot_and_keeps_the_restored_one() -> None:
    history = [old_record(1), old_record(2)]
    run = guard(
        previous_outputs=outputs(AIRFLOW_VERSION, CHART, history),
        set_values=rollback_values(history[1].snapshot),
    )
    assert len(run.of_type(SNAPSHOT)) == 2
    assert [(e["seq"], e["rolled_back"]) for e in run.outputs["upgrade_history"]] == [
        (1, False),
        (2, True),
    ]
    assert run.outputs["platform_versions"] == {
        "airflow": "3.1.0",
        "chart": "1.21.0",
        "image": OLD_IMAGE,
    }
    assert any("Rollback active" in m for m in run.messages("warning"))


def test_snapshots_can_be_switched_off_and_say_so() -> None:
    run = guard(
        previous_outputs=outputs("3.1.0", "1.21.0"),
        set_values={"upgrades.snapshotBeforeMigration": False},
    )
    assert run.of_type(SNAPSHOT) == []
    assert any("NOT snapshotting" in m for m in run.messages("warning"))


def test_minikube_takes_no_snapshot_and_reads_no_reference() -> None:
    run = guard("local", previous_outputs=outputs("3.1.0", "1.21.0"))
    assert run.of_type(SNAPSHOT) == [] and run.of_type("pulumi:pulumi:StackReference") == []
    assert run.outputs["platform_versions"]["airflow"] == AIRFLOW_VERSION


# --- the whole program: wiring ------------------------------------------------------------


def release(run: Run) -> Resource:
    (chart,) = [r for r in run.of_type(RELEASE) if r.name == "airflow-chart"]
    return chart


@pytest.mark.parametrize("stack", ["integration", "production"])
def test_the_release_waits_for_the_pre_upgrade_snapshot(stack: str) -> None:
    run = run_stack(stack, previous_outputs=outputs("3.1.0", "1.21.0"))
    snap = run.one(SNAPSHOT)
    assert run.depends_on(release(run), snap), "the Helm release (migrations) must wait"
    assert run.outputs["upgrade_history"][-1]["snapshot"] == snap.inputs["dbSnapshotIdentifier"]
    assert run.outputs["platform_versions"]["airflow"] == AIRFLOW_VERSION
    # Beyond the provider's 20-minute default (terraform-provider-aws rds/snapshot.go).
    assert go_duration_seconds(snap.custom_timeouts["create"]) > 20 * 60


def test_an_image_or_dag_change_through_the_program_takes_no_snapshot() -> None:
    run = run_stack(
        "production",
        previous_outputs=outputs(AIRFLOW_VERSION, CHART),
        set_values={"airflow.gitSync.rev": "0123456789abcdef0123456789abcdef01234567"},
    )
    assert run.of_type(SNAPSHOT) == []
    assert run.outputs["upgrade_history"] == []


def test_rollback_settings_restore_the_named_snapshot_and_pin_the_previous_versions() -> None:
    history = [old_record(1)]
    run = run_stack(
        "production",
        previous_outputs=outputs(AIRFLOW_VERSION, CHART, history),
        set_values=rollback_values(history[0].snapshot),
    )
    restored = [
        r
        for r in run.of_type("aws:rds/instance:Instance")
        if r.inputs.get("snapshotIdentifier") == history[0].snapshot
    ]
    assert len(restored) == 1, "one database restored from the named snapshot"
    chart = release(run)
    assert chart.inputs["version"] == "1.21.0"
    assert OLD_IMAGE.rpartition("@")[0].rpartition(":")[0] in str(chart.inputs["values"])
    assert run.of_type(SNAPSHOT)[0].inputs["dbSnapshotIdentifier"] == history[0].snapshot


def test_a_rollback_runs_the_previous_release_on_the_restored_database() -> None:
    """`make rollback`'s config, through the whole program: the Helm release runs the previous
    chart, Airflow version and image; the metadata Secret points at the instance restored from
    the named snapshot; no new snapshot is taken; the canary runs again, on the old image."""
    history = [old_record(1)]
    snapshot = history[0].snapshot
    run = run_stack(
        "integration",
        previous_outputs=outputs(AIRFLOW_VERSION, CHART, history),
        set_values=rollback_values(snapshot),
    )
    chart = release(run)
    assert chart.inputs["version"] == "1.21.0"
    values = values_of(run)
    assert (values["airflowVersion"], values["defaultAirflowTag"]) == ("3.1.0", "3.1.0")
    repository, tag = split_image_ref(OLD_IMAGE)
    assert values["images"]["airflow"]["repository"] == repository
    assert values["images"]["airflow"]["tag"] == tag
    [restored] = [r for r in run.of_type(INSTANCE) if r.name == "database-instance-restored"]
    assert restored.inputs["snapshotIdentifier"] == snapshot
    # Airflow reaches the database through PgBouncer, whose config names the restored instance.
    address = restored.outputs["address"]
    assert run.outputs["db_host"] == address
    ini = secrets_by_name(run)[SECRETS.pgbouncer_config].inputs["stringData"]["pgbouncer.ini"]
    assert f"host={address} " in ini
    [original] = [r for r in run.of_type(INSTANCE) if r.name == "database-instance"]
    assert original.outputs["address"] not in ini and original.protect
    connection = secrets_by_name(run)[SECRETS.metadata].inputs["stringData"]["connection"]
    assert urlsplit(connection).hostname.startswith("airflow-pgbouncer.")
    assert [r.inputs["dbSnapshotIdentifier"] for r in run.of_type(SNAPSHOT)] == [snapshot]
    [canary] = [r for r in run.of_type("kubernetes:batch/v1:Job") if r.name == "airflow-canary"]
    assert canary.inputs["spec"]["template"]["spec"]["containers"][0]["image"] == OLD_IMAGE
    assert run.depends_on(canary, chart)
