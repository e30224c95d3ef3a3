"""The stacks this project defines: one `Pulumi.<stack>.yaml` file each."""

from __future__ import annotations

import re
from pathlib import Path

_STACK_FILE = re.compile(r"^Pulumi\.(?P<name>[A-Za-z0-9_.-]+)\.(yaml|yml|json)$")


def discover_stacks(project_dir: Path) -> list[str]:
    """Names of the stacks with a settings file in the project directory, sorted."""
    names = set()
    for path in project_dir.iterdir():
        match = _STACK_FILE.match(path.name)
        if match and path.is_file():
            names.add(match.group("name"))
    return sorted(names)
