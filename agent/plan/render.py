"""Rendering a ``Plan``: text like ``terraform plan`` for people, stable JSON for machines.

Text: one line per resource (``+`` create/register, ``~`` update, ``=`` unchanged/reuse), changed fields
indented beneath it (``+`` added, ``-`` removed, ``~`` changed), warnings, then a summary line. Values are
one-line JSON cut at ``MAX_VALUE`` characters; the JSON output has them in full. ANSI colour only when
asked for (the CLI asks when stdout is a TTY).

JSON (``docs/plan-json.md`` describes it field by field): keys sorted, two-space indent, ``ABSENT`` as
``null`` with an ``"absent": ["old"]`` / ``["new"]`` marker on the field so a real ``null`` stays
distinguishable, ``TaskDefinitionRef`` as ``{"family", "contentHash", "arn"}``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

from agent.plan.model import (
    ABSENT,
    CREATE,
    NO_CHANGE,
    REGISTER,
    REUSE,
    UPDATE,
    Change,
    FieldChange,
    Plan,
    TaskDefinitionRef,
)
from agent.plan.taskdefs import family_revision

FORMAT_VERSION = 1
MAX_VALUE = 120
_CONTENT_RE = re.compile(r"content ([0-9a-f]+)")

_GREEN, _YELLOW, _RED, _DIM, _BOLD, _RESET = (
    "\033[32m",
    "\033[33m",
    "\033[31m",
    "\033[2m",
    "\033[1m",
    "\033[0m",
)
_SYMBOL = {CREATE: "+", REGISTER: "+", UPDATE: "~", NO_CHANGE: "=", REUSE: "="}
_COLOUR = {"+": _GREEN, "~": _YELLOW, "-": _RED, "=": _DIM, "!": _YELLOW}


def _paint(text: str, symbol: str, color: bool, bold: bool = False) -> str:
    if not color:
        return text
    return f"{_BOLD if bold else ''}{_COLOUR.get(symbol, '')}{text}{_RESET}"


def format_value(value: Any, limit: int = MAX_VALUE) -> str:
    """One-line JSON for a field value, cut with ``…`` beyond ``limit`` characters; ABSENT is ``(none)``."""
    if value is ABSENT:
        return "(none)"
    text = json.dumps(to_jsonable(value), sort_keys=True, ensure_ascii=False, separators=(", ", ": "))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _field_line(change: FieldChange, color: bool) -> str:
    if change.old is ABSENT:
        symbol, text = "+", f"+ {change.path}: {format_value(change.new)}"
    elif change.new is ABSENT:
        symbol, text = "-", f"- {change.path}: {format_value(change.old)}"
    else:
        symbol, text = "~", f"~ {change.path}: {format_value(change.old)} -> {format_value(change.new)}"
    return "    " + _paint(text, symbol, color)


def _arn_label(change: Change) -> str:
    arn = change.request.get("taskDefinitionArn")
    return family_revision(arn) if isinstance(arn, str) else "?"


def _heading(change: Change) -> str:
    title = f"{change.kind} {change.name}"
    match = _CONTENT_RE.search(change.reason)
    content = match.group(1) if match else "?"
    if change.action == REGISTER:
        return f"{title} (register new revision, content {content})"
    if change.action == REUSE:
        return f"{title} (reuse {_arn_label(change)}, content {content})"
    if change.action == NO_CHANGE:
        return (
            f"{title} (no change, {_arn_label(change)})"
            if change.kind == "TaskDefinition"
            else f"{title} (no change)"
        )
    if change.action == CREATE:
        return f"{title} (create)"
    if change.reason.startswith("strategy "):  # a deployment strategy or controller switch, said up front
        return f"{title} ({change.reason})"
    return title


def summary_line(plan: Plan) -> str:
    """``Plan: 2 to create, …`` or ``No changes. ECS matches <revision>.``"""
    if not plan.has_changes:
        return f"No changes. ECS matches {plan.revision or 'the manifests'}."
    counts = plan.summary()
    return (
        f"Plan: {counts[CREATE]} to create, {counts[UPDATE]} to update, {counts[REGISTER]} to register, "
        f"{counts[REUSE]} to reuse, {counts[NO_CHANGE]} unchanged."
    )


def render_text(plan: Plan, color: bool = False) -> str:
    """The plan as people read it (``terraform plan`` style); ANSI colour only when ``color``."""
    header = f"ecs-gitops plan for {plan.revision}" if plan.revision else "ecs-gitops plan"
    lines = [_paint(header, "", color, bold=True)]
    if plan.has_changes:
        lines.append("  + create / register   ~ update   - remove   = unchanged / reuse")
    lines.append("")
    for change in plan.changes:
        symbol = _SYMBOL[change.action]
        lines.append(_paint(f"{symbol} {_heading(change)}", symbol, color, bold=symbol != "="))
        lines.extend(_field_line(f, color) for f in change.fields)
    if plan.warnings:
        lines.append("")
        lines.append(_paint("Warnings:", "!", color, bold=True))
        lines.extend("  " + _paint(f"! {w}", "!", color) for w in plan.warnings)
    lines.append("")
    lines.append(_paint(summary_line(plan), "", color, bold=True))
    return "\n".join(lines) + "\n"


def to_jsonable(value: Any) -> Any:
    """Plain JSON data: ABSENT -> None, TaskDefinitionRef -> dict, tuples -> lists, datetimes -> ISO."""
    if value is ABSENT:
        return None
    if isinstance(value, TaskDefinitionRef):
        return {"family": value.family, "contentHash": value.content_hash, "arn": value.arn}
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def _field_dict(change: FieldChange) -> dict[str, Any]:
    out: dict[str, Any] = {
        "path": change.path,
        "old": to_jsonable(change.old),
        "new": to_jsonable(change.new),
    }
    absent = [side for side, value in (("old", change.old), ("new", change.new)) if value is ABSENT]
    if absent:
        out["absent"] = absent
    return out


def plan_to_dict(plan: Plan) -> dict[str, Any]:
    """The JSON document of ``render_json`` as Python data."""
    return {
        "formatVersion": FORMAT_VERSION,
        "revision": plan.revision,
        "hasChanges": plan.has_changes,
        "summary": plan.summary(),
        "warnings": list(plan.warnings),
        "changes": [
            {
                "kind": c.kind,
                "name": c.name,
                "action": c.action,
                "changesAnything": c.changes_anything,
                "source": c.source,
                "reason": c.reason,
                "fields": [_field_dict(f) for f in c.fields],
                "request": to_jsonable(c.request),
            }
            for c in plan.changes
        ],
    }


def render_json(plan: Plan) -> str:
    """The plan as stable JSON (sorted keys, two-space indent, trailing newline)."""
    return json.dumps(plan_to_dict(plan), sort_keys=True, indent=2, ensure_ascii=False) + "\n"
