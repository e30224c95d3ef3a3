"""The Pulumi CLI accepts `Pulumi.yaml` and every `Pulumi.<stack>.yaml` as committed.

The rules are the CLI's own (pulumi/pulumi `sdk/go/common/workspace`: `project.json`,
`Project.Validate` and `ValidateConfigValue` in `project.go`, `mergeConfig` and
`validateStackConfigValue` in `config.go`), applied by `deploy.project_config`. The
first tests run them over the repository's files; the rest show each rule really
fires, so a passing run is evidence and not an empty check.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from components.config_schema import config_keys
from components.settings import PROJECT, RawConfig, parse_settings
from deploy.project_config import (
    declaration_problems,
    load_yaml_file,
    merged_config,
    stack_problems,
    stack_values,
)
from tests.harness import ROOT_DIR, SITE_SECRETS, SITE_VALUES, STACKS, stack_config

PROJECT_FILE = ROOT_DIR / "Pulumi.yaml"


def project() -> dict[str, Any]:
    doc: dict[str, Any] = load_yaml_file(PROJECT_FILE)
    return doc


def stack_doc(stack: str) -> dict[str, Any]:
    doc: dict[str, Any] = load_yaml_file(ROOT_DIR / f"Pulumi.{stack}.yaml")
    return doc


def test_project_file_passes_the_cli_declaration_rules() -> None:
    """project.json + `Project.Validate`: types, items, defaults of the declared type."""
    assert declaration_problems(project()) == []


@pytest.mark.parametrize("stack", STACKS)
def test_every_committed_stack_file_passes_the_cli_rules(stack: str) -> None:
    """`mergeConfig` (no declared key missing) and `validateStackConfigValue` (secret, type)."""
    assert stack_problems(project(), stack, stack_doc(stack)) == []


def test_no_declared_key_is_required_but_target() -> None:
    """A declared key without a default is required on every stack (`mergeConfig`)."""
    required = [k for k, d in project()["config"].items() if "default" not in d]
    assert required == ["target"]


def test_no_secret_is_declared() -> None:
    """A declared secret must be `secure:` on every stack, so an optional secret is not declared."""
    assert [k for k, d in project()["config"].items() if d.get("secret")] == []


@pytest.mark.parametrize("stack", STACKS)
def test_declared_defaults_change_nothing_the_program_decides(stack: str) -> None:
    """The CLI hands declared defaults to the program as if set: the settings must not differ."""
    only_stack = {
        k.split(":", 1)[1]: v.as_program_value()
        for k, v in stack_values(_with_site(stack)).items()
        if not v.secure
    }
    merged = {
        k.split(":", 1)[1]: v.as_program_value()
        for k, v in merged_config(project(), _with_site(stack)).items()
        if not v.secure
    }
    assert set(merged) > set(only_stack), "Pulumi.yaml declares defaults"
    site_secrets = {k.split(":", 1)[1]: "https://hooks.example/x" for k in SITE_SECRETS}
    if stack == "local":
        site_secrets = {}
    a = parse_settings(RawConfig(stack, {**only_stack, **site_secrets}, frozenset(site_secrets)))
    b = parse_settings(RawConfig(stack, {**merged, **site_secrets}, frozenset(site_secrets)))
    assert a == b


def _with_site(stack: str) -> dict[str, Any]:
    """The stack file as a team completes it (the harness's SITE_VALUES on eks stacks)."""
    doc = stack_doc(stack)
    config = doc.get("config") or {}
    if config.get(f"{PROJECT}:target") == "eks":
        config = {**SITE_VALUES, **config}
    return {**doc, "config": config}


def test_the_harness_hands_the_program_what_the_cli_would() -> None:
    """Declared defaults reach the program under the mock engine just as under the CLI."""
    config, _ = stack_config("local")
    assert config[f"{PROJECT}:database.engineVersion"] == "16"
    assert config[f"{PROJECT}:airflow.helmTimeoutSeconds"] == "900"
    assert f"{PROJECT}:airflow.helmTimeoutSeconds" not in stack_doc("local")["config"]


# --- each rule fires -------------------------------------------------------------------


def test_every_typed_key_without_default_is_missing_from_stacks_that_lack_it() -> None:
    """How every stack failed before: all keys declared typed, without defaults."""
    old = {
        "name": PROJECT,
        "runtime": "python",
        "config": {
            k.name: {"type": k.type, **({"items": {"type": "string"}} if k.type == "array" else {})}
            for k in config_keys()
        },
    }
    problems = stack_problems(old, "local", stack_doc("local"))
    missing = [p for p in problems if "is missing configuration value" in p]
    assert len(missing) > 40
    assert any("'aws.region'" in p for p in missing)


def test_a_secret_declared_key_must_be_encrypted() -> None:
    proj = {"name": "p", "config": {"token": {"type": "string", "secret": True}}}
    assert stack_problems(proj, "s", {"config": {"p:token": {"secure": "v1:abc"}}}) == []
    (problem,) = stack_problems(proj, "s", {"config": {"p:token": "plain"}})
    assert "must be encrypted" in problem or "requires it encrypted" in problem
    (problem,) = stack_problems(proj, "s", {"config": {}})
    assert "missing configuration value 'token'" in problem


@pytest.mark.parametrize(
    ("type_", "items", "value", "ok"),
    [
        ("integer", None, 3, True),
        ("integer", None, "3", True),
        ("integer", None, "three", False),
        ("boolean", None, True, True),
        ("boolean", None, "false", True),
        ("boolean", None, "maybe", False),
        ("string", None, "eu-west-1", True),
        ("string", None, ["a"], False),
        ("array", {"type": "string"}, ["10.0.0.0/16"], True),
        ("array", {"type": "string"}, "10.0.0.0/16", False),
        ("array", {"type": "integer"}, [1, "x"], False),
    ],
)
def test_a_set_value_must_match_its_declared_type(
    type_: str, items: dict[str, str] | None, value: Any, ok: bool
) -> None:
    decl: dict[str, Any] = {"type": type_, "default": None}
    if items:
        decl["items"] = items
    proj = {"name": "p", "config": {"k": decl}}
    problems = stack_problems(proj, "s", {"config": {"p:k": value}})
    assert (problems == []) is ok, problems


def test_yes_is_text_not_a_boolean(tmp_path: Path) -> None:
    """The CLI's YAML parser (yaml.v3) reads `yes` as a string, so a boolean key refuses it."""
    text = (ROOT_DIR / "Pulumi.local.yaml").read_text()
    scratch = tmp_path / "Pulumi.local.yaml"
    scratch.write_text(text + f"  {PROJECT}:airflow.ingress.enabled: yes\n")
    doc = load_yaml_file(scratch)
    problems = stack_problems(project(), "local", doc)
    assert problems and "airflow.ingress.enabled" in problems[0]


@pytest.mark.parametrize(
    ("decl", "fragment"),
    [
        ({"type": "array"}, "declares its `items`"),
        ({"type": "list", "items": {"type": "string"}}, "`type` must be one of"),
        ({"type": "integer", "default": "many"}, "is not a integer"),
        ({"type": "string", "value": "x"}, "a declaration has only"),
        ({"description": "no type"}, "`type` must be one of"),
    ],
)
def test_declarations_the_cli_refuses(decl: dict[str, Any], fragment: str) -> None:
    problems = declaration_problems({"name": "p", "config": {"k": decl}})
    assert any(fragment in p for p in problems), problems
