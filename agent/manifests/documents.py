"""A parsed manifest document and the rules every parser applies to it.

``Document`` is one document of a file as plain JSON data with its ``Source`` (the line of every node
by JSON pointer). Both parsers (``yaml_parsing``, ``json_parsing``) share the nesting limit
``MAX_DEPTH``, the pointer helpers, and ``whole_and_finite``: strings made of whole characters and
numbers that are finite, or a problem where they are not.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from agent.errors import Problem
from agent.manifests.model import Source

MAX_DEPTH = 64


@dataclass
class Document:
    """One parsed document (plain JSON data) and where it came from."""

    data: Any
    source: Source


def escape(token: str) -> str:
    """One JSON-pointer reference token (RFC 6901)."""
    return token.replace("~", "~0").replace("/", "~1")


def child(pointer: str, token: str | int) -> str:
    return f"{pointer}/{escape(str(token))}"


_SURROGATE = re.compile("[\ud800-\udfff]")


def _whole_string(text: str) -> str | None:
    """``text`` with UTF-16 surrogate pairs (``"\\ud83d\\ude00"`` escapes, which YAML reads as two
    halves) joined into the one character they stand for; None if a lone half remains, which no file,
    log line or AWS API can carry."""
    if not _SURROGATE.search(text):
        return text
    try:
        return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le")
    except UnicodeDecodeError:
        return None


def whole_and_finite(data: Any, source: Source) -> tuple[Any, list[Problem]]:
    """``data`` with every string (keys too) made of whole characters and every number finite, or the
    problems where it can't be (YAML's ``.nan`` and ``.inf``, JSON's ``1e400``: no AWS API takes them,
    and NaN slips through every ``minimum``/``maximum`` check since it compares false with everything)."""
    problems: list[Problem] = []

    def fix(value: Any, pointer: str) -> Any:
        if isinstance(value, float) and not math.isfinite(value):
            problems.append(
                Problem(
                    source.file,
                    pointer,
                    f"must be a finite number (got {value}; .nan, .inf and numbers past 1.8e308 are not)",
                    source.line_of(pointer),
                )
            )
            return value
        if isinstance(value, str):
            whole = _whole_string(value)
            if whole is None:
                problems.append(
                    Problem(
                        source.file,
                        pointer,
                        "holds an unpaired UTF-16 surrogate escape (\\uD800-\\uDFFF); "
                        "write the character itself or \\U0001XXXX",
                        source.line_of(pointer),
                    )
                )
                return value
            return whole
        if isinstance(value, dict):
            out = {}
            for k, v in value.items():
                key = fix(k, child(pointer, k))
                out[key] = fix(v, child(pointer, k))
            return out
        if isinstance(value, list):
            return [fix(v, child(pointer, i)) for i, v in enumerate(value)]
        return value

    return fix(data, ""), problems
