"""Errors typed by what the reconcile loop does next.

Permanent errors need a human (bad manifests, a reference that resolves to nothing): the loop reports a
failure status and changes nothing. Transient errors are retried after a delay. Waiting is not an error
of the user's: the loop comes back at ``wake_at``.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime

_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_SURROGATE = re.compile("[\ud800-\udfff]")
_VISIBLE_ASCII = re.compile("[!-~]*")


def _escape_control(match: re.Match[str]) -> str:
    char = match.group()
    return {"\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(char, f"\\u{ord(char):04x}")


def _escape_surrogate(match: re.Match[str]) -> str:
    """A lone surrogate: what Python makes of a byte that is not UTF-8 in a file name (byte 0xff becomes
    U+DCFF); shown as that byte escaped (a backslash, x, ff), so every text built from it is UTF-8."""
    code = ord(match.group())
    return f"\\x{code - 0xDC00:02x}" if 0xDC80 <= code <= 0xDCFF else f"\\u{code:04x}"


def printable(text: str) -> str:
    """``text`` as valid UTF-8 on one line: lone surrogates and control characters shown escaped."""
    if _SURROGATE.search(text):
        text = _SURROGATE.sub(_escape_surrogate, text)
    return _CONTROL.sub(_escape_control, text) if _CONTROL.search(text) else text


def _visible_pointer(pointer: str) -> str:
    """A JSON pointer with whitespace and invisible characters (U+FEFF, zero-width spaces: Unicode's
    format characters) shown escaped as backslash-u and four hex digits, so that
    ``FILE:LINE: /pointer: message`` stays one unambiguous line whatever the keys hold."""
    if _VISIBLE_ASCII.fullmatch(pointer):
        return pointer
    return "".join(
        f"\\u{ord(c):04x}" if c.isspace() or unicodedata.category(c) in ("Cf", "Zs", "Zl", "Zp") else c
        for c in pointer
    )


@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong with the input, located by file, line and JSON pointer."""

    file: str
    pointer: str
    message: str
    line: int | None = None
    severity: str = "error"  # "error" or "warning"

    def __post_init__(self) -> None:
        # One problem, one line: a file name, key or value quoted from hostile input may hold newlines or
        # other control characters; they are shown escaped, never acted on by a terminal or a log parser.
        # A file name that is not UTF-8 shows its bytes escaped; a pointer shows its whitespace escaped.
        for name in ("file", "pointer", "message"):
            value = getattr(self, name)
            if isinstance(value, str):
                shown = printable(value)
                if name == "pointer":
                    shown = _visible_pointer(shown)
                if shown != value:
                    object.__setattr__(self, name, shown)

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        pointer = self.pointer or "/"
        return f"{where}: {pointer}: {self.message}"


class AgentError(Exception):
    """Base of every error the agent raises on purpose."""


class PermanentError(AgentError):
    """A human must act; retrying the same input gives the same answer."""


@dataclass
class InvalidInput(PermanentError):
    """The manifests (or the agent config) are invalid; every problem found is listed."""

    problems: list[Problem] = field(default_factory=list)

    def __str__(self) -> str:
        errors = [p for p in self.problems if p.severity == "error"]
        return f"{len(errors)} problem(s):\n" + "\n".join(str(p) for p in errors)


class TransientError(AgentError):
    """Retry later: throttling, 5xx, a remote that did not answer."""

    def __init__(self, message: str, delay: float = 5.0) -> None:
        super().__init__(message)
        self.delay = delay


class Waiting(AgentError):
    """Nothing is wrong; come back at ``wake_at`` (a bake, a closed window)."""

    def __init__(self, reason: str, wake_at: datetime) -> None:
        super().__init__(reason)
        self.wake_at = wake_at


class Interrupted(Exception):
    """A tick stopped in its read-only half (before any AWS write or report) because a newer event asked
    for a tick: the loop starts that one at once. Not an AgentError: nothing failed, and no handler of
    failures may turn it into a status or a log line of one."""
