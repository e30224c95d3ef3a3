"""Start-up configuration from the environment; missing values are named."""

from __future__ import annotations

from pathlib import Path

import pytest

from slackbot.__main__ import main
from slackbot.settings import SettingsError, alertmanager_variable, load_settings
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


def test_each_stack_may_name_its_alertmanager(project):
    settings = load_settings(
        env(
            project,
            SLACKBOT_ALERTMANAGER_URL_PRODUCTION="http://alertmanager.monitoring.svc:9093/",
            SLACKBOT_ALERTMANAGER_URL_INTEGRATION="https://am.internal.example/integration",
            SLACKBOT_ALERTMANAGER_TIMEOUT_SECONDS="1.5",
        )
    )

    assert settings.alertmanagers(discover_stacks(project)) == {
        "integration": "https://am.internal.example/integration",
        "production": "http://alertmanager.monitoring.svc:9093",
    }
    assert settings.alerts_timeout == 1.5
    assert load_settings(env(project)).alertmanagers(["production"]) == {}
    assert load_settings(env(project)).alerts_timeout == 3.0


def test_the_pipeline_check_interval_is_in_minutes_and_zero_turns_it_off(project):
    assert load_settings(env(project)).pipeline_check_minutes == 5.0
    every = load_settings(env(project, SLACKBOT_PIPELINE_CHECK_MINUTES="15"))
    assert every.pipeline_check_minutes == 15.0
    off = load_settings(env(project, SLACKBOT_PIPELINE_CHECK_MINUTES="0"))
    assert off.pipeline_check_minutes == 0.0


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("often", "must be a number, got 'often'"),
        ("-5", "must be between 0 and 1440"),
        ("2000", "must be between 0 and 1440"),
        ("nan", "must be between 0 and 1440"),
        ("0.5", "must be 0 \\(off\\) or at least 1 minute"),
    ],
)
def test_a_bad_pipeline_check_interval_is_named(project, value, problem):
    with pytest.raises(SettingsError, match=f"^SLACKBOT_PIPELINE_CHECK_MINUTES {problem}"):
        load_settings(env(project, SLACKBOT_PIPELINE_CHECK_MINUTES=value))


def test_a_stack_name_becomes_a_variable_name():
    assert alertmanager_variable("production") == "SLACKBOT_ALERTMANAGER_URL_PRODUCTION"
    assert alertmanager_variable("eu-prod.2") == "SLACKBOT_ALERTMANAGER_URL_EU_PROD_2"


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("alertmanager:9093", "must be an http:// or https:// URL"),
        ("ftp://am:21", "must be an http:// or https:// URL"),
        ("http://admin:hunter2@am:9093", "must not carry credentials"),
        ("http://am:9093/?x=1", "no query or fragment"),
        ("http://am:99999", "invalid port"),
    ],
)
def test_an_unusable_alertmanager_url_is_named_without_echoing_it(project, url, problem):
    with pytest.raises(SettingsError, match=problem) as raised:
        load_settings(env(project, SLACKBOT_ALERTMANAGER_URL_LOCAL=url))

    assert str(raised.value).startswith("SLACKBOT_ALERTMANAGER_URL_LOCAL ")
    assert "hunter2" not in str(raised.value)
