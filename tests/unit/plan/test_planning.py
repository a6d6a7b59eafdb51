"""build_plan over hand-built Desired and Observed: create, no change, image bump, revert, drift rules."""

from __future__ import annotations

import copy
from typing import Any

from agent.manifests.model import Desired, Manifest, Source, TaskDefinitionFile
from agent.plan.model import (
    ABSENT,
    CREATE,
    DELETE,
    NO_CHANGE,
    REGISTER,
    REUSE,
    UPDATE,
    FieldChange,
    Plan,
    TaskDefinitionRef,
)
from agent.plan.observed import Observed
from agent.plan.planning import build_plan, service_order
from agent.plan.render import render_text
from agent.plan.services import MANAGED_TAG
from agent.plan.taskdefs import content_hash

ACCOUNT = "arn:aws:ecs:eu-west-1:123456789012"
ASG_ARN = "arn:aws:autoscaling:eu-west-1:123456789012:autoScalingGroup:uuid:autoScalingGroupName/prod-ecs-asg"
MANAGED = dict(MANAGED_TAG)  # the agent tags every service it manages (prune looks for it)


def _td_arn(family: str, revision: int) -> str:
    return f"{ACCOUNT}:task-definition/{family}:{revision}"


def _manifest(kind: str, name: str, spec: dict[str, Any], file: str) -> Manifest:
    return Manifest(kind=kind, name=name, spec=spec, source=Source(file))


def _web_td(image: str = "repo/app:v1") -> dict[str, Any]:
    return {
        "family": "web",
        "networkMode": "awsvpc",
        "requiresCompatibilities": ["FARGATE"],
        "cpu": "0.25 vCPU",
        "memory": "0.5GB",
        "containerDefinitions": [
            {
                "name": "web",
                "image": image,
                "portMappings": [{"containerPort": 8080}],
                "environment": [{"name": "B", "value": "2"}, {"name": "A", "value": "1"}],
            }
        ],
    }


def _desired(image: str = "repo/app:v1", **service_overrides: Any) -> Desired:
    desired = Desired()
    desired.capacity_providers["prod-asg"] = _manifest(
        "CapacityProvider",
        "prod-asg",
        {
            "autoScalingGroupProvider": {
                "autoScalingGroup": ASG_ARN,
                "managedTerminationProtection": "DISABLED",
            }
        },
        "platform/capacity-providers.yaml",
    )
    desired.clusters["prod"] = _manifest(
        "Cluster",
        "prod",
        {
            "capacityProviders": ["FARGATE", "prod-asg"],
            "settings": [{"name": "containerInsights", "value": "enabled"}],
            "tags": {"team": "platform"},
        },
        "platform/clusters.yaml",
    )
    web_spec: dict[str, Any] = {
        "cluster": "prod",
        "taskDefinition": "../taskdefs/web.json",
        "desiredCount": 2,
        "launchType": "FARGATE",
        "networkConfiguration": {
            "awsvpcConfiguration": {"subnets": ["subnet-b", "subnet-a"], "securityGroups": ["sg-1"]}
        },
        "tags": {"team": "storefront"},
        "dependsOn": ["api"],
    }
    web_spec.update(service_overrides)
    desired.services["web"] = _manifest("Service", "web", web_spec, "services/web.yaml")
    desired.services["api"] = _manifest(
        "Service",
        "api",
        {
            "cluster": "prod",
            "taskDefinition": {
                "family": "api",
                "containerDefinitions": [{"name": "api", "image": "api:1", "memory": 128}],
            },
            "capacityProviderStrategy": [{"capacityProvider": "prod-asg", "weight": 1}],
        },
        "services/api.yaml",
    )
    desired.task_definitions["web"] = TaskDefinitionFile(_web_td(image), Source("taskdefs/web.json"))
    api_body = desired.services["api"].spec["taskDefinition"]
    desired.task_definitions["api"] = TaskDefinitionFile(
        api_body, Source("services/api.yaml"), "/spec/taskDefinition"
    )
    desired.service_task_family.update(web="web", api="api")
    return desired


def _as_ecs_describes(body: dict[str, Any], arn: str) -> dict[str, Any]:
    """A DescribeTaskDefinition response as ECS would give for a registered ``body``."""
    td = copy.deepcopy(body)
    revision = arn.rsplit(":", 1)[1]
    td.update(
        taskDefinitionArn=arn,
        revision=int(revision),
        status="ACTIVE",
        compatibilities=["EC2", "FARGATE"],
        volumes=[],
        placementConstraints=[],
        registeredAt="2025-01-01T00:00:00Z",
    )
    if td.get("cpu") == "0.25 vCPU":
        td["cpu"] = "256"
    if td.get("memory") == "0.5GB":
        td["memory"] = "512"
    for cd in td["containerDefinitions"]:
        cd.setdefault("cpu", 0)
        cd.setdefault("essential", True)
        cd.setdefault("mountPoints", [])
        cd.setdefault("volumesFrom", [])
        for pm in cd.get("portMappings", []):
            pm.setdefault("protocol", "tcp")
            if td.get("networkMode") == "awsvpc":
                pm.setdefault("hostPort", pm["containerPort"])
        cd["environment"] = list(reversed(cd.get("environment", [])))
    if "networkMode" not in td:
        td["networkMode"] = "bridge"
    return {"taskDefinition": td, "tags": [{"key": "ecs-gitops:content-hash", "value": content_hash(body)}]}


def _applied(desired: Desired, revisions: dict[str, int] | None = None) -> Observed:
    """What ECS looks like after ``desired`` has been applied (each family at ``revisions[family]``)."""
    revisions = revisions or {"web": 1, "api": 1}
    observed = Observed()
    for family, tdf in desired.task_definitions.items():
        arn = _td_arn(family, revisions[family])
        observed.task_definitions[arn] = _as_ecs_describes(tdf.body, arn)
        observed.revisions_by_hash[(family, content_hash(tdf.body))] = arn
        observed.latest_revision[family] = arn
    observed.capacity_providers["prod-asg"] = {
        "capacityProviderArn": f"{ACCOUNT}:capacity-provider/prod-asg",
        "name": "prod-asg",
        "status": "ACTIVE",
        "autoScalingGroupProvider": {
            "autoScalingGroupArn": ASG_ARN,
            "managedScaling": {
                "status": "DISABLED",
                "targetCapacity": 100,
                "minimumScalingStepSize": 1,
                "maximumScalingStepSize": 10000,
                "instanceWarmupPeriod": 300,
            },
            "managedTerminationProtection": "DISABLED",
            "managedDraining": "ENABLED",
        },
        "tags": [],
    }
    observed.clusters["prod"] = {
        "clusterArn": f"{ACCOUNT}:cluster/prod",
        "clusterName": "prod",
        "status": "ACTIVE",
        "runningTasksCount": 3,
        "capacityProviders": ["prod-asg", "FARGATE"],
        "defaultCapacityProviderStrategy": [],
        "settings": [{"name": "containerInsights", "value": "enabled"}],
        "tags": [{"key": "team", "value": "platform"}],
    }
    observed.services[("prod", "web")] = {
        "serviceArn": f"{ACCOUNT}:service/prod/web",
        "serviceName": "web",
        "clusterArn": f"{ACCOUNT}:cluster/prod",
        "status": "ACTIVE",
        "desiredCount": 2,
        "runningCount": 2,
        "launchType": "FARGATE",
        "platformVersion": "LATEST",
        "taskDefinition": _td_arn("web", revisions["web"]),
        "deploymentConfiguration": {
            "deploymentCircuitBreaker": {"enable": True, "rollback": True},
            "maximumPercent": 200,
            "minimumHealthyPercent": 100,
            "alarms": {"alarmNames": [], "enable": False, "rollback": False},
        },
        "deployments": [{"status": "PRIMARY", "taskDefinition": _td_arn("web", revisions["web"])}],
        "events": [],
        "loadBalancers": [],
        "serviceRegistries": [],
        "networkConfiguration": {
            "awsvpcConfiguration": {
                "subnets": ["subnet-a", "subnet-b"],
                "securityGroups": ["sg-1"],
                "assignPublicIp": "DISABLED",
            }
        },
        "schedulingStrategy": "REPLICA",
        "deploymentController": {"type": "ECS"},
        "tags": [{"key": "team", "value": "storefront"}, MANAGED],
        "propagateTags": "NONE",
        "enableECSManagedTags": False,
        "enableExecuteCommand": False,
        "healthCheckGracePeriodSeconds": 0,
    }
    observed.services[("prod", "api")] = {
        "serviceArn": f"{ACCOUNT}:service/prod/api",
        "serviceName": "api",
        "status": "ACTIVE",
        "desiredCount": 1,
        "capacityProviderStrategy": [{"capacityProvider": "prod-asg", "weight": 1, "base": 0}],
        "taskDefinition": _td_arn("api", revisions["api"]),
        "deploymentConfiguration": {
            "deploymentCircuitBreaker": {"enable": True, "rollback": True},
            "maximumPercent": 200,
            "minimumHealthyPercent": 100,
        },
        "schedulingStrategy": "REPLICA",
        "deploymentController": {"type": "ECS"},
        "roleArn": "arn:aws:iam::123456789012:role/aws-service-role/ecs.amazonaws.com/AWSServiceRoleForECS",
        "tags": [MANAGED],
    }
    return observed


def _change(plan: Plan, kind: str, name: str) -> Any:
    matches = [c for c in plan.changes if c.kind == kind and c.name == name]
    assert len(matches) == 1, f"{kind} {name} not in plan"
    return matches[0]


def test_create_everything() -> None:
    """Against an empty account every resource is created and every family registered, in dependency order."""
    plan = build_plan(_desired(), Observed(), "abc123")
    assert [(c.kind, c.name, c.action) for c in plan.changes] == [
        ("CapacityProvider", "prod-asg", CREATE),
        ("Cluster", "prod", CREATE),
        ("TaskDefinition", "api", REGISTER),
        ("TaskDefinition", "web", REGISTER),
        ("Service", "prod/api", CREATE),
        ("Service", "prod/web", CREATE),
    ]
    assert plan.revision == "abc123" and plan.has_changes
    web = _change(plan, "Service", "prod/web")
    assert web.request["taskDefinition"] == TaskDefinitionRef("web", content_hash(_web_td()), None)
    assert FieldChange("/taskDefinition", ABSENT, "web:(new)") in web.fields
    api = _change(plan, "Service", "prod/api")
    assert api.request["desiredCount"] == 1  # absent in the manifest: a start value, autoscaling takes over
    cluster = _change(plan, "Cluster", "prod")
    assert cluster.request == {
        "clusterName": "prod",
        "capacityProviders": ["FARGATE", "prod-asg"],
        "settings": [{"name": "containerInsights", "value": "enabled"}],
        "tags": [{"key": "team", "value": "platform"}],
    }
    provider = _change(plan, "CapacityProvider", "prod-asg")
    assert provider.request["autoScalingGroupProvider"]["autoScalingGroupArn"] == ASG_ARN
    td = _change(plan, "TaskDefinition", "web")
    assert {"key": "ecs-gitops:content-hash", "value": content_hash(_web_td())} in td.request["tags"]


def test_no_change_when_observed_matches() -> None:
    """After applying, the same manifests plan as no change at all (the round trip)."""
    desired = _desired()
    plan = build_plan(desired, _applied(desired), "abc123")
    assert {c.action for c in plan.changes} == {NO_CHANGE}, [(c.name, c.fields) for c in plan.changes]
    assert not plan.has_changes
    assert plan.warnings == ()
    assert _change(plan, "TaskDefinition", "web").request == {"taskDefinitionArn": _td_arn("web", 1)}


def test_image_bump_registers_and_updates() -> None:
    """A new image is one REGISTER (diffed against the running revision) and one UpdateService."""
    observed = _applied(_desired("repo/app:v1"))
    plan = build_plan(_desired("repo/app:v2"), observed, "def456")
    changing = [(c.kind, c.name, c.action) for c in plan.changes if c.changes_anything]
    assert changing == [("TaskDefinition", "web", REGISTER), ("Service", "prod/web", UPDATE)]
    td = _change(plan, "TaskDefinition", "web")
    assert td.fields == (FieldChange("/containerDefinitions/web/image", "repo/app:v1", "repo/app:v2"),)
    service = _change(plan, "Service", "prod/web")
    assert service.fields == (FieldChange("/taskDefinition", "web:1", "web:(new)"),)
    update = service.request["updateService"]
    assert update == {
        "cluster": "prod",
        "service": "web",
        "taskDefinition": TaskDefinitionRef("web", content_hash(_web_td("repo/app:v2")), None),
    }
    assert set(service.request) == {"updateService"}


def test_revert_reuses_revision_by_hash() -> None:
    """Reverting to content that was registered before reuses that revision instead of registering again."""
    v1, v2 = _desired("repo/app:v1"), _desired("repo/app:v2")
    observed = _applied(v2, {"web": 2, "api": 1})
    observed.revisions_by_hash[("web", content_hash(v1.task_definitions["web"].body))] = _td_arn("web", 1)
    plan = build_plan(v1, observed)
    td = _change(plan, "TaskDefinition", "web")
    assert td.action == REUSE
    assert td.request == {"taskDefinitionArn": _td_arn("web", 1)}
    assert td.reason == f"content {content_hash(v1.task_definitions['web'].body)} matches web:1"
    service = _change(plan, "Service", "prod/web")
    assert service.fields == (FieldChange("/taskDefinition", "web:2", "web:1"),)
    assert service.request["updateService"]["taskDefinition"].arn == _td_arn("web", 1)


def test_a_family_is_diffed_against_the_revision_its_first_service_by_name_runs() -> None:
    """Of the services running a family, the first by manifest name gives the revision to diff against;
    without any running it, the family's latest revision."""
    desired = _desired("repo/app:v2")
    canary_spec = {**desired.services["web"].spec, "serviceName": "web-canary"}
    desired.services["canary"] = _manifest("Service", "canary", canary_spec, "services/canary.yaml")
    desired.service_task_family["canary"] = "web"
    observed = _applied(_desired("repo/app:v1"))
    web_7 = _td_arn("web", 7)
    observed.services[("prod", "web-canary")] = {
        **observed.services[("prod", "web")],
        "serviceName": "web-canary",
        "taskDefinition": web_7,
    }
    observed.task_definitions[web_7] = _as_ecs_describes(_web_td("repo/app:v0"), web_7)
    td = _change(build_plan(desired, observed), "TaskDefinition", "web")
    assert td.action == REGISTER
    assert td.reason == f"content {content_hash(_web_td('repo/app:v2'))} differs from web:7"
    assert td.fields == (FieldChange("/containerDefinitions/web/image", "repo/app:v0", "repo/app:v2"),)
    del observed.services[("prod", "web-canary")]
    assert _change(build_plan(desired, observed), "TaskDefinition", "web").reason.endswith("from web:1")
    del observed.services[("prod", "web")]
    observed.latest_revision["web"] = web_7
    assert _change(build_plan(desired, observed), "TaskDefinition", "web").reason.endswith("from web:7")


def test_desired_count_omitted_never_diffs() -> None:
    """Without desiredCount in the manifest, whatever count autoscaling set is not drift."""
    desired = _desired()
    del desired.services["web"].spec["desiredCount"]
    observed = _applied(_desired())
    observed.services[("prod", "web")]["desiredCount"] = 17  # type: ignore[index]
    plan = build_plan(desired, observed)
    assert not plan.has_changes


def test_desired_count_set_is_compared() -> None:
    """A desiredCount in the manifest is enforced."""
    desired = _desired(desiredCount=5)
    plan = build_plan(desired, _applied(_desired()))
    service = _change(plan, "Service", "prod/web")
    assert service.fields == (FieldChange("/desiredCount", 2, 5),)
    assert service.request == {"updateService": {"cluster": "prod", "service": "web", "desiredCount": 5}}


def test_ignore_drift_pointer() -> None:
    """Fields under an ignoreDrift pointer are neither reported nor corrected."""
    desired = _desired(desiredCount=5, ignoreDrift=["/desiredCount"])
    assert not build_plan(desired, _applied(_desired())).has_changes


def test_inactive_service_is_created_again() -> None:
    """An INACTIVE (deleted) service counts as missing."""
    desired = _desired()
    observed = _applied(desired)
    observed.services[("prod", "web")]["status"] = "INACTIVE"  # type: ignore[index]
    assert _change(build_plan(desired, observed), "Service", "prod/web").action == CREATE


def test_immutable_field_warns() -> None:
    """A launch type change is shown, left out of UpdateService and warned about."""
    desired = _desired(launchType="EC2")
    plan = build_plan(desired, _applied(_desired()))
    service = _change(plan, "Service", "prod/web")
    assert FieldChange("/launchType", "FARGATE", "EC2") in service.fields
    assert "launchType" not in service.request.get("updateService", {})
    assert any("launchType" in w and "re-creating the service" in w for w in plan.warnings)


def test_tags_and_settings_update_calls() -> None:
    """Cluster settings and tags differences become UpdateClusterSettings and TagResource/UntagResource."""
    desired = _desired()
    observed = _applied(desired)
    cluster = observed.clusters["prod"]
    assert cluster is not None
    cluster["settings"] = [{"name": "containerInsights", "value": "disabled"}]
    cluster["tags"] = [{"key": "team", "value": "other"}, {"key": "old", "value": "x"}]
    plan = build_plan(desired, observed)
    change = _change(plan, "Cluster", "prod")
    assert change.action == UPDATE
    assert change.request == {
        "updateClusterSettings": {
            "cluster": "prod",
            "settings": [{"name": "containerInsights", "value": "enabled"}],
        },
        "tagResource": {
            "resourceArn": f"{ACCOUNT}:cluster/prod",
            "tags": [{"key": "team", "value": "platform"}],
        },
        "untagResource": {"resourceArn": f"{ACCOUNT}:cluster/prod", "tagKeys": ["old"]},
    }


def test_cluster_capacity_providers_update() -> None:
    """A capacity provider added to a cluster is one PutClusterCapacityProviders call."""
    desired = _desired()
    observed = _applied(desired)
    cluster = observed.clusters["prod"]
    assert cluster is not None
    cluster["capacityProviders"] = ["FARGATE"]
    change = _change(build_plan(desired, observed), "Cluster", "prod")
    assert change.fields == (FieldChange("/capacityProviders", ["FARGATE"], ["FARGATE", "prod-asg"]),)
    assert change.request == {
        "putClusterCapacityProviders": {
            "cluster": "prod",
            "capacityProviders": ["FARGATE", "prod-asg"],
            "defaultCapacityProviderStrategy": [],
        }
    }


def test_capacity_provider_update() -> None:
    """A managed-scaling change is UpdateCapacityProvider without the (immutable) Auto Scaling group."""
    desired = _desired()
    spec = desired.capacity_providers["prod-asg"].spec["autoScalingGroupProvider"]
    spec["managedScaling"] = {"status": "ENABLED", "targetCapacity": 90}
    change = _change(build_plan(desired, _applied(_desired())), "CapacityProvider", "prod-asg")
    assert change.action == UPDATE
    assert {f.path for f in change.fields} == {
        "/autoScalingGroupProvider/managedScaling/status",
        "/autoScalingGroupProvider/managedScaling/targetCapacity",
    }
    assert change.request == {
        "updateCapacityProvider": {
            "name": "prod-asg",
            "autoScalingGroupProvider": {
                "managedTerminationProtection": "DISABLED",
                "managedScaling": {"status": "ENABLED", "targetCapacity": 90},
            },
        }
    }


def test_managed_instances_provider_waits_for_its_cluster() -> None:
    """A Managed Instances provider is created after its cluster, which does not list it until it exists."""
    desired = _desired()
    desired.capacity_providers["prod-managed"] = _manifest(
        "CapacityProvider",
        "prod-managed",
        {
            "cluster": "prod",
            "managedInstancesProvider": {
                "infrastructureRole": "arn:aws:iam::123456789012:role/ecsInfrastructureRole",
                "instanceLaunchTemplate": {
                    "ec2InstanceProfile": "arn:aws:iam::123456789012:instance-profile/ecsInstanceProfile",
                    "networkConfiguration": {"subnets": ["subnet-a"], "securityGroups": ["sg-1"]},
                },
            },
        },
        "platform/capacity-providers.yaml",
    )
    desired.clusters["prod"].spec["capacityProviders"].append("prod-managed")
    plan = build_plan(desired, Observed())
    names = [c.name for c in plan.changes]
    assert names.index("prod") < names.index("prod-managed")
    cluster = _change(plan, "Cluster", "prod")
    assert "prod-managed" not in cluster.request["capacityProviders"]
    provider = _change(plan, "CapacityProvider", "prod-managed")
    assert provider.request["cluster"] == "prod"
    managed = provider.request["managedInstancesProvider"]
    assert managed["infrastructureRoleArn"].endswith("role/ecsInfrastructureRole")
    assert managed["instanceLaunchTemplate"]["ec2InstanceProfileArn"].endswith(
        "instance-profile/ecsInstanceProfile"
    )
    assert "ec2InstanceProfile" not in managed["instanceLaunchTemplate"]


def test_agent_engine_service_creates_task_set() -> None:
    """A service on the agent engine is created EXTERNAL, with its first task set under ``taskSet``."""
    desired = _desired()
    desired.strategies["canary-10"] = _manifest(
        "DeploymentStrategy",
        "canary-10",
        {"type": "canary", "engine": "agent", "canary": {"percent": 10, "bake": "5m"}},
        "strategies.yaml",
    )
    desired.services["web"].spec["strategy"] = "canary-10"
    service = _change(build_plan(desired, Observed(), "abc123"), "Service", "prod/web")
    assert service.request["deploymentController"] == {"type": "EXTERNAL"}
    assert "taskDefinition" not in service.request
    assert service.request["taskSet"]["externalId"] == "abc123"
    assert service.request["taskSet"]["taskDefinition"].family == "web"


def test_unknown_strategy_warns() -> None:
    """A strategy name that resolves to nothing is planned as the default and warned about."""
    desired = _desired(strategy="nope")
    plan = build_plan(desired, Observed())
    assert any("nope" in w for w in plan.warnings)


def test_service_order_follows_depends_on() -> None:
    """Services come after those they depend on: by wave (what waits for nothing first), then by name."""
    services = {
        name: _manifest("Service", name, {"dependsOn": deps}, f"{name}.yaml")
        for name, deps in {"a": ["c"], "b": [], "c": ["b"], "d": []}.items()
    }
    assert [m.name for m in service_order(services)] == ["b", "d", "c", "a"]


def test_plan_is_deterministic() -> None:
    """The same inputs give an equal plan (a value object)."""
    desired = _desired("repo/app:v2")
    observed = _applied(_desired())
    assert build_plan(desired, observed, "x") == build_plan(desired, observed, "x")


def test_orphans_are_planned_as_deletes_after_everything_else() -> None:
    """A managed service no manifest names is scaled to 0 then deleted, last, with a loud warning."""
    desired = _desired()
    observed = _applied(desired)
    observed.orphans[("prod", "old")] = {
        "serviceName": "old",
        "status": "ACTIVE",
        "desiredCount": 2,
        "schedulingStrategy": "REPLICA",
        "tags": [MANAGED],
    }
    plan = build_plan(desired, observed, "abc")
    last = plan.changes[-1]
    assert (last.kind, last.name, last.action) == ("Service", "prod/old", DELETE)
    assert list(last.request) == ["updateService", "deleteService"]
    assert last.request["updateService"] == {"cluster": "prod", "service": "old", "desiredCount": 0}
    assert last.request["deleteService"] == {"cluster": "prod", "service": "old", "force": True}
    assert FieldChange("/desiredCount", 2, 0) in last.fields
    assert plan.warnings == (
        "Service prod/old will be DELETED: no manifest names it any more (sync.prune is on)",
    )
    assert plan.summary()[DELETE] == 1 and plan.has_changes


def test_service_changes_carry_their_wave() -> None:
    """web dependsOn api: api is wave 0, web wave 1 after api."""
    plan = build_plan(_desired(), Observed(), "abc")
    api, web = _change(plan, "Service", "prod/api"), _change(plan, "Service", "prod/web")
    assert (api.wave, api.after) == (0, ())
    assert (web.wave, web.after) == (1, ("api",))


def test_a_service_without_the_managed_tag_is_tagged() -> None:
    """A service created before the agent tagged them (or by hand) gets the tag, and nothing else."""
    desired = _desired()
    observed = _applied(desired)
    observed.services[("prod", "web")]["tags"] = [{"key": "team", "value": "storefront"}]
    web = _change(build_plan(desired, observed, "abc"), "Service", "prod/web")
    assert web.fields == (FieldChange("/tags/ecs-gitops:managed", ABSENT, MANAGED),)
    assert web.request == {"tagResource": {"resourceArn": f"{ACCOUNT}:service/prod/web", "tags": [MANAGED]}}


def _agent_engine_applied(live_group: str) -> tuple[Desired, Observed]:
    """web on the agent engine, applied, its PRIMARY task set registered to ``live_group``."""
    balancer = {
        "targetGroup": "arn:tg/web-blue",
        "alternateTargetGroup": "arn:tg/web-green",
        "productionListenerRule": "arn:rule/web-prod",
        "containerName": "web",
        "containerPort": 8080,
    }
    desired = _desired(loadBalancers=[balancer], strategy="canary-10")
    desired.strategies["canary-10"] = _manifest(
        "DeploymentStrategy",
        "canary-10",
        {"type": "canary", "engine": "agent", "canary": {"percent": 10, "bake": "5m"}},
        "strategies.yaml",
    )
    observed = _applied(desired)
    web = dict(observed.services[("prod", "web")])
    task_set_fields = {k: web.pop(k) for k in ("taskDefinition", "networkConfiguration", "launchType")}
    web.pop("loadBalancers", None)
    web["platformVersion"] = "LATEST"
    web["deploymentController"] = {"type": "EXTERNAL"}
    web.pop("deploymentConfiguration", None)
    web["taskSets"] = [
        {
            **task_set_fields,
            "status": "PRIMARY",
            "platformVersion": "LATEST",
            "loadBalancers": [{"targetGroupArn": live_group, "containerName": "web", "containerPort": 8080}],
        }
    ]
    observed.services[("prod", "web")] = web
    return desired, observed


def test_agent_engine_service_on_alternate_group_is_no_change() -> None:
    """After an agent-engine rollout the live task set sits on alternateTargetGroup: no change."""
    desired, observed = _agent_engine_applied("arn:tg/web-green")
    service = _change(build_plan(desired, observed, "abc123"), "Service", "prod/web")
    assert (service.action, service.fields) == (NO_CHANGE, ()), service.fields
    desired, observed = _agent_engine_applied("arn:tg/somewhere-else")
    service = _change(build_plan(desired, observed, "abc123"), "Service", "prod/web")
    assert [f.path for f in service.fields] == ["/loadBalancers/0/targetGroupArn"]


def test_an_agent_engine_service_that_stays_on_the_agent_engine_is_no_strategy_switch() -> None:
    """A field change of an EXTERNAL service whose manifest keeps engine agent is a plain update, not a
    strategy switch."""
    desired, observed = _agent_engine_applied("arn:tg/web-green")
    observed.services[("prod", "web")]["desiredCount"] = 7
    plan = build_plan(desired, observed, "abc123")
    service = _change(plan, "Service", "prod/web")
    assert [f.path for f in service.fields] == ["/desiredCount"]
    assert service.reason == "1 field(s) differ"
    assert "strategy" not in render_text(plan)


CANARY_ECS = {"type": "canary", "engine": "ecs", "canary": {"percent": 10, "bake": "5m"}, "bake": "10m"}


def _external(observed: Observed, task_sets: int = 1) -> Observed:
    """``web`` as the agent engine leaves it: EXTERNAL controller, its revision in a PRIMARY task set."""
    web = observed.services[("prod", "web")]
    primary = {
        "taskSetArn": f"{ACCOUNT}:task-set/prod/web/ecs-svc/1",
        "status": "PRIMARY",
        "taskDefinition": web.pop("taskDefinition"),
        "launchType": web.pop("launchType"),
        "platformVersion": web.pop("platformVersion"),
        "networkConfiguration": web.pop("networkConfiguration"),
        "loadBalancers": [],
        "serviceRegistries": [],
    }
    green = {**primary, "taskSetArn": f"{ACCOUNT}:task-set/prod/web/ecs-svc/2", "status": "ACTIVE"}
    web.update(deploymentController={"type": "EXTERNAL"}, taskSets=[primary, green][:task_sets])
    del web["deploymentConfiguration"]
    return observed


def test_switching_rolling_to_canary_is_an_update_in_place_said_in_the_plan() -> None:
    """ROLLING -> CANARY on the ECS controller is one UpdateService of the deployment configuration,
    and the plan says it is a strategy switch."""
    observed = _applied(_desired())
    plan = build_plan(_desired(strategy=CANARY_ECS), observed, "x")
    web = _change(plan, "Service", "prod/web")
    assert web.reason == "strategy ROLLING -> CANARY, in place"
    config = web.request["updateService"]["deploymentConfiguration"]
    assert config["strategy"] == "CANARY" and config["canaryConfiguration"]["canaryPercent"] == 10.0
    assert "~ Service prod/web (strategy ROLLING -> CANARY, in place)" in render_text(plan)


def test_switching_to_the_agent_engine_is_refused_and_changes_nothing() -> None:
    """ECS controller -> EXTERNAL is never done in place: no call is planned and a warning says the
    service must be re-created."""
    agent = {**CANARY_ECS, "engine": "agent"}
    plan = build_plan(_desired(strategy=agent), _applied(_desired()), "x")
    web = _change(plan, "Service", "prod/web")
    assert web.request == {} and web.reason == "strategy ROLLING -> EXTERNAL: refused"
    assert any("needs the service re-created" in w for w in plan.warnings)


def test_switching_from_the_agent_engine_updates_the_controller_once_one_task_set_is_left() -> None:
    """EXTERNAL -> ECS is an UpdateService of deploymentController while the service has exactly one
    task set, PRIMARY; with two it waits."""
    ready = build_plan(_desired(strategy=CANARY_ECS), _external(_applied(_desired())), "x")
    web = _change(ready, "Service", "prod/web")
    assert web.request["updateService"]["deploymentController"] == {"type": "ECS"}
    assert web.request["updateService"]["deploymentConfiguration"]["strategy"] == "CANARY"
    assert web.reason.startswith("strategy EXTERNAL -> CANARY, in place")
    busy = build_plan(_desired(strategy=CANARY_ECS), _external(_applied(_desired()), task_sets=2), "x")
    web = _change(busy, "Service", "prod/web")
    assert web.request == {} and web.reason == "strategy EXTERNAL -> CANARY: waiting"
    assert any("waits for one PRIMARY task set (2 now" in w for w in busy.warnings)


def test_a_memo_reuses_unchanged_services_and_replans_what_changed(monkeypatch: Any) -> None:
    """With a ServiceMemo, a service whose manifest, strategies, task-definition reference and live
    description are unchanged is not planned again, and the plan equals one made without the memo; any
    changed input (a value of another JSON type, live description, image, and the commit for an
    agent-engine service) plans it again."""
    import agent.plan.planning as planning

    planned: list[str] = []
    real = planning.service_change

    def counting(manifest: Manifest, *args: Any) -> Any:
        planned.append(manifest.name)
        return real(manifest, *args)

    monkeypatch.setattr(planning, "service_change", counting)
    memo = planning.ServiceMemo()
    desired = _desired()
    observed = _applied(desired)
    first = build_plan(desired, observed, "abc123", memo=memo)
    assert sorted(planned) == ["api", "web"] and len(memo) == 2
    planned.clear()
    reloaded = _desired()
    again = build_plan(reloaded, copy.deepcopy(observed), "abc123", memo=memo)
    assert planned == [] and again == first == build_plan(desired, observed, "abc123")
    encoded: list[Any] = []
    digest = planning._digest
    monkeypatch.setattr(planning, "_digest", lambda *parts: encoded.append(parts) or digest(*parts))
    assert build_plan(reloaded, observed, "abc123", memo=memo) == first
    assert len(encoded) == 1  # the shared inputs only: each spec is the object the memo now holds
    monkeypatch.setattr(planning, "_digest", digest)

    planned.clear()
    retyped = build_plan(_desired(desiredCount=2.0), observed, "abc123", memo=memo)
    assert planned == ["web"]  # equal to 2 for ==, but a manifest tells 2.0 apart: planned again
    assert retyped == build_plan(_desired(desiredCount=2.0), observed, "abc123")
    build_plan(_desired(), observed, "abc123", memo=memo)

    planned.clear()
    drifted = copy.deepcopy(observed)
    drifted.services[("prod", "web")]["desiredCount"] = 5
    plan = build_plan(_desired(), drifted, "abc123", memo=memo)
    assert planned == ["web"]
    assert _change(plan, "Service", "prod/web").fields == (FieldChange("/desiredCount", 5, 2),)

    planned.clear()
    bumped = build_plan(_desired("repo/app:v2"), observed, "def456", memo=memo)
    assert planned == ["web"]  # a new image; api's inputs are the same (a rolling service ignores the commit)
    assert bumped == build_plan(_desired("repo/app:v2"), observed, "def456")

    def agent_engine() -> Desired:
        desired = _desired("repo/app:v2")
        desired.strategies["bg"] = _manifest(
            "DeploymentStrategy", "bg", {"type": "blueGreen", "engine": "agent"}, "strategies.yaml"
        )
        desired.services["api"].spec["strategy"] = "bg"
        return desired

    build_plan(agent_engine(), observed, "def456", memo=memo)
    planned.clear()
    later = build_plan(agent_engine(), observed, "0a1b2c", memo=memo)
    assert planned == ["api"]  # an agent-engine service's task set carries the commit as externalId
    assert later == build_plan(agent_engine(), observed, "0a1b2c")
