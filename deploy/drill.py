"""The upgrade drill: rehearse a failed upgrade and its rollback on a non-production stack.

    make upgrade-drill STACK=integration

1. preflight: the stack runs older Airflow/chart versions than this checkout deploys, so the
   upgrade runs migrations and takes a pre-upgrade snapshot (deploy the previous release
   first, then run the drill from the new checkout);
2. upgrade with `upgrades.canaryForceFailure: true`: the `up` must fail, with the canary's
   report in its output (the migrations ran; the canary stopped the release);
3. rollback: `deploy.rollback` config from the recorded outputs and state, then `up`: the
   database is restored from the snapshot, the previous versions pinned, the canary passes;
4. verify: the stack's outputs show the previous versions and the upgrade marked rolled back.

Each step's wall time is measured and printed as a table. The stack is left rolled back;
remove the `rollback.*` keys to upgrade again. The real runner drives Pulumi through the
Automation API (as the Slack bot does); the drill's logic sees only `DrillRunner`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from canary.report import parse_report
from components.upgrades import PlatformVersions, history_from_output, migration_change
from deploy.phases import PhaseTime, PhaseTimer
from deploy.rollback import FORCE_CANARY_FAILURE, AuditTrail, RollbackError, rollback_plan

PROTECTED = ("production",)


class UpFailed(Exception):
    """An `up` reported failure; `output` is what the CLI printed (colours off), `phases`
    the timed steps it went through."""

    def __init__(self, message: str, output: str = "", phases: Sequence[PhaseTime] = ()) -> None:
        super().__init__(message)
        self.output = output
        self.phases = list(phases)


class DrillRunner(Protocol):
    """What the drill needs from Pulumi, for one stack."""

    def set_config(self, values: Mapping[str, str | None]) -> None:
        """Set plain config values on the stack; None removes a key."""
        ...

    def up(self, message: str) -> list[PhaseTime]:
        """Run `up` and time its guarded-upgrade steps; raise UpFailed when it fails."""
        ...

    def outputs(self) -> dict[str, Any]:
        """The stack's non-secret outputs."""
        ...

    def export(self) -> dict[str, Any]:
        """The stack's state (`pulumi stack export`)."""
        ...


class DrillError(Exception):
    """The drill stopped; `steps` holds what ran, with timings."""

    def __init__(self, message: str, steps: list[Step]) -> None:
        super().__init__(message)
        self.steps = steps


@dataclass
class Step:
    name: str
    seconds: float = 0.0
    result: str = "ok"
    detail: str = ""
    phases: list[PhaseTime] = field(default_factory=list)
    """The snapshot, restore, chart upgrade and canary inside this step's `up`."""


@dataclass
class Drill:
    """One run of the drill on `stack`, towards the versions this checkout deploys."""

    stack: str
    runner: DrillRunner
    target: PlatformVersions
    clock: Callable[[], float] = time.monotonic
    audit: AuditTrail | None = None
    steps: list[Step] = field(default_factory=list)

    def run(self) -> list[Step]:
        if self.stack in PROTECTED:
            raise DrillError(f"the drill never runs on {self.stack}; use integration", [])
        if self.audit:
            self.audit.start()
        result = "failed"
        forced = False
        try:
            running = self._timed("preflight", self._preflight)
            self._note(f"upgrade {running.describe()} -> {self.target.describe()}")
            self.runner.set_config({FORCE_CANARY_FAILURE: "true"})
            forced = True
            self._note("set upgrades.canaryForceFailure=true")
            self._timed("upgrade (canary forced to fail)", self._failing_upgrade)
            forced = not self._timed("rollback (restore, pin, canary)", self._rollback)
            self._timed("verify", lambda: self._verify(running))
            result = "ok"
            return self.steps
        except DrillError as err:
            err.steps = self.steps
            raise
        finally:
            if forced:  # never leave the stack's next deploy doomed to fail
                self.runner.set_config({FORCE_CANARY_FAILURE: "false"})
                self._note("reset upgrades.canaryForceFailure=false")
            if self.audit:
                self.audit.finish(result, sum(s.seconds for s in self.steps))

    def _note(self, text: str, step: str = "drill") -> None:
        if self.audit:
            self.audit.step(step, text)

    def _timed(self, name: str, action: Callable[[], Any]) -> Any:
        step = Step(name)
        self.steps.append(step)
        started = self.clock()
        try:
            value = action()
        except DrillError as err:
            step.result, step.detail = "FAILED", str(err)
            raise
        finally:
            step.seconds = self.clock() - started
            if self.audit:
                self.audit.step(
                    name, f"{step.result} in {step.seconds:.1f} s {step.detail}".strip()
                )
        return value

    def _preflight(self) -> PlatformVersions:
        running = PlatformVersions.from_output(self.runner.outputs().get("platform_versions"))
        if running is None:
            raise DrillError(
                f"{self.stack} records no platform_versions output: deploy it once first", []
            )
        if migration_change(running, self.target) is None:
            raise DrillError(
                f"nothing to rehearse: {self.stack} already runs Airflow {running.airflow},"
                f" chart {running.chart}, which this checkout deploys. Deploy the previous"
                " release to it first, then run the drill from this checkout",
                [],
            )
        return running

    def _failing_upgrade(self) -> None:
        try:
            self.steps[-1].phases = self.runner.up(
                "upgrade drill: upgrade with the canary forced to fail"
            )
        except UpFailed as failed:
            self.steps[-1].phases = failed.phases
            report = parse_report(failed.output) or parse_report(str(failed))
            if report is None or report.ok:
                raise DrillError(
                    f"the upgrade failed, but not at the canary: {failed}. The stack may be"
                    f" half-upgraded: `make rollback STACK={self.stack}`",
                    [],
                ) from None
            self.steps[-1].result = "failed as forced"
            self.steps[
                -1
            ].detail = f"canary {report.outcome}: {report.dag_id} {report.run_id or ''}"
            return
        raise DrillError(
            "the upgrade succeeded although the canary was forced to fail: the canary does not"
            " gate the release",
            [],
        )

    def _rollback(self) -> bool:
        try:
            plan = rollback_plan(self.runner.outputs(), self.runner.export())
        except RollbackError as err:
            raise DrillError(f"nothing to roll back to: {err}", []) from None
        for line in plan.lines(self.stack):
            self._note(line, "rollback plan")
        self.runner.set_config(plan.config)
        self._note(", ".join(f"{k}={v}" for k, v in plan.config.items()), "rollback config")
        try:
            self.steps[-1].phases = self.runner.up(
                f"upgrade drill: rollback to {plan.target.record.snapshot}"
            )
        except UpFailed as failed:
            self.steps[-1].phases = failed.phases
            raise DrillError(f"the rollback's up failed: {failed}", []) from None
        self.steps[-1].detail = f"restored {plan.target.record.snapshot}"
        return True

    def _verify(self, before: PlatformVersions) -> None:
        outputs = self.runner.outputs()
        now = PlatformVersions.from_output(outputs.get("platform_versions"))
        if now is None or (now.airflow, now.chart) != (before.airflow, before.chart):
            raise DrillError(f"after the rollback the stack runs {now}, not {before}", [])
        history = history_from_output(outputs.get("upgrade_history"))
        if not history or not history[-1].rolled_back:
            raise DrillError("the newest upgrade is not recorded as rolled back", [])


def format_timings(stack: str, steps: list[Step]) -> str:
    """The drill's steps as a table: step, result, wall time, with the timed parts of each
    step's `up` (snapshot, restore, chart upgrade, canary) indented beneath it; then the total."""
    names = [s.name for s in steps] + [f"  {p.label}" for s in steps for p in s.phases]
    results = [s.result for s in steps] + [p.result for s in steps for p in s.phases]
    width = max([len(n) for n in names] + [len("total")])
    rwidth = max([len(r) for r in results] + [len("result")])
    lines = [
        f"Upgrade drill on {stack}",
        f"{'step':<{width}}  {'result':<{rwidth}}  {'seconds':>8}",
    ]
    for s in steps:
        line = f"{s.name:<{width}}  {s.result:<{rwidth}}  {s.seconds:>8.1f}"
        lines.append(f"{line}  {s.detail}".rstrip())
        for p in s.phases:
            lines.append(f"{'  ' + p.label:<{width}}  {p.result:<{rwidth}}  {p.seconds:>8.1f}")
    total = sum(s.seconds for s in steps)
    lines.append(f"{'total':<{width}}  {'':<{rwidth}}  {total:>8.1f}")
    return "\n".join(lines)


class AutomationDrillRunner:
    """`DrillRunner` over the Pulumi Automation API (the CLI must be installed)."""

    def __init__(
        self,
        project_dir: Path,
        stack: str,
        env: Mapping[str, str],
        secrets_provider: str,
        policy_pack: Path | None = None,
        echo: Callable[[str], None] = print,
    ) -> None:
        self._project_dir = project_dir
        self._stack_name = stack
        self._env = dict(env)
        self._secrets_provider = secrets_provider
        self._policy_pack = policy_pack
        self._echo = echo

    def _stack(self) -> Any:
        from pulumi import automation as auto

        options = auto.LocalWorkspaceOptions(
            work_dir=str(self._project_dir),
            env_vars=self._env,
            secrets_provider=self._secrets_provider,
        )
        return auto.select_stack(self._stack_name, work_dir=str(self._project_dir), opts=options)

    def set_config(self, values: Mapping[str, str | None]) -> None:
        from pulumi import automation as auto

        stack = self._stack()
        for key, value in values.items():
            if value is None:
                stack.remove_config(key)
            else:
                stack.set_config(key, auto.ConfigValue(value, secret=False))

    def up(self, message: str) -> list[PhaseTime]:
        from pulumi import automation as auto

        lines: list[str] = []
        timer = PhaseTimer()

        def on_output(line: str) -> None:
            lines.append(line)
            self._echo(line.rstrip("\n"))

        packs = [str(self._policy_pack)] if self._policy_pack else None
        try:
            self._stack().up(
                on_output=on_output,
                on_event=timer.on_event,
                color="never",
                message=message,
                policy_packs=packs,
            )
        except auto.CommandError as err:
            raise UpFailed(
                f"`pulumi up` on {self._stack_name} failed",
                "\n".join(lines) + str(err),
                timer.timings(),
            ) from None
        return timer.timings()

    def outputs(self) -> dict[str, Any]:
        return {k: v.value for k, v in self._stack().outputs().items() if not v.secret}

    def export(self) -> dict[str, Any]:
        exported = self._stack().export_stack()
        return {"version": exported.version, "deployment": dict(exported.deployment or {})}
