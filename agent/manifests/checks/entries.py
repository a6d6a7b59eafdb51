"""Schema validation of every document, and one owner per kind and name.

A document with a name becomes an ``Entry`` whether or not it passed its schema, so it still counts
for references and uniqueness; only schema-valid entries reach the semantic checks.
"""

from __future__ import annotations

import re
from typing import Any

from agent.manifests.checks.context import Context, Entry, location
from agent.manifests.classification import Classified
from agent.manifests.model import KINDS, Manifest, Source

# Where a task definition holds environment entries: their values may be secrets, so a message about
# one never quotes it (the plan masks them too, agent/plan/render.py).
_ENVIRONMENT = re.compile(r"/containerDefinitions/[^/]+/environment(/|$)")
_QUOTED_VALUE = re.compile(r" \(got .*\)$")


def schema_problems(ctx: Context, kind: str, instance: Any, source: Source, prefix: str = "") -> bool:
    from agent.manifests import schemas

    found = schemas.validate(kind, instance)
    for pointer, message in found:
        if _ENVIRONMENT.search(prefix + pointer):
            message = _QUOTED_VALUE.sub(" (not shown: environment values may be secret)", message)
        ctx.add(source, prefix + pointer, message)
    return not found


def validate_documents(ctx: Context, classified: Classified) -> None:
    for doc in classified.manifests:
        data, src = doc.data, doc.source
        kind = data.get("kind")
        metadata = data.get("metadata") if isinstance(data.get("metadata"), dict) else {}
        name = metadata.get("name")
        if kind not in KINDS:
            if kind is None:
                ctx.add(src, "/kind", f"kind is required: one of {', '.join(KINDS)}")
            else:
                ctx.add(src, "/kind", f"unknown kind {kind!r}; expected one of {', '.join(KINDS)}")
            continue
        valid = schema_problems(ctx, kind, data, src)
        if not isinstance(name, str) or not name:
            continue
        spec = data.get("spec") if isinstance(data.get("spec"), dict) else {}
        manifest = Manifest(kind, name, spec, src, metadata)
        ctx.entries.append(Entry(manifest, doc, valid))


def check_unique_names(ctx: Context) -> None:
    for entry in sorted(ctx.entries, key=lambda e: (e.manifest.source.file, e.manifest.source.doc)):
        m = entry.manifest
        seen = ctx.names[m.kind]
        if m.name in seen:
            other = seen[m.name].source
            ctx.add(m.source, "/metadata/name", f'another {m.kind} is named "{m.name}" ({location(other)})')
            continue
        seen[m.name] = m
