"""Guarded upgrades as plain data (components/upgrades.py): migrations, snapshot names, history.

The snapshot identifier rules are RDS's, read from botocore's `rds` service model (the
documentation of `CreateDBSnapshot`'s DBSnapshotIdentifier and of the `Tag` shape), so a
change in AWS's published rules fails here rather than in an `up`.
"""

from __future__ import annotations

import re
from typing import Any

import botocore.session
import pytest

from components import upgrades as up

PREFIX = "airflow-platform-production"
OLD = up.PlatformVersions("3.1.0", "1.21.0", "repo/airflow:aaa@sha256:" + "a" * 64)
NEW = up.PlatformVersions("3.2.2", "1.22.0", "repo/airflow:bbb@sha256:" + "b" * 64)


def rds_doc(operation: str, member: str) -> str:
    model = botocore.session.get_session().get_service_model("rds")
    shape = model.operation_model(operation).input_shape.members[member]
    return re.sub(r"<[^>]+>", " ", shape.documentation)


def test_the_identifier_rules_are_the_ones_botocore_publishes() -> None:
    """botocore `rds` model, CreateDBSnapshot.DBSnapshotIdentifier: the rules encoded here."""
    doc = " ".join(rds_doc("CreateDBSnapshot", "DBSnapshotIdentifier").split())
    assert "Must contain from 1 to 255 letters, numbers, or hyphens" in doc
    assert "First character must be a letter" in doc
    assert "Can't end with a hyphen or contain two consecutive hyphens" in doc


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("a", True),
        ("my-snapshot-id", True),
        ("a" * 255, True),
        ("a" * 256, False),
        ("", False),
        ("1abc", False),
        ("-abc", False),
        ("abc-", False),
        ("ab--c", False),
        ("ab_c", False),
        ("ab.c", False),
    ],
)
def test_identifier_problem_follows_the_rds_rules(value: str, ok: bool) -> None:
    assert (up.snapshot_identifier_problem(value) is None) is ok


def test_a_version_change_is_a_migration_and_names_its_reasons() -> None:
    change = up.migration_change(OLD, NEW)
    assert change is not None
    assert change.reasons() == ["Airflow 3.1.0 -> 3.2.2", "chart 1.21.0 -> 1.22.0"]
    only_chart = up.migration_change(OLD, up.PlatformVersions("3.1.0", "1.22.0"))
    assert only_chart is not None and only_chart.reasons() == ["chart 1.21.0 -> 1.22.0"]


def test_an_image_only_change_and_a_first_deploy_run_no_migration() -> None:
    rebuilt = up.PlatformVersions(OLD.airflow, OLD.chart, "repo/airflow:ccc")
    assert up.migration_change(OLD, rebuilt) is None
    assert up.migration_change(None, NEW) is None


def test_snapshot_identifiers_are_valid_named_after_the_change_and_unique_per_upgrade() -> None:
    change = up.migration_change(OLD, NEW)
    assert change is not None
    first = up.snapshot_identifier(PREFIX, 3, change)
    assert up.snapshot_identifier_problem(first) is None
    assert first.startswith(
        "airflow-platform-production-pre-upgrade-3-airflow-3-1-0-to-3-2-2-chart-1-21-0-to-1-22-0-"
    )
    assert up.snapshot_identifier(PREFIX, 3, change) == first  # stable
    # The same from -> to again (after a rollback) is another upgrade, another snapshot.
    again = up.snapshot_identifier(PREFIX, 4, change)
    assert again != first and up.snapshot_seq(again, PREFIX) == 4
    assert up.snapshot_seq(first, PREFIX) == 3
    assert up.snapshot_seq(first, "airflow-platform-integration") is None


@pytest.mark.parametrize(
    ("prefix", "old", "new"),
    [
        ("9stack--x_", "3.1.0", "3.2.2"),
        ("p" * 240, "3.1.0", "3.2.2"),
        (PREFIX, "3.2.0-rc.1+build.7", "3.2.0"),
        (PREFIX, "1" * 200, "2" * 200),
    ],
)
def test_identifiers_stay_valid_for_odd_prefixes_and_versions(
    prefix: str, old: str, new: str
) -> None:
    change = up.migration_change(
        up.PlatformVersions(old, "1.21.0"), up.PlatformVersions(new, "1.21.0")
    )
    assert change is not None
    identifier = up.snapshot_identifier(prefix, 12, change)
    assert up.snapshot_identifier_problem(identifier) is None, identifier
    assert up.snapshot_seq(identifier, prefix) == 12


def record(seq: int, **kw: Any) -> up.UpgradeRecord:
    change = up.migration_change(OLD, NEW)
    assert change is not None
    return up.UpgradeRecord(seq, up.snapshot_identifier(PREFIX, seq, change), OLD, NEW, **kw)


def test_records_round_trip_through_outputs() -> None:
    history = [record(2), record(1, rolled_back=True)]
    assert up.history_from_output([r.to_output() for r in history]) == [history[1], history[0]]
    assert up.PlatformVersions.from_output(NEW.to_output()) == NEW
    assert up.PlatformVersions.from_output(None) is None
    assert up.history_from_output(None) == []


@pytest.mark.parametrize(
    "bad",
    [
        "3.2.2",
        [{"seq": 0, "snapshot": "a", "from": OLD.to_output()}],
        [{"seq": 1, "snapshot": "1-bad", "from": OLD.to_output()}],
        [{"seq": 1, "snapshot": "ok", "from": {"airflow": "3.1.0"}}],
    ],
)
def test_malformed_history_is_an_error_not_an_empty_history(bad: Any) -> None:
    with pytest.raises(up.UpgradeRecordError):
        up.history_from_output(bad)


def test_pruning_keeps_the_newest_and_the_pinned() -> None:
    records = [record(i) for i in range(1, 8)]
    kept, dropped = up.prune(records, 3)
    assert [r.seq for r in kept] == [5, 6, 7] and [r.seq for r in dropped] == [1, 2, 3, 4]
    kept, dropped = up.prune(records, 3, pinned=[records[1].snapshot])
    assert [r.seq for r in kept] == [2, 5, 6, 7]


def plan(**kw: Any) -> up.SnapshotPlan:
    args: dict[str, Any] = {
        "previous": OLD,
        "history": [],
        "current": up.PlatformVersions(NEW.airflow, NEW.chart),
        "resource_prefix": PREFIX,
        "enabled": True,
        "keep": 5,
    }
    args.update(kw)
    return up.plan_snapshots(**args)


def test_a_migrating_update_plans_the_next_snapshot_and_says_so() -> None:
    result = plan(history=[record(1), record(2)])
    assert result.new is not None and result.new.seq == 3
    assert result.retained[-1] is result.new
    warn = [t for lvl, t in result.messages if lvl == up.WARN]
    assert warn == [
        f"Taking RDS snapshot {result.new.snapshot} before migrating:"
        " Airflow 3.1.0 -> 3.2.2, chart 1.21.0 -> 1.22.0 (schema migrations run)."
    ]


def test_a_retry_after_a_failed_update_plans_the_same_snapshot() -> None:
    """A failed update leaves the outputs as they were (pulumi/pulumi#15754): same inputs,
    same record, so the retry declares the snapshot its first attempt took."""
    assert plan(history=[record(1)]).new == plan(history=[record(1)]).new


def test_no_migration_no_snapshot_and_history_kept() -> None:
    history = [record(1)]
    same = plan(previous=NEW, history=history, current=up.PlatformVersions(NEW.airflow, NEW.chart))
    assert same.new is None and same.retained == tuple(history) and same.dropped == ()
    assert "no schema migration, no snapshot" in same.messages[0][1]
    first = plan(previous=None)
    assert first.new is None and "First deploy" in first.messages[0][1]


def test_disabled_snapshots_warn_and_keep_existing_ones() -> None:
    result = plan(history=[record(1)], enabled=False)
    assert result.new is None and [r.seq for r in result.retained] == [1]
    assert "NOT snapshotting" in result.messages[0][1]


def test_keep_snapshots_prunes_the_oldest() -> None:
    result = plan(history=[record(i) for i in range(1, 6)], keep=5)
    assert result.new is not None
    assert [r.seq for r in result.retained] == [2, 3, 4, 5, 6]
    assert [r.seq for r in result.dropped] == [1]
    assert any("Deleting pre-upgrade snapshots" in t for _, t in result.messages)


def test_a_rollback_takes_no_snapshot_and_keeps_the_one_it_restores() -> None:
    history = [record(i) for i in range(1, 4)]
    result = plan(
        history=history,
        current=OLD,
        keep=1,
        rollback_active=True,
        restored_from=history[0].snapshot,
    )
    assert result.new is None
    assert [(r.seq, r.rolled_back) for r in result.retained] == [(1, True), (3, False)]


def test_a_rollback_redeclares_a_snapshot_its_failed_upgrade_never_recorded() -> None:
    """The failed upgrade's snapshot is in the state but not in the outputs; a rollback that
    restores it must declare it again, or the engine would delete it."""
    history = [record(1)]
    change = up.migration_change(OLD, NEW)
    assert change is not None
    lost = up.snapshot_identifier(PREFIX, 2, change)
    result = plan(history=history, current=OLD, rollback_active=True, restored_from=lost)
    assert [(r.seq, r.snapshot, r.rolled_back) for r in result.retained] == [
        (1, history[0].snapshot, False),
        (2, lost, True),
    ]


def test_tags_describe_the_record_within_the_rds_tag_rules() -> None:
    """botocore `rds` model, shape `Tag`: values up to 256 of letters, digits, spaces, _.:/=+-@."""
    model = botocore.session.get_session().get_service_model("rds")
    value_doc = model.shape_for("Tag").members["Value"].documentation
    assert "1 to 256 Unicode characters" in value_doc
    assert "'_', '.', ':', '/', '=', '+', '-', '@'" in value_doc
    r = record(4)
    found = up.snapshot_tags(r)
    assert found["airflow-platform:from-image"] == OLD.image
    assert found["airflow-platform:upgrade-seq"] == "4"
    for key, value in found.items():
        assert len(key) <= 128 and 1 <= len(value) <= 256
        assert re.fullmatch(r"[\w\s.:/=+\-@]+", key + value)
    long_image = up.UpgradeRecord(
        5, r.snapshot, up.PlatformVersions("3.1.0", "1.21.0", "x" * 300), None
    )
    assert "airflow-platform:from-image" not in up.snapshot_tags(long_image)


def state_export(*records: up.UpgradeRecord) -> dict[str, Any]:
    resources: list[dict[str, Any]] = [
        {
            "urn": "urn:pulumi:production::airflow-platform::pulumi:pulumi:Stack::x",
            "type": "pulumi:pulumi:Stack",
        }
    ]
    for r in records:
        resources.append(
            {
                "urn": "urn:pulumi:production::airflow-platform::"
                f"{up.GUARD_TYPE}${up.SNAPSHOT_TYPE}::upgrades-pre-upgrade-{r.seq}",
                "type": up.SNAPSHOT_TYPE,
                "outputs": {"dbSnapshotIdentifier": r.snapshot, "tags": up.snapshot_tags(r)},
            }
        )
    return {"version": 3, "deployment": {"resources": resources}}


def test_records_read_back_from_the_state() -> None:
    r = record(2)
    (found,) = up.records_from_state(state_export(r))
    assert (found.seq, found.snapshot, found.previous) == (2, r.snapshot, OLD)
    assert found.target == up.PlatformVersions(NEW.airflow, NEW.chart)


def test_rollback_target_is_the_newest_upgrade_and_its_previous_versions() -> None:
    history = [record(1), record(2)]
    outputs = {
        "upgrade_history": [r.to_output() for r in history],
        "platform_versions": NEW.to_output(),
    }
    target = up.rollback_target(outputs)
    assert target.record.snapshot == history[1].snapshot and target.versions == OLD


def test_rollback_target_finds_the_failed_upgrades_snapshot_in_the_state() -> None:
    outputs = {"upgrade_history": [record(1).to_output()], "platform_versions": OLD.to_output()}
    in_flight = record(2)
    target = up.rollback_target(outputs, up.records_from_state(state_export(record(1), in_flight)))
    assert target.record.snapshot == in_flight.snapshot and target.versions == OLD


def test_nothing_to_roll_back_is_said_plainly() -> None:
    with pytest.raises(up.NothingToRollBack, match="no pre-upgrade snapshot"):
        up.rollback_target({"platform_versions": NEW.to_output()})
    done = {"upgrade_history": [record(1, rolled_back=True).to_output()]}
    with pytest.raises(up.NothingToRollBack, match="already rolled back"):
        up.rollback_target(done)
