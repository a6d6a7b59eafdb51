"""Rendering a ``Plan``: text like ``terraform plan`` for people, stable JSON for machines.

Text: one line per resource (``+`` create/register, ``~`` update, ``-`` DELETE, ``!`` drift, ``=``
unchanged/reuse), changed fields indented beneath it (``+`` added, ``-`` removed, ``~`` changed), services'
waves when some wait for others, then a section for drift (ECS changed, Git did not), warnings, and a
summary line. Values are
one-line JSON cut at ``MAX_VALUE`` characters; the JSON output has them in full. ANSI colour only when
asked for (the CLI asks when stdout is a TTY).

JSON (``docs/plan-json.md`` describes it field by field): keys sorted, two-space indent, ``ABSENT`` as
``null`` with an ``"absent": ["old"]`` / ``["new"]`` marker on the field so a real ``null`` stays
distinguishable, ``TaskDefinitionRef`` as ``{"family", "contentHash", "arn"}``.

Environment values that look like credentials (people do put passwords there, whatever the warning
says), by the variable's name (``DB_PASSWORD``, ``API_KEY``) or by the value's shape (an AWS key id, a PEM
key, a URL with a password, a long token): both renderings show them as ``(sensitive)``, and a value that
differs as ``(sensitive) -> (sensitive, changed)``, so a reviewer sees which variable changes without
seeing it. ``PORT`` or ``LOG_LEVEL`` are shown as they are. The Plan itself keeps the values: the
executor sends them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

from agent.manifests.fields import credential_reason
from agent.plan import drift
from agent.plan.model import (
    ABSENT,
    CREATE,
    DELETE,
    DRIFT_HEAL,
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
SENSITIVE = "(sensitive)"
SENSITIVE_CHANGED = "(sensitive, changed)"
# Where a secret may sit in an API shape, by path segments ("*": any one segment, a name or an index).
_SENSITIVE_PATHS = (("containerDefinitions", "*", "environment", "*", "value"),)
_CONTENT_RE = re.compile(r"content ([0-9a-f]+)")

_GREEN, _YELLOW, _RED, _DIM, _BOLD, _RESET = (
    "\033[32m",
    "\033[33m",
    "\033[31m",
    "\033[2m",
    "\033[1m",
    "\033[0m",
)
_SYMBOL = {CREATE: "+", REGISTER: "+", UPDATE: "~", NO_CHANGE: "=", REUSE: "=", DELETE: "-"}
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


def _segments(pointer: str) -> tuple[str, ...]:
    """The unescaped segments of a JSON pointer (``/a~1b/c`` -> ``("a/b", "c")``)."""
    if pointer in ("", "/"):
        return ()
    return tuple(s.replace("~1", "/").replace("~0", "~") for s in pointer.lstrip("/").split("/"))


def _is_sensitive(segments: tuple[str, ...], value: Any, other: Any = None) -> bool:
    """Whether the string ``value`` at ``segments`` is an environment value that looks like a credential
    (its variable's name is the segment before ``value``); ``other``, the value on the plan's other side,
    counts too, so a secret being replaced is not shown either."""
    for pattern in _SENSITIVE_PATHS:
        tail = segments[-len(pattern) :]
        if len(tail) == len(pattern) and all(p in ("*", s) for p, s in zip(pattern, tail, strict=True)):
            name = tail[-2]
            return any(isinstance(v, str) and credential_reason(name, v) for v in (value, other))
    return False


def mask(value: Any, segments: tuple[str, ...] = (), other: Any = None) -> Any:
    """``value`` (found at ``segments``) with every sensitive string inside it replaced by ``(sensitive)``.
    List items that carry a ``name`` are addressed by it, as the diff addresses them."""
    if value is ABSENT or value is None:
        return value
    if isinstance(value, Mapping):
        return {k: mask(v, (*segments, str(k))) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [mask(v, (*segments, _name(v, i))) for i, v in enumerate(value)]
    if _is_sensitive(segments, value, other):
        return SENSITIVE
    return value


def _name(item: Any, index: int) -> str:
    name = item.get("name") if isinstance(item, Mapping) else None
    return name if isinstance(name, str) else str(index)


def shown(change: FieldChange) -> tuple[Any, Any, bool]:
    """(old, new, sensitive): the two sides as a plan may show them. A sensitive value that differs
    reads ``(sensitive)`` -> ``(sensitive, changed)``."""
    segments = _segments(change.path)
    old, new = mask(change.old, segments, change.new), mask(change.new, segments, change.old)
    sensitive = to_jsonable(old) != to_jsonable(change.old) or to_jsonable(new) != to_jsonable(change.new)
    if sensitive and old == new == SENSITIVE:
        new = SENSITIVE_CHANGED
    return old, new, sensitive


def _field_line(change: FieldChange, color: bool) -> str:
    old, new, sensitive = shown(change)
    show = (lambda v: str(v)) if sensitive and isinstance(new, str) else format_value
    if change.old is ABSENT:
        symbol, text = "+", f"+ {change.path}: {format_value(new)}"
    elif change.new is ABSENT:
        symbol, text = "-", f"- {change.path}: {format_value(old)}"
    else:
        symbol, text = "~", f"~ {change.path}: {show(old)} -> {show(new)}"
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
    if change.action == DELETE:
        return f"{title} (DELETE: {change.reason})"
    if change.reason.startswith("strategy "):  # a deployment strategy or controller switch, said up front
        return f"{title} ({change.reason})"
    if change.drift:
        return f"{title} (drifted from Git)"
    return title


def _staging(change: Change) -> str:
    """``  [wave 1, after api]`` for a Service that waits for others."""
    if change.wave is None:
        return ""
    names = list(change.after[:3]) + ([f"+{len(change.after) - 3} more"] if len(change.after) > 3 else [])
    return f"  [wave {change.wave}" + (f", after {', '.join(names)}]" if names else "]")


def drift_line(change: Change) -> str:
    """``web: drifted from Git (desiredCount 4 -> 7 in ECS); selfHeal ...`` (``web in prod: ...`` with
    several accounts)."""
    action = (
        "selfHeal on: applying corrects it"
        if change.drift == DRIFT_HEAL
        else "selfHeal off: reported, not corrected"
    )
    where = f" in {change.account.name}" if change.account is not None else ""
    return f"{drift.short_name(change)}{where}: drifted from Git ({drift.describe(change)}); {action}"


def summary_line(plan: Plan) -> str:
    """``Plan: 2 to create, …`` or ``No changes. ECS matches <revision>.``"""
    if not plan.has_changes:
        return f"No changes. ECS matches {plan.revision or 'the manifests'}."
    counts = plan.summary()
    deleting = f"{counts[DELETE]} to DELETE, " if counts[DELETE] else ""
    drifted = f"; {len(plan.drifted)} drifted from Git" if plan.drifted else ""
    return (
        f"Plan: {counts[CREATE]} to create, {counts[UPDATE]} to update, {counts[REGISTER]} to register, "
        f"{counts[REUSE]} to reuse, {deleting}{counts[NO_CHANGE]} unchanged{drifted}."
    )


def render_text(plan: Plan, color: bool = False) -> str:
    """The plan as people read it (``terraform plan`` style); ANSI colour only when ``color``."""
    header = f"ecs-gitops plan for {plan.revision}" if plan.revision else "ecs-gitops plan"
    lines = [_paint(header, "", color, bold=True)]
    if plan.has_changes:
        legend = "  + create / register   ~ update   - remove   = unchanged / reuse"
        lines.append(legend + ("   ! drift" if plan.drifted else ""))
    lines.append("")
    staged = any(c.wave for c in plan.changes)
    account = None
    for change in plan.changes:
        if change.account is not None and change.account != account:
            if account is not None:
                lines.append("")
            account = change.account
            lines.append(_paint(f"Account {account.label}:", "", color, bold=True))
        symbol = "!" if change.drift else _SYMBOL[change.action]
        heading = f"{symbol} {_heading(change)}" + (_staging(change) if staged else "")
        lines.append(_paint(heading, symbol, color, bold=symbol != "="))
        if change.note:
            lines.append("    " + _paint(f"# {change.note}", "", color))
        if change.hold is not None:
            waiting = "waiting" if change.hold.waiting else "held"
            lines.append("    " + _paint(f"! {waiting}: {change.hold.reason}", "!", color))
        lines.extend(_field_line(f, color) for f in change.fields)
    if plan.drifted:
        lines.append("")
        lines.append(_paint("Drift (changed in ECS, not in Git):", "!", color, bold=True))
        lines.extend("  " + _paint(f"! {drift_line(c)}", "!", color) for c in plan.drifted)
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
    old, new, sensitive = shown(change)
    out: dict[str, Any] = {"path": change.path, "old": to_jsonable(old), "new": to_jsonable(new)}
    if sensitive:
        out["sensitive"] = True
    absent = [side for side, value in (("old", change.old), ("new", change.new)) if value is ABSENT]
    if absent:
        out["absent"] = absent
    return out


def _change_dict(c: Change) -> dict[str, Any]:
    out: dict[str, Any] = {
        "kind": c.kind,
        "name": c.name,
        "action": c.action,
        "changesAnything": c.changes_anything,
        "source": c.source,
        "reason": c.reason,
        "fields": [_field_dict(f) for f in c.fields],
        "request": to_jsonable(mask(c.request)),
        "drift": c.drift or None,
        "wave": c.wave,
        "after": list(c.after),
    }
    # Present only when set, so plans without them stay byte-identical.
    if c.note:
        out["note"] = c.note
    if c.hold is not None:
        out["hold"] = {"reason": c.hold.reason, "waiting": c.hold.waiting}
    if c.account is not None:
        account = c.account
        out["account"] = {"name": account.name, "accountId": account.account_id, "region": account.region}
    return out


def plan_to_dict(plan: Plan) -> dict[str, Any]:
    """The JSON document of ``render_json`` as Python data."""
    return {
        "formatVersion": FORMAT_VERSION,
        "revision": plan.revision,
        "hasChanges": plan.has_changes,
        "summary": plan.summary(),
        "warnings": list(plan.warnings),
        "changes": [_change_dict(c) for c in plan.changes],
        "drift": [c.name for c in plan.drifted],
    }


def render_json(plan: Plan) -> str:
    """The plan as stable JSON (sorted keys, two-space indent, trailing newline)."""
    return json.dumps(plan_to_dict(plan), sort_keys=True, indent=2, ensure_ascii=False) + "\n"
