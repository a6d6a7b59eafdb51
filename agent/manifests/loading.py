"""Read every candidate file of a manifest root safely into parsed documents.

Nothing here trusts the input. A file is refused (as a ``Problem``, never an exception) when it is
over ``MAX_FILE_BYTES``, binary, not UTF-8, or reached through a symlink that leaves the root. A
``*.json`` file is parsed by ``json_parsing``, anything else as a YAML stream by ``yaml_parsing``;
``classification`` then sorts the documents. The names of those modules are re-exported here.

Symlinks: one that stays inside the root is not read under its own name (its target is read under the
target's name, and ``taskDefinition`` paths through it resolve to the target); one that leaves the
root is an error. ``..`` in a reference may not leave the root either (``resolve_reference``).
"""

from __future__ import annotations

import json
import posixpath
import re
from dataclasses import dataclass, field

from agent.errors import Problem
from agent.manifests.classification import (
    NOT_MANIFESTS,
    READ_ONLY_TASK_DEFINITION_FIELDS,
    Classified,
    classify,
    task_definition_body,
)
from agent.manifests.documents import MAX_DEPTH, Document, child, escape
from agent.manifests.json_parsing import parse_json
from agent.manifests.limits import Budget
from agent.manifests.parsed import PARSED
from agent.manifests.tree import Tree, is_candidate, normalize
from agent.manifests.yaml_parsing import (
    MAX_ALIAS_EXPANSION,
    MAX_DOCUMENT_BYTES,
    SafeManifestLoader,
    parse_yaml,
)

__all__ = [
    "MAX_ALIAS_EXPANSION",
    "MAX_DEPTH",
    "MAX_DOCUMENT_BYTES",
    "MAX_FILE_BYTES",
    "NOT_MANIFESTS",
    "READ_ONLY_TASK_DEFINITION_FIELDS",
    "Budget",
    "Classified",
    "Document",
    "LoadedFile",
    "SafeManifestLoader",
    "child",
    "classify",
    "escape",
    "load_file",
    "parse_bytes",
    "parse_json",
    "parse_yaml",
    "resolve_reference",
    "task_definition_body",
]

MAX_FILE_BYTES = 1024 * 1024

_CONTROL_CHARACTER = re.compile("[\x00-\x1f\x7f]")


@dataclass
class LoadedFile:
    path: str
    documents: list[Document] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


def _decode(raw: bytes, file: str) -> tuple[str | None, Problem | None]:
    nul = raw.find(b"\x00")
    if nul >= 0:
        line = raw.count(b"\n", 0, nul) + 1
        return None, Problem(file, "", f"binary file (NUL byte at offset {nul}); manifests are text", line)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw.count(b"\n", 0, err.start) + 1
        return None, Problem(
            file,
            "",
            f"not UTF-8 text: byte 0x{raw[err.start]:02x} at offset {err.start} cannot be decoded",
            line,
        )
    return text.removeprefix("\ufeff"), None


def parse_bytes(raw: bytes, path: str, budget: Budget | None = None) -> tuple[list[Document], list[Problem]]:
    """The documents of a file's bytes (JSON for ``*.json``, else a YAML stream), or why there are none:
    over ``MAX_FILE_BYTES``, binary, not UTF-8, not parseable, or over the commit's ``budget`` of
    documents. Also reads the agent config file."""
    if len(raw) > MAX_FILE_BYTES:
        limit = f"the limit is {MAX_FILE_BYTES} bytes (1 MiB)"
        return [], [Problem(path, "", f"file is {len(raw)} bytes; {limit}")]
    text, problem = _decode(raw, path)
    if problem or text is None:
        return [], [problem or Problem(path, "", "cannot be read")]
    if path.lower().endswith(".json"):
        over = budget.take_document(path, 1) if budget is not None else None
        return ([], [over]) if over is not None else parse_json(text, path)
    return parse_yaml(text, path, budget)


def load_file(tree: Tree, path: str, budget: Budget | None = None) -> LoadedFile:
    """Read and parse one candidate path, spending the commit's ``budget`` (files, bytes, documents).
    Every failure becomes a Problem on the result."""
    result = LoadedFile(path)
    try:
        if tree.is_symlink(path):
            real = tree.resolve(path)
            if real is None:
                result.problems.append(
                    Problem(path, "", "is a symlink that leads outside the manifest root; refused")
                )
                return result
            if not tree.is_file(path) or is_candidate(real):
                return result  # a folder (walked under its own name) or a file read under its own name
        elif tree.resolve(path) is None:
            result.problems.append(
                Problem(path, "", "is reached through a symlink outside the manifest root")
            )
            return result
        if not is_candidate(path):
            return result
        size = tree.size(path)
        if size > MAX_FILE_BYTES:
            result.problems.append(
                Problem(path, "", f"file is {size} bytes; the limit is {MAX_FILE_BYTES} bytes (1 MiB)")
            )
            return result
        over = budget.take_file(path, size) if budget is not None else None
        if over is not None:
            result.problems.append(over)
            return result
        result.documents, result.problems = _parsed(tree, path, budget)
    except (OSError, ValueError) as err:
        result.problems.append(Problem(path, "", f"cannot be read: {err}"))
    return result


def _parsed(tree: Tree, path: str, budget: Budget | None) -> tuple[list[Document], list[Problem]]:
    """``parse_bytes`` of the file, from ``PARSED`` when the tree names its blob and the budget allows."""
    blob_id = tree.blob_id(path) if hasattr(tree, "blob_id") else None
    if blob_id is None or budget is None:
        return parse_bytes(tree.read(path), path, budget)
    found = PARSED.get(blob_id, path)
    if found is not None:
        documents, problems, taken = found
        if budget.documents + taken <= budget.max_documents:
            budget.documents += taken
            return documents, problems
    before = budget.documents
    documents, problems = parse_bytes(tree.read(path), path, budget)
    if not budget.spent:
        PARSED.put(blob_id, path, documents, problems, budget.documents - before)
    return documents, problems


def resolve_reference(tree: Tree, from_file: str, ref: str) -> tuple[str | None, str | None]:
    """A path written in ``from_file`` (relative to its folder): (root-relative real path, None) or
    (None, message why it cannot be used)."""
    if not isinstance(ref, str) or not ref:
        return None, "must be a path to a task-definition file"
    if _CONTROL_CHARACTER.search(ref):
        return None, f"{json.dumps(ref)} holds a control character; it cannot be a file name here"
    lexical = normalize(posixpath.dirname(from_file), ref)
    if lexical is None:
        return None, f'"{ref}" leaves the manifest root; task-definition files must be inside it'
    real = tree.resolve(lexical)
    if real is None:
        return None, f'"{ref}" leads outside the manifest root (through a symlink); refused'
    if not tree.is_file(lexical):
        return (
            None,
            f'no file "{lexical}" (the path is relative to {posixpath.dirname(from_file) or "the root"})',
        )
    return real, None
