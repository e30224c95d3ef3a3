"""The stack config keys, derived from the settings model.

`Pulumi.yaml` declares a key only where the Pulumi CLI's rules allow it without
getting in the way (see `declared`), and the README's table lists every key with
its defaults per target; tests compare both against this, so they never drift
from the model.
"""

from __future__ import annotations

import types
import typing
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from components.settings import (
    EKS_ONLY,
    MINIKUBE_ONLY,
    PROJECT,
    SECRET_KEYS,
    Settings,
    Target,
    _defaults,
)

NOT_CONFIG = {"stack", "secrets_set", "connection_ids", "variable_keys"}
REQUIRED = {"target"}
"""Keys every stack file must set: declared without a default, so the CLI insists too."""
REQUIRED_ON_EKS = {"aws.region"}
"""Keys every eks stack file must set (the settings model insists)."""
DYNAMIC_DEFAULTS = {"environment": "the stack name"}
"""Keys whose default is computed by the program; the CLI cannot know it."""
TARGETS: tuple[tuple[str, Target, str], ...] = (
    ("minikube", Target.MINIKUBE, "local"),
    ("eks", Target.EKS, "integration"),
    ("eks production", Target.EKS, "production"),
)
"""The three default profiles: (label, target, environment)."""


@dataclass(frozen=True)
class ConfigKey:
    name: str
    type: str
    description: str
    secret: bool = False
    default: Any = None
    """The model's own default (None for secrets and required keys)."""

    @property
    def targets(self) -> tuple[Target, ...]:
        """The targets on which a stack may set this key."""
        if _under(self.name, EKS_ONLY):
            return (Target.EKS,)
        if _under(self.name, MINIKUBE_ONLY):
            return (Target.MINIKUBE,)
        return (Target.MINIKUBE, Target.EKS)

    def default_for(self, target: Target, environment: str) -> Any:
        """The value a stack of this target and environment gets when it does not set the key."""
        node: Any = _defaults(target, environment)
        for part in self.name.split("."):
            if not isinstance(node, dict) or part not in node:
                return self.default
            node = node[part]
        return node

    @property
    def declared(self) -> bool:
        """Whether `Pulumi.yaml` declares this key.

        The CLI requires every declared key without a default on every stack, and
        hands a declared default to the program as if the stack had set it. So a
        key is declared only when it is required everywhere (`target`) or has one
        default on every target; secrets are never declared, because a declared
        secret must be set, encrypted, on every stack.
        """
        if self.secret or self.name in DYNAMIC_DEFAULTS:
            return False
        if self.name in REQUIRED:
            return True
        if self.targets != (Target.MINIKUBE, Target.EKS) or self.default is None:
            return False
        if isinstance(self.default, list):
            return False
        return all(self.default_for(t, env) == self.default for _, t, env in TARGETS)

    def declaration(self) -> dict[str, Any]:
        """This key as a `Pulumi.yaml` config declaration."""
        decl: dict[str, Any] = {"type": self.type, "description": self.description}
        if self.type == "array":
            decl["items"] = {"type": "string"}
        if self.name not in REQUIRED:
            decl["default"] = self.default
        return decl

    def default_text(self) -> str:
        """The defaults per target, for the README."""
        if self.secret:
            return "generated" if "generated" in self.description else "none"
        if self.name in DYNAMIC_DEFAULTS:
            return DYNAMIC_DEFAULTS[self.name]
        if self.name in REQUIRED:
            return "required"
        if self.name in REQUIRED_ON_EKS:
            return "required (eks only)"
        shown: dict[str, list[str]] = {}
        for label, target, env in TARGETS:
            if target in self.targets:
                shown.setdefault(_show(self.default_for(target, env)), []).append(label)
        if len(shown) == 1:
            (only,) = shown
            return only if len(self.targets) == 2 else f"{only} ({self.targets[0]} only)"
        return "; ".join(f"{_labels(labels)}: {value}" for value, labels in shown.items())


def _labels(labels: list[str]) -> str:
    if labels[-2:] == ["eks", "eks production"]:
        labels = [*labels[:-2], "eks"]
    return " and ".join(labels)


def _under(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(f"{p}.") for p in prefixes)


def _show(value: Any) -> str:
    if value is None or value == "" or value == []:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ", ".join(f"`{v}`" for v in value)
    return f"`{value}`"


def _model_of(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        for arg in typing.get_args(annotation):
            model = _model_of(arg)
            if model is not None:
                return model
    return None


def _pulumi_type(annotation: Any) -> str:
    origin = typing.get_origin(annotation) or annotation
    if origin is bool:
        return "boolean"
    if origin is int:
        return "integer"
    if origin is list:
        return "array"
    return "string"


def _plain_default(info: Any) -> Any:
    if info.default is not PydanticUndefined:
        value = info.default
    elif info.default_factory is not None:
        value = info.default_factory()
    else:
        return None
    if isinstance(value, list):
        return [str(v) for v in value]
    if isinstance(value, bool | int):
        return value
    return None if value is None else str(value)


def _walk(model: type[BaseModel], prefix: str) -> list[ConfigKey]:
    keys: list[ConfigKey] = []
    for field_name, info in model.model_fields.items():
        if field_name in NOT_CONFIG:
            continue
        alias = info.alias or field_name
        name = f"{prefix}{alias}"
        sub = _model_of(info.annotation)
        if sub is not None:
            keys += _walk(sub, f"{name}.")
        else:
            keys.append(
                ConfigKey(
                    name,
                    _pulumi_type(info.annotation),
                    info.description or "",
                    default=_plain_default(info),
                )
            )
    return keys


def config_keys() -> list[ConfigKey]:
    """Every key a stack file may set, plain ones first, then the secrets."""
    plain = _walk(Settings, "")
    secret = [ConfigKey(k, "string", d, secret=True) for k, d in SECRET_KEYS.items()]
    return plain + secret


def readme_table() -> str:
    """The README's config reference table."""
    rows = [
        "| key | type | default | secret | description |",
        "|---|---|---|---|---|",
    ]
    for key in config_keys():
        rows.append(
            f"| `{key.name}` | {key.type} | {key.default_text()} |"
            f" {'yes' if key.secret else ''} | {key.description} |"
        )
    return "\n".join(rows)


def pulumi_yaml() -> dict[str, Any]:
    """The project file: name, runtime and the keys the CLI can check for us."""
    return {
        "name": PROJECT,
        "description": (
            "Apache Airflow on AWS EKS or minikube: network, database, registry, cluster"
            " and the official Airflow chart."
        ),
        "runtime": {"name": "python", "options": {"toolchain": "pip", "virtualenv": ".venv"}},
        "config": {k.name: k.declaration() for k in config_keys() if k.declared},
    }


PULUMI_YAML_HEADER = (
    "# Generated from components/settings.py (python -m components.config_schema --pulumi-yaml);\n"
    "# tests/test_config_reference.py fails when the two drift apart.\n"
    "# Declared here: keys with one default on every target (the CLI type-checks them and shows\n"
    "# their defaults) and `target`, required on every stack. Keys whose default depends on the\n"
    "# target, and secrets, are not declared: the CLI would require them on every stack. The\n"
    "# README's table lists every key; `make check STACK=<stack>` validates a stack file offline.\n"
)


if __name__ == "__main__":
    import sys

    import yaml

    if "--pulumi-yaml" in sys.argv:
        with open("Pulumi.yaml", "w") as f:
            f.write(PULUMI_YAML_HEADER)
            yaml.safe_dump(pulumi_yaml(), f, sort_keys=False, width=100)
    else:
        print(readme_table())
