"""`make rollback STACK=x`: the config it sets (deploy/rollback.py) and the command (deploy/cli.py).

The config comes from what the program recorded at the upgrade: the `upgrade_history` and
`platform_versions` outputs, and the state for an upgrade whose update failed before writing
its outputs (pulumi/pulumi#15754: a failed update keeps the previous outputs).

The command runs against a stand-in `pulumi` on PATH (the CLI is not installed here) that
keeps the behaviours the command relies on, as the real CLI has them: `stack history --json`
lists updates newest first with a `version` (pulumi/pulumi `pkg/cmd/pulumi/stack/
stack_history.go`), and declining `up`'s prompt bails out before any update is recorded
("confirmation declined", `pkg/backend/apply.go`). What is asserted is our side: what is read,
set, run, undone and written to the audit log.
"""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from components import upgrades as up
from deploy import cli
from deploy.check import check_stack
from deploy.rollback import (
    FORCE_CANARY_FAILURE,
    RESTORED_FROM,
    ROLLBACK_AIRFLOW,
    ROLLBACK_CHART,
    ROLLBACK_IMAGE,
    RollbackError,
    audit_path,
    rollback_config,
)

PREFIX = "airflow-platform-production"
IMAGE = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/airflow-platform-production"
OLD = up.PlatformVersions("3.1.0", "1.21.0", f"{IMAGE}:aaaa@sha256:" + "a" * 64)
NEW = up.PlatformVersions("3.2.2", "1.22.0", f"{IMAGE}:bbbb@sha256:" + "b" * 64)


def record(seq: int, previous: up.PlatformVersions = OLD) -> up.UpgradeRecord:
    change = up.migration_change(previous, NEW)
    assert change is not None
    return up.UpgradeRecord(seq, up.snapshot_identifier(PREFIX, seq, change), previous, NEW)


def recorded(*history: up.UpgradeRecord, running: up.PlatformVersions = NEW) -> dict[str, Any]:
    return {
        "platform_versions": running.to_output(),
        "upgrade_history": [r.to_output() for r in history],
        "kubeconfig": "[secret]",
    }


def export(*records: up.UpgradeRecord) -> dict[str, Any]:
    return {
        "version": 3,
        "deployment": {
            "resources": [
                {
                    "urn": f"urn:pulumi:production::airflow-platform::{up.GUARD_TYPE}"
                    f"${up.SNAPSHOT_TYPE}::upgrades-pre-upgrade-{r.seq}",
                    "type": up.SNAPSHOT_TYPE,
                    "outputs": {"dbSnapshotIdentifier": r.snapshot, "tags": up.snapshot_tags(r)},
                }
                for r in records
            ]
        },
    }


def test_rollback_config_restores_the_newest_snapshot_and_pins_what_ran_before() -> None:
    older = record(1, up.PlatformVersions("3.0.0", "1.20.0", f"{IMAGE}:zzzz"))
    newest = record(2)
    config = rollback_config(recorded(older, newest))
    assert config == {
        RESTORED_FROM: newest.snapshot,
        ROLLBACK_IMAGE: OLD.image,
        ROLLBACK_AIRFLOW: "3.1.0",
        ROLLBACK_CHART: "1.21.0",
        FORCE_CANARY_FAILURE: "false",
    }


def test_a_failed_upgrades_snapshot_is_found_in_the_state() -> None:
    """The failed update never wrote its outputs: they still show the older upgrade only."""
    done, failed = record(1, up.PlatformVersions("3.0.0", "1.20.0", OLD.image)), record(2)
    outputs = recorded(done, running=OLD)
    assert rollback_config(outputs)[RESTORED_FROM] == done.snapshot  # outputs alone: wrong
    config = rollback_config(outputs, export(done, failed))
    assert config[RESTORED_FROM] == failed.snapshot
    assert config[ROLLBACK_IMAGE] == OLD.image and config[ROLLBACK_AIRFLOW] == "3.1.0"


@pytest.mark.parametrize(
    ("outputs", "message"),
    [
        ({}, "no pre-upgrade snapshot is recorded"),
        (recorded(), "no pre-upgrade snapshot is recorded"),
        (
            {"upgrade_history": [{**record(1).to_output(), "rolled_back": True}]},
            "already rolled back",
        ),
        ({"upgrade_history": "not a list"}, "upgrade_history is str"),
    ],
)
def test_nothing_to_roll_back_to_is_a_clear_error(outputs: dict[str, Any], message: str) -> None:
    with pytest.raises(RollbackError, match=message):
        rollback_config(outputs)


def test_the_rollback_config_is_a_valid_production_stack_file(project: Path) -> None:
    """The keys and values pass the CLI's config rules and the settings model."""
    path = project / "Pulumi.production.yaml"
    doc = yaml.safe_load(path.read_text())
    doc["config"].update(rollback_config(recorded(record(3))))
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    result = check_stack(project, "production")
    assert result.ok, result.problems
    assert result.settings is not None
    assert result.settings.rollback.active and result.settings.rollback.image == OLD.image
    assert result.settings.database.restored_from == record(3).snapshot


FAKE_PULUMI = """#!{python}
import json, os, sys
state = os.environ["FAKE_STATE"]
data = json.load(open(state))
args = [a for a in sys.argv[1:]]
data["calls"].append(args)
def save():
    json.dump(data, open(state, "w"))
def flag_value(name):
    return args[args.index(name) + 1] if name in args else None
if args[:2] == ["stack", "select"]:
    save(); sys.exit(0)
if args[:2] == ["stack", "output"]:
    print(json.dumps(data["outputs"]))
elif args[:2] == ["stack", "export"]:
    print(json.dumps(data["export"]))
elif args[:2] == ["stack", "history"]:
    print(json.dumps([{{"version": data["version"], "kind": "update"}}] if data["version"] else []))
elif args[:2] == ["config", "--json"]:
    print(json.dumps({{k: {{"value": v, "secret": False}} for k, v in data["config"].items()}}))
elif args[:2] == ["config", "set"]:
    rest = [a for a in args[2:] if a not in ("--stack", flag_value("--stack"))]
    data["config"][rest[0]] = rest[1]
elif args[:2] == ["config", "rm"]:
    rest = [a for a in args[2:] if a not in ("--stack", flag_value("--stack"))]
    data["config"].pop(rest[0], None)
elif args[:1] == ["up"]:
    if data["up"] == "declined":
        print("confirmation declined, not proceeding with the update"); save(); sys.exit(255)
    data["version"] += 1
    save(); sys.exit(0 if data["up"] == "ok" else 255)
save()
"""


@pytest.fixture
def fake_tools(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """`pulumi` (the stand-in above), `aws` (credentials present) and `docker` on PATH."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, body in (
        ("pulumi", FAKE_PULUMI.format(python=sys.executable)),
        ("aws", "#!/bin/sh\nexit 0\n"),
        ("docker", "#!/bin/sh\nexit 0\n"),
    ):
        exe = bin_dir / name
        exe.write_text(body)
        exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    state = tmp_path / "fake-state.json"
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_STATE", str(state))
    monkeypatch.delenv("PULUMI_BACKEND_URL", raising=False)
    return state


def seed(state: Path, outputs: dict[str, Any], up_result: str, **extra: Any) -> None:
    data = {
        "calls": [],
        "outputs": outputs,
        "export": extra.get("export", {}),
        "version": 7,
        "config": extra.get("config", {}),
        "up": up_result,
    }
    state.write_text(json.dumps(data))


def fake(state: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(state.read_text())
    return data


def audit(project: Path, stack: str) -> list[dict[str, Any]]:
    return [json.loads(x) for x in audit_path(project, stack).read_text().splitlines()]


def run_rollback(project: Path, stack: str = "production") -> tuple[int, list[str]]:
    said: list[str] = []
    ctx = cli.load(stack, project)
    code = cli.rollback(ctx, [], call=lambda argv, **kw: _call(argv, kw), say=said.append)
    return code, said


def _call(argv: list[str], kw: dict[str, Any]) -> int:
    import subprocess

    return subprocess.call(argv, cwd=kw["cwd"], env=kw["env"], stdout=subprocess.DEVNULL)


def test_a_rollback_sets_the_config_then_runs_up_with_its_prompt(
    project: Path, fake_tools: Path
) -> None:
    newest = record(2)
    seed(fake_tools, recorded(record(1), newest), "ok")
    code, said = run_rollback(project)
    assert code == 0
    data = fake(fake_tools)
    assert data["config"] == rollback_config(recorded(record(1), newest))
    (up_call,) = [c for c in data["calls"] if c[:1] == ["up"]]
    assert "--yes" not in up_call, "production confirms at pulumi's own prompt, as `up` does"
    assert "--policy-pack" in up_call and f"rollback to {newest.snapshot}" in up_call
    sets = [i for i, c in enumerate(data["calls"]) if c[:2] == ["config", "set"]]
    assert sets and max(sets) < data["calls"].index(up_call), "config first, then up"
    lines = audit(project, "production")
    assert [x["event"] for x in (lines[0], lines[-1])] == ["start", "end"]
    assert lines[-1]["result"] == "ok" and lines[-1]["operation"] == "rollback"
    steps = [x["step"] for x in lines if x["event"] == "step"]
    assert steps[:2] == ["read", "plan"] and "config" in steps and steps[-1] == "up"
    assert any(newest.snapshot in x.get("detail", "") for x in lines)
    assert any(newest.snapshot in line for line in said)


def test_a_declined_rollback_removes_its_config_again(project: Path, fake_tools: Path) -> None:
    seed(
        fake_tools,
        recorded(record(1)),
        "declined",
        config={FORCE_CANARY_FAILURE: "false", "airflow-platform:other": "x"},
    )
    code, _ = run_rollback(project)
    assert code != 0
    assert fake(fake_tools)["config"] == {
        FORCE_CANARY_FAILURE: "false",
        "airflow-platform:other": "x",
    }
    assert audit(project, "production")[-1]["result"] == "abandoned"


def test_a_failed_rollback_keeps_its_config_for_the_retry(project: Path, fake_tools: Path) -> None:
    seed(fake_tools, recorded(record(1)), "failed")
    code, _ = run_rollback(project)
    assert code != 0
    assert fake(fake_tools)["config"][RESTORED_FROM] == record(1).snapshot
    lines = audit(project, "production")
    assert lines[-1]["result"] == "failed"
    assert "make rollback STACK=production" in lines[-2]["detail"]


def test_nothing_to_roll_back_changes_nothing(project: Path, fake_tools: Path) -> None:
    seed(fake_tools, recorded(), "ok")
    with pytest.raises(cli.DeployError, match="nothing to roll back"):
        run_rollback(project)
    calls = fake(fake_tools)["calls"]
    assert not [c for c in calls if c[:1] == ["up"] or c[:2] == ["config", "set"]]
    assert audit(project, "production")[-1]["result"] == "refused"


def test_the_local_stack_has_no_snapshots_to_roll_back_to(project: Path) -> None:
    with pytest.raises(cli.DeployError, match="no pre-upgrade RDS"):
        cli.rollback(cli.load("local", project), [])
