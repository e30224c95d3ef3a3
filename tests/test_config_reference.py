"""Pulumi.yaml and the README's config table match the settings model."""

from __future__ import annotations

import yaml

from components.config_schema import config_keys, pulumi_yaml, readme_table
from tests.harness import ROOT_DIR, STACKS, stack_config


def test_pulumi_yaml_declares_every_key_with_type_and_description() -> None:
    declared = yaml.safe_load((ROOT_DIR / "Pulumi.yaml").read_text())
    assert declared == pulumi_yaml()
    for name, decl in declared["config"].items():
        assert decl["type"] in {"string", "integer", "boolean", "array"}, name
        assert decl["description"], name


def test_readme_carries_the_config_table() -> None:
    readme = (ROOT_DIR / "README.md").read_text()
    assert readme_table() in readme
    for key in config_keys():
        assert f"| `{key.name}` |" in readme


def test_stack_files_only_use_declared_keys() -> None:
    names = {k.name for k in config_keys()}
    for stack in STACKS:
        config, _ = stack_config(stack)
        project_keys = {k.split(":", 1)[1] for k in config if k.startswith("airflow-platform:")}
        assert project_keys <= names, project_keys - names
