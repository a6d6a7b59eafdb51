"""Generate the TaskDefinition JSON Schema from botocore's own model of RegisterTaskDefinition.

The task-definition schema is not written by hand: ECS adds fields often, and botocore (which we
already depend on) ships the authoritative shape. ``python -m agent.manifests.taskdef_schema >
schemas/taskdefinition.schema.json`` regenerates it; a unit test fails when the committed file and
the installed botocore disagree.

Every structure becomes a ``$defs`` entry named after its botocore shape (so recursive shapes work),
with ``additionalProperties: false``; HTML documentation becomes a short plain-text ``description``.
"""

from __future__ import annotations

import html
import json
import re
import sys
from typing import Any

SCHEMA_ID = "https://ecs-gitops.dev/schemas/taskdefinition.schema.json"
MAX_DESCRIPTION = 300

_TAG = re.compile(r"<[^>]+>")
_SPACE = re.compile(r"\s+")
_LIST = re.compile(r"<[uo]l>")
# A sentence ends at ". " followed by an upper-case letter or a quote; "e.g. x" does not end one.
_SENTENCE_END = re.compile(r"(?<!e\.g)(?<!i\.e)(?<!etc)\.\s+(?=[A-Z\"'(])")


def plain_text(documentation: str, max_chars: int = MAX_DESCRIPTION) -> str:
    """Turn botocore's HTML documentation into the first sentence or two of plain text."""
    documentation = documentation or ""
    # Text before a bullet list is the summary; the list items read badly once flattened.
    head = _LIST.split(documentation, 1)[0]
    if _TAG.sub("", head).strip():
        documentation = head
    text = _SPACE.sub(" ", html.unescape(_TAG.sub(" ", documentation))).strip()
    text = re.sub(r":$", ".", text)
    text = re.sub(r"\s+([.,;:)])", r"\1", text).replace("( ", "(")
    sentences = _SENTENCE_END.split(text)
    out = sentences[0].rstrip(".") + "." if sentences and sentences[0] else ""
    if len(sentences) > 1 and len(out) + len(sentences[1]) + 1 <= max_chars:
        out = f"{out} {sentences[1].rstrip('.')}."
    if len(out) > max_chars:
        out = out[: max_chars - 1].rsplit(" ", 1)[0] + "…"
    return out


class _Generator:
    """Walks botocore shapes once, collecting a ``$defs`` entry per structure."""

    def __init__(self) -> None:
        self.defs: dict[str, dict[str, Any]] = {}

    def schema_of(self, shape: Any, documentation: str = "") -> dict[str, Any]:
        """The JSON Schema for one shape; structures are referenced from ``$defs``."""
        out: dict[str, Any] = {}
        kind = shape.type_name
        # A structure's own documentation lives on its $defs entry; repeat only member-specific text.
        description = plain_text(
            documentation if kind == "structure" else documentation or shape.documentation
        )
        if description:
            out["description"] = description
        meta = shape.metadata
        if kind == "structure":
            self._define(shape)
            out["$ref"] = f"#/$defs/{shape.name}"
        elif kind == "list":
            out["type"] = "array"
            out["items"] = self.schema_of(shape.member)
            _bounds(out, meta, "minItems", "maxItems")
        elif kind == "map":
            out["type"] = "object"
            out["additionalProperties"] = self.schema_of(shape.value)
            _bounds(out, meta, "minProperties", "maxProperties")
        elif kind == "string":
            out["type"] = "string"
            if shape.enum:
                out["enum"] = list(shape.enum)
            _bounds(out, meta, "minLength", "maxLength")
            # Patterns are left out: botocore's use \p{L}, which Python's re does not know.
        elif kind in ("integer", "long"):
            out["type"] = "integer"
            _bounds(out, meta, "minimum", "maximum")
        elif kind in ("float", "double"):
            out["type"] = "number"
            _bounds(out, meta, "minimum", "maximum")
        elif kind == "boolean":
            out["type"] = "boolean"
        else:  # timestamp, blob: a string on the wire
            out["type"] = "string"
        return out

    def _define(self, shape: Any) -> None:
        if shape.name in self.defs:
            return
        definition: dict[str, Any] = {"type": "object"}
        self.defs[shape.name] = definition  # registered before recursing: recursive shapes terminate
        description = plain_text(shape.documentation)
        if description:
            definition["description"] = description
        definition["properties"] = {
            name: self.schema_of(member, member.documentation) for name, member in shape.members.items()
        }
        if shape.required_members:
            definition["required"] = list(shape.required_members)
        if shape.metadata.get("union"):
            definition["minProperties"] = 1
            definition["maxProperties"] = 1
        definition["additionalProperties"] = False


def _bounds(out: dict[str, Any], meta: dict[str, Any], low: str, high: str) -> None:
    if "min" in meta:
        out[low] = meta["min"]
    if "max" in meta:
        out[high] = meta["max"]


def build(service_model: Any = None) -> dict[str, Any]:
    """The whole TaskDefinition schema, from ``service_model`` (default: the installed botocore's ecs)."""
    if service_model is None:
        import botocore.session

        service_model = botocore.session.get_session().get_service_model("ecs")
    shape = service_model.operation_model("RegisterTaskDefinition").input_shape
    generator = _Generator()
    generator.schema_of(shape)
    root = generator.defs.pop(shape.name)
    # JSON files cannot carry the yaml-language-server comment; editors read a "$schema" key instead,
    # which the loader drops before validating and registering.
    root["properties"] = {
        "$schema": {"type": "string", "description": "The JSON Schema an editor validates this file with."},
        **root["properties"],
    }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "ECS task definition (RegisterTaskDefinition input)",
        "description": (
            "A native ECS task definition, as `aws ecs register-task-definition --cli-input-json` takes it. "
            "Generated from botocore's ecs model by agent/manifests/taskdef_schema.py; do not edit by hand."
        ),
        **{k: v for k, v in root.items() if k != "description"},
        "$defs": dict(sorted(generator.defs.items())),
    }


def render(schema: dict[str, Any]) -> str:
    """The schema as the exact text committed to schemas/taskdefinition.schema.json."""
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def main() -> None:
    """Print the generated schema on stdout."""
    sys.stdout.write(render(build()))


if __name__ == "__main__":
    main()
