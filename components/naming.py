"""Names and tags shared by the components (pure functions)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from components.settings import PROJECT, Settings

PART_OF = {"app.kubernetes.io/part-of": PROJECT}
"""The label on every Kubernetes object the program creates itself."""


def resource_prefix(settings: Settings) -> str:
    """Prefix for physical names: unique per project and stack."""
    return f"{PROJECT}-{settings.stack}"


def tags(settings: Settings, name: str) -> dict[str, str]:
    """Tags for one AWS resource: the stack's tags plus its Name."""
    return {**settings.tags, "Name": name}


def content_tag(directory: Path) -> str:
    """A tag derived from every file under `directory` (path and bytes).

    The same content gives the same tag, so an unchanged `image/` changes nothing
    downstream; any edit, rename or new file gives a new tag.
    """
    digest = hashlib.sha256()
    files = sorted(p for p in directory.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    for path in files:
        rel = path.relative_to(directory).as_posix()
        digest.update(rel.encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]
