"""A RegisterTaskDefinition whose answer may be lost is looked for, then sent again, within ECS's limits:
the look-back's reads and the second registration each take a token from the Pacer the observer shares."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agent.aws.pacing import Pacer
from agent.reconcile import Reconciler
from agent.sandbox.faults import Fault
from agent.sandbox.harness import Harness, write_services

TD_CALLS = ("RegisterTaskDefinition", "ListTaskDefinitions", "DescribeTaskDefinition")


class Recording(Pacer):
    """A Pacer without limits that remembers every token it hands out."""

    def __init__(self) -> None:
        super().__init__(limits={})
        self.asked: list[str] = []

    def acquire(self, operation: str) -> None:
        self.asked.append(operation)
        super().acquire(operation)


def test_the_look_back_after_a_5xx_register_takes_a_token_for_each_call(sandbox: Any, tmp_path: Path) -> None:
    """A 503 on RegisterTaskDefinition (ECS may have registered it) is followed by ListTaskDefinitions,
    a DescribeTaskDefinition of the family's revision and a second RegisterTaskDefinition, each after a
    token from the Pacer: one token per request, the one the fault answered included."""
    pacer = Recording()
    harness = Harness(sandbox)
    harness.reconciler = Reconciler(
        harness.aws, None, store=harness.store, clock=harness.clock.now, pacer=pacer
    )
    write_services(tmp_path, "1", 1, "paced")
    harness.apply(tmp_path)  # revision 1 of the family
    write_services(tmp_path, "2", 1, "paced")  # a new image: a new revision to register
    sandbox.faults.add(Fault("RegisterTaskDefinition", count=1))
    sandbox.faults.served.clear()
    pacer.asked.clear()
    harness.apply(tmp_path)
    asked = [op for op in pacer.asked if op in TD_CALLS]
    assert asked == [
        "RegisterTaskDefinition",  # answered 503 by the fault
        "ListTaskDefinitions",
        "DescribeTaskDefinition",  # revision 1: another content hash
        "RegisterTaskDefinition",
    ]
    served = {op: sandbox.faults.served[op] for op in TD_CALLS}
    assert served == {"RegisterTaskDefinition": 1, "ListTaskDefinitions": 1, "DescribeTaskDefinition": 1}
    assert harness.last is not None and harness.last.statuses["ecs-gitops"].state == "success"
