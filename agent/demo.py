"""``make demo``: the agent's main job, end to end, on the embedded sandbox.

Starts the sandbox on a free loopback port, seeds it with the resources manifests-example refers to,
validates manifests-example and prints the plan that would create it. Exits 0 only when every step
ended as expected. Later issues extend this story (deploy, bump, break, revert).
"""

from __future__ import annotations

import sys
from pathlib import Path

from agent.aws.clients import Aws
from agent.manifests import load_desired
from agent.manifests.tree import DirTree
from agent.plan.render import render_text
from agent.reconcile import Reconciler
from agent.sandbox.server import Sandbox

EXAMPLE = Path(__file__).resolve().parents[1] / "manifests-example"


def step(title: str) -> None:
    print(f"\n== {title}", flush=True)


def main() -> int:
    color = sys.stdout.isatty()
    with Sandbox(port=0) as sandbox:
        step(f"sandbox: moto + ECS simulator on {sandbox.endpoint}")
        sandbox.seed(EXAMPLE / "sandbox-seed.yaml")
        print("seeded: VPC, subnets, security groups, ALB, target groups, listener rules, alarms, roles")

        step("validate manifests-example")
        tree = DirTree(EXAMPLE)
        desired = load_desired(tree)
        print(
            f"valid: {len(desired.services)} services, {len(desired.task_definitions)} task definitions, "
            f"{len(desired.strategies)} strategies, {len(desired.windows)} windows, "
            f"{len(desired.capacity_providers)} capacity providers, {len(desired.clusters)} clusters"
        )

        step("plan manifests-example against the empty sandbox")
        aws = Aws(region=sandbox.region, endpoint_url=sandbox.endpoint)
        result = Reconciler(aws).plan(tree)
        print(render_text(result.plan, color=color))
        calls = ", ".join(f"{k} x{n}" for k, n in sorted(aws.counter.counts.items()))
        print(f"\nAWS calls made: {calls}")

        creates = [c for c in result.plan.changes if c.action in ("create", "register")]
        if not result.plan.has_changes or len(creates) < len(desired.services):
            print("demo FAILED: expected a plan that creates every service", file=sys.stderr)
            return 1
    print("\ndemo OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
