"""Cut a few operations out of a large OpenAPI document, keeping every component they reference.

GitHub's description is ~13 MB; prism loads a subset of a handful of operations in a second or two.
Only local ``$ref``s (``#/components/...``) are followed, transitively; everything else in the
document (other paths, webhooks, tags, servers) is left out.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


def subset(
    spec: dict[str, Any],
    operations: Iterable[tuple[str, str]],
    response_aliases: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The document restricted to ``operations`` ((method, path) pairs) and the components they need.

    ``response_aliases`` ({alias: media type}) also offers each response of that media type under the
    alias, for mock servers that negotiate ``Accept`` strictly; request bodies are left untouched.
    """
    paths: dict[str, Any] = {}
    for method, path in operations:
        item = spec["paths"][path]
        method = method.lower()
        if method not in item:
            raise KeyError(f"{method.upper()} {path} is not in the document")
        out = paths.setdefault(path, {k: v for k, v in item.items() if k not in HTTP_METHODS})
        out[method] = item[method]
    result: dict[str, Any] = {
        "openapi": spec["openapi"],
        "info": spec["info"],
        "paths": copy.deepcopy(paths),
    }
    todo = list(_refs(result["paths"]))
    seen: set[str] = set()
    while todo:
        ref = todo.pop()
        if ref in seen:
            continue
        seen.add(ref)
        value = resolve(spec, ref)
        _put(result, ref, copy.deepcopy(value))
        todo.extend(_refs(value))
    for alias, media_type in (response_aliases or {}).items():
        for response in _responses(result):
            content = response.get("content") or {}
            if media_type in content:
                content.setdefault(alias, content[media_type])
    return result


def write_subset(
    source: Path,
    operations: Iterable[tuple[str, str]],
    target: Path,
    response_aliases: dict[str, str] | None = None,
) -> Path:
    spec = json.loads(source.read_text(encoding="utf-8"))
    target.write_text(json.dumps(subset(spec, operations, response_aliases), indent=1), encoding="utf-8")
    return target


def resolve(spec: dict[str, Any], ref: str) -> Any:
    node: Any = spec
    for part in _pointer(ref):
        node = node[part]
    return node


def _pointer(ref: str) -> list[str]:
    if not ref.startswith("#/"):
        raise ValueError(f"only local references are supported, not {ref!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in ref[2:].split("/")]


def _put(doc: dict[str, Any], ref: str, value: Any) -> None:
    *parents, last = _pointer(ref)
    node = doc
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value


def _responses(doc: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for item in doc["paths"].values():
        for method, operation in item.items():
            if method in HTTP_METHODS:
                yield from (r for r in operation.get("responses", {}).values() if "$ref" not in r)
    yield from doc.get("components", {}).get("responses", {}).values()


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            yield ref
        for value in node.values():
            yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)
