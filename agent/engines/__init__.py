"""Rollout engines: one ``Engine`` protocol (observe, decide, act) and three implementations.

* ``rolling``: ECS replaces tasks itself; the agent applies and follows the deployment (rolling.py);
* ``taskset``: ``engine: agent``, one task set per revision, traffic moved by the agent (taskset.py);
* ``native``: ``engine: ecs``, ECS runs blue/green, linear or canary, gated by the agent (native.py).

Each engine's decisions come from a pure state machine in agent.rollout; the engine module beside it is
its adapter: it reads through agent.aws what the state machine needs, and carries out what it decides.
The tick (agent.reconcile) asks the registry which engine claims each service.
"""

from agent.engines.base import Engine, Step, Subject, Tick
from agent.engines.gating import gate_of, hold_for_windows, windows_of
from agent.engines.registry import ENGINES, Engines, engine_of

__all__ = [
    "ENGINES",
    "Engine",
    "Engines",
    "Step",
    "Subject",
    "Tick",
    "engine_of",
    "gate_of",
    "hold_for_windows",
    "windows_of",
]
