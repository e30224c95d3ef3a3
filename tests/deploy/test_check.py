"""`make check STACK=x`: the stack file validated offline, every problem at once, in seconds."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from deploy.check import check_stack
from tests.harness import ROOT_DIR, SITE_SECRETS, SITE_VALUES, STACKS


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of the project's config files to edit."""
    for path in ROOT_DIR.glob("Pulumi*.yaml"):
        shutil.copy(path, tmp_path / path.name)
    return tmp_path


def complete_eks_stacks(project: Path) -> None:
    """What a team adds before its first deploy (README, First production deploy)."""
    for stack in ("integration", "production"):
        path = project / f"Pulumi.{stack}.yaml"
        doc = yaml.safe_load(path.read_text())
        secrets = {key: {"secure": "v1:c2l0ZQ==:ZW5jcnlwdGVk"} for key in SITE_SECRETS}
        doc["config"] = {**doc["config"], **SITE_VALUES, **secrets}
        path.write_text(yaml.safe_dump(doc, sort_keys=False))


def test_committed_local_stack_is_ready(project: Path) -> None:
    result = check_stack(project, "local")
    assert result.ok, result.problems
    assert result.settings is not None and result.settings.airflow.dags_source == "hostPath"


@pytest.mark.parametrize("stack", ["integration", "production"])
def test_committed_eks_stacks_say_exactly_what_the_team_must_add(project: Path, stack: str) -> None:
    """No placeholder allow-list: the committed file fails until the team names its ranges."""
    result = check_stack(project, stack)
    keys = [p.split(": ")[1] for p in result.problems]
    pages = ["airflow-platform:alertsSlackWebhookUrl"] if stack == "production" else []
    assert keys == [*pages, "airflow-platform:cluster.publicAccessCidrs"]
    assert "egress" in result.problems[-1]
    complete_eks_stacks(project)
    assert check_stack(project, stack).ok


def test_all_problems_at_once_with_file_and_key(project: Path) -> None:
    path = project / "Pulumi.production.yaml"
    doc = yaml.safe_load(path.read_text())
    doc["config"].update(
        {
            **SITE_VALUES,
            **{key: {"secure": "v1:c2l0ZQ==:ZW5jcnlwdGVk"} for key in SITE_SECRETS},
            "airflow-platform:aws.region": "xx-nowhere-9",
            "airflow-platform:cluster.instanceTypes": ["m6i.enormous"],
            "airflow-platform:database.instanceClass": "db.m6g.enormous",
            "airflow-platform:cluster.version": "1.99",
            "airflow-platform:cluster.spot": True,
        }
    )
    path.write_text(yaml.safe_dump(doc))
    problems = check_stack(project, "production").problems
    keys = {p.split(": ")[1].removeprefix("airflow-platform:") for p in problems}
    assert keys == {
        "aws.region",
        "cluster.instanceTypes",
        "database.instanceClass",
        "cluster.version",
        "cluster.spot",
    }
    assert all(p.startswith("Pulumi.production.yaml: airflow-platform:") for p in problems)
    assert any("did you mean 'm6i." in p for p in problems)
    assert any("did you mean 'db.m6g." in p for p in problems)


def test_cli_type_rule_is_part_of_the_check(project: Path) -> None:
    path = project / "Pulumi.local.yaml"
    path.write_text(path.read_text() + "  airflow-platform:airflow.helmTimeoutSeconds: soon\n")
    (problem,) = check_stack(project, "local").problems
    assert "airflow.helmTimeoutSeconds" in problem and "declared type integer" in problem


def test_a_yaml_syntax_error_names_the_file_and_line(project: Path) -> None:
    path = project / "Pulumi.integration.yaml"
    lines = path.read_text().splitlines()
    at = next(i for i, line in enumerate(lines) if "aws.region" in line)
    lines[at] = "  airflow-platform:aws.region: [eu-west-1"
    path.write_text("\n".join(lines) + "\n")
    (problem,) = check_stack(project, "integration").problems
    assert problem.startswith("Pulumi.integration.yaml:")
    line_no = int(problem.split(":")[1])
    assert at + 1 <= line_no <= at + 2, problem
    assert "YAML syntax error" in problem


def test_an_unknown_stack_is_named(project: Path) -> None:
    (problem,) = check_stack(project, "prod").problems
    assert "no stack file Pulumi.prod.yaml" in problem and "production" in problem


def test_make_check_runs_offline_in_seconds() -> None:
    """The real command, as the README gives it, without the Pulumi CLI: < 5 s per stack."""
    for stack in STACKS:
        started = time.monotonic()
        proc = subprocess.run(
            [sys.executable, "-m", "deploy", "check", stack],
            cwd=ROOT_DIR,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        elapsed = time.monotonic() - started
        print(f"\nmake check STACK={stack}: exit {proc.returncode} in {elapsed:.2f} s")
        assert elapsed < 5
        assert "Traceback" not in proc.stderr + proc.stdout
        if stack == "local":
            assert proc.returncode == 0, proc.stdout
        else:
            assert proc.returncode == 1 and "cluster.publicAccessCidrs" in proc.stdout
