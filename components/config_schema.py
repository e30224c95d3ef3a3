"""The stack config keys, derived from the settings model.

`Pulumi.yaml` declares exactly these keys and the README's table lists them;
tests compare both against this, so they never drift from the model.
"""

from __future__ import annotations

import types
import typing
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from components.settings import SECRET_KEYS, Settings

NOT_CONFIG = {"stack", "secrets_set", "connection_ids", "variable_keys"}


@dataclass(frozen=True)
class ConfigKey:
    name: str
    type: str
    description: str
    secret: bool = False

    def declaration(self) -> dict[str, Any]:
        """This key as a `Pulumi.yaml` config declaration."""
        decl: dict[str, Any] = {"type": self.type, "description": self.description}
        if self.type == "array":
            decl["items"] = {"type": "string"}
        if self.secret:
            decl["secret"] = True
        return decl


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
            keys.append(ConfigKey(name, _pulumi_type(info.annotation), info.description or ""))
    return keys


def config_keys() -> list[ConfigKey]:
    """Every key a stack file may set, plain ones first, then the secrets."""
    plain = _walk(Settings, "")
    secret = [ConfigKey(k, "string", d, secret=True) for k, d in SECRET_KEYS.items()]
    return plain + secret


def readme_table() -> str:
    """The README's config reference table."""
    rows = ["| key | type | secret | description |", "|---|---|---|---|"]
    for key in config_keys():
        rows.append(
            f"| `{key.name}` | {key.type} | {'yes' if key.secret else ''} | {key.description} |"
        )
    return "\n".join(rows)


def pulumi_yaml() -> dict[str, Any]:
    """The project file: name, runtime and every config key declared."""
    return {
        "name": "airflow-platform",
        "description": (
            "Apache Airflow on AWS EKS or minikube: network, database, registry, cluster"
            " and the official Airflow chart."
        ),
        "runtime": {"name": "python", "options": {"toolchain": "pip", "virtualenv": ".venv"}},
        "config": {k.name: k.declaration() for k in config_keys()},
    }


PULUMI_YAML_HEADER = (
    "# Generated from components/settings.py (python -m components.config_schema --pulumi-yaml);\n"
    "# tests/test_config_reference.py fails when the two drift apart.\n"
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
