"""Services: the change from what ECS runs to what a Service manifest asks (create, update, or none).

The request itself is built by :mod:`agent.plan.services`; this module compares it with the live service and
picks the UpdateService fields, tag calls and task-set change it takes, with a warning for each field
that cannot be changed in place.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from agent.manifests.model import Desired, Manifest
from agent.plan import codedeploy
from agent.plan.diff import diff
from agent.plan.model import ABSENT, CREATE, NO_CHANGE, UPDATE, Change, TaskDefinitionRef
from agent.plan.observed import Observed
from agent.plan.resources import (
    active,
    cluster_name,
    creation_fields,
    ignore_drift,
    lookup,
    tag_calls,
    top_level,
)
from agent.plan.services import (
    TASK_SET_FIELDS,
    create_service_request,
    live_strategy,
    normalise_service,
    ref,
    resolve_strategy,
    switch_blocker,
    wanted_strategy,
)

# Service fields compared only when the manifest sets them (otherwise something else owns them).
_SERVICE_OWNED_WHEN_SET = (
    "desiredCount",  # Application Auto Scaling
    "role",  # ECS picks its service-linked role
    "availabilityZoneRebalancing",
    "serviceConnectConfiguration",
    "volumeConfigurations",
    "vpcLatticeConfigurations",
    "monitoring",
)
_SERVICE_IMMUTABLE = ("launchType", "schedulingStrategy", "serviceName", "role")


def has_maintenance_window(spec: Mapping[str, Any], desired: Desired) -> bool:
    """Whether a service lists a maintenance window (by name, or inline)."""
    for window in spec.get("windows") or []:
        found = desired.windows.get(window) if isinstance(window, str) else None
        window_spec = found.spec if found is not None else window
        if isinstance(window_spec, Mapping) and window_spec.get("type") == "maintenance":
            return True
    return False


def service_change(
    manifest: Manifest,
    desired: Desired,
    observed: Observed,
    refs: Mapping[str, TaskDefinitionRef],
    revision: str | None,
    warnings: list[str],
) -> Change:
    spec = manifest.spec
    cluster = cluster_name(desired, str(spec.get("cluster", "")))
    service_name = str(spec.get("serviceName") or manifest.name)
    name = f"{cluster}/{service_name}"
    source = manifest.source.file
    inline = spec.get("taskDefinition")
    family = desired.service_task_family.get(manifest.name) or (
        str(inline.get("family")) if isinstance(inline, Mapping) else None
    )
    task_definition: TaskDefinitionRef | str | None = refs.get(family) if family else None
    if task_definition is None and isinstance(inline, str) and ":" in inline:
        task_definition = inline  # an ARN or family:revision the manifests do not own
    try:
        strategy = resolve_strategy(spec.get("strategy"), desired.strategies)
    except KeyError as error:
        warnings.append(f"Service {name}: {error.args[0]}; planned with the default rolling strategy")
        strategy = None
    request = create_service_request(
        spec,
        service_name=service_name,
        cluster=cluster,
        task_definition=task_definition,
        strategy=strategy,
        external_id=revision,
        pause=has_maintenance_window(spec, desired),
    )
    current = active(
        lookup(observed.services, (cluster, service_name), (str(spec.get("cluster", "")), service_name))
    )
    if current is None:
        reason = "service does not exist"
        if "desiredCount" not in request and request.get("schedulingStrategy") != "DAEMON":
            request["desiredCount"] = 1
            reason += "; desiredCount 1 to start (autoscaling owns it afterwards)"
        return Change("Service", name, CREATE, source, creation_fields(request), request, reason)

    request = _on_live_target_group(request, spec, current)
    want, have = compared(request, current)
    fields = ignore_drift(diff(have, want), spec.get("ignoreDrift") or [])
    if not fields:
        return Change("Service", name, NO_CHANGE, source, (), {}, "matches")

    external = want["deploymentController"]["type"] == "EXTERNAL"
    update: dict[str, Any] = {"cluster": cluster, "service": service_name}
    calls: dict[str, Any] = {}
    task_set_changed = False
    label = f"Service {name}"
    before, after = live_strategy(current), wanted_strategy(strategy)
    # A CODE_DEPLOY service's switch is agent.plan.codedeploy's (a hold, or a migration with its note).
    switch = f"strategy {before} -> {after}, in place" if before not in (after, "CODE_DEPLOY") else ""
    blocked = switch_blocker(current, strategy)
    if blocked is not None:
        warnings.append(f"{label}: {blocked[1]}")
        reason = f"strategy {before} -> {after}: {'refused' if blocked[0] == 'failure' else 'waiting'}"
        return Change("Service", name, UPDATE, source, tuple(fields), {}, reason)
    if switch and "EXTERNAL" in (before, after):
        switch = f"strategy {before} -> {after}, in place: the PRIMARY task set becomes the deployment"
    for key in top_level(fields):
        old, new = have.get(key, ABSENT), want.get(key, ABSENT)
        if key == "tags":
            continue
        if key in _SERVICE_IMMUTABLE:
            if not (key == "launchType" and new is ABSENT):  # launch type -> capacity providers is an update
                warnings.append(
                    f"{label}: {key} cannot be changed by UpdateService; requires re-creating the service"
                )
            continue
        if external and key in TASK_SET_FIELDS:
            task_set_changed = True
            continue
        value = request.get(key, new)
        if value is ABSENT:
            if not isinstance(old, list):
                warnings.append(f"{label}: {key} was removed from the manifest; ECS keeps the current value")
                continue
            value = []
        update[key] = value
    if len(update) > 2:
        calls["updateService"] = update
    if task_set_changed:
        calls["taskSet"] = request["taskSet"]
    calls.update(tag_calls(have.get("tags"), want.get("tags"), current.get("serviceArn")))
    note, hold = "", None
    if codedeploy.controller(current) == codedeploy.CODE_DEPLOY:
        note, hold = codedeploy.gate(spec, current, want["deploymentController"]["type"])
    reason = switch or f"{len(fields)} field(s) differ"
    return Change("Service", name, UPDATE, source, tuple(fields), calls, reason, note=note, hold=hold)


def _on_live_target_group(
    request: dict[str, Any], spec: Mapping[str, Any], current: Mapping[str, Any]
) -> dict[str, Any]:
    """An agent-engine service alternates its task sets between targetGroup and alternateTargetGroup: a
    PRIMARY task set on the alternate group is as desired, so the request names that group too (otherwise
    the plan would show the target group changing after every other rollout)."""
    task_set = request.get("taskSet")
    balancers = spec.get("loadBalancers") or []
    if not isinstance(task_set, Mapping) or not balancers or not isinstance(balancers[0], Mapping):
        return request
    alternate = ref(balancers[0].get("alternateTargetGroup"))
    primary = next((ts for ts in current.get("taskSets") or [] if ts.get("status") == "PRIMARY"), None)
    live = ((primary or {}).get("loadBalancers") or [{}])[0].get("targetGroupArn")
    if not alternate or live != alternate or not task_set.get("loadBalancers"):
        return request
    out = copy.deepcopy(request)
    out["taskSet"]["loadBalancers"][0]["targetGroupArn"] = alternate
    return out


def compared(request: Mapping[str, Any], current: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(wanted, live) as the planner diffs them: a CreateService ``request`` and the ``current``
    DescribeServices entry, both normalised; what ECS owns unless the request sets it (and the launch type
    when the cluster's default capacity-provider strategy applies) left out of the live side."""
    want = normalise_service(request)
    have = normalise_service(current)
    for key in _SERVICE_OWNED_WHEN_SET:
        if key not in want:
            have.pop(key, None)
    if "launchType" not in want and "capacityProviderStrategy" not in want:
        have.pop("launchType", None)  # the cluster's default capacity-provider strategy applies
        have.pop("capacityProviderStrategy", None)
    return want, have
