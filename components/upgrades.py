"""Guarded upgrades as plain data: which versions run, whether an update migrates, which
pre-upgrade snapshots exist and which to keep, and what a rollback restores.

Everything here is a pure function of plain values; `components/upgrade_guard.py` feeds it the
stack's previous outputs and turns its answer into resources, and `deploy/rollback.py` reads
the same records back from the outputs (and the state) to build a rollback's stack config.

Records as stack outputs (JSON, newest last):
    platform_versions = {"airflow": "3.2.2", "chart": "1.22.0", "image": "<ref>"}
    upgrade_history = [{"seq": 3, "snapshot": "<id>", "from": {...versions...},
                        "to": {...versions...}, "rolled_back": false}, ...]
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

SNAPSHOT_MARKER = "pre-upgrade"
"""The word in every pre-upgrade snapshot identifier, after the stack's prefix."""
SNAPSHOT_ID_MAX = 255
PREFIX_MAX = 100
"""Room for the stack's prefix in a snapshot identifier; the rest names the change."""
SNAPSHOT_TYPE = "aws:rds/snapshot:Snapshot"
GUARD_TYPE = "airflow-platform:upgrades:UpgradeGuard"
TAG_PREFIX = "airflow-platform:"
_TAG_VALUE = re.compile(r"^[\w\s.:/=+\-@]*$")
"""RDS tag values: letters, digits, white space and `_ . : / = + - @`, at most 256 characters
(botocore `rds` service model, shape `Tag`)."""

INFO = "info"
WARN = "warn"


class UpgradeRecordError(ValueError):
    """A recorded output is not in the shape this program writes; the message says which."""


@dataclass(frozen=True)
class PlatformVersions:
    """What a stack runs: the Airflow version (of the image), the chart version and the image.

    `image` may be "" while the image is still being built (its reference is known only then);
    nothing decided here depends on it.
    """

    airflow: str
    chart: str
    image: str = ""

    def to_output(self) -> dict[str, str]:
        return {"airflow": self.airflow, "chart": self.chart, "image": self.image}

    @classmethod
    def from_output(cls, value: Any, what: str = "platform_versions") -> PlatformVersions | None:
        """The record from a stack output; None when the output is absent (a first deploy)."""
        if value is None:
            return None
        if not isinstance(value, Mapping):
            raise UpgradeRecordError(f"{what} is {type(value).__name__}, not an object")
        missing = [k for k in ("airflow", "chart") if not isinstance(value.get(k), str)]
        if missing or not value.get("airflow") or not value.get("chart"):
            raise UpgradeRecordError(f"{what} lacks {', '.join(missing) or 'versions'}: {value!r}")
        image = value.get("image") or ""
        if not isinstance(image, str):
            raise UpgradeRecordError(f"{what}.image is not a string: {image!r}")
        return cls(str(value["airflow"]), str(value["chart"]), image)

    def describe(self) -> str:
        text = f"Airflow {self.airflow}, chart {self.chart}"
        return f"{text}, image {self.image}" if self.image else text


@dataclass(frozen=True)
class MigrationChange:
    """An update that runs schema migrations: the Airflow or the chart version changes."""

    previous: PlatformVersions
    current: PlatformVersions

    @property
    def airflow_changes(self) -> bool:
        return self.previous.airflow != self.current.airflow

    @property
    def chart_changes(self) -> bool:
        return self.previous.chart != self.current.chart

    def reasons(self) -> list[str]:
        found = []
        if self.airflow_changes:
            found.append(f"Airflow {self.previous.airflow} -> {self.current.airflow}")
        if self.chart_changes:
            found.append(f"chart {self.previous.chart} -> {self.current.chart}")
        return found

    def describe(self) -> str:
        return f"{', '.join(self.reasons())} (schema migrations run)"


def migration_change(
    previous: PlatformVersions | None, current: PlatformVersions
) -> MigrationChange | None:
    """Whether going from `previous` to `current` runs migrations, and why.

    A different Airflow version or chart version does. A new image with the same Airflow
    version does not (the image's Airflow version is `airflow`: the Dockerfile's FROM must
    match it), nor does a DAG change. No previous record is a first deploy: nothing to keep.
    """
    if previous is None:
        return None
    change = MigrationChange(previous, current)
    return change if change.reasons() else None


@dataclass(frozen=True)
class UpgradeRecord:
    """One guarded upgrade: the snapshot taken before it, from which versions, to which."""

    seq: int
    snapshot: str
    previous: PlatformVersions
    target: PlatformVersions | None
    """None when only the snapshot and where it came from are known (see `plan_snapshots`)."""
    rolled_back: bool = False

    def to_output(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "snapshot": self.snapshot,
            "from": self.previous.to_output(),
            "to": self.target.to_output() if self.target else None,
            "rolled_back": self.rolled_back,
        }

    @classmethod
    def from_output(cls, value: Any, what: str = "upgrade_history entry") -> UpgradeRecord:
        if not isinstance(value, Mapping):
            raise UpgradeRecordError(f"{what} is not an object: {value!r}")
        seq, snapshot = value.get("seq"), value.get("snapshot")
        if isinstance(seq, float) and seq.is_integer():
            seq = int(seq)  # numbers cross the engine's protobuf Struct as doubles
        if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1:
            raise UpgradeRecordError(f"{what} has no positive seq: {value!r}")
        if not isinstance(snapshot, str) or snapshot_identifier_problem(snapshot):
            raise UpgradeRecordError(f"{what} has no valid snapshot identifier: {value!r}")
        previous = PlatformVersions.from_output(value.get("from"), f"{what}.from")
        if previous is None:
            raise UpgradeRecordError(f"{what} has no 'from' versions: {value!r}")
        target = PlatformVersions.from_output(value.get("to"), f"{what}.to")
        return cls(seq, snapshot, previous, target, bool(value.get("rolled_back", False)))


def history_from_output(value: Any) -> list[UpgradeRecord]:
    """The `upgrade_history` output as records, oldest first; absent means empty."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise UpgradeRecordError(f"upgrade_history is {type(value).__name__}, not a list")
    records = [UpgradeRecord.from_output(v, f"upgrade_history[{i}]") for i, v in enumerate(value)]
    return sorted(records, key=lambda r: r.seq)


# --- snapshot identifiers -------------------------------------------------------------------


def snapshot_identifier_problem(value: str) -> str | None:
    """What is wrong with `value` as an RDS DBSnapshotIdentifier, or None.

    The rules of `CreateDBSnapshot`'s DBSnapshotIdentifier (botocore `rds` service model):
    1 to 255 letters, digits or hyphens; the first a letter; no trailing hyphen and no two
    consecutive hyphens.
    """
    if not value:
        return "is empty"
    if len(value) > SNAPSHOT_ID_MAX:
        return f"is {len(value)} characters long; at most {SNAPSHOT_ID_MAX}"
    if not re.fullmatch(r"[A-Za-z0-9-]+", value):
        return "may hold only letters, digits and hyphens"
    if not value[0].isalpha():
        return "must start with a letter"
    if value.endswith("-"):
        return "must not end with a hyphen"
    if "--" in value:
        return "must not contain two consecutive hyphens"
    return None


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-")


def snapshot_prefix(resource_prefix: str) -> str:
    """Where every pre-upgrade snapshot identifier of a stack starts."""
    base = _slug(resource_prefix) or "stack"
    if not base[0].isalpha():
        base = f"s-{base}"
    return f"{base[:PREFIX_MAX].rstrip('-')}-{SNAPSHOT_MARKER}"


def _record_digest(seq: int, previous: PlatformVersions, target: PlatformVersions) -> str:
    canonical = json.dumps(
        {
            "seq": seq,
            "from": previous.to_output(),
            "to": {"airflow": target.airflow, "chart": target.chart},
        },
        sort_keys=True,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()[:8]


def snapshot_identifier(resource_prefix: str, seq: int, change: MigrationChange) -> str:
    """The RDS snapshot identifier for upgrade number `seq`, named after its from -> to versions.

    `<prefix>-pre-upgrade-<seq>-airflow-3-1-0-to-3-2-2-chart-1-21-0-to-1-22-0-<hash>`: the
    sequence number makes it unique per upgrade (the same from -> to can happen again after
    a rollback) and the hash of the full record (seq, from versions with image, to versions)
    keeps it unique if two records ever shared a number. The target image is left out: it is
    known only once built, and the identifier must be known before (it names a resource).
    """
    if seq < 1:
        raise ValueError("upgrade numbers start at 1")
    words = [f"{seq}"]
    if change.airflow_changes:
        words += ["airflow", change.previous.airflow, "to", change.current.airflow]
    if change.chart_changes:
        words += ["chart", change.previous.chart, "to", change.current.chart]
    head = snapshot_prefix(resource_prefix)
    tail = _record_digest(seq, change.previous, change.current)
    middle = _slug("-".join(words))
    room = SNAPSHOT_ID_MAX - len(head) - len(tail) - 2
    if room < len(str(seq)):
        raise ValueError(f"resource prefix {resource_prefix!r} leaves no room for a snapshot id")
    middle = middle[:room].rstrip("-")
    identifier = re.sub(r"-{2,}", "-", f"{head}-{middle}-{tail}")
    problem = snapshot_identifier_problem(identifier)
    if problem:  # a bug here, not in the input: every part above is slugged
        raise AssertionError(f"{identifier!r} {problem}")
    return identifier


def snapshot_seq(identifier: str, resource_prefix: str) -> int | None:
    """The upgrade number in one of this stack's pre-upgrade snapshot ids; None for others."""
    found = re.match(rf"^{re.escape(snapshot_prefix(resource_prefix))}-(\d+)-", identifier)
    return int(found.group(1)) if found else None


# --- the plan for one update ----------------------------------------------------------------


@dataclass(frozen=True)
class SnapshotPlan:
    """What one update does about pre-upgrade snapshots.

    `retained` (oldest first) is the whole set of snapshot resources this update declares: the
    new one, if any, is among them; everything recorded but not retained is `dropped` (deleted).
    """

    new: UpgradeRecord | None
    retained: tuple[UpgradeRecord, ...]
    dropped: tuple[UpgradeRecord, ...]
    messages: tuple[tuple[str, str], ...] = field(default=())


def prune(
    records: Iterable[UpgradeRecord], keep: int, pinned: Iterable[str] = ()
) -> tuple[list[UpgradeRecord], list[UpgradeRecord]]:
    """(kept, dropped): the newest `keep` records by number, plus any whose snapshot is pinned."""
    if keep < 1:
        raise ValueError("keep at least one snapshot")
    ordered = sorted(records, key=lambda r: r.seq)
    newest = {r.seq for r in ordered[-keep:]}
    pins = set(pinned)
    kept = [r for r in ordered if r.seq in newest or r.snapshot in pins]
    dropped = [r for r in ordered if r not in kept]
    return kept, dropped


def plan_snapshots(
    *,
    previous: PlatformVersions | None,
    history: Sequence[UpgradeRecord],
    current: PlatformVersions,
    resource_prefix: str,
    enabled: bool,
    keep: int,
    rollback_active: bool = False,
    restored_from: str = "",
) -> SnapshotPlan:
    """Decide the snapshots of this update from the previous outputs and the current versions.

    - A migration (see `migration_change`) takes snapshot number max(recorded) + 1, unless
      `enabled` is false or a rollback is active (the database is being restored instead).
    - A failed update leaves the stack's outputs as they were (pulumi/pulumi#15754), so a retry
      computes the same number and declares the same snapshot resource: the one taken before
      the first attempt stays (the guard ignores later changes to it).
    - While a rollback restores one of this stack's pre-upgrade snapshots, that snapshot is
      retained and marked rolled back (also after the rollback, while the database still
      names it); if the failed upgrade that took it never recorded it, a rollback declares it
      again from its identifier and the pinned versions, so the rollback never deletes it.
    """
    messages: list[tuple[str, str]] = []
    records = {r.seq: r for r in history}
    new: UpgradeRecord | None = None
    change = migration_change(previous, current)
    pins: list[str] = []
    if restored_from:
        pins.append(restored_from)
        known = next((r for r in records.values() if r.snapshot == restored_from), None)
        if known is not None:
            records[known.seq] = replace(known, rolled_back=True)
    if rollback_active:
        messages.append(
            (
                WARN,
                f"Rollback active: running {current.describe()} pinned by `make rollback`"
                + (f", database restored from {restored_from}" if restored_from else "")
                + "; no pre-upgrade snapshot is taken.",
            )
        )
        seq = snapshot_seq(restored_from, resource_prefix) if restored_from else None
        recorded = any(r.snapshot == restored_from for r in records.values())
        if seq is not None and not recorded and seq > max(records, default=0):
            records[seq] = UpgradeRecord(seq, restored_from, current, None, rolled_back=True)
    elif change is None:
        if previous is None:
            messages.append((INFO, "First deploy of this stack: no previous versions to snapshot."))
        else:
            messages.append(
                (
                    INFO,
                    f"Airflow {current.airflow} and chart {current.chart} unchanged:"
                    " no schema migration, no snapshot.",
                )
            )
    elif not enabled:
        messages.append(
            (
                WARN,
                f"NOT snapshotting before migrating ({change.describe()}):"
                " upgrades.snapshotBeforeMigration is false.",
            )
        )
    else:
        seq = max(records, default=0) + 1
        identifier = snapshot_identifier(resource_prefix, seq, change)
        assert previous is not None  # a change has a previous record
        new = UpgradeRecord(seq, identifier, previous, current)
        records[seq] = new
        messages.append(
            (WARN, f"Taking RDS snapshot {identifier} before migrating: {change.describe()}.")
        )
    kept, dropped = prune(records.values(), keep, pins)
    if dropped:
        names = ", ".join(r.snapshot for r in dropped)
        messages.append(
            (INFO, f"Deleting pre-upgrade snapshots beyond upgrades.keepSnapshots={keep}: {names}.")
        )
    return SnapshotPlan(new, tuple(kept), tuple(dropped), tuple(messages))


# --- tags, state and rollback ---------------------------------------------------------------


def snapshot_tags(record: UpgradeRecord) -> dict[str, str]:
    """Tags that describe a pre-upgrade snapshot, so it can be read back from the state.

    Values follow the RDS tag rules (botocore `rds` model, shape `Tag`); an image reference too
    long for a tag value is left out (the `upgrade_history` output still has it).
    """
    values = {
        "upgrade-seq": str(record.seq),
        "from-airflow": record.previous.airflow,
        "from-chart": record.previous.chart,
        "from-image": record.previous.image,
    }
    if record.target is not None:
        values |= {"to-airflow": record.target.airflow, "to-chart": record.target.chart}
    return {
        f"{TAG_PREFIX}{k}": v
        for k, v in values.items()
        if v and len(v) <= 256 and _TAG_VALUE.match(v)
    }


def records_from_state(export: Mapping[str, Any]) -> list[UpgradeRecord]:
    """Pre-upgrade snapshots the guard declared, read from `pulumi stack export` output.

    A failed update records its snapshot in the state but not in the outputs; this finds it.
    """
    deployment = export.get("deployment", export)
    resources = deployment.get("resources") if isinstance(deployment, Mapping) else None
    found: list[UpgradeRecord] = []
    for res in resources or []:
        if not isinstance(res, Mapping) or res.get("type") != SNAPSHOT_TYPE:
            continue
        if GUARD_TYPE not in str(res.get("urn", "")):
            continue
        outputs = res.get("outputs") or res.get("inputs") or {}
        tags = outputs.get("tags") or {}
        identifier = outputs.get("dbSnapshotIdentifier")
        seq = str(tags.get(f"{TAG_PREFIX}upgrade-seq", ""))
        if not isinstance(identifier, str) or not seq.isdigit():
            continue
        previous = PlatformVersions(
            str(tags.get(f"{TAG_PREFIX}from-airflow", "")),
            str(tags.get(f"{TAG_PREFIX}from-chart", "")),
            str(tags.get(f"{TAG_PREFIX}from-image", "")),
        )
        target = None
        if tags.get(f"{TAG_PREFIX}to-airflow") and tags.get(f"{TAG_PREFIX}to-chart"):
            target = PlatformVersions(
                str(tags[f"{TAG_PREFIX}to-airflow"]), str(tags[f"{TAG_PREFIX}to-chart"])
            )
        found.append(UpgradeRecord(int(seq), identifier, previous, target))
    return sorted(found, key=lambda r: r.seq)


class NothingToRollBack(Exception):
    """There is no pre-upgrade snapshot to go back to; the message says why."""


@dataclass(frozen=True)
class RollbackTarget:
    """The snapshot a rollback restores and the versions it pins."""

    record: UpgradeRecord
    versions: PlatformVersions
    running: PlatformVersions | None


def rollback_target(
    outputs: Mapping[str, Any], state_records: Sequence[UpgradeRecord] = ()
) -> RollbackTarget:
    """The newest pre-upgrade snapshot and the versions from before that upgrade.

    Records come from the `upgrade_history` output and, for an upgrade whose update failed
    before it could record its outputs, from the state (`records_from_state`); the state's
    version of a record fills in what the outputs lack.
    """
    merged: dict[str, UpgradeRecord] = {r.snapshot: r for r in state_records}
    for record in history_from_output(outputs.get("upgrade_history")):
        merged[record.snapshot] = record
    running = PlatformVersions.from_output(outputs.get("platform_versions"))
    if not merged:
        raise NothingToRollBack(
            "no pre-upgrade snapshot is recorded for this stack (no `upgrade_history` output"
            " and none in its state): nothing was upgraded with snapshots on, so there is"
            " nothing to restore"
        )
    newest = max(merged.values(), key=lambda r: r.seq)
    if newest.rolled_back:
        raise NothingToRollBack(
            f"the newest upgrade (#{newest.seq}, snapshot {newest.snapshot}) is already rolled"
            f" back: the stack runs {newest.previous.describe()}. Remove the rollback.* keys"
            " and database.restoredFrom to upgrade again"
        )
    previous = newest.previous
    missing = [k for k in ("airflow", "chart", "image") if not getattr(previous, k)]
    if missing:
        raise NothingToRollBack(
            f"snapshot {newest.snapshot} does not record the previous {', '.join(missing)};"
            " set rollback.* by hand from the stack's history"
        )
    return RollbackTarget(newest, previous, running)
