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

from agent.manifests.fields import explicit_wave
from agent.manifests.model import Desired


def _spec(manifest: Any) -> Mapping[str, Any]:
    spec = getattr(manifest, "spec", manifest)
    return spec if isinstance(spec, Mapping) else {}


def depends_on(manifest: Any) -> list[str]:
    deps = _spec(manifest).get("dependsOn") or []
    return [d for d in deps if isinstance(d, str)] if isinstance(deps, list) else []


@dataclass(frozen=True)
class Ordering:
    """What each service (by manifest name) waits for."""

    blockers: dict[str, tuple[str, ...]]  # direct: dependsOn + every service of the nearest lower wave
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


def ordering_of(desired: Desired) -> Ordering:
    """``ordering(desired.services)``, kept in ``desired.derived`` (a tick orders its commit twice, and
    the next tick at the same commit again)."""
    kept = desired.derived.get("ordering")
    if kept is not None and kept[0] is desired.services:
        return kept[1]  # type: ignore[no-any-return]
    order = ordering(desired.services)
    desired.derived["ordering"] = (desired.services, order)
    return order


def ordering(services: Mapping[str, Any]) -> Ordering:
    """The ``Ordering`` of ``services`` (manifest name -> Manifest or spec).

    Linear in the services and their dependsOn when no explicit waves are used: a wave's services wait
    for the nearest lower wave only (which waits for the one below it), and "every lower wave" is one
    set shared by all services of a wave.
    """
    names = sorted(services)
    wave = {n: explicit_wave(services[n]) for n in names}
    deps = {n: tuple(sorted({d for d in depends_on(services[n]) if d in services and d != n})) for n in names}
    groups: dict[int, list[str]] = {}
    for n in names:
        groups.setdefault(wave[n], []).append(n)
    previous: dict[int, tuple[str, ...]] = {}  # wave -> the services of the nearest lower wave
    lower: dict[int, frozenset[str]] = {}  # wave -> every service of a lower wave
    seen: list[str] = []
    before: tuple[str, ...] = ()
    for w in sorted(groups):
        previous[w], lower[w] = before, frozenset(seen)
        before = tuple(groups[w])
        seen.extend(groups[w])
    requires = _closure(deps)
    return Ordering(
        blockers={n: tuple(sorted(set(deps[n]) | set(previous[wave[n]]))) for n in names},
        ancestors={n: lower[wave[n]] | requires[n] for n in names},
        requires=requires,
        wave=wave,
        level=_levels(groups, deps),
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


def _levels(groups: Mapping[int, list[str]], deps: Mapping[str, Iterable[str]]) -> dict[str, int]:
    """Longest chain below each service, wave by wave (iteratively: chains may be long). A wave starts
    above every level of the lower waves; within it, a service sits above its dependencies. Services on a
    dependsOn cycle (rejected by validation) get the wave's first level."""
    level: dict[str, int] = {}
    floor = 0
    for w in sorted(groups):
        members = set(groups[w])
        inside = {n: [d for d in deps.get(n, ()) if d in members] for n in groups[w]}
        waiting = {n: len(ds) for n, ds in inside.items()}
        dependants: dict[str, list[str]] = {n: [] for n in groups[w]}
        for n, ds in inside.items():
            for d in ds:
                dependants[d].append(n)
        ready = [n for n in groups[w] if not waiting[n]]
        while ready:
            node = ready.pop()
            level[node] = max([floor, *(level[d] + 1 for d in deps.get(node, ()) if d in level)])
            for m in dependants[node]:
                waiting[m] -= 1
                if not waiting[m]:
                    ready.append(m)
        for n in groups[w]:
            level.setdefault(n, floor)
        floor = max(level[n] for n in groups[w]) + 1
    return level
