"""What every check shares: the checking context, the entries it holds, and small helpers.

``Context`` collects the problems of one run and what the checks learn on the way (the manifest that
owns each name, the task definition of each service, the owner of each family), so later checks can
rely on earlier ones.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from agent.errors import Problem
from agent.manifests.documents import Document
from agent.manifests.model import KINDS, Manifest, Source, TaskDefinitionFile
from agent.manifests.tree import Tree


@dataclass
class Entry:
    """A manifest document as loaded: the typed view and whether it passed its schema."""

    manifest: Manifest
    doc: Document
    valid: bool


@dataclass
class Context:
    tree: Tree
    config: Any
    problems: list[Problem] = field(default_factory=list)
    entries: list[Entry] = field(default_factory=list)
    names: dict[str, dict[str, Manifest]] = field(default_factory=lambda: {k: {} for k in KINDS})
    # Task definitions found in files, by the file's root-relative path.
    td_by_file: dict[str, list[TaskDefinitionFile]] = field(default_factory=dict)
    broken_files: set[str] = field(default_factory=set)
    loaded_files: set[str] = field(default_factory=set)
    # family -> the task definition that manages it
    families: dict[str, TaskDefinitionFile] = field(default_factory=dict)
    service_td: dict[str, TaskDefinitionFile] = field(default_factory=dict)

    def add(self, source: Source, pointer: str, message: str, severity: str = "error") -> None:
        self.problems.append(Problem(source.file, pointer, message, source.line_of(pointer), severity))


def location(source: Source) -> str:
    """``file:line`` of a document, for messages that point at another one."""
    return source.file if source.line is None else f"{source.file}:{source.line}"


def valid_entries(ctx: Context, kind: str) -> list[Entry]:
    """Schema-valid documents of one kind that own their name (duplicates are not checked twice)."""
    return [
        e
        for e in ctx.entries
        if e.valid and e.manifest.kind == kind and ctx.names[kind].get(e.manifest.name) is e.manifest
    ]


def items_of(value: Any) -> list[Any]:
    """``value`` when it is a list, else nothing to iterate (the schema has already reported it)."""
    return value if isinstance(value, list) else []
