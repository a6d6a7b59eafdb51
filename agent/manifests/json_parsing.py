"""JSON parsing: ``json`` for the data, then a small position scanner for lines and duplicate keys.

JSON files are parsed by ``json`` (JSON is not quite YAML 1.1: tabs, ``\\/`` escapes); the scanner then
finds the line of every node and any duplicate key. ``NaN``/``Infinity`` and nesting deeper than
``MAX_DEPTH`` are refused.
"""

from __future__ import annotations

import bisect
import json
import re
from typing import Any

from agent.errors import Problem
from agent.manifests.documents import MAX_DEPTH, Document, child, whole_and_finite
from agent.manifests.model import Source


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _depth(value: Any) -> int:
    """Depth of a JSON value, iteratively."""
    best = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        v, d = stack.pop()
        best = max(best, d)
        if d > MAX_DEPTH:
            return d
        if isinstance(v, dict):
            stack.extend((x, d + 1) for x in v.values())
        elif isinstance(v, list):
            stack.extend((x, d + 1) for x in v)
    return best


_WS = re.compile(r"[ \t\n\r]*")
_SCALAR = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?|true|false|null")


class _JsonPositions:
    """Line of every node by pointer, and duplicate keys, for text that ``json`` already accepted."""

    def __init__(self, text: str, file: str) -> None:
        self.text = text
        self.file = file
        self.newlines = [m.start() for m in re.finditer("\n", text)]
        self.lines: dict[str, int] = {}
        self.problems: list[Problem] = []

    def line(self, pos: int) -> int:
        return bisect.bisect_left(self.newlines, pos) + 1

    def ws(self, pos: int) -> int:
        m = _WS.match(self.text, pos)
        return m.end() if m else pos

    def value(self, pos: int, pointer: str) -> int:
        text = self.text
        pos = self.ws(pos)
        self.lines.setdefault(pointer, self.line(pos))
        c = text[pos]
        if c == "{":
            pos = self.ws(pos + 1)
            if text[pos] == "}":
                return pos + 1
            seen: dict[str, int] = {}
            while True:
                pos = self.ws(pos)
                key, end = json.decoder.scanstring(text, pos + 1)  # type: ignore[attr-defined]
                line = self.line(pos)
                sub = child(pointer, key)
                if key in seen:
                    self.problems.append(
                        Problem(self.file, sub, f'duplicate key "{key}" (first at line {seen[key]})', line)
                    )
                    sub = f"{sub}#duplicate"  # keep the first one's lines
                else:
                    seen[key] = line
                    self.lines[sub] = line
                pos = self.ws(end) + 1  # the colon
                pos = self.ws(self.value(pos, sub))
                if text[pos] == ",":
                    pos += 1
                    continue
                return pos + 1  # the closing brace
        if c == "[":
            pos = self.ws(pos + 1)
            if text[pos] == "]":
                return pos + 1
            i = 0
            while True:
                pos = self.ws(self.value(pos, child(pointer, i)))
                i += 1
                if text[pos] == ",":
                    pos += 1
                    continue
                return pos + 1
        if c == '"':
            return int(json.decoder.scanstring(text, pos + 1)[1])  # type: ignore[attr-defined]
        m = _SCALAR.match(text, pos)
        return m.end() if m else pos + 1


def parse_json(text: str, file: str) -> tuple[list[Document], list[Problem]]:
    try:
        data = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as err:
        return [], [Problem(file, "", f"not valid JSON: {err.msg} (column {err.colno})", err.lineno)]
    except ValueError as err:
        return [], [Problem(file, "", f"not valid JSON: {err}")]
    except RecursionError:
        return [], [Problem(file, "", f"nesting is deeper than {MAX_DEPTH} levels")]
    if _depth(data) > MAX_DEPTH:
        return [], [Problem(file, "", f"nesting is deeper than {MAX_DEPTH} levels")]
    positions = _JsonPositions(text, file)
    try:
        positions.value(0, "")
    except (IndexError, ValueError):  # cannot happen for text json accepted; lines are best-effort
        positions.lines = {}
    if positions.problems:
        return [], positions.problems
    lines = {k: v for k, v in positions.lines.items() if "#duplicate" not in k}
    source = Source(file, 0, lines.get("", 1), lines)
    data, bad_strings = whole_and_finite(data, source)
    if bad_strings:
        return [], bad_strings
    return [Document(data, source)], []
