"""Restoring the metadata database from an RDS snapshot (`database.restoredFrom`).

The restore creates a new instance beside the original and points Airflow at it; the
original is kept protected, and when the operator lets it go Pulumi forgets it rather than
deleting it. The engine's rules these tests rely on come from pulumi/pulumi
(`pkg/resource/deploy/step.go`, `DeleteStep.Apply`): a resource whose *recorded* state is
protected is never deleted, and one recorded with retainOnDelete is removed from the state
only, its cloud resource left in place.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from components.database import LOG_EXPORTS, rds_log_group_name, restored_identifier
from tests.harness import Resource, Run, fake_secret, run_stack, try_stack
from tests.test_database_monitoring import database_program, settings_of

INSTANCE = "aws:rds/instance:Instance"
LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
SNAPSHOT = "airflow-platform-production-metadata-before-3-2-upgrade"
AUTOMATED = "rds:airflow-platform-integration-metadata-2026-11-20-03-05"
RDS_IDENTIFIER = re.compile(r"[a-z][a-z0-9-]{0,62}")


class Restore:
    """A run of the database program, by instance name."""

    def __init__(self, run: Run) -> None:
        self.run = run

    def instance(self, name: str) -> Resource:
        [found] = [r for r in self.run.of_type(INSTANCE) if r.name == name]
        return found

    def groups_of(self, instance: Resource) -> list[Resource]:
        names = {rds_log_group_name(instance.inputs["identifier"], t) for t in LOG_EXPORTS}
        return [g for g in self.run.of_type(LOG_GROUP) if g.inputs["name"] in names]


def restore(stack: str, **values: Any) -> Restore:
    return Restore(run_stack(stack, set_values=values, program=database_program))


# --- the restored instance --------------------------------------------------------------


def test_a_new_instance_is_restored_from_the_named_snapshot() -> None:
    r = restore("production", **{"database.restoredFrom": SNAPSHOT})
    original = r.instance("database-instance").inputs
    restored = r.instance("database-instance-restored").inputs
    assert restored["snapshotIdentifier"] == SNAPSHOT
    assert "snapshotIdentifier" not in original
    assert restored["identifier"] == "airflow-platform-production-metadata-from-before-3-2-upgrade"
    assert restored["identifier"] != original["identifier"]
    same = (
        "dbSubnetGroupName",
        "vpcSecurityGroupIds",
        "parameterGroupName",
        "instanceClass",
        "engineVersion",
        "multiAz",
        "storageEncrypted",
        "monitoringInterval",
        "monitoringRoleArn",
        "performanceInsightsEnabled",
        "performanceInsightsRetentionPeriod",
        "databaseInsightsMode",
        "enabledCloudwatchLogsExports",
        "dbName",
        "username",
        "backupRetentionPeriod",
    )
    assert {k: restored[k] for k in same} == {k: original[k] for k in same}
    # its own final snapshot: a deleted restored instance must not collide with the original's
    assert restored["finalSnapshotIdentifier"] == f"{restored['identifier']}-final"
    assert restored["finalSnapshotIdentifier"] != original["finalSnapshotIdentifier"]


def test_the_restored_instance_keeps_the_metadata_password() -> None:
    """On a restore the provider sets `password` with ModifyDBInstance once the instance is
    available (terraform-provider-aws `internal/service/rds/instance.go`, the
    RestoreDBInstanceFromDBSnapshot branch): the same generated password, so the metadata
    connection Secret keeps working, and it reaches the engine as a secret."""
    run = run_stack(
        "integration", set_values={"database.restoredFrom": AUTOMATED}, program=database_program
    )
    password = fake_secret("random-database-password")
    for instance in run.of_type(INSTANCE):
        assert instance.inputs["password"] == password
        assert instance.has_secret_under("password")


def test_the_database_outputs_point_to_the_restored_instance() -> None:
    run = run_stack(
        "integration", set_values={"database.restoredFrom": AUTOMATED}, program=database_program
    )
    [restored] = [i for i in run.of_type(INSTANCE) if "snapshotIdentifier" in i.inputs]
    assert run.outputs["db_host"] == restored.outputs["address"]
    assert run.outputs["db_instance_identifier"] == restored.inputs["identifier"]
    assert run.outputs["db_instance_arn"] == restored.outputs["arn"]
    # the alarms follow the instance Airflow uses
    dimensions = {
        a.inputs["dimensions"]["DBInstanceIdentifier"]
        for a in run.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")
    }
    assert dimensions == {restored.inputs["identifier"]}


def test_without_a_restore_the_outputs_name_the_original() -> None:
    r = restore("integration")
    [instance] = r.run.of_type(INSTANCE)
    assert "snapshotIdentifier" not in instance.inputs
    assert r.run.outputs["db_instance_identifier"] == "airflow-platform-integration-metadata"
    assert r.run.outputs["db_host"] == instance.outputs["address"]


def test_each_instance_writes_into_its_own_log_groups() -> None:
    run = run_stack(
        "integration", set_values={"database.restoredFrom": AUTOMATED}, program=database_program
    )
    groups = {g.inputs["name"]: g for g in run.of_type(LOG_GROUP)}
    for instance in run.of_type(INSTANCE):
        mine = {rds_log_group_name(instance.inputs["identifier"], t) for t in LOG_EXPORTS}
        assert mine <= set(groups)
        assert {groups[g].urn for g in mine} <= set(instance.dependencies)
    assert len(groups) == 2 * len(LOG_EXPORTS)


# --- the original -------------------------------------------------------------------------


@pytest.mark.parametrize("stack", ["integration", "production"])
def test_the_original_stays_protected_while_kept(stack: str) -> None:
    """Kept means: Pulumi refuses to delete or replace it (protect), AWS refuses to delete it
    (deletion protection), and if it is ever dropped Pulumi only forgets it (retain)."""
    values: dict[str, Any] = {"database.restoredFrom": AUTOMATED}
    if stack == "integration":
        values["database.protect"] = False  # kept even where the stack opts out of protection
    r = restore(stack, **values)
    original = r.instance("database-instance")
    assert original.protect is True
    assert original.inputs["deletionProtection"] is True
    assert original.retain_on_delete
    groups = r.groups_of(original)
    assert len(groups) == len(LOG_EXPORTS) and all(g.retain_on_delete for g in groups)
    restored = r.groups_of(r.instance("database-instance-restored"))
    assert len(restored) == len(LOG_EXPORTS) and not any(g.retain_on_delete for g in restored)


def test_the_restored_instance_follows_the_stack_protection() -> None:
    r = restore("integration", **{"database.restoredFrom": AUTOMATED})
    restored = r.instance("database-instance-restored")
    assert restored.protect is True  # database.protect defaults to true
    assert restored.inputs["deletionProtection"] is False  # integration's default
    r = restore(
        "integration",
        **{"database.restoredFrom": AUTOMATED, "database.protect": False},
    )
    assert r.instance("database-instance-restored").protect is False


def test_releasing_the_original_drops_it_from_the_program() -> None:
    """`keepOriginal: false` after an `up` with it true: the original is no longer declared.
    That `up` recorded it protected and retained, so the engine first refuses (protect, until
    `pulumi state unprotect`) and then only forgets it: nothing deletes the data."""
    values = {"database.restoredFrom": SNAPSHOT}
    kept = restore("production", **values)
    original = kept.instance("database-instance")
    assert original.protect and original.retain_on_delete

    released = restore("production", **values, **{"database.keepOriginal": False})
    names = {i.name for i in released.run.of_type(INSTANCE)}
    assert names == {"database-instance-restored"}
    identifier = original.inputs["identifier"]
    assert released.groups_of(original) == []
    assert len(released.groups_of(released.instance("database-instance-restored"))) == 2
    # the retained groups stay readable: the log key still names them
    [key] = [k for k in released.run.of_type("aws:kms/key:Key") if k.name == "database-logs"]
    assert f"log-group:/aws/rds/instance/{identifier}/postgresql" in key.inputs["policy"]


def test_before_any_restore_the_protected_original_is_already_retained() -> None:
    """So a later release forgets it even if the restore and the release come in one `up`."""
    r = restore("production")
    original = r.instance("database-instance")
    assert original.protect and original.retain_on_delete
    r = restore("integration", **{"database.protect": False})
    assert not r.instance("database-instance").retain_on_delete


# --- settings ---------------------------------------------------------------------------


def test_a_local_stack_refuses_a_restore() -> None:
    error, run = try_stack(
        "local", set_values={"database.restoredFrom": SNAPSHOT}, program=database_program
    )
    assert error is not None
    assert "airflow-platform:database.restoredFrom: is AWS-only" in str(error)
    assert run.resources == []


def test_keep_original_is_eks_only_too() -> None:
    error, _ = try_stack(
        "local", set_values={"database.keepOriginal": False}, program=database_program
    )
    assert error is not None and "database.keepOriginal: is AWS-only" in str(error)


@pytest.mark.parametrize(
    "snapshot",
    [
        SNAPSHOT,
        AUTOMATED,
        "arn:aws:rds:eu-west-1:210987654321:snapshot:shared-airflow-metadata",
        "awsbackup:job-0123abcd-4567-89ef-0123-456789abcdef",
        "A" * 255,
    ],
)
def test_snapshot_identifiers_rds_accepts_are_accepted(snapshot: str) -> None:
    """RDS, CreateDBSnapshot: 1-255 letters, digits or hyphens, a letter first, no trailing
    or doubled hyphen; automated snapshots are `rds:<name>`, AWS Backup's `awsbackup:<name>`,
    and a shared snapshot is restored by its ARN (botocore RDS model,
    RestoreDBInstanceFromDBSnapshot: DBSnapshotIdentifier)."""
    assert settings_of("production", **{"database.restoredFrom": snapshot}).database.restored_from


@pytest.mark.parametrize(
    "snapshot", ["1-starts-with-a-digit", "ends-with-", "has--two", "has_underscore", "A" * 256]
)
def test_snapshot_identifiers_rds_refuses_are_refused(snapshot: str) -> None:
    with pytest.raises(ValueError, match=r"database\.restoredFrom"):
        settings_of("production", **{"database.restoredFrom": snapshot})


# --- the restored identifier (pure) -------------------------------------------------------


@pytest.mark.parametrize(
    "snapshot",
    [
        SNAPSHOT,
        AUTOMATED,
        "arn:aws:rds:eu-west-1:210987654321:snapshot:rds:other-db-2026-01-01-00-00",
        "X" * 255,
        "airflow-platform-production-metadata",
    ],
)
def test_restored_identifiers_are_valid_rds_identifiers(snapshot: str) -> None:
    """RDS, CreateDBInstance: DBInstanceIdentifier is 1-63 letters, digits or hyphens, a
    letter first, no trailing or doubled hyphen; RDS stores it lowercase."""
    ident = restored_identifier("airflow-platform-production-metadata", snapshot)
    assert RDS_IDENTIFIER.fullmatch(ident), ident
    assert "--" not in ident and not ident.endswith("-")
    assert ident.startswith("airflow-platform-production-metadata-from-")


def test_restored_identifiers_are_stable_and_distinct() -> None:
    base = "airflow-platform-production-metadata"
    long_a, long_b = "snap-" + "a" * 80 + "-1", "snap-" + "a" * 80 + "-2"
    assert restored_identifier(base, long_a) == restored_identifier(base, long_a)
    assert restored_identifier(base, long_a) != restored_identifier(base, long_b)
    assert restored_identifier(base, AUTOMATED) != restored_identifier(base, SNAPSHOT)
    assert restored_identifier(base, f"{base}-nightly") == f"{base}-from-nightly"
