"""The Pulumi CLI's rules for project and stack config, applied offline.

Before a program runs, the CLI validates `Pulumi.yaml`'s `config:` declarations
and merges them into the stack's config (pulumi/pulumi `sdk/go/common/workspace`:
`project.json` (the schema), `Project.Validate` and `ValidateConfigValue` in
`project.go`, `mergeConfig` and `validateStackConfigValue` in `config.go`):

- a declaration has only `type`, `items`, `description`, `secret`, `default`;
  `type` is one of string, integer, boolean, array; an array needs `items`;
  a default must match the type;
- a key in the project's namespace declared without a default must be set on
  every stack, or the CLI stops with "Stack 'x' is missing configuration value(s)";
- a declared default is handed to the program as if the stack had set it;
- a `secret: true` key must be `secure:` on the stack, and a set value must
  match its declared type.

This module applies exactly those rules, so `make check` and the tests catch
what the real CLI would refuse, and `merged_config` gives the program (under the
mock engine too) the same config the CLI would.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

SIMPLE_TYPES = ("string", "integer", "boolean", "array")
DECLARATION_KEYS = frozenset({"type", "items", "description", "secret", "default"})
STACK_FILE_KEYS = frozenset(
    {"config", "secretsprovider", "encryptedkey", "encryptionsalt", "environment"}
)
"""Top-level keys of `Pulumi.<stack>.yaml` the CLI reads (workspace `ProjectStack`)."""


class ConfigFileError(ValueError):
    """A project or stack file that cannot be read; the message names the file and line."""


class _Yaml12Loader(yaml.SafeLoader):
    """YAML as the CLI's Go parser reads it: only true/false are booleans (not yes/no/on/off)."""


_Yaml12Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool",
    re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
    list("tTfF"),
)


def load_yaml_file(path: Path) -> Any:
    """Parse a YAML file; a syntax error names the file, line and column."""
    try:
        text = path.read_text()
    except OSError as err:
        raise ConfigFileError(f"{path.name}: cannot be read ({err.strerror})") from None
    try:
        return yaml.load(text, Loader=_Yaml12Loader)  # noqa: S506 (a SafeLoader subclass)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where = f"{path.name}:{mark.line + 1}:{mark.column + 1}" if mark else path.name
        what = " ".join(str(x) for x in (err.context, err.problem) if x)
        raise ConfigFileError(f"{where}: YAML syntax error: {what}") from None
    except yaml.YAMLError as err:
        raise ConfigFileError(f"{path.name}: YAML error: {err}") from None


@dataclass(frozen=True)
class StackValue:
    """One config value as the CLI holds it: text (or JSON for objects), and whether encrypted."""

    text: str
    is_object: bool = False
    secure: bool = False

    def content(self) -> Any:
        """What the CLI type-checks: JSON objects parsed back, everything else as text."""
        return json.loads(self.text) if self.is_object else self.text

    def as_program_value(self) -> str:
        """The string the program's `pulumi.Config` receives."""
        return self.text


def _scalar_text(value: Any) -> str:
    """Go's `fmt.Sprintf("%v", v)` of a YAML scalar: how the CLI stores it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def to_stack_value(raw: Any) -> StackValue:
    """A value from a stack file (or a project default) as the CLI stores it."""
    if isinstance(raw, Mapping) and set(raw) == {"secure"}:
        return StackValue(str(raw["secure"]), secure=True)
    if isinstance(raw, Mapping | list):
        return StackValue(json.dumps(raw), is_object=True)
    return StackValue(_scalar_text(raw))


def validate_value(type_name: str, items: Mapping[str, Any] | None, value: Any) -> bool:
    """`ValidateConfigValue` (project.go): does `value` match the declared type?"""
    if type_name == "string":
        return isinstance(value, str)
    if type_name == "integer":
        if isinstance(value, bool):
            return False
        if isinstance(value, int):
            return True
        if isinstance(value, float):
            return value.is_integer()
        if isinstance(value, str):
            return re.fullmatch(r"[+-]?\d+", value) is not None
        return False
    if type_name == "boolean":
        return isinstance(value, bool) or value in ("true", "false")
    if type_name == "object":
        return isinstance(value, dict)
    if not isinstance(value, list) or items is None:
        return False
    return all(validate_value(str(items.get("type")), items.get("items"), v) for v in value)


def _items_problems(items: Any, where: str) -> list[str]:
    if not isinstance(items, Mapping) or "type" not in items:
        return [f"{where}: `items` must be an object with a `type`"]
    problems = []
    if items["type"] not in SIMPLE_TYPES:
        problems.append(f"{where}: items type {items['type']!r} is not one of {SIMPLE_TYPES}")
    if items["type"] == "array":
        problems += _items_problems(items.get("items"), where)
    extra = set(items) - {"type", "items"}
    if extra:
        problems.append(f"{where}: items may only have type and items, not {sorted(extra)}")
    return problems


def is_project_key(project_name: str, key: str) -> bool:
    """`configKeyIsNamespacedByProject` (project.go)."""
    return ":" not in key or key.startswith(f"{project_name}:")


def full_key(project_name: str, key: str) -> str:
    return key if ":" in key else f"{project_name}:{key}"


def declaration_problems(project: Mapping[str, Any], source: str = "Pulumi.yaml") -> list[str]:
    """Every reason the CLI would refuse the project file's `config:` block."""
    name = project.get("name")
    if not isinstance(name, str) or not name:
        return [f"{source}: the project needs a non-empty string `name`"]
    config = project.get("config") or {}
    if not isinstance(config, Mapping):
        return [f"{source}: `config` must map keys to declarations"]
    problems: list[str] = []
    for key, decl in config.items():
        where = f"{source}: config {key}"
        if not is_project_key(name, key):
            if not isinstance(decl, str | int | bool):
                problems.append(f"{where}: a key outside the project's namespace takes a value")
            continue
        if isinstance(decl, str | int | bool):
            continue  # shorthand for a default
        if not isinstance(decl, Mapping):
            problems.append(f"{where}: must be a scalar default or a declaration object")
            continue
        extra = set(decl) - DECLARATION_KEYS
        if extra:
            problems.append(
                f"{where}: a declaration has only {sorted(DECLARATION_KEYS)}, not {sorted(extra)}"
            )
        type_name = decl.get("type")
        if type_name not in SIMPLE_TYPES:
            problems.append(f"{where}: `type` must be one of {SIMPLE_TYPES} (got {type_name!r})")
            continue
        if type_name == "array":
            if "items" not in decl:
                problems.append(f"{where}: an array declares its `items`")
            else:
                problems += _items_problems(decl["items"], where)
        if "secret" in decl and not isinstance(decl["secret"], bool):
            problems.append(f"{where}: `secret` must be true or false")
        if "description" in decl and not isinstance(decl["description"], str):
            problems.append(f"{where}: `description` must be text")
        if "default" in decl and decl["default"] is not None:
            content = to_stack_value(decl["default"]).content()
            if not validate_value(type_name, decl.get("items"), content):
                problems.append(f"{where}: the default {decl['default']!r} is not a {type_name}")
    return problems


def _declarations(project: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """Declarations in the project's namespace, shorthand defaults expanded, by full key."""
    name = str(project["name"])
    out: dict[str, Mapping[str, Any]] = {}
    for key, decl in (project.get("config") or {}).items():
        if not is_project_key(name, key):
            continue
        if isinstance(decl, str | int | bool):
            decl = {"default": decl}
        out[full_key(name, key)] = decl
    return out


def stack_values(stack_doc: Mapping[str, Any] | None) -> dict[str, StackValue]:
    """The stack file's `config:` as the CLI holds it."""
    config = (stack_doc or {}).get("config") or {}
    return {str(k): to_stack_value(v) for k, v in config.items()}


def merged_config(
    project: Mapping[str, Any], stack_doc: Mapping[str, Any] | None
) -> dict[str, StackValue]:
    """What the program receives: the stack's values plus the declared defaults it lacks."""
    merged = stack_values(stack_doc)
    for key, decl in _declarations(project).items():
        if key not in merged and decl.get("default") is not None:
            merged[key] = to_stack_value(decl["default"])
    return merged


def stack_problems(
    project: Mapping[str, Any], stack: str, stack_doc: Mapping[str, Any] | None
) -> list[str]:
    """Every reason the CLI would refuse `Pulumi.<stack>.yaml` with this project file."""
    source = f"Pulumi.{stack}.yaml"
    if stack_doc is not None and not isinstance(stack_doc, Mapping):
        return [f"{source}: must be a mapping with a `config:` block"]
    problems: list[str] = []
    extra = set(stack_doc or {}) - STACK_FILE_KEYS
    if extra:
        problems.append(f"{source}: unknown top-level keys {sorted(extra)}")
    config = (stack_doc or {}).get("config") or {}
    if not isinstance(config, Mapping):
        return [*problems, f"{source}: `config` must be a mapping"]
    problems += [
        f"{source}: {key}: config keys are written <namespace>:<name>"
        for key in config
        if ":" not in str(key)
    ]
    merged = merged_config(project, stack_doc)
    declared = _declarations(project)
    missing = sorted(k.split(":", 1)[1] for k in declared if k not in merged)
    if missing:
        problems += [
            f"{source}: {project['name']}:{k}: declared in Pulumi.yaml without a default, so the"
            f" Pulumi CLI requires it on every stack (\"Stack '{stack}' is missing configuration"
            f" value '{k}'\")"
            for k in missing
        ]
    for key, decl in sorted(declared.items()):
        value = merged.get(key)
        if value is None or "type" not in decl:
            continue
        if decl.get("secret") and not value.secure:
            problems.append(
                f"{source}: {key}: is declared secret, so the CLI requires it encrypted"
                " (`pulumi config set --secret`)"
            )
            continue
        if value.secure:
            continue  # the CLI type-checks the decrypted value; offline we cannot
        if not validate_value(str(decl["type"]), decl.get("items"), value.content()):
            problems.append(
                f"{source}: {key}: {value.text!r} is not of the declared type {decl['type']}"
            )
    return problems
