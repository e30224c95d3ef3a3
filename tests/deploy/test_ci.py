"""deploy/ci.py: previews for CI and the update held to a reviewed plan.

Pulumi is replaced by a recording runner; what is asserted is our side: the command lines
(`up --plan`, never without it), the summary, and what happens when Pulumi reports that the
update left its plan ("resource <urn> violates plan: ...", pulumi/pulumi
`pkg/resource/deploy/step_generator.go`; spurious with component providers,
pulumi/pulumi#13765).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

from deploy import ci
from deploy.ci import EXIT_STALE_PLAN, Result

VIOLATION = (
    "error: resource urn:pulumi:production::airflow-platform::eks:index:Cluster$aws:eks/cluster:"
    "Cluster::airflow violates plan: properties changed: ~~version[{1.33}!={1.34}]\n"
)


class Pulumi:
    """Answers each command with the next scripted result and records what was run."""

    def __init__(self, *answers: Result) -> None:
        self.answers = list(answers)
        self.calls: list[list[str]] = []

    def __call__(self, argv: Sequence[str]) -> Result:
        self.calls.append(list(argv))
        return self.answers.pop(0)


def verbs(calls: list[list[str]]) -> list[list[str]]:
    """Each call from the verb on (the interpreter and `-m deploy` dropped)."""
    for call in calls:
        assert call[:3] == [sys.executable, "-m", "deploy"]
    return [call[3:] for call in calls]


@pytest.fixture
def summary(tmp_path: Path) -> Path:
    return tmp_path / "summary.md"


def env(summary: Path) -> dict[str, str]:
    return {"GITHUB_STEP_SUMMARY": str(summary), "GITHUB_SHA": "0123456789abcdef0123"}


def test_apply_runs_up_held_to_the_plan(tmp_path: Path, summary: Path):
    plan = tmp_path / "plan.json"
    plan.write_text("{}")
    pulumi = Pulumi(Result(0, "Resources: 3 changed\n"))
    assert ci.apply("production", str(plan), run=pulumi, environ=env(summary)) == 0
    (call,) = verbs(pulumi.calls)
    assert call[:2] == ["up", "production"]
    assert call[call.index("--plan") + 1] == str(plan)
    assert {"--yes", "--skip-preview", "--non-interactive"} <= set(call)
    assert "done" in summary.read_text()


def test_apply_refuses_without_a_plan_file(tmp_path: Path, summary: Path, capsys):
    pulumi = Pulumi()
    code = ci.apply("production", str(tmp_path / "missing.json"), run=pulumi, environ=env(summary))
    assert code == 1 and pulumi.calls == []
    assert "::error::" in capsys.readouterr().out


def test_a_plan_that_no_longer_applies_fails_clearly_with_a_fresh_preview(
    tmp_path: Path, summary: Path, capsys
):
    plan = tmp_path / "plan.json"
    plan.write_text("{}")
    pulumi = Pulumi(Result(255, VIOLATION), Result(0, "~ eks:index:Cluster airflow update\n"))
    assert ci.apply("production", str(plan), run=pulumi, environ=env(summary)) == EXIT_STALE_PLAN
    up, fresh = verbs(pulumi.calls)
    assert up[0] == "up" and fresh[:2] == ["preview", "production"]
    assert "--plan" not in fresh and "--save-plan" not in fresh
    out = capsys.readouterr().out
    assert "::error title=Plan no longer applies::" in out and "13765" in out
    text = summary.read_text()
    assert "no longer applies" in text
    assert "violates plan" in text and "eks:index:Cluster airflow update" in text


def test_another_failure_is_not_taken_for_a_stale_plan(tmp_path: Path, summary: Path):
    plan = tmp_path / "plan.json"
    plan.write_text("{}")
    pulumi = Pulumi(Result(255, "error: AccessDenied: not authorized to perform eks:Update\n"))
    assert ci.apply("production", str(plan), run=pulumi, environ=env(summary)) == 255
    assert len(pulumi.calls) == 1
    assert "failed" in summary.read_text() and "no longer applies" not in summary.read_text()


@pytest.mark.parametrize(
    ("output", "stale"),
    [
        (VIOLATION, True),
        ("error: resource violates plan: outputs changed\n", True),
        ("error: no plan for resource urn:pulumi:production::x\n", True),
        ("error: update failed\n", False),
        ("the plan was saved to plan.json\n", False),
    ],
)
def test_plan_violations_are_recognized(output: str, stale: bool):
    assert ci.is_plan_violation(output) is stale


def test_preview_saves_the_plan_and_writes_the_comment(tmp_path: Path, summary: Path):
    plan = tmp_path / "plan.json"

    def pulumi(argv: Sequence[str]) -> Result:
        Path(argv[argv.index("--save-plan") + 1]).write_text("{}")
        return Result(0, "+ 3 to create\n")

    comment = tmp_path / "comment.md"
    code = ci.preview(
        "production", save_plan=str(plan), comment=comment, run=pulumi, environ=env(summary)
    )
    assert code == 0 and plan.is_file()
    body = comment.read_text()
    assert body.startswith("<!-- pulumi-preview:production -->")
    assert "`0123456789ab`" in body and "+ 3 to create" in body
    assert summary.read_text().strip() == body.strip()


def test_preview_fails_when_no_plan_was_written(tmp_path: Path, summary: Path):
    code = ci.preview(
        "production",
        save_plan=str(tmp_path / "plan.json"),
        run=Pulumi(Result(0, "ok\n")),
        environ=env(summary),
    )
    assert code == 1


def test_a_failed_preview_is_reported_and_its_code_kept(tmp_path: Path, summary: Path):
    comment = tmp_path / "c.md"
    pulumi = Pulumi(Result(1, "error: policy violation\n"))
    assert ci.preview("integration", comment=comment, run=pulumi, environ=env(summary)) == 1
    assert "**failed** (exit 1)" in comment.read_text()
    assert verbs(pulumi.calls) == [
        ["preview", "integration", "--diff", "--non-interactive", "--color", "never"]
    ]


def test_long_output_is_cut_for_github():
    body = ci.preview_markdown("integration", Result(0, "x" * (ci.SUMMARY_LIMIT * 2)))
    assert len(body) < 65_536


def test_tee_echoes_and_keeps_the_output(capfd):
    result = ci.tee(
        [
            sys.executable,
            "-c",
            "import sys; print('out'); print('err', file=sys.stderr); sys.exit(4)",
        ]
    )
    assert result.code == 4
    assert result.output.splitlines() == ["out", "err"] or sorted(result.output.splitlines()) == [
        "err",
        "out",
    ]
    assert "out" in capfd.readouterr().out


def test_main_parses_both_verbs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    seen: list[tuple[str, object]] = []

    def apply(stack: str, plan: str) -> int:
        seen.append(("apply", (stack, plan)))
        return 0

    def preview(stack: str, **kw: object) -> int:
        seen.append(("preview", (stack, kw)))
        return 0

    monkeypatch.setattr(ci, "apply", apply)
    monkeypatch.setattr(ci, "preview", preview)
    assert ci.main(["apply", "production", "--plan", "p.json"]) == 0
    assert ci.main(["preview", "integration", "--save-plan", "p.json"]) == 0
    assert seen[0] == ("apply", ("production", "p.json"))
    assert seen[1][0] == "preview"
    with pytest.raises(SystemExit):
        ci.main(["apply", "production"])
    assert (
        subprocess.run(
            [sys.executable, "-m", "deploy.ci", "--help"],
            capture_output=True,
            check=False,
            cwd=Path(ci.__file__).resolve().parents[1],
        ).returncode
        == 0
    )
