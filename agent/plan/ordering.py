"""The order services roll out in: what each one waits for, and the waves that follow.

A service waits for (its *blockers*) every service it ``dependsOn`` and every service of a lower explicit
``wave`` (default 0; negative waves go first). It starts only once all of them, and everything they wait
for in turn, have rolled out; a failure anywhere upstream stops it (``agent.rollout.ordering.gate``).
Services that wait for nothing of each other roll out in parallel.

The waves a plan shows are the levels of that graph: level 0 waits for nothing, level n waits for
something at level n-1. A worked example::

    migrate   wave: -1                  -> level 0
    worker    (nothing)                 -> level 1  (wave 0 waits for wave -1)
    api       dependsOn: []             -> level 1
    web       dependsOn: [api]          -> level 2

Cycles are validation errors (agent.manifests.checks); here they are broken by name so that ordering a
set that slipped through still terminates.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any


def _spec(manifest: Any) -> Mapping[str, Any]:
    spec = getattr(manifest, "spec", manifest)
    return spec if isinstance(spec, Mapping) else {}


def explicit_wave(manifest: Any) -> int:
    """A service's ``wave`` (0 when unset)."""
    wave = _spec(manifest).get("wave", 0)
    return wave if isinstance(wave, int) and not isinstance(wave, bool) else 0


def depends_on(manifest: Any) -> list[str]:
    deps = _spec(manifest).get("dependsOn") or []
    return [d for d in deps if isinstance(d, str)] if isinstance(deps, list) else []


@dataclass(frozen=True)
class Ordering:
    """What each service (by manifest name) waits for."""

    blockers: dict[str, tuple[str, ...]]  # direct: dependsOn + every service of a lower wave
    ancestors: dict[str, frozenset[str]]  # every service it waits for, transitively
    requires: dict[str, frozenset[str]]  # what it waits for through dependsOn alone, transitively
    wave: dict[str, int]  # the explicit wave (0 when unset)
    level: dict[str, int]  # the wave a plan shows: 0 waits for nothing

    def sequence(self) -> list[str]:
        """Every service, each after what it waits for; within a level by name."""
        return sorted(self.level, key=lambda name: (self.level[name], name))

    @property
    def staged(self) -> bool:
        """True when some service waits for another (a plan then shows waves)."""
        return any(self.level.values())


def ordering(services: Mapping[str, Any]) -> Ordering:
    """The ``Ordering`` of ``services`` (manifest name -> Manifest or spec)."""
    names = sorted(services)
    wave = {n: explicit_wave(services[n]) for n in names}
    deps = {n: [d for d in depends_on(services[n]) if d in services and d != n] for n in names}
    blockers = {n: tuple(sorted(set(deps[n]) | {m for m in names if wave[m] < wave[n]})) for n in names}
    return Ordering(
        blockers=blockers,
        ancestors=_closure(blockers),
        requires=_closure({n: tuple(deps[n]) for n in names}),
        wave=wave,
        level=_levels(blockers),
    )


def _closure(edges: Mapping[str, Iterable[str]]) -> dict[str, frozenset[str]]:
    """Everything reachable from each node (the node itself excluded, even on a cycle)."""
    out: dict[str, frozenset[str]] = {}
    for start in edges:
        seen: set[str] = set()
        stack = list(edges[start])
        while stack:
            node = stack.pop()
            if node in seen or node == start:
                continue
            seen.add(node)
            stack.extend(edges.get(node, ()))
        out[start] = frozenset(seen)
    return out


def _levels(blockers: Mapping[str, Iterable[str]]) -> dict[str, int]:
    """Longest chain of blockers below each node; on a cycle the node reached again counts as level 0."""
    level: dict[str, int] = {}
    visiting: set[str] = set()

    def visit(node: str) -> int:
        if node in level:
            return level[node]
        if node in visiting:
            return -1  # a cycle: validation reports it
        visiting.add(node)
        below = [visit(b) for b in blockers.get(node, ()) if b in blockers]
        visiting.discard(node)
        level[node] = max(below, default=-1) + 1
        return level[node]

    for node in sorted(blockers):
        visit(node)
    return level
