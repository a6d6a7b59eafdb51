"""The agent engine's traffic invariant, read over the AWS APIs: listener weights sum to 100 and never
reach a target group without a stable task set (``check_traffic``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class TrafficInvariantError(AssertionError):
    """Listener weights that do not sum to 100, or traffic sent to a target group with no stable task set."""


@dataclass(frozen=True)
class TrafficSnapshot:
    """What :func:`check_traffic` read: rule weights (target-group ARN -> weight) and the task sets."""

    production: dict[str, int]
    test: dict[str, int] | None
    task_sets: tuple[dict[str, Any], ...]  # DescribeServices' taskSets, as ECS returns them

    def weight(self, target_group: str, rule: str = "production") -> int:
        """The weight ``target_group`` (ARN, or a name such as ``web-blue``) gets on the rule."""
        weights = self.production if rule == "production" else (self.test or {})
        return sum(w for arn, w in weights.items() if target_group in (arn, target_group_name(arn)))

    def registered(self, target_group: str) -> list[dict[str, Any]]:
        """The task sets registered to ``target_group`` (ARN or name)."""
        return [
            ts
            for ts in self.task_sets
            if any(
                target_group in (lb.get("targetGroupArn"), target_group_name(lb.get("targetGroupArn", "")))
                for lb in ts.get("loadBalancers") or []
            )
        ]


def target_group_name(arn: str) -> str:
    """``web-blue`` from ``arn:aws:elasticloadbalancing:...:targetgroup/web-blue/0123abcd``."""
    return arn.split(":targetgroup/", 1)[-1].split("/", 1)[0] if ":targetgroup/" in arn else arn


def rule_weights(rule: dict[str, Any]) -> dict[str, int]:
    """A listener rule's forward weights (target-group ARN -> weight), as ELB routes them.

    A plain forward (``TargetGroupArn``, which AWS also echoes as a one-group ForwardConfig) sends the
    group everything: 100. Otherwise the ForwardConfig's weights, as written."""
    forwards = [a for a in rule.get("Actions") or [] if a.get("Type") == "forward"]
    if len(forwards) != 1:
        raise TrafficInvariantError(f"rule {rule.get('RuleArn')} has {len(forwards)} forward actions, not 1")
    action = forwards[0]
    if action.get("TargetGroupArn"):
        return {action["TargetGroupArn"]: 100}
    groups = (action.get("ForwardConfig") or {}).get("TargetGroups") or []
    return {g["TargetGroupArn"]: int(g.get("Weight", 1)) for g in groups}


def check_traffic(
    clients: Any, cluster: str, service: str, rule_arn: str, test_rule_arn: str | None = None
) -> TrafficSnapshot:
    """Assert the agent engine's invariant over HTTP; return what was read.

    ``clients`` is anything with ``client(name)`` (a :class:`~agent.sandbox.server.Sandbox`, an
    :class:`~agent.aws.clients.Aws`). Reads the production rule (and the test rule) with one
    DescribeRules and the service's task sets with one DescribeServices, then checks:

    * each rule's weights sum to 100;
    * every target group with production weight > 0 has a task set registered to it that is
      STEADY_STATE and runs its computedDesiredCount (never traffic to nothing, or to tasks still
      starting);
    * on the test rule, a target group with weight > 0 that has task sets registered has a stable one
      (a test rule may point at an empty group before the first rollout: no user is behind it).

    Raises :class:`TrafficInvariantError` (an AssertionError) naming the rule and the target group.
    """
    arns = [rule_arn] + ([test_rule_arn] if test_rule_arn else [])
    rules = {r["RuleArn"]: r for r in clients.client("elbv2").describe_rules(RuleArns=arns)["Rules"]}
    for arn in arns:
        if arn not in rules:
            raise TrafficInvariantError(f"listener rule {arn} not found")
    described = clients.client("ecs").describe_services(cluster=cluster, services=[service])["services"]
    if not described:
        raise TrafficInvariantError(f"service {cluster}/{service} not found")
    task_sets = tuple(ts for ts in described[0].get("taskSets") or [] if ts.get("status") != "DRAINING")
    snapshot = TrafficSnapshot(
        production=rule_weights(rules[rule_arn]),
        test=rule_weights(rules[test_rule_arn]) if test_rule_arn else None,
        task_sets=task_sets,
    )
    for which, weights in (("production", snapshot.production), ("test", snapshot.test)):
        if weights is None:
            continue
        total = sum(weights.values())
        if total != 100:
            raise TrafficInvariantError(
                f"{service}: {which} rule weights sum to {total}, not 100: {_named(weights)}"
            )
        for group, weight in weights.items():
            if weight <= 0:
                continue
            registered = snapshot.registered(group)
            if which == "test" and not registered:
                continue
            if not any(_stable(ts) for ts in registered):
                states = [
                    f"{ts.get('externalId', ts['id'])[:12]} {ts['status']} {ts.get('stabilityStatus')} "
                    f"{ts.get('runningCount')}/{ts.get('computedDesiredCount')}"
                    for ts in registered
                ] or ["no task set"]
                raise TrafficInvariantError(
                    f"{service}: {which} rule sends {weight} % to {target_group_name(group)}, which has "
                    f"no stable task set ({'; '.join(states)}); weights {_named(weights)}"
                )
    return snapshot


def _stable(task_set: dict[str, Any]) -> bool:
    return task_set.get("stabilityStatus") == "STEADY_STATE" and int(task_set.get("runningCount", 0)) >= int(
        task_set.get("computedDesiredCount", 0)
    )


def _named(weights: dict[str, int]) -> str:
    return ", ".join(f"{target_group_name(arn)}={w}" for arn, w in weights.items())
