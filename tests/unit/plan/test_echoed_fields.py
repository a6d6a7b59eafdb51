"""What ECS added on registering: RegisterTaskDefinition's answer compared with its request, both normalised
(agent.plan.taskdefs.echoed_fields), and kept per revision by the revision index across a restart."""

from __future__ import annotations

import copy
from typing import Any

from agent.aws.revision_index import RevisionIndex
from agent.plan.taskdefs import echoed_fields, register_request

ARN = "arn:aws:ecs:eu-west-1:123456789012:task-definition/web:2"
FILE: dict[str, Any] = {
    "family": "web",
    "requiresCompatibilities": ["FARGATE"],
    "cpu": "0.25 vCPU",
    "memory": "0.5 GB",
    "containerDefinitions": [
        {"name": "app", "image": "repo/app:1", "portMappings": [{"containerPort": 80}]},
        {"name": "log", "image": "repo/log:1", "essential": False},
    ],
    "volumes": [{"name": "data", "efsVolumeConfiguration": {"fileSystemId": "fs-1"}}],
}


def stored(request: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """The revision as ECS stores it: read-only fields and the defaults ECS fills, plus ``extra`` on the
    ``app`` container."""
    td = copy.deepcopy(request)
    td.pop("tags", None)
    td.update(
        taskDefinitionArn=ARN,
        revision=2,
        status="ACTIVE",
        cpu="256",
        memory="512",
        networkMode="awsvpc",
        compatibilities=["EC2", "FARGATE"],
        requiresAttributes=[{"name": "ecs.capability.efs"}],
        placementConstraints=[],
        registeredAt="2026-11-24T12:00:00Z",
    )
    for cd in td["containerDefinitions"]:
        cd.setdefault("essential", True)
        cd.update(cpu=0, environment=[], mountPoints=[], volumesFrom=[], systemControls=[])
        for pm in cd.get("portMappings", []):
            pm.update(hostPort=pm["containerPort"], protocol="tcp")
        if cd["name"] == "app":
            cd.update(extra)
    efs = td["volumes"][0]["efsVolumeConfiguration"]
    efs.update(rootDirectory="/", transitEncryption="DISABLED", authorizationConfig={"iam": "DISABLED"})
    return td


def test_defaults_the_normaliser_knows_are_not_echoed() -> None:
    request = register_request(FILE)
    assert echoed_fields(request, stored(request)) == ()


def test_a_field_ecs_added_is_named_by_its_path() -> None:
    request = register_request(FILE)
    answer = stored(request, stopTimeout=30)
    assert echoed_fields(request, answer) == ("/containerDefinitions/app/stopTimeout",)


def test_a_value_ecs_changed_is_named_and_a_field_it_dropped_is_not() -> None:
    """Only what the answer holds counts: a field the answer lacks is not something ECS returned."""
    request = register_request(FILE)
    answer = stored(request, image="repo/app:1@sha256:abc")
    del answer["containerDefinitions"][1]["image"]
    assert echoed_fields(request, answer) == ("/containerDefinitions/app/image",)


class DictStore:
    """The state-store calls the revision index makes."""

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}

    def items(self, prefix: str) -> list[tuple[str, Any]]:
        return [(k, copy.deepcopy(v)) for k, v in self.data.items() if k.startswith(prefix)]

    def get(self, key: str) -> Any:
        return copy.deepcopy(self.data.get(key))

    def put(self, key: str, value: Any) -> None:
        self.data[key] = copy.deepcopy(value)

    def delete(self, key: str) -> None:
        self.data.pop(key, None)


def test_the_index_keeps_the_echoed_fields_of_a_revision_across_a_restart() -> None:
    store = DictStore()
    index = RevisionIndex(lambda described: "h2")
    index.keep_in(store, "123456789012/eu-west-1")
    index.load()
    index.intend(["web"])
    described = {"taskDefinition": stored(register_request(FILE)), "tags": []}
    index.add(described, registered=True, echoed=("/containerDefinitions/app/stopTimeout",))
    index.save()
    restarted = RevisionIndex(lambda described: "h2")
    restarted.keep_in(store, "123456789012/eu-west-1")
    restarted.load()
    assert restarted.echoed(ARN) == ("/containerDefinitions/app/stopTimeout",)
    assert restarted.echoed(ARN.replace(":2", ":1")) == ()
