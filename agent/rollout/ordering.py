"""Holding rollouts back until what they wait for has rolled out (``dependsOn``, waves).

``gate`` takes every service's decision for one tick (from its engine) and the ``Ordering`` of the
services, and returns the decisions with each rollout that may not start yet replaced:

* everything it waits for (transitively) succeeded on this tick: the decision stands, the rollout
  starts; services that wait for nothing of each other start on the same tick, in parallel;
* something it waits for failed: ``failure`` "not started: dependency api failed" (or "earlier wave
  failed: migrate" when it waits through ``wave`` only); the failure passes down the chain, each
  dependant naming the service that actually failed;
* something it waits for is still rolling out (or starts on this tick): ``pending`` "waiting for api",
  woken when that one is.

Only decisions that would start something (``APPLY``, or an agent-engine decision named in ``starting``)
are held: a service with nothing to do reports what
it runs, whatever its dependencies do. A held decision carries no record, so the store keeps the last
one and the engine decides afresh on the next tick. A worked example, ``web`` dependsOn ``api``
dependsOn ``migrate``, all three changed by one commit:

====  ====================  =============================  ==================================
tick  migrate               api                            web
====  ====================  =============================  ==================================
1     APPLY (rolling out)   pending "waiting for migrate"  pending "waiting for api, migrate"
2     success               APPLY                          pending "waiting for api"
3     success               success                        APPLY
====  ====================  =============================  ==================================

and had ``migrate`` failed on tick 2, both others: failure "not started: dependency migrate failed".
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import datetime

from agent.plan.ordering import Ordering

from .decisions import APPLY, FAILURE, PENDING, SUCCESS, Decision

_MAX_NAMES = 3


def _names(names: list[str]) -> str:
    shown = names[:_MAX_NAMES]
    more = f" +{len(names) - _MAX_NAMES} more" if len(names) > _MAX_NAMES else ""
    return ", ".join(shown) + more


def gate(
    decisions: Mapping[str, Decision],
    order: Ordering,
    running: Collection[str] = (),
    starting: Collection[str] = (),
) -> dict[str, Decision]:
    """``decisions`` (manifest name -> Decision) with rollouts that must wait, or may not start, held.

    ``running`` are services whose failure state does not mean "not rolled out" (drift that is only
    reported: the revision Git asks for is deployed), so they do not hold anyone back. ``starting`` are
    services whose decision starts a rollout without saying APPLY (the agent engine's first actions:
    creating a task set...); they are held like an APPLY.
    """
    out = dict(decisions)

    def starts(name: str) -> bool:
        return APPLY in out[name].actions or (name in starting and bool(out[name].actions))

    stopped: set[str] = set()  # held back by a failure upstream (not failures of their own)
    for name in sorted(out, key=lambda n: (order.level.get(n, 0), n)):
        if not starts(name):
            continue
        upstream = sorted(a for a in order.ancestors.get(name, ()) if a in out)
        # Ancestors are transitive: behind a service stopped upstream is the one that failed, named here.
        failed = [
            a
            for a in upstream
            if a not in running and a not in stopped and out[a].state not in (SUCCESS, PENDING)
        ] or [a for a in upstream if a in stopped]
        if failed:
            out[name] = Decision((), None, FAILURE, f"not started: {_failure(failed, name, order)}")
            stopped.add(name)
            continue
        waiting = [a for a in upstream if a not in running and (out[a].state != SUCCESS or starts(a))]
        if waiting:
            wakes: list[datetime] = [w for w in (out[a].wake_at for a in waiting) if w is not None]
            out[name] = Decision(
                (), None, PENDING, f"waiting for {_names(waiting)}", min(wakes) if wakes else None
            )
    return out


def _failure(failed: list[str], name: str, order: Ordering) -> str:
    """``dependency api failed`` / ``dependencies a, b failed`` / ``earlier wave failed: migrate``."""
    requires = order.requires.get(name, frozenset())
    deps = [f for f in failed if f in requires]
    waves = [f for f in failed if f not in requires]
    parts = []
    if deps:
        noun = "dependency" if len(deps) == 1 else "dependencies"
        parts.append(f"{noun} {_names(deps)} failed")
    if waves:
        parts.append(f"earlier wave failed: {_names(waves)}")
    return "; ".join(parts)
