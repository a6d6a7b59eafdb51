"""Rollout order: blockers from dependsOn and explicit waves, their transitive closure, and plan waves."""

from __future__ import annotations

import sys
from types import FrameType
from typing import Any

from agent.plan.ordering import Ordering, ordering


def _services(**specs: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: {"cluster": "prod", **spec} for name, spec in specs.items()}


def test_depends_on_chain_gives_levels_and_closure() -> None:
    """A migration before the API before the web tier: three waves, each waiting for all above it."""
    order = ordering(_services(migrate={}, api={"dependsOn": ["migrate"]}, web={"dependsOn": ["api"]}))
    assert order.level == {"migrate": 0, "api": 1, "web": 2}
    assert order.blockers["web"] == ("api",)
    assert order.ancestors["web"] == {"api", "migrate"}
    assert order.requires["web"] == {"api", "migrate"}
    assert order.sequence() == ["migrate", "api", "web"]
    assert order.staged


def test_independent_services_share_wave_zero() -> None:
    """Services that wait for nothing are all in wave 0, in name order, and nothing is staged."""
    order = ordering(_services(b={}, a={}, c={}))
    assert order.level == {"a": 0, "b": 0, "c": 0}
    assert order.sequence() == ["a", "b", "c"]
    assert not order.staged


def test_explicit_waves_hold_every_lower_wave() -> None:
    """wave: -1 goes before everything of wave 0; wave 1 after all of wave 0 (and so of wave -1)."""
    order = ordering(_services(migrate={"wave": -1}, api={}, worker={}, edge={"wave": 1}))
    assert order.blockers["api"] == ("migrate",)
    assert order.blockers["edge"] == ("api", "worker")  # the nearest lower wave, which waits for -1
    assert order.ancestors["edge"] == {"api", "migrate", "worker"}
    assert order.level == {"migrate": 0, "api": 1, "worker": 1, "edge": 2}
    assert order.requires["edge"] == frozenset()  # through waves only: failures read "earlier wave"


def test_unknown_and_self_dependencies_are_ignored_and_cycles_terminate() -> None:
    """Validation rejects them; ordering still terminates and orders everything."""
    order = ordering(_services(a={"dependsOn": ["b", "ghost", "a"]}, b={"dependsOn": ["a"]}))
    assert set(order.sequence()) == {"a", "b"}
    assert "a" not in order.ancestors["a"]


def test_depends_on_within_a_wave_and_across_waves() -> None:
    """dependsOn inside a wave raises the level within it; the next wave starts above all of it."""
    order = ordering(
        _services(
            migrate={"wave": -1}, api={"dependsOn": ["migrate"]}, web={"dependsOn": ["api"]}, late={"wave": 1}
        )
    )
    assert order.level == {"migrate": 0, "api": 1, "web": 2, "late": 3}
    assert order.ancestors["web"] == {"api", "migrate"}
    assert order.requires["web"] == {"api", "migrate"}
    assert order.blockers["late"] == ("api", "web")


def _ordering_lines(services: dict[str, dict[str, Any]]) -> tuple[int, Ordering]:
    """The ordering of ``services``, and how many lines of agent/plan/ordering.py ran for it."""
    target = ordering.__code__.co_filename
    lines = 0

    def local(frame: FrameType, event: str, arg: Any) -> Any:
        nonlocal lines
        lines += event == "line"
        return local

    def calls(frame: FrameType, event: str, arg: Any) -> Any:
        return local if frame.f_code.co_filename == target else None

    previous = sys.gettrace()
    sys.settrace(calls)
    try:
        order = ordering(services)
    finally:
        sys.settrace(previous)
    return lines, order


def test_a_thousand_services_order_in_linear_work() -> None:
    """No waves and no dependsOn: nothing waits, and twice the services cost at most twice the lines run."""
    thousand, order = _ordering_lines({f"svc-{i:04d}": {"cluster": "prod"} for i in range(1000)})
    assert not order.staged and len(order.sequence()) == 1000
    assert not any(order.blockers.values()) and not any(order.ancestors.values())
    two_thousand, _ = _ordering_lines({f"svc-{i:04d}": {"cluster": "prod"} for i in range(2000)})
    assert thousand > 1000 and two_thousand <= 2 * thousand + 50, (thousand, two_thousand)


def test_a_long_chain_does_not_recurse() -> None:
    """A dependsOn chain of 1,500 services gets levels 0..1499 (no recursion limit on the way)."""
    services = {f"s{i:04d}": {"dependsOn": [f"s{i - 1:04d}"]} if i else {} for i in range(1500)}
    order = ordering(services)
    assert order.level["s1499"] == 1499 and order.sequence()[:2] == ["s0000", "s0001"]
