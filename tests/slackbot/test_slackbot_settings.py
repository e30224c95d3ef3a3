"""Start-up configuration from the environment; missing values are named."""

from __future__ import annotations

from pathlib import Path

import pytest

from slackbot.__main__ import main
from slackbot.settings import SettingsError, load_settings
from slackbot.stacks import discover_stacks


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "Pulumi.yaml").write_text("name: p\nruntime: python\n", encoding="utf-8")
    for stack in ("local", "integration", "production"):
        (tmp_path / f"Pulumi.{stack}.yaml").write_text("config: {}\n", encoding="utf-8")
    return tmp_path


def env(project: Path, **overrides: str) -> dict[str, str]:
    base = {
        "SLACK_BOT_TOKEN": "xoxb-1",
        "SLACK_SIGNING_SECRET": "signing",
        "SLACKBOT_ACCESS_FILE": str(project / "access.yaml"),
        "SLACKBOT_AUDIT_LOG": str(project / "audit.jsonl"),
        "SLACKBOT_PROJECT_DIR": str(project),
    }
    base.update(overrides)
    return {key: value for key, value in base.items() if value}


@pytest.mark.parametrize(
    "missing",
    ["SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "SLACKBOT_ACCESS_FILE", "SLACKBOT_AUDIT_LOG"],
)
def test_a_missing_variable_is_named(project, missing):
    with pytest.raises(SettingsError, match=f"^{missing} is not set"):
        load_settings(env(project, **{missing: ""}))


def test_http_mode_defaults(project):
    settings = load_settings(env(project))

    assert settings.port == 3000
    assert not settings.socket_mode
    assert settings.backend_url is None
    assert "xoxb-1" not in repr(settings)


def test_socket_mode_needs_no_signing_secret(project):
    settings = load_settings(env(project, SLACK_SIGNING_SECRET="", SLACK_APP_TOKEN="xapp-1"))

    assert settings.socket_mode


def test_port_and_backend_come_from_the_environment(project):
    settings = load_settings(env(project, PORT="8080", PULUMI_BACKEND_URL="s3://state"))

    assert (settings.port, settings.backend_url) == (8080, "s3://state")
    with pytest.raises(SettingsError, match="PORT must be a number"):
        load_settings(env(project, PORT="http"))


def test_a_project_dir_without_pulumi_yaml_is_refused(tmp_path):
    with pytest.raises(SettingsError, match="SLACKBOT_PROJECT_DIR"):
        load_settings(env(tmp_path))


def test_stacks_are_the_stack_files_in_the_project(project):
    (project / "Pulumi.README.md").write_text("not a stack", encoding="utf-8")

    assert discover_stacks(project) == ["integration", "local", "production"]


def test_main_exits_with_a_clear_error_naming_the_variable(project, capsys):
    code = main(env(project, SLACK_BOT_TOKEN=""))

    assert code == 2
    assert "SLACK_BOT_TOKEN is not set" in capsys.readouterr().err


def test_main_reports_an_invalid_access_file(project, capsys):
    (project / "access.yaml").write_text("stacks: {local: {allow: [{users: []}]}}\n")

    code = main(env(project))

    assert code == 2
    assert "stacks.local.allow.0.users" in capsys.readouterr().err


def test_state_dir_and_time_outs(project):
    defaults = load_settings(env(project))
    assert defaults.state_dir == project / "state"
    assert (defaults.operation_timeout, defaults.cancel_grace) == (7200.0, 120.0)

    custom = load_settings(
        env(
            project,
            SLACKBOT_STATE_DIR=str(project / "elsewhere"),
            SLACKBOT_OPERATION_TIMEOUT_SECONDS="600",
            SLACKBOT_CANCEL_GRACE_SECONDS="30",
        )
    )
    assert custom.state_dir == project / "elsewhere"
    assert (custom.operation_timeout, custom.cancel_grace) == (600.0, 30.0)
    with pytest.raises(SettingsError, match="SLACKBOT_OPERATION_TIMEOUT_SECONDS"):
        load_settings(env(project, SLACKBOT_OPERATION_TIMEOUT_SECONDS="soon"))
