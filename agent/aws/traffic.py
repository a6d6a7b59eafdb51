"""The agent engine's AWS side: what its services' traffic looks like, and the calls that move it.

Reads, batched across every agent-engine service of a tick:

* task sets come with DescribeServices already (the Observer keeps each EXTERNAL service's ``taskSets``):
  :func:`task_sets_of` turns them into the engine's ``TaskSetView``;
* listener rules: one DescribeRules per ``RULES_PER_CALL`` rule ARNs (production and test rules of all
  services together);
* alarms: one DescribeAlarms per ``ALARMS_PER_CALL`` alarm names (the API's maximum).

Writes (:class:`TrafficWriter`) go through the Executor's ``call``: the ``before_call`` hook (crash tests),
the Pacer, one log line each, and ``translated()`` errors. ``ModifyRule`` is sent with ``Actions`` only, so
the rule's conditions stay as they are; its action becomes one weighted forward to both target groups.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterable, Mapping
from typing import Any

from agent.plan.model import Change, TaskDefinitionRef
from agent.plan.taskdefs import HASH_TAG
from agent.rollout.progressive import TaskSetView, Weights

from .errors import translated
from .executing import Executor, client_token

# ELB documents no maximum for DescribeRules' RuleArns; 20 (DescribeTags' limit) keeps each call small:
# ten services with a production and a test rule each.
RULES_PER_CALL = 20
ALARMS_PER_CALL = 100  # DescribeAlarms: AlarmNames has at most 100 members (and MaxRecords is 100)


def _chunks(items: list[str], size: int) -> Iterable[list[str]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


# -------------------------------------------------------------------------------------------- task sets


def task_set_view(task_set: Mapping[str, Any]) -> TaskSetView:
    """A DescribeServices / DescribeTaskSets task set as the engine reads it.

    The target group is the first load balancer's; stable = ``stabilityStatus`` STEADY_STATE and at least
    ``computedDesiredCount`` tasks running.
    """
    balancers = task_set.get("loadBalancers") or []
    target_group = balancers[0].get("targetGroupArn") if balancers else None
    running = int(task_set.get("runningCount") or 0)
    desired = int(task_set.get("computedDesiredCount") or 0)
    return TaskSetView(
        id=str(task_set.get("id", "")),
        arn=str(task_set.get("taskSetArn", "")),
        task_definition=str(task_set.get("taskDefinition", "")),
        external_id=str(task_set.get("externalId") or ""),
        status=str(task_set.get("status", "")),
        target_group=target_group,
        scale=float((task_set.get("scale") or {}).get("value", 0.0)),
        running=running,
        desired=desired,
        stable=task_set.get("stabilityStatus") == "STEADY_STATE" and running >= desired,
    )


def task_sets_of(service: Mapping[str, Any] | None) -> tuple[TaskSetView, ...]:
    """The task sets of a described EXTERNAL-controller service (none for any other service)."""
    if not service or (service.get("deploymentController") or {}).get("type") != "EXTERNAL":
        return ()
    return tuple(task_set_view(ts) for ts in service.get("taskSets") or ())


def has_primary_task_set(service: Mapping[str, Any] | None) -> bool:
    return any(ts.status == "PRIMARY" for ts in task_sets_of(service))


# ------------------------------------------------------------------------------------------------ reads


def forward_weights(rule: Mapping[str, Any]) -> dict[str, int]:
    """Target-group ARN -> weight of a rule's forward action.

    A plain forward (``TargetGroupArn``) or a forward to one group without a weight is 100 % to it. Weights
    are what ELB reports (they are relative; the agent always writes weights that sum to 100).
    """
    for action in rule.get("Actions") or ():
        if action.get("Type") != "forward":
            continue
        groups = (action.get("ForwardConfig") or {}).get("TargetGroups") or []
        if groups:
            if len(groups) == 1 and groups[0].get("Weight") is None:
                return {groups[0]["TargetGroupArn"]: 100}
            return {g["TargetGroupArn"]: int(g.get("Weight", 1)) for g in groups}
        if action.get("TargetGroupArn"):
            return {action["TargetGroupArn"]: 100}
    return {}


class TrafficObserver:
    """Reads listener rules and alarm states for many services at once."""

    def __init__(self, aws: Any) -> None:
        self.aws = aws

    # Made on first use: a tick with no traffic-shifting service never pays for them (a new process,
    # such as apply, about 10 ms each).
    @property
    def elb(self) -> Any:
        return self.aws.client("elbv2")

    @property
    def cloudwatch(self) -> Any:
        return self.aws.client("cloudwatch")

    def rules(self, rule_arns: Iterable[str]) -> dict[str, dict[str, int]]:
        """Rule ARN -> forward weights, ``RULES_PER_CALL`` rules per DescribeRules.

        A rule that does not exist is left out (a batch with a missing rule fails as a whole in ELB, so
        that batch is asked again one rule at a time to find which).
        """
        wanted = sorted(set(rule_arns))
        found: dict[str, dict[str, int]] = {}
        with translated():
            for batch in _chunks(wanted, RULES_PER_CALL):
                try:
                    described = self._describe_rules(batch)
                except self.elb.exceptions.RuleNotFoundException:
                    described = []
                    for arn in batch:
                        try:
                            described += self._describe_rules([arn])
                        except self.elb.exceptions.RuleNotFoundException:
                            continue
                for rule in described:
                    found[rule["RuleArn"]] = forward_weights(rule)
        return found

    def _describe_rules(self, arns: list[str]) -> list[dict[str, Any]]:
        rules: list[dict[str, Any]] = []
        marker: str | None = None
        while True:
            page = self.elb.describe_rules(RuleArns=arns, **({"Marker": marker} if marker else {}))
            rules += page.get("Rules") or []
            marker = page.get("NextMarker")
            if not marker:
                return rules

    def alarms(self, names: Iterable[str]) -> dict[str, str]:
        """Alarm name -> StateValue (ALARM | OK | INSUFFICIENT_DATA), 100 names per DescribeAlarms.

        An alarm that does not exist is left out.
        """
        wanted = sorted(set(names))
        states: dict[str, str] = {}
        with translated():
            for batch in _chunks(wanted, ALARMS_PER_CALL):
                token: str | None = None
                while True:
                    page = self.cloudwatch.describe_alarms(
                        AlarmNames=batch,
                        AlarmTypes=["MetricAlarm", "CompositeAlarm"],
                        MaxRecords=ALARMS_PER_CALL,
                        **({"NextToken": token} if token else {}),
                    )
                    for alarm in page.get("MetricAlarms", []) + page.get("CompositeAlarms", []):
                        states[alarm["AlarmName"]] = alarm["StateValue"]
                    token = page.get("NextToken")
                    if not token:
                        break
        return states


# ----------------------------------------------------------------------------------------------- writes


def task_set_request(
    task_set: Mapping[str, Any], task_definition: str, target_group: str, external_id: str
) -> dict[str, Any]:
    """CreateTaskSet parameters (without cluster/service) from the plan's ``taskSet`` request.

    The task definition becomes ``task_definition``, the first load balancer's target group becomes
    ``target_group`` (green), ``externalId`` the commit sha, scale 100 %, and the task set is tagged with
    the task definition's content hash (when the plan knows it) so anyone can tell what it runs.
    """
    params = copy.deepcopy({k: v for k, v in task_set.items() if k != "taskDefinition"})
    ref = task_set.get("taskDefinition")
    params["taskDefinition"] = task_definition
    balancers = [dict(lb) for lb in params.get("loadBalancers") or []]
    if balancers:
        balancers[0]["targetGroupArn"] = target_group
    else:
        balancers = [{"targetGroupArn": target_group}]
    params["loadBalancers"] = balancers
    params["externalId"] = external_id
    params["scale"] = {"unit": "PERCENT", "value": 100.0}
    if isinstance(ref, TaskDefinitionRef):
        tags = [t for t in params.get("tags") or [] if t.get("key") != HASH_TAG]
        params["tags"] = [*tags, {"key": HASH_TAG, "value": ref.content_hash}]
    return params


def forward_action(weights: Weights) -> list[dict[str, Any]]:
    """ModifyRule ``Actions``: one forward to every target group with its weight."""
    return [
        {
            "Type": "forward",
            "ForwardConfig": {
                "TargetGroups": [{"TargetGroupArn": arn, "Weight": int(weight)} for arn, weight in weights]
            },
        }
    ]


class TrafficWriter:
    """Carries out the agent engine's task-set and listener-rule actions for one service.

    Every call goes through ``Executor.call`` (before_call hook, Pacer, log) inside ``translated()``.
    ``change`` is the plan's change of the service, for the hook and the log.
    """

    def __init__(self, executor: Executor, cluster: str, service: str, change: Change) -> None:
        self.executor = executor
        self.cluster = cluster
        self.service = service
        self.change = change

    def create_task_set(self, params: Mapping[str, Any]) -> str:
        """CreateTaskSet (``params`` from :func:`task_set_request`); returns the new task set's ARN.

        The request carries a ``clientToken`` derived from it (the service, the task-definition revision,
        green's target group, the commit as ``externalId``): a retry after a lost answer, or a restarted
        agent creating the same task set, gets the one the first call made."""
        request = {"cluster": self.cluster, "service": self.service, **params}
        token = client_token("CreateTaskSet", request)
        with translated():
            out = self.executor.call("ecs", "create_task_set", self.change, **request, clientToken=token)
        return str(out["taskSet"]["taskSetArn"])

    def set_weights(self, rule: str, weights: Weights) -> None:
        """ModifyRule: forward to the target groups with these weights (conditions untouched)."""
        with translated():
            self.executor.call(
                "elbv2", "modify_rule", self.change, RuleArn=rule, Actions=forward_action(weights)
            )

    def set_primary(self, task_set: str) -> None:
        with translated():
            self.executor.call(
                "ecs",
                "update_service_primary_task_set",
                self.change,
                cluster=self.cluster,
                service=self.service,
                primaryTaskSet=task_set,
            )

    def delete_task_set(self, task_set: str) -> None:
        """DeleteTaskSet (force: it may still be scaled); one already gone counts as deleted."""
        gone = self.executor.ecs.exceptions.TaskSetNotFoundException
        with translated(), contextlib.suppress(gone):
            self.executor.call(
                "ecs",
                "delete_task_set",
                self.change,
                cluster=self.cluster,
                service=self.service,
                taskSet=task_set,
                force=True,
            )
