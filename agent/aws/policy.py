"""The least-privilege IAM policy the agent needs for one set of manifests and one agent config.

``agent_policy(desired, config)`` names exactly the clusters, services, task-definition families,
capacity providers, listener rules (by their ``Name`` tag), alarms, Lambda hooks, roles to pass, accounts
and state-store table that the manifests and the config name, as resource ARNs and condition keys
(``ecs:cluster``, ``iam:PassedToService``, ``aws:ResourceTag/...``, ``sts:ExternalId``) where the
service authorization reference allows them. A statement on ``"*"`` holds only actions that allow no
resource at all, and its Sid says so. ``account_policies`` gives the policy of the role the agent assumes
in each other account (``accounts[].roleArn``): the same statements, for that account's clusters.

Statements follow what the agent calls (tests/test_iam_policy.py checks both ways): reads to resolve names
and observe; per service, its own ARNs; prune (``sync.prune``) only on services tagged
``ecs-gitops:managed=true``; per family, Cluster and CapacityProvider manifest, their ARNs; for
agent-engine strategies, the listener rules and Lambda hooks named; the DynamoDB table; the roles assumed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from agent.manifests.model import Desired

VERSION = "2012-10-17"
MANAGED_TAG = "ecs-gitops:managed"
# Whom the agent passes a role to: task and execution roles to ECS tasks, infrastructure and hook roles to
# ECS itself. (The role behind a Managed Instances profile is passed by the infrastructure role, not by
# the agent.)
TASKS, ECS = "ecs-tasks.amazonaws.com", "ecs.amazonaws.com"


def _words(text: str) -> list[str]:
    return text.split()


# The actions of each statement, by Sid. The first holds reads that IAM lets name no resource (the
# service authorization reference lists none for them).
ACTIONS = {
    "ReadCallsThatAllowNoResourceInIam": _words(
        "ecs:DescribeTaskDefinition ecs:ListTaskDefinitions ec2:DescribeSubnets ec2:DescribeSecurityGroups "
        "elasticloadbalancing:DescribeListeners elasticloadbalancing:DescribeLoadBalancers "
        "elasticloadbalancing:DescribeRules elasticloadbalancing:DescribeTags "
        "elasticloadbalancing:DescribeTargetGroups autoscaling:DescribeAutoScalingGroups"
    ),
    "ListServicesOfTheNamedClusters": ["ecs:ListServices"],
    "DescribeTheNamedClusters": ["ecs:DescribeClusters"],
    "ManageTheServicesOfTheManifests": _words(
        "ecs:DescribeServices ecs:CreateService ecs:UpdateService ecs:UpdateServicePrimaryTaskSet "
        "ecs:ListServiceDeployments"
    ),
    # TagResource and UntagResource know no ecs:cluster key: the ARNs alone scope them.
    "TagTheServicesOfTheManifests": _words("ecs:TagResource ecs:UntagResource"),
    "TaskSetsOfThoseServices": _words("ecs:CreateTaskSet ecs:DeleteTaskSet"),
    "ServiceDeploymentsOfThoseServices": _words("ecs:DescribeServiceDeployments ecs:StopServiceDeployment"),
    # Its condition keys are not published: the ARNs alone scope it.
    "ContinueServiceDeploymentsOfThoseServices": ["ecs:ContinueServiceDeployment"],
    "PruneOnlyServicesTheAgentManages": ["ecs:DeleteService"],
    "RegisterAndTagTheTaskDefinitionFamilies": _words("ecs:RegisterTaskDefinition ecs:TagResource"),
    "CreateAndUpdateTheClusterManifests": _words(
        "ecs:CreateCluster ecs:UpdateClusterSettings ecs:PutClusterCapacityProviders ecs:TagResource "
        "ecs:UntagResource"
    ),
    "CreateAndUpdateTheCapacityProviderManifests": _words(
        "ecs:CreateCapacityProvider ecs:UpdateCapacityProvider ecs:DescribeCapacityProviders ecs:TagResource "
        "ecs:UntagResource"
    ),
}
READ_ANY = ACTIONS["ReadCallsThatAllowNoResourceInIam"]
_ACCOUNT = re.compile(r"^arn:aws[a-z-]*:[a-z0-9-]+:[a-z0-9-]*:([0-9]{12}):")


@dataclass
class Lane:
    """One account and region, and what the manifests manage there."""

    account: str
    region: str
    clusters: set[str] = field(default_factory=set)
    services: set[tuple[str, str]] = field(default_factory=set)  # (cluster, service)
    families: set[str] = field(default_factory=set)
    providers: set[str] = field(default_factory=set)  # CapacityProvider manifests

    def arn(self, service: str, resource: str) -> str:
        return f"arn:aws:{service}:{self.region}:{self.account}:{resource}"


def _ref(value: Any) -> tuple[str | None, str | None]:
    """(name, arn) of a ``{name: x}`` / ``{arn: y}`` reference, or of a plain string."""
    if isinstance(value, dict):
        return value.get("name"), value.get("arn")
    if isinstance(value, str):
        return (None, value) if value.startswith("arn:") else (value, None)
    return None, None


def _strategy(desired: Desired, service: Any) -> dict[str, Any]:
    chosen = service.spec.get("strategy")
    if isinstance(chosen, str):
        found = desired.strategies.get(chosen)
        return found.spec if found is not None else {}
    return chosen if isinstance(chosen, dict) else {}


def _arns_in(value: Any) -> Iterable[str]:
    if isinstance(value, str) and value.startswith("arn:"):
        yield value
    for item in value.values() if isinstance(value, dict) else value if isinstance(value, list) else ():
        yield from _arns_in(item)


def home_account(desired: Desired, config: Any, account_id: str | None = None) -> str:
    """The agent's own account: ``account_id``, else an ``accounts[]`` entry without a role, else the one
    account the manifests' ARNs name (task roles, secrets), else ``*`` (any account: say it with
    ``--account-id``)."""
    if account_id:
        return account_id
    for account in getattr(config, "accounts", ()):
        if not account.role_arn and account.account_id:
            return str(account.account_id)
    found = {
        m.group(1)
        for td in desired.task_definitions.values()
        for a in _arns_in(td.body)
        if (m := _ACCOUNT.match(a))
    }
    return found.pop() if len(found) == 1 else "*"


def _lanes(desired: Desired, config: Any, account_id: str | None) -> dict[str | None, Lane]:
    """Lanes keyed by the role assumed for them (None: the agent's own credentials)."""
    region = getattr(getattr(config, "aws", None), "region", None) or "*"
    home = home_account(desired, config, account_id)
    lanes: dict[str | None, Lane] = {None: Lane(home, region)}
    lane_of: dict[str, Lane] = {}
    for account in getattr(config, "accounts", ()):
        key = account.role_arn or None
        lane = lanes.setdefault(key, Lane(account.account or home, account.region or region))
        lane_of.update({cluster: lane for cluster in account.clusters})
    allow = getattr(getattr(config, "clusters", None), "allow", None)
    for name in allow or ():
        lane_of.get(name, lanes[None]).clusters.add(name)
    for name, service in desired.services.items():
        cluster = str(service.spec.get("cluster", "default"))
        lane = lane_of.get(cluster, lanes[None])
        lane.clusters.add(cluster)
        lane.services.add((cluster, str(service.spec.get("serviceName") or name)))
        family = desired.service_task_family.get(name)
        if family:
            lane.families.add(family)
    for name in desired.clusters:
        lane_of.get(name, lanes[None]).clusters.add(name)
    for name, provider in desired.capacity_providers.items():
        lane_of.get(str(provider.spec.get("cluster")), lanes[None]).providers.add(name)
    return lanes


def _statement(
    sid: str, actions: Iterable[str], resources: Iterable[str] | str, condition: dict[str, Any] | None = None
) -> dict[str, Any]:
    listed = resources if isinstance(resources, str) else sorted(set(resources))
    out: dict[str, Any] = {"Sid": sid, "Effect": "Allow", "Action": sorted(set(actions)), "Resource": listed}
    if condition:
        out["Condition"] = condition
    return out


def _lane_statements(desired: Desired, config: Any, lane: Lane) -> list[dict[str, Any]]:
    """What the agent does inside one account and region."""
    clusters = sorted(lane.clusters)
    cluster_arns = [lane.arn("ecs", f"cluster/{c}") for c in clusters]
    on_clusters = {"ArnEquals": {"ecs:cluster": cluster_arns}}
    services = [lane.arn("ecs", f"service/{c}/{s}") for c, s in sorted(lane.services)]
    deployments = [
        lane.arn("ecs", f"{kind}/{c}/{s}{tail}")
        for c, s in sorted(lane.services)
        for kind, tail in (("service", ""), ("service-deployment", "/*"))
    ]
    prune = getattr(getattr(config, "sync", None), "prune", False)
    wanted: list[tuple[str, Any, dict[str, Any] | None, bool]] = [  # Sid, resources, condition, when
        ("ReadCallsThatAllowNoResourceInIam", "*", None, True),
        ("ListServicesOfTheNamedClusters", "*", on_clusters, bool(clusters)),
        ("DescribeTheNamedClusters", cluster_arns, None, bool(clusters)),
        ("ManageTheServicesOfTheManifests", services, on_clusters, bool(services)),
        ("TagTheServicesOfTheManifests", services, None, bool(services)),
        (
            "TaskSetsOfThoseServices",
            [lane.arn("ecs", f"task-set/{c}/{s}/*") for c, s in sorted(lane.services)],
            on_clusters,
            bool(services),
        ),
        ("ServiceDeploymentsOfThoseServices", deployments, on_clusters, bool(services)),
        ("ContinueServiceDeploymentsOfThoseServices", deployments, None, bool(services)),
        (
            "PruneOnlyServicesTheAgentManages",
            [lane.arn("ecs", f"service/{c}/*") for c in clusters],
            {**on_clusters, "StringEquals": {f"aws:ResourceTag/{MANAGED_TAG}": "true"}},
            bool(clusters) and prune,
        ),
        (
            "RegisterAndTagTheTaskDefinitionFamilies",
            [lane.arn("ecs", f"task-definition/{f}:*") for f in sorted(lane.families)],
            None,
            bool(lane.families),
        ),
        (
            "CreateAndUpdateTheClusterManifests",
            [lane.arn("ecs", f"cluster/{c}") for c in sorted(desired.clusters) if c in lane.clusters],
            None,
            any(c in lane.clusters for c in desired.clusters),
        ),
        (
            "CreateAndUpdateTheCapacityProviderManifests",
            [lane.arn("ecs", f"capacity-provider/{p}") for p in sorted(lane.providers)],
            None,
            bool(lane.providers),
        ),
    ]
    out = [
        _statement(sid, ACTIONS[sid], resources, condition)
        for sid, resources, condition, when in wanted
        if when
    ]
    return out + _references(desired, lane)


def _references(desired: Desired, lane: Lane) -> list[dict[str, Any]]:
    """Alarms, roles, listener rules and Lambda hooks that the lane's services and their strategies name."""
    alarms: set[str] = set()
    roles: dict[str, set[str]] = {}  # role ARN -> services it is passed to
    rules: set[str] = set()
    rule_arns: set[str] = set()
    functions: set[str] = set()
    looked_up: set[str] = set()  # roles named by name: the resolver calls GetRole

    def role(value: Any, to: str) -> None:
        name, arn = _ref(value)
        if name:
            looked_up.add(f"arn:aws:iam::{lane.account}:role/{name}")
            arn = arn or f"arn:aws:iam::{lane.account}:role/{name}"
        if arn:
            roles.setdefault(arn, set()).add(to)

    for name, service in desired.services.items():
        if (
            str(service.spec.get("cluster", "default")),
            str(service.spec.get("serviceName") or name),
        ) not in lane.services:
            continue
        strategy = _strategy(desired, service)
        alarms.update(n for a in (strategy.get("rollbackOn") or {}).get("alarms") or () if (n := _ref(a)[0]))
        if strategy.get("hookRole"):
            role(strategy["hookRole"], ECS)
        agent_engine = strategy.get("engine") == "agent"
        for lb in service.spec.get("loadBalancers") or ():
            if lb.get("role"):
                role(lb["role"], ECS)
            for key in ("productionListenerRule", "testListenerRule"):
                rule_name, rule_arn = _ref(lb.get(key))
                if agent_engine and rule_name:
                    rules.add(rule_name)
                if agent_engine and rule_arn:
                    rule_arns.add(rule_arn)
        for hook in strategy.get("hooks") or () if agent_engine else ():
            if isinstance(hook, dict) and hook.get("lambda"):
                functions.add(str(hook["lambda"]))
        family = desired.service_task_family.get(name)
        body = desired.task_definitions[family].body if family in desired.task_definitions else {}
        for key in ("taskRoleArn", "executionRoleArn"):
            if isinstance(body.get(key), str):
                role(body[key], TASKS)
    instance_profiles: set[str] = set()
    for provider in (desired.capacity_providers[p] for p in lane.providers):
        managed = provider.spec.get("managedInstancesProvider") or {}
        if managed.get("infrastructureRole"):
            role(managed["infrastructureRole"], ECS)
        profile = _ref((managed.get("instanceLaunchTemplate") or {}).get("ec2InstanceProfile"))[0]
        if profile:
            instance_profiles.add(f"arn:aws:iam::{lane.account}:instance-profile/{profile}")

    out = []
    if alarms:
        out.append(
            _statement(
                "ReadTheRollbackAlarms",
                ["cloudwatch:DescribeAlarms"],
                [lane.arn("cloudwatch", f"alarm:{a}") for a in alarms],
            )
        )
    if looked_up:
        out.append(_statement("ResolveTheRolesNamed", ["iam:GetRole"], looked_up))
    if instance_profiles:
        out.append(
            _statement("ResolveTheInstanceProfilesNamed", ["iam:GetInstanceProfile"], instance_profiles)
        )
    for to in (TASKS, ECS):
        passed = [arn for arn, services in roles.items() if to in services]
        if passed:
            sid = "PassTheTaskRoles" if to == TASKS else "PassTheInfrastructureAndHookRoles"
            out.append(
                _statement(sid, ["iam:PassRole"], passed, {"StringEquals": {"iam:PassedToService": to}})
            )
    if rules:  # a rule's ARN holds no name: the rules are picked by their Name tag, as the resolver does
        out.append(
            _statement(
                "MoveTrafficOnTheListenerRulesNamed",
                ["elasticloadbalancing:ModifyRule"],
                [lane.arn("elasticloadbalancing", "listener-rule/app/*")],
                {"StringEquals": {"aws:ResourceTag/Name": sorted(rules)}},
            )
        )
    if rule_arns:
        out.append(
            _statement(
                "MoveTrafficOnTheListenerRulesGivenByArn", ["elasticloadbalancing:ModifyRule"], rule_arns
            )
        )
    if functions:
        out.append(_statement("CallTheLambdaHooks", ["lambda:InvokeFunction"], functions))
    return out


def _merge(statements: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Statements with one Sid (from several lanes) become one, resources joined; order kept."""
    merged: dict[str, dict[str, Any]] = {}
    for s in statements:
        kept = merged.get(s["Sid"])
        if kept is None:
            merged[s["Sid"]] = s
            continue
        if kept["Resource"] != "*":
            kept["Resource"] = sorted(set(kept["Resource"]) | set(s["Resource"]))
        for op, keys in (s.get("Condition") or {}).items():
            for key, values in keys.items():
                have = kept["Condition"][op][key]
                joined = {
                    *([have] if isinstance(have, str) else have),
                    *([values] if isinstance(values, str) else values),
                }
                kept["Condition"][op][key] = sorted(joined) if len(joined) > 1 else next(iter(joined))
    return list(merged.values())


def agent_policy(desired: Desired, config: Any, account_id: str | None = None) -> dict[str, Any]:
    """The policy of the agent's own role (task role, IRSA role)."""
    lanes = _lanes(desired, config, account_id)
    home = lanes[None]
    statements = _lane_statements(desired, config, home) if home.clusters or len(lanes) == 1 else []
    store = getattr(config, "store", None)
    if getattr(store, "type", None) == "dynamodb":
        statements.append(
            _statement(
                "StateStoreTableForSeveralReplicas",
                [
                    "dynamodb:GetItem",
                    "dynamodb:Query",
                    "dynamodb:UpdateItem",
                    "dynamodb:DeleteItem",
                    "dynamodb:ConditionCheckItem",
                ],
                [home.arn("dynamodb", f"table/{store.table}")],
            )
        )
    for account in getattr(config, "accounts", ()):
        if account.role_arn:
            condition = (
                {"StringEquals": {"sts:ExternalId": account.external_id}} if account.external_id else None
            )
            statements.append(
                _statement(
                    f"AssumeTheDeployerRoleOf{_camel(account.name)}",
                    ["sts:AssumeRole"],
                    [account.role_arn],
                    condition,
                )
            )
    return {"Version": VERSION, "Statement": _merge(statements)}


def account_policies(
    desired: Desired, config: Any, account_id: str | None = None
) -> dict[str, dict[str, Any]]:
    """The policy of the role the agent assumes in each other account, by account name."""
    lanes = _lanes(desired, config, account_id)
    out = {}
    for account in getattr(config, "accounts", ()):
        if account.role_arn:
            lane = lanes[account.role_arn]
            out[account.name] = {
                "Version": VERSION,
                "Statement": _merge(_lane_statements(desired, config, lane)),
            }
    return out


def _camel(name: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in re.split(r"[^A-Za-z0-9]+", name) if part)
