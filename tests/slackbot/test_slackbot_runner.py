"""The Automation API runner: the parts that need no CLI, and a real run when a CLI exists."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from pulumi import automation as auto

from slackbot.operations import Operation
from slackbot.progress import ProgressTracker
from slackbot.runner import (
    OperationFailedError,
    PulumiStackRunner,
    RunnerError,
    RunRequest,
    _convert_outputs,
    _translated_errors,
    sdk_supports_plans,
)
from tests.harness import ROOT_DIR

PULUMI = shutil.which("pulumi")
SECRET = "integration-secret-value-42"


def test_secret_output_values_are_dropped_and_only_kept_for_masking():
    outputs, secrets = _convert_outputs(
        {
            "url": auto.OutputValue("http://airflow", secret=False),
            "conn": auto.OutputValue({"user": "airflow", "password": SECRET}, secret=True),
        }
    )

    assert [(o.name, o.value, o.secret) for o in outputs] == [
        ("conn", None, True),
        ("url", "http://airflow", False),
    ]
    assert SECRET in secrets


def test_a_failed_command_yields_our_message_and_the_cli_s_first_error_line():
    result = auto.CommandResult(
        stdout="Updating (production)\n",
        stderr="warning: slow\nerror: update failed\nerror: second\n",
        code=255,
    )
    with pytest.raises(OperationFailedError) as raised, _translated_errors("production"):
        raise auto.CommandError(result)

    assert str(raised.value) == "The Pulumi operation on `production` failed."
    assert raised.value.detail == "error: update failed"


def test_a_missing_stack_and_a_missing_cli_are_explained():
    result = auto.CommandResult(stdout="", stderr="no stack named 'x' found", code=255)
    with pytest.raises(RunnerError, match="does not exist"), _translated_errors("x"):
        raise auto.StackNotFoundError(result)
    with pytest.raises(RunnerError, match="CLI is not installed"), _translated_errors("x"):
        raise FileNotFoundError("pulumi")


def test_each_stack_runs_on_the_backend_make_uses(tmp_path, monkeypatch):
    """The bot reaches the same state as laptops and CI: eks stacks on the shared S3 + KMS
    backend of `state-backend.yaml`, the local stack on the project's file backend."""
    from deploy.bootstrap import BACKEND_FILE, StateBackend, render_backend_file

    monkeypatch.delenv("PULUMI_BACKEND_URL", raising=False)
    for stack in ("local", "production"):
        shutil.copy(ROOT_DIR / f"Pulumi.{stack}.yaml", tmp_path)
    runner = PulumiStackRunner(tmp_path)
    with pytest.raises(RunnerError, match="make bootstrap"):
        runner._backend_env("production")
    shared = StateBackend("acme-state", "eu-west-1", "alias/acme-pulumi")
    (tmp_path / BACKEND_FILE).write_text(render_backend_file(shared))
    env, provider = runner._backend_env("production")
    assert env["PULUMI_BACKEND_URL"] == "s3://acme-state?region=eu-west-1"
    assert provider == "awskms://alias/acme-pulumi?region=eu-west-1"
    env, provider = runner._backend_env("local")
    assert env["PULUMI_BACKEND_URL"] == (tmp_path / ".pulumi-state").resolve().as_uri()
    assert provider == "passphrase"


def test_the_installed_sdk_supports_update_plans():
    assert sdk_supports_plans()


def test_the_policy_pack_is_used_only_when_the_repository_has_one(tmp_path):
    runner = PulumiStackRunner(tmp_path)
    assert runner.policy_pack is None

    (tmp_path / "policy").mkdir()
    (tmp_path / "policy" / "PulumiPolicy.yaml").write_text("runtime: python\n")

    assert runner.policy_pack == tmp_path / "policy"


def test_the_fingerprint_covers_the_program_but_not_state_tests_or_the_audit_log(tmp_path):
    for relative in [
        "__main__.py",
        "components/db.py",
        "Pulumi.production.yaml",
        ".pulumi-state/x.json",
        "tests/test_x.py",
        "audit.jsonl",
    ]:
        path = tmp_path / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(relative)
    runner = PulumiStackRunner(tmp_path, fingerprint_ignores=(tmp_path / "audit.jsonl",))

    files = sorted(str(p.relative_to(tmp_path)) for p in runner._program_files())

    assert files == ["Pulumi.production.yaml", "__main__.py", "components/db.py"]


@pytest.mark.skipif(PULUMI is not None, reason="checks the behaviour without a pulumi CLI")
def test_without_a_cli_the_runner_says_so_instead_of_crashing(tmp_path):
    (tmp_path / "Pulumi.yaml").write_text("name: p\nruntime: yaml\n")
    runner = PulumiStackRunner(tmp_path)

    with pytest.raises(RunnerError, match="CLI is not installed"):
        runner.run(RunRequest("dev", Operation.PREVIEW), lambda _event: None)


TINY_PROGRAM = f"""\
name: slackbot-it
runtime: yaml
outputs:
  greeting: hello
  token:
    fn::secret: {SECRET}
"""


@pytest.mark.skipif(PULUMI is None, reason="no pulumi CLI on PATH; the real runner needs one")
def test_the_real_runner_drives_a_tiny_local_program(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE", "slackbot-test")
    monkeypatch.setenv("PULUMI_HOME", str(tmp_path / "home"))
    project = tmp_path / "project"
    project.mkdir()
    (project / "Pulumi.yaml").write_text(TINY_PROGRAM)
    backend = (tmp_path / "state").as_uri()
    (tmp_path / "state").mkdir()
    auto.create_stack(
        "dev",
        work_dir=str(project),
        opts=auto.LocalWorkspaceOptions(
            work_dir=str(project),
            env_vars={"PULUMI_BACKEND_URL": backend},
            secrets_provider="passphrase",
        ),
    )
    runner = PulumiStackRunner(project, backend_url=backend)

    preview_tracker = ProgressTracker()
    plan = tmp_path / "plan.json"
    preview = runner.run(
        RunRequest("dev", Operation.PREVIEW, save_plan=plan), preview_tracker.on_event
    )
    before = runner.fingerprint("dev")
    tracker = ProgressTracker()
    up = runner.run(RunRequest("dev", Operation.UP, use_plan=plan, message="it"), tracker.on_event)
    status = runner.status("dev")

    assert preview.changes.get("create") == 1
    assert preview_tracker.snapshot().summary_changes is not None
    assert tracker.snapshot().done.get("create") == 1
    outputs = {o.name: o for o in up.outputs}
    assert outputs["greeting"].value == "hello"
    assert outputs["token"].secret and outputs["token"].value is None
    assert SECRET in up.secret_values
    assert status.last_update is not None and status.last_update.result == "succeeded"
    assert runner.fingerprint("dev") != before
    refreshed = runner.run(RunRequest("dev", Operation.REFRESH), lambda _e: None)
    assert refreshed.changes.get("same", 0) >= 1
    runner.run(RunRequest("dev", Operation.DESTROY), lambda _e: None)
    assert runner.status("dev").outputs == ()


class _RecordingStack:
    """Stands in for `auto.Stack` where only the calls made matter."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, object]] = []

    def get_all_config(self):
        return {
            "airflow-platform:owner": auto.ConfigValue("data", secret=False),
            "airflow-platform:databasePassword": auto.ConfigValue(SECRET, secret=True),
        }

    def set_all_config(self, config):
        self.calls.append(
            ("set", sorted((key, value.value, value.secret) for key, value in config.items()))
        )

    def remove_all_config(self, keys):
        self.calls.append(("remove", sorted(keys)))

    def cancel(self):
        self.calls.append(("cancel", None))

    def preview(self, **kwargs):
        self.calls.append(("preview", kwargs))
        return auto.PreviewResult(stdout="", stderr="", change_summary={auto.OpType.UPDATE: 1})


def test_config_cancel_and_refresh_preview_go_through_the_automation_api(tmp_path, monkeypatch):
    runner = PulumiStackRunner(tmp_path)
    stack = _RecordingStack()
    monkeypatch.setattr(runner, "_select", lambda _name: stack)

    config = runner.config("integration")
    runner.set_config("integration", {"airflow-platform:airflow.gitSync.branch": "f", "k": None})
    runner.cancel("integration")
    result = runner.run(RunRequest("integration", Operation.PREVIEW, refresh=True), lambda _e: None)

    assert config["airflow-platform:databasePassword"].secret
    assert config["airflow-platform:databasePassword"].value == SECRET
    assert SECRET not in repr(config)
    assert stack.calls[:3] == [
        ("set", [("airflow-platform:airflow.gitSync.branch", "f", False)]),
        ("remove", ["k"]),
        ("cancel", None),
    ]
    kind, kwargs = stack.calls[3]
    assert kind == "preview" and isinstance(kwargs, dict) and kwargs["refresh"] is True
    assert result.changes == {"update": 1}
