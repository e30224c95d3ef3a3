"""`python -m deploy` (the Makefile's verbs): what it runs, with which backend, and what it refuses.

The Pulumi CLI is not installed here, so the commands run against a stand-in `pulumi`
on PATH that keeps the one behaviour these tests rely on, as the real CLI has it:
`pulumi stack select NAME` fails when the backend has no such stack, and `stack init`
creates it (pulumi/pulumi `pkg/cmd/pulumi/stack`). What is asserted is our side:
the backend every command gets, the refusal to create an eks stack implicitly, the
policy pack on `preview`/`up`.
"""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path
from typing import Any

import pytest

from deploy import cli
from deploy.bootstrap import BACKEND_FILE
from tests.deploy.test_backend import SHARED
from tests.harness import ROOT_DIR

FAKE_PULUMI = """#!{python}
import json, os, sys
log, stacks = os.environ["FAKE_PULUMI_LOG"], os.environ["FAKE_PULUMI_STACKS"]
known = set(open(stacks).read().split()) if os.path.exists(stacks) else set()
args = sys.argv[1:]
with open(log, "a") as f:
    f.write(json.dumps({{"args": args, "backend": os.environ.get("PULUMI_BACKEND_URL")}}) + "\\n")
if args[:2] == ["stack", "select"]:
    sys.exit(0 if args[2] in known else 1)
if args[:2] == ["stack", "init"]:
    if args[2] in known:
        sys.exit(1)
    with open(stacks, "a") as f:
        f.write(args[2] + "\\n")
if args[:2] == ["stack", "output"]:
    print(os.environ.get("FAKE_PULUMI_OUTPUTS", "{{}}"))
"""


@pytest.fixture
def fake_pulumi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    exe = bin_dir / "pulumi"
    exe.write_text(FAKE_PULUMI.format(python=sys.executable))
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    log = tmp_path / "pulumi.log"
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_PULUMI_LOG", str(log))
    monkeypatch.setenv("FAKE_PULUMI_STACKS", str(tmp_path / "stacks"))
    monkeypatch.delenv("PULUMI_BACKEND_URL", raising=False)
    return log


def calls(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def test_an_eks_stack_is_never_created_implicitly(project: Path, fake_pulumi: Path) -> None:
    ctx = cli.load("production", project)
    with pytest.raises(cli.DeployError) as err:
        cli.select_stack(ctx)
    message = str(err.value)
    assert "does not exist in s3://" in message and "make init STACK=production" in message
    assert [c["args"][:2] for c in calls(fake_pulumi)] == [["stack", "select"]]


def test_make_init_creates_it_once_with_the_kms_provider(project: Path, fake_pulumi: Path) -> None:
    ctx = cli.load("production", project)
    print(cli.init_stack(ctx))
    init = calls(fake_pulumi)[-1]
    assert init["args"] == [
        "stack",
        "init",
        "production",
        "--secrets-provider",
        SHARED.secrets_provider,
    ]
    assert init["backend"] == SHARED.backend_url
    cli.select_stack(ctx)  # exists now
    with pytest.raises(cli.DeployError, match="already exists"):
        cli.init_stack(ctx)


def test_the_local_stack_is_created_on_first_use(project: Path, fake_pulumi: Path) -> None:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("PULUMI_CONFIG")}
    ctx = cli.load("local", project, environ=environ)
    cli.select_stack(ctx)
    select, init = calls(fake_pulumi)
    assert init["args"] == ["stack", "init", "local", "--secrets-provider", "passphrase"]
    assert select["backend"] == init["backend"] == (project / ".pulumi-state").resolve().as_uri()
    assert Path(ctx.env["PULUMI_CONFIG_PASSPHRASE_FILE"]).is_file()


def test_a_bad_stack_file_stops_before_pulumi_runs(project: Path, fake_pulumi: Path) -> None:
    path = project / "Pulumi.integration.yaml"
    path.write_text(path.read_text() + "  airflow-platform:cluster.version: '1.99'\n")
    with pytest.raises(cli.DeployError, match=r"cluster\.version"):
        cli.load("integration", project)
    assert calls(fake_pulumi) == []


def test_an_eks_stack_without_bootstrap_is_refused(project: Path, fake_pulumi: Path) -> None:
    (project / BACKEND_FILE).unlink()
    with pytest.raises(cli.DeployError, match="make bootstrap"):
        cli.load("production", project)


@pytest.mark.parametrize(
    ("verb", "gated"), [("preview", True), ("up", True), ("refresh", False), ("destroy", False)]
)
def test_preview_and_up_apply_the_policy_pack(verb: str, gated: bool) -> None:
    argv = cli.pulumi_argv(verb, "production", ["--diff"], ROOT_DIR)
    assert argv[:4] == ["pulumi", verb, "--stack", "production"] and "--diff" in argv
    assert ("--policy-pack" in argv) is gated
    if gated:
        pack = Path(argv[argv.index("--policy-pack") + 1])
        assert (pack / "PulumiPolicy.yaml").is_file()


def test_make_pulumi_runs_any_command_on_the_selected_stack(
    project: Path, fake_pulumi: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_load = cli.load
    monkeypatch.setattr(cli, "load", lambda stack: real_load(stack, project))
    (fake_pulumi.parent / "stacks").write_text("production\n")
    assert cli.main(["pulumi", "production", "stack", "output", "ui_command"]) == 0
    select, output = calls(fake_pulumi)
    assert select["args"] == ["stack", "select", "production"]
    assert output["args"] == ["stack", "output", "ui_command"]
    assert select["backend"] == output["backend"] == SHARED.backend_url


def test_make_ui_prints_url_user_and_password(project: Path, fake_pulumi: Path) -> None:
    ctx = cli.load("production", project)
    outputs = {
        "ui_url": None,
        "ui_command": "kubectl --namespace airflow port-forward svc/airflow-api-server 8080:8080",
        "cluster_name": "airflow-platform-production",
        "admin_username": "admin",
        "admin_password": "s3cret-from-state",
    }
    lines = cli.ui_lines(ctx, outputs)
    text = "\n".join(lines)
    assert "aws eks update-kubeconfig --region eu-west-1 --name airflow-platform-production" in text
    assert "port-forward svc/airflow-api-server 8080:8080" in text
    assert "user:     admin" in text and "password: s3cret-from-state" in text
    local = cli.load("local", project, environ={})
    assert "kubectl config use-context minikube" in "\n".join(cli.ui_lines(local, outputs))


def test_minikube_docker_env_is_parsed() -> None:
    text = (
        'export DOCKER_TLS_VERIFY="1"\nexport DOCKER_HOST="tcp://192.168.49.2:2376"\n'
        'export DOCKER_CERT_PATH="/home/u/.minikube/certs"\n'
        "# To point your shell to minikube's docker-daemon, run:\n"
    )
    assert cli.parse_docker_env(text) == {
        "DOCKER_TLS_VERIFY": "1",
        "DOCKER_HOST": "tcp://192.168.49.2:2376",
        "DOCKER_CERT_PATH": "/home/u/.minikube/certs",
    }


def test_the_local_image_matches_the_minikube_node(project: Path) -> None:
    """An arm64 laptop runs an arm64 minikube: the image is built for the node's architecture."""
    settings = cli.load("local", project, environ={}).settings
    assert cli.platform_problem(settings, "arm64", "arm64") is None
    assert cli.platform_problem(settings, "amd64", "x86_64") is None
    problem = cli.platform_problem(settings, "arm64", "x86_64")
    assert problem and "registry.platform: linux/arm64" in problem
