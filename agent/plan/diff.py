"""Field-level diff of two normalised API shapes, as ``FieldChange`` values addressed by JSON pointer.

Lists of objects that all carry a distinct ``name`` (containers, environment, secrets, settings) are
matched by that name, and lists whose objects all carry a distinct ``key`` (tags) by that key, so a
path reads ``/containerDefinitions/web/image`` rather than ``/containerDefinitions/0/image``. Other
lists of objects of the same length (port mappings without names) are matched by index; anything else
(subnets, commands, lists that grew or shrank) is compared whole. A side that lacks the field is
``ABSENT``. Inputs are expected normalised: the diff itself knows nothing about ECS defaults.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from agent.plan.model import ABSENT, FieldChange


def escape(segment: str) -> str:
    """One JSON-pointer segment (RFC 6901: ``~`` -> ``~0``, ``/`` -> ``~1``)."""
    return segment.replace("~", "~0").replace("/", "~1")


def equal(a: Any, b: Any) -> bool:
    """Deep equality that, unlike ``==``, keeps ``True`` apart from ``1`` (``10 == 10.0`` still holds)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(equal(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def _identity(items: list[Any]) -> str | None:
    """The field that identifies the objects of a list ("name" or "key"), if every item has a distinct one."""
    for field in ("name", "key"):
        ids = [item.get(field) for item in items if isinstance(item, Mapping)]
        if len(ids) == len(items) and all(isinstance(i, str) for i in ids) and len(set(ids)) == len(ids):
            return field
    return None


def diff(old: Any, new: Any, path: str = "") -> list[FieldChange]:
    """Every leaf-most difference between ``old`` and ``new``, in a stable order (sorted keys/names)."""
    if old is ABSENT and new is ABSENT:
        return []
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        changes: list[FieldChange] = []
        for key in sorted(set(old) | set(new), key=str):
            changes += diff(old.get(key, ABSENT), new.get(key, ABSENT), f"{path}/{escape(str(key))}")
        return changes
    if isinstance(old, list) and isinstance(new, list) and old and new:
        field = _identity(old)
        if field is not None and _identity(new) == field:
            before = {item[field]: item for item in old}
            after = {item[field]: item for item in new}
            changes = []
            for ident in sorted(set(before) | set(after)):
                changes += diff(
                    before.get(ident, ABSENT), after.get(ident, ABSENT), f"{path}/{escape(ident)}"
                )
            return changes
        if len(old) == len(new) and all(isinstance(item, Mapping) for item in old + new):
            changes = []
            for index, (a, b) in enumerate(zip(old, new, strict=True)):
                changes += diff(a, b, f"{path}/{index}")
            return changes
    if equal(old, new):
        return []
    return [FieldChange(path=path or "/", old=old, new=new)]
