"""Resolve references to resources the manifests don't own: ``{name: web-blue}`` -> an ARN or ID.

One set of manifests then works in every account and in the sandbox. Lookups are batched per resource
type (one call for all subnet names, one for all target groups, ...) and remembered for ``ttl``
seconds, so a no-op tick does not repeat them. A name that matches nothing, or more than one thing, is a
Problem naming the file and the field.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import fnmatch
import time
from collections.abc import Callable, Iterator
from typing import Any

from agent.errors import InvalidInput, Problem
from agent.manifests.model import Desired, Manifest

from .errors import translated

# (kind, pointer pattern with * for any list index, resource type). Patterns are matched against the
# JSON pointer of each value in the document.
REFERENCE_FIELDS: tuple[tuple[str, str, str], ...] = (
    ("Service", "/spec/networkConfiguration/awsvpcConfiguration/subnets/*", "subnet"),
    ("Service", "/spec/networkConfiguration/awsvpcConfiguration/securityGroups/*", "security-group"),
    ("Service", "/spec/loadBalancers/*/targetGroup", "target-group"),
    ("Service", "/spec/loadBalancers/*/alternateTargetGroup", "target-group"),
    ("Service", "/spec/loadBalancers/*/productionListenerRule", "listener-rule"),
    ("Service", "/spec/loadBalancers/*/testListenerRule", "listener-rule"),
    ("Service", "/spec/loadBalancers/*/role", "role"),
    ("Service", "/spec/strategy/rollbackOn/alarms/*", "alarm"),
    ("Service", "/spec/strategy/hookRole", "role"),
    ("DeploymentStrategy", "/spec/rollbackOn/alarms/*", "alarm"),
    ("DeploymentStrategy", "/spec/hookRole", "role"),
    ("CapacityProvider", "/spec/autoScalingGroupProvider/autoScalingGroup", "auto-scaling-group"),
    ("CapacityProvider", "/spec/managedInstancesProvider/infrastructureRole", "role"),
    (
        "CapacityProvider",
        "/spec/managedInstancesProvider/instanceLaunchTemplate/ec2InstanceProfile",
        "instance-profile",
    ),
    (
        "CapacityProvider",
        "/spec/managedInstancesProvider/instanceLaunchTemplate/networkConfiguration/subnets/*",
        "subnet",
    ),
    (
        "CapacityProvider",
        "/spec/managedInstancesProvider/instanceLaunchTemplate/networkConfiguration/securityGroups/*",
        "security-group",
    ),
)

NOUN = {
    "subnet": "subnet (by Name tag)",
    "security-group": "security group (by group name or Name tag)",
    "target-group": "target group",
    "listener-rule": "listener rule (by Name tag)",
    "role": "IAM role",
    "instance-profile": "instance profile",
    "alarm": "CloudWatch alarm",
    "auto-scaling-group": "Auto Scaling group",
}


def _named(value: Any, path: tuple[str, ...]) -> Iterator[tuple[str, str]]:
    """(JSON pointer, name) of every ``{"name": <str>}`` object in ``value``, depth first, in document
    order; pointers are built only for those."""
    if isinstance(value, dict):
        if len(value) == 1 and isinstance(value.get("name"), str):
            yield "".join(path), value["name"]
        for k, v in value.items():
            if isinstance(v, (dict, list)):
                yield from _named(v, (*path, "/" + str(k).replace("~", "~0").replace("/", "~1")))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            if isinstance(v, (dict, list)):
                yield from _named(v, (*path, f"/{i}"))


def references(manifest: Manifest) -> Iterator[tuple[str, str, str]]:
    """(pointer, resource type, name) for every by-name reference in a manifest."""
    patterns = [(p, t) for k, p, t in REFERENCE_FIELDS if k == manifest.kind]
    if not patterns:
        return
    for pointer, name in _named(manifest.spec, ("/spec",)):
        for pattern, rtype in patterns:
            if fnmatch.fnmatchcase(pointer, pattern):
                yield pointer, rtype, name


def _set(doc: dict[str, Any], pointer: str, value: Any) -> None:
    parts = [p.replace("~1", "/").replace("~0", "~") for p in pointer.split("/")[1:]]
    node: Any = doc
    for p in parts[:-1]:
        node = node[int(p)] if isinstance(node, list) else node[p]
    last = parts[-1]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value


class Resolver:
    """Looks names up in AWS; one instance per agent so its cache spans ticks."""

    def __init__(self, aws: Any, ttl: float = 600.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.aws = aws
        self.ttl = ttl
        self.clock = clock
        self._cache: dict[tuple[str, str], tuple[float, list[str]]] = {}
        self._lookups: dict[str, Callable[[list[str]], dict[str, list[str]]]] = {
            "subnet": self._subnets,
            "security-group": self._security_groups,
            "target-group": self._target_groups,
            "listener-rule": self._listener_rules,
            "role": self._roles,
            "instance-profile": self._instance_profiles,
            "alarm": self._alarms,
            "auto-scaling-group": self._auto_scaling_groups,
        }

    def resolve(self, desired: Desired) -> Desired:
        """A copy of ``desired`` with every ``{name: ...}`` replaced (``desired`` itself when it names
        nothing; it is never changed); InvalidInput lists what failed."""
        manifests = [
            m
            for kind in ("Service", "DeploymentStrategy", "CapacityProvider")
            for m in desired.by_kind(kind).values()
        ]
        wanted: dict[str, set[str]] = {}
        refs = {id(m): list(references(m)) for m in manifests}
        for found in refs.values():
            for _, rtype, name in found:
                wanted.setdefault(rtype, set()).add(name)
        matches = self._lookup(wanted)

        if not wanted:
            return desired  # nothing to look up: the same manifests
        problems: list[Problem] = []
        # New dicts of each kind a reference may be in: ``desired`` (kept by DesiredCache for the next tick
        # at the same commit) keeps its names, looked up again once their answers are older than ``ttl``.
        out = dataclasses.replace(
            desired,
            services=dict(desired.services),
            strategies=dict(desired.strategies),
            capacity_providers=dict(desired.capacity_providers),
        )
        for m in manifests:
            if not refs[id(m)]:
                continue
            doc = {"spec": copy.deepcopy(m.spec)}
            for pointer, rtype, name in refs[id(m)]:
                ids = matches.get((rtype, name), [])
                if len(ids) == 1:
                    _set(doc, pointer, ids[0])
                    continue
                msg = (
                    f"no {NOUN[rtype]} named {name!r} in this account and region"
                    if not ids
                    else f"{len(ids)} {NOUN[rtype]}s are named {name!r} ({', '.join(sorted(ids))}); "
                    "give the ARN or ID instead"
                )
                problems.append(Problem(m.source.file, pointer, msg, m.source.line_of(pointer)))
            out.by_kind(m.kind)[m.name] = dataclasses.replace(m, spec=doc["spec"])
        if problems:
            raise InvalidInput(sorted(problems))
        return out

    # -- lookups: names -> {name: [ids]} -------------------------------------------------------------

    def _lookup(self, wanted: dict[str, set[str]]) -> dict[tuple[str, str], list[str]]:
        now = self.clock()
        result: dict[tuple[str, str], list[str]] = {}
        with translated():
            for rtype, names in sorted(wanted.items()):
                missing = sorted(n for n in names if not self._fresh((rtype, n), now))
                if missing:
                    found = self._lookups[rtype](missing)
                    for n in missing:
                        ids = sorted(set(found.get(n, [])))
                        # Failures are not cached: the resource may be created before the next tick.
                        if len(ids) == 1:
                            self._cache[(rtype, n)] = (now, ids)
                        result[(rtype, n)] = ids
                for n in names:
                    if (rtype, n) in self._cache and self._fresh((rtype, n), now):
                        result[(rtype, n)] = self._cache[(rtype, n)][1]
        return result

    def _fresh(self, key: tuple[str, str], now: float) -> bool:
        hit = self._cache.get(key)
        return hit is not None and now - hit[0] < self.ttl

    @staticmethod
    def _group(pairs: Iterator[tuple[str | None, str]]) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for name, ident in pairs:
            if name is not None:
                out.setdefault(name, []).append(ident)
        return out

    @staticmethod
    def _name_tag(tags: list[dict[str, str]] | None) -> str | None:
        return next((t["Value"] for t in tags or () if t.get("Key") == "Name"), None)

    def _subnets(self, names: list[str]) -> dict[str, list[str]]:
        ec2 = self.aws.client("ec2")
        pages = ec2.get_paginator("describe_subnets").paginate(
            Filters=[{"Name": "tag:Name", "Values": names}]
        )
        return self._group(
            (self._name_tag(s.get("Tags")), s["SubnetId"]) for p in pages for s in p["Subnets"]
        )

    def _security_groups(self, names: list[str]) -> dict[str, list[str]]:
        ec2 = self.aws.client("ec2")
        found: dict[str, set[str]] = {}
        for filt in ("group-name", "tag:Name"):
            pages = ec2.get_paginator("describe_security_groups").paginate(
                Filters=[{"Name": filt, "Values": names}]
            )
            for p in pages:
                for g in p["SecurityGroups"]:
                    name = g["GroupName"] if filt == "group-name" else self._name_tag(g.get("Tags"))
                    if name in names:
                        found.setdefault(name, set()).add(g["GroupId"])
            if all(n in found for n in names):
                break
        return {k: sorted(v) for k, v in found.items()}

    def _target_groups(self, names: list[str]) -> dict[str, list[str]]:
        elb = self.aws.client("elbv2")
        try:
            groups = elb.describe_target_groups(Names=names)["TargetGroups"]
        except elb.exceptions.TargetGroupNotFoundException:
            # One of them is missing: ask one by one to know which.
            return self._one_by_one(
                names,
                lambda n: elb.describe_target_groups(Names=[n])["TargetGroups"][0]["TargetGroupArn"],
                elb.exceptions.TargetGroupNotFoundException,
            )
        return self._group((g["TargetGroupName"], g["TargetGroupArn"]) for g in groups)

    def _listener_rules(self, names: list[str]) -> dict[str, list[str]]:
        elb = self.aws.client("elbv2")
        rule_arns: list[str] = []
        for page in elb.get_paginator("describe_load_balancers").paginate():
            for lb in page["LoadBalancers"]:
                for lpage in elb.get_paginator("describe_listeners").paginate(
                    LoadBalancerArn=lb["LoadBalancerArn"]
                ):
                    for listener in lpage["Listeners"]:
                        rules = elb.describe_rules(ListenerArn=listener["ListenerArn"])["Rules"]
                        rule_arns += [r["RuleArn"] for r in rules if not r.get("IsDefault")]
        pairs: list[tuple[str | None, str]] = []
        for i in range(0, len(rule_arns), 20):
            for d in elb.describe_tags(ResourceArns=rule_arns[i : i + 20])["TagDescriptions"]:
                name = self._name_tag(d.get("Tags"))
                if name in names:
                    pairs.append((name, d["ResourceArn"]))
        return self._group(iter(pairs))

    @staticmethod
    def _one_by_one(
        names: list[str], get: Callable[[str], str], missing: type[Exception]
    ) -> dict[str, list[str]]:
        """For APIs without a batch form: one call per name; a name that is not found is left out."""
        out: dict[str, list[str]] = {}
        for n in names:
            with contextlib.suppress(missing):
                out[n] = [get(n)]
        return out

    def _roles(self, names: list[str]) -> dict[str, list[str]]:
        iam = self.aws.client("iam")
        return self._one_by_one(
            names, lambda n: iam.get_role(RoleName=n)["Role"]["Arn"], iam.exceptions.NoSuchEntityException
        )

    def _instance_profiles(self, names: list[str]) -> dict[str, list[str]]:
        iam = self.aws.client("iam")
        return self._one_by_one(
            names,
            lambda n: iam.get_instance_profile(InstanceProfileName=n)["InstanceProfile"]["Arn"],
            iam.exceptions.NoSuchEntityException,
        )

    def _alarms(self, names: list[str]) -> dict[str, list[str]]:
        cw = self.aws.client("cloudwatch")
        out: dict[str, list[str]] = {}
        for i in range(0, len(names), 100):
            page = cw.describe_alarms(
                AlarmNames=names[i : i + 100], AlarmTypes=["MetricAlarm", "CompositeAlarm"]
            )
            for a in page.get("MetricAlarms", []) + page.get("CompositeAlarms", []):
                out.setdefault(a["AlarmName"], []).append(a["AlarmName"])
        return out

    def _auto_scaling_groups(self, names: list[str]) -> dict[str, list[str]]:
        asg = self.aws.client("autoscaling")
        pages = asg.get_paginator("describe_auto_scaling_groups").paginate(AutoScalingGroupNames=names)
        return self._group(
            (g["AutoScalingGroupName"], g["AutoScalingGroupARN"])
            for p in pages
            for g in p["AutoScalingGroups"]
        )
