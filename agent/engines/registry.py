"""Which engine takes a service: the engines in the order they are asked, the first that claims it wins.

A fourth engine is one module with a class that follows agent.engines.base.Engine and one line here.
"""

from __future__ import annotations

from typing import Any

from agent.engines.base import Engine, Subject, Tick
from agent.engines.native import NativeEngine
from agent.engines.rolling import RollingEngine
from agent.engines.taskset import TasksetEngine

# Asked in this order; the rolling engine claims whatever the others leave, so it stays last.
ENGINES: tuple[type[Engine], ...] = (TasksetEngine, NativeEngine, RollingEngine)


def engine_of(subject: Subject, tick: Tick) -> str:
    """The name of the engine that drives ``subject`` on this tick."""
    return next(e.name for e in ENGINES if e.claims(subject, tick))


class Engines:
    """One instance of every engine for one account lane, built from that lane's clients and store."""

    def __init__(self, **deps: Any) -> None:
        self.by_name: dict[str, Engine] = {e.name: e(**deps) for e in ENGINES}

    def __getitem__(self, name: str) -> Engine:
        return self.by_name[name]

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.by_name.values())
