"""The upgrade drill's sequencing, timing table and failure handling (deploy/drill.py).

No Pulumi runs here: the drill talks to a scripted test double of its `DrillRunner` interface
(set config, up, outputs, state), which plays a stack through an upgrade whose canary fails
and a rollback. That checks the order of the steps, what the drill sets and when, how it reads
the canary's report out of a failed `up`, the timings it prints and that it never leaves
`upgrades.canaryForceFailure` on. It does not check that Pulumi, RDS or the canary behave
that way: the mock-engine tests (tests/test_upgrade_guard.py) and the canary's own tests do.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from canary.report import CanaryReport, format_report
from components import upgrades as up
from components.chart_values import AIRFLOW_VERSION
from deploy import cli
from deploy.drill import Drill, DrillError, Step, UpFailed, format_timings
from deploy.phases import PhaseTime
from deploy.rollback import FORCE_CANARY_FAILURE, RESTORED_FROM, audit_path

PREFIX = "airflow-platform-integration"
OLD = up.PlatformVersions("3.1.0", "1.21.0", "repo/airflow:old@sha256:" + "a" * 64)
NEW = up.PlatformVersions("3.2.2", "1.22.0")
FAILED_REPORT = CanaryReport(outcome="failed", dag_id="platform_canary", run_id="drill-1")


UPGRADE_PHASES = (
    PhaseTime("pre-upgrade snapshot", 180.0, "ok"),
    PhaseTime("chart upgrade (migrations)", 95.0, "ok"),
    PhaseTime("canary", 66.0, "failed"),
)
ROLLBACK_PHASES = (
    PhaseTime("database restore", 610.0, "ok"),
    PhaseTime("chart upgrade (migrations)", 40.0, "ok"),
    PhaseTime("canary", 70.0, "ok"),
)


class ScriptedStack:
    """Plays the stack: `up` applies the config the way the program and the canary would."""

    def __init__(
        self,
        upgrade: str = "canary-fails",
        running: up.PlatformVersions = OLD,
        target: up.PlatformVersions = NEW,
    ) -> None:
        self.target = target
        self.config: dict[str, str] = {}
        self.calls: list[tuple[str, Any]] = []
        self.upgrade = upgrade
        self.running = running
        self.history: list[up.UpgradeRecord] = []
        self.in_state: list[up.UpgradeRecord] = []

    def set_config(self, values: Mapping[str, str | None]) -> None:
        self.calls.append(("set_config", dict(values)))
        for key, value in values.items():
            if value is None:
                self.config.pop(key, None)
            else:
                self.config[key] = value

    def up(self, message: str) -> list[PhaseTime]:
        self.calls.append(("up", message))
        if RESTORED_FROM in self.config:  # the rollback: restore, pin, canary passes
            snapshot = self.config[RESTORED_FROM]
            record = next(r for r in self.in_state if r.snapshot == snapshot)
            self.history.append(up.UpgradeRecord(**{**record.__dict__, "rolled_back": True}))
            self.running = up.PlatformVersions(
                self.config["airflow-platform:rollback.airflowVersion"],
                self.config["airflow-platform:rollback.chartVersion"],
                self.config["airflow-platform:rollback.image"],
            )
            return list(ROLLBACK_PHASES)
        change = up.migration_change(self.running, self.target)
        assert change is not None
        snap = up.snapshot_identifier(PREFIX, 1, change)
        self.in_state.append(up.UpgradeRecord(1, snap, self.running, self.target))
        if self.upgrade == "canary-fails":
            assert self.config.get(FORCE_CANARY_FAILURE) == "true"
            output = f"  * Job airflow/canary failed: {format_report(FAILED_REPORT)}\n"
            raise UpFailed("`pulumi up` failed", output, UPGRADE_PHASES)
        if self.upgrade == "other-failure":
            raise UpFailed("`pulumi up` failed", "error: timed out waiting for the release")
        # "passes": the canary did not stop it; outputs are written
        self.history = list(self.in_state)
        self.running = self.target
        return list(UPGRADE_PHASES)

    def outputs(self) -> dict[str, Any]:
        self.calls.append(("outputs", None))
        return {
            "platform_versions": self.running.to_output(),
            "upgrade_history": [r.to_output() for r in self.history],
        }

    def export(self) -> dict[str, Any]:
        self.calls.append(("export", None))
        resources = [
            {
                "urn": f"urn:pulumi:integration::airflow-platform::{up.GUARD_TYPE}"
                f"${up.SNAPSHOT_TYPE}::upgrades-pre-upgrade-{r.seq}",
                "type": up.SNAPSHOT_TYPE,
                "outputs": {"dbSnapshotIdentifier": r.snapshot, "tags": up.snapshot_tags(r)},
            }
            for r in self.in_state
        ]
        return {"deployment": {"resources": resources}}


class Clock:
    """Each reading is 10 s after the previous one."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 10.0
        return self.now


def drill(stack: ScriptedStack, name: str = "integration") -> Drill:
    return Drill(name, stack, NEW, clock=Clock())


def test_the_drill_upgrades_fails_at_the_canary_rolls_back_and_verifies() -> None:
    stack = ScriptedStack()
    steps = drill(stack).run()
    assert [(s.name, s.result) for s in steps] == [
        ("preflight", "ok"),
        ("upgrade (canary forced to fail)", "failed as forced"),
        ("rollback (restore, pin, canary)", "ok"),
        ("verify", "ok"),
    ]
    assert all(s.seconds == 10.0 for s in steps)
    ups = [c for c in stack.calls if c[0] == "up"]
    assert len(ups) == 2
    configs = [c[1] for c in stack.calls if c[0] == "set_config"]
    assert configs[0] == {FORCE_CANARY_FAILURE: "true"}
    assert configs[1][RESTORED_FROM] == stack.in_state[0].snapshot
    assert configs[1][FORCE_CANARY_FAILURE] == "false"
    assert len(configs) == 2, "after the rollback, nothing is left to reset"
    assert stack.running == OLD
    assert "canary failed: platform_canary drill-1" in steps[1].detail


def test_an_upgrade_the_canary_does_not_stop_fails_the_drill_and_resets_the_flag() -> None:
    stack = ScriptedStack(upgrade="passes")
    with pytest.raises(DrillError, match="does not gate the release") as err:
        drill(stack).run()
    assert [s.result for s in err.value.steps] == ["ok", "FAILED"]
    assert stack.config[FORCE_CANARY_FAILURE] == "false"
    assert not [c for c in stack.calls if c[0] == "set_config" and RESTORED_FROM in c[1]]


def test_an_upgrade_failing_elsewhere_stops_the_drill_and_says_how_to_roll_back() -> None:
    stack = ScriptedStack(upgrade="other-failure")
    with pytest.raises(DrillError, match=r"not at the canary.*make rollback STACK=integration"):
        drill(stack).run()
    assert stack.config[FORCE_CANARY_FAILURE] == "false"


def test_nothing_to_rehearse_when_the_stack_already_runs_these_versions() -> None:
    stack = ScriptedStack(running=up.PlatformVersions(NEW.airflow, NEW.chart, "repo/x"))
    with pytest.raises(DrillError, match="nothing to rehearse"):
        drill(stack).run()
    assert not [c for c in stack.calls if c[0] in ("set_config", "up")]


def test_the_drill_never_runs_on_production() -> None:
    stack = ScriptedStack()
    with pytest.raises(DrillError, match="never runs on production"):
        drill(stack, "production").run()
    assert stack.calls == []


def test_the_timing_table() -> None:
    steps = [Step("preflight", 1.25), Step("upgrade", 600.0, "failed as forced", "canary failed")]
    assert format_timings("integration", steps).splitlines() == [
        "Upgrade drill on integration",
        "step       result             seconds",
        "preflight  ok                     1.2",
        "upgrade    failed as forced     600.0  canary failed",
        "total                           601.2",
    ]


def test_the_timing_table_breaks_each_up_into_its_timed_parts() -> None:
    steps = [
        Step("upgrade", 360.0, "failed as forced", "canary failed", list(UPGRADE_PHASES)),
        Step("rollback", 730.0, phases=list(ROLLBACK_PHASES)),
    ]
    assert format_timings("integration", steps).splitlines() == [
        "Upgrade drill on integration",
        "step                          result             seconds",
        "upgrade                       failed as forced     360.0  canary failed",
        "  pre-upgrade snapshot        ok                   180.0",
        "  chart upgrade (migrations)  ok                    95.0",
        "  canary                      failed                66.0",
        "rollback                      ok                   730.0",
        "  database restore            ok                   610.0",
        "  chart upgrade (migrations)  ok                    40.0",
        "  canary                      ok                    70.0",
        "total                                             1090.0",
    ]


def test_the_drill_keeps_the_parts_of_the_failed_upgrade_and_of_the_rollback() -> None:
    steps = drill(ScriptedStack()).run()
    by_name = {s.name: s for s in steps}
    assert by_name["upgrade (canary forced to fail)"].phases == list(UPGRADE_PHASES)
    assert by_name["rollback (restore, pin, canary)"].phases == list(ROLLBACK_PHASES)


def test_make_upgrade_drill_prints_the_table_and_audits_each_step(
    project: Path,
) -> None:
    said: list[str] = []
    ctx = cli.load("integration", project)
    target = up.PlatformVersions(AIRFLOW_VERSION, ctx.settings.airflow.chart_version)
    assert cli.upgrade_drill(ctx, runner=ScriptedStack(target=target), say=said.append) == 0
    table = said[-1].splitlines()
    assert table[0] == "Upgrade drill on integration" and table[-1].startswith("total")
    lines = [x for x in audit_path(project, "integration").read_text().splitlines()]
    assert '"event": "start"' in lines[0] and '"result": "ok"' in lines[-1]
    assert any('"step": "upgrade (canary forced to fail)"' in x for x in lines)
    with pytest.raises(cli.DeployError, match="other than production"):
        cli.upgrade_drill(cli.load("production", project), runner=ScriptedStack())
