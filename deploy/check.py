"""`make check STACK=x`: validate a stack file offline, in seconds, without the Pulumi CLI.

Two layers, both reported at once: the Pulumi CLI's own rules for `Pulumi.yaml`
and the stack file (`deploy.project_config`), then the settings model on the
config the CLI would hand the program (`components.settings`). Encrypted values
cannot be read offline: they count as present, and their contents are checked
when the program runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from components.settings import PROJECT, RawConfig, Settings, SettingsError, parse_settings
from deploy.project_config import (
    ConfigFileError,
    declaration_problems,
    load_yaml_file,
    merged_config,
    stack_problems,
)


@dataclass(frozen=True)
class CheckResult:
    stack: str
    problems: tuple[str, ...]
    settings: Settings | None

    @property
    def ok(self) -> bool:
        return not self.problems


def stack_names(project_dir: Path) -> list[str]:
    return sorted(p.name[len("Pulumi.") : -len(".yaml")] for p in project_dir.glob("Pulumi.*.yaml"))


def check_stack(project_dir: Path, stack: str) -> CheckResult:
    """Every problem the CLI or the program would find in `Pulumi.<stack>.yaml`."""
    stack_file = project_dir / f"Pulumi.{stack}.yaml"
    if not stack_file.is_file():
        known = ", ".join(stack_names(project_dir)) or "none"
        return CheckResult(stack, (f"no stack file Pulumi.{stack}.yaml (stacks: {known})",), None)
    try:
        project = load_yaml_file(project_dir / "Pulumi.yaml")
        doc = load_yaml_file(stack_file)
    except ConfigFileError as err:
        return CheckResult(stack, (str(err),), None)
    problems = declaration_problems(project)
    if problems:
        return CheckResult(stack, tuple(problems), None)
    problems = stack_problems(project, stack, doc)
    if problems:
        return CheckResult(stack, tuple(problems), None)
    prefix = f"{PROJECT}:"
    merged = {
        k[len(prefix) :]: v for k, v in merged_config(project, doc).items() if k.startswith(prefix)
    }
    raw = RawConfig(
        stack=stack,
        # Encrypted values stay unread: None says "present", contents are checked at run time.
        values={k: None if v.secure else v.as_program_value() for k, v in merged.items()},
        secret_keys=frozenset(k for k, v in merged.items() if v.secure),
    )
    try:
        settings = parse_settings(raw)
    except SettingsError as err:
        return CheckResult(stack, tuple(str(err).splitlines()[1:]), None)
    return CheckResult(stack, (), settings)


def main(argv: list[str]) -> int:
    project_dir = Path(__file__).resolve().parent.parent
    stacks = argv or stack_names(project_dir)
    status = 0
    for stack in stacks:
        result = check_stack(project_dir, stack)
        if result.ok:
            print(f"Pulumi.{stack}.yaml: ok")
            continue
        status = 1
        print(f"{len(result.problems)} problem(s) in Pulumi.{stack}.yaml:")
        for line in result.problems:
            print(f"  {line}")
    return status
