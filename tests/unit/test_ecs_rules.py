"""ECS's own rules for task definitions (agent/manifests/ecs_rules.py), case by case."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from agent.manifests.ecs_rules import FARGATE_SIZES, located, problems
from agent.manifests.model import Source, TaskDefinitionFile

BASE: dict[str, Any] = {
    "family": "web",
    "networkMode": "awsvpc",
    "requiresCompatibilities": ["FARGATE"],
    "cpu": "256",
    "memory": "512",
    "containerDefinitions": [
        {"name": "app", "image": "repo/app:v1", "portMappings": [{"containerPort": 80}]}
    ],
}


def body(**changes: Any) -> dict[str, Any]:
    out = copy.deepcopy(BASE)
    container = changes.pop("container", None)
    if container is not None:
        out["containerDefinitions"][0].update(container)
    out.update(changes)
    return out


BAD = [
    ("cpu-not-a-size", body(cpu="fast"), "/cpu", "'fast' is not a size ECS reads"),
    ("memory-not-a-size", body(requiresCompatibilities=["EC2"], memory="2 TB"), "/memory", "not a size"),
    ("cpu-of-4304-digits", body(cpu="1024" * 1076), "/cpu", "(4304 characters) is not a size"),
    ("memory-of-400-nines-gb", body(memory="9" * 400 + " GB"), "/memory", "is not a size ECS reads"),
    ("cpu-int-of-5000-digits", body(cpu=10**5000), "/cpu", "bits is not a size ECS reads"),
    ("family-with-dot", body(family="web.v2"), "/family", "letters, numbers, underscores and hyphens"),
    ("family-256-chars", body(family="a" * 256), "/family", "up to 255"),
    ("family-with-space", body(family="my web"), "/family", "is not accepted by ECS"),
    (
        "container-name-colon",
        body(container={"name": "app:1"}),
        "/containerDefinitions/0/name",
        "container name",
    ),
    (
        "interval-4",
        body(container={"healthCheck": {"command": ["CMD", "true"], "interval": 4}}),
        "/containerDefinitions/0/healthCheck/interval",
        "between 5 and 300",
    ),
    (
        "interval-301",
        body(container={"healthCheck": {"command": ["CMD", "true"], "interval": 301}}),
        "/containerDefinitions/0/healthCheck/interval",
        "between 5 and 300",
    ),
    (
        "timeout-1",
        body(container={"healthCheck": {"command": ["CMD", "true"], "timeout": 1}}),
        "/containerDefinitions/0/healthCheck/timeout",
        "between 2 and 120",
    ),
    (
        "retries-0",
        body(container={"healthCheck": {"command": ["CMD", "true"], "retries": 0}}),
        "/containerDefinitions/0/healthCheck/retries",
        "between 1 and 10",
    ),
    (
        "retries-11",
        body(container={"healthCheck": {"command": ["CMD", "true"], "retries": 11}}),
        "/containerDefinitions/0/healthCheck/retries",
        "between 1 and 10",
    ),
    (
        "start-period-301",
        body(container={"healthCheck": {"command": ["CMD", "true"], "startPeriod": 301}}),
        "/containerDefinitions/0/healthCheck/startPeriod",
        "between 0 and 300",
    ),
    ("fargate-cpu-300", body(cpu="300"), "/cpu", "no task size with cpu 300"),
    ("fargate-256-with-4gb", body(memory="4 GB"), "/memory", "cpu 256 and memory 4096"),
    ("fargate-1vcpu-with-1gb", body(cpu="1 vCPU", memory="1024"), "/memory", "2048 to 8192"),
    ("fargate-8vcpu-not-4gb-step", body(cpu="8192", memory="18432"), "/memory", "steps of 4096"),
    (
        "fargate-windows-half-vcpu",
        body(cpu="512", memory="1024", runtimePlatform={"operatingSystemFamily": "WINDOWS_SERVER_2019_CORE"}),
        "/cpu",
        "at least 1 vCPU",
    ),
    (
        "container-port-0",
        body(container={"portMappings": [{"containerPort": 0}]}),
        "/containerDefinitions/0/portMappings/0/containerPort",
        "between 1 and 65535",
    ),
    (
        "container-port-65536",
        body(container={"portMappings": [{"containerPort": 65536}]}),
        "/containerDefinitions/0/portMappings/0/containerPort",
        "between 1 and 65535",
    ),
    (
        "host-port-negative",
        body(
            networkMode="bridge",
            requiresCompatibilities=["EC2"],
            container={"portMappings": [{"containerPort": 80, "hostPort": -1}]},
        ),
        "/containerDefinitions/0/portMappings/0/hostPort",
        "between 0 and 65535",
    ),
    (
        "awsvpc-host-port-differs",
        body(container={"portMappings": [{"containerPort": 80, "hostPort": 8080}]}),
        "/containerDefinitions/0/portMappings/0/hostPort",
        "equal containerPort (80)",
    ),
    (
        "host-mode-host-port-differs",
        body(
            networkMode="host",
            requiresCompatibilities=["EC2"],
            container={"portMappings": [{"containerPort": 80, "hostPort": 81}]},
        ),
        "/containerDefinitions/0/portMappings/0/hostPort",
        "in host network mode",
    ),
    (
        "port-range-reversed",
        body(container={"portMappings": [{"containerPortRange": "9000-8000"}]}),
        "/containerDefinitions/0/portMappings/0/containerPortRange",
        "FIRST < LAST",
    ),
    (
        "port-range-not-a-range",
        body(container={"portMappings": [{"containerPortRange": "80"}]}),
        "/containerDefinitions/0/portMappings/0/containerPortRange",
        "FIRST-LAST",
    ),
]

GOOD = [
    ("base", body()),
    ("family-255-chars", body(family="A-z_0" * 51)),
    (
        "health-check-bounds",
        body(
            container={
                "healthCheck": {
                    "command": ["CMD", "true"],
                    "interval": 5,
                    "timeout": 120,
                    "retries": 10,
                    "startPeriod": 300,
                }
            }
        ),
    ),
    (
        "health-check-upper-interval",
        body(container={"healthCheck": {"command": ["CMD", "true"], "interval": 300}}),
    ),
    (
        "bridge-dynamic-port",
        body(
            networkMode="bridge",
            requiresCompatibilities=["EC2"],
            cpu=None,
            memory=None,
            container={"portMappings": [{"containerPort": 80, "hostPort": 0}]},
        ),
    ),
    (
        "bridge-static-port",
        body(
            networkMode="bridge",
            requiresCompatibilities=["EC2"],
            container={"portMappings": [{"containerPort": 80, "hostPort": 8080}]},
        ),
    ),
    ("awsvpc-host-port-equal", body(container={"portMappings": [{"containerPort": 80, "hostPort": 80}]})),
    ("port-range", body(container={"portMappings": [{"containerPortRange": "8000-9000"}]})),
    ("ec2-any-size", body(requiresCompatibilities=["EC2"], cpu="300", memory="700")),
    ("sizes-as-numbers", body(cpu=512, memory=1024)),
    ("sizes-in-gib-and-mib", body(cpu="0.5 vcpu", memory="1024 MiB")),
    ("fargate-16-vcpu", body(cpu="16 vCPU", memory="120 GB")),
    (
        "fargate-windows-1-vcpu",
        body(
            cpu="1024", memory="2048", runtimePlatform={"operatingSystemFamily": "WINDOWS_SERVER_2022_CORE"}
        ),
    ),
    ("fargate-without-size", body(cpu=None, memory=None)),  # reported elsewhere (service checks)
    ("not-a-dict", "garbage"),
    ("containers-not-a-list", body(containerDefinitions={"app": 1})),
    (
        "health-check-not-numbers",
        body(container={"healthCheck": {"command": ["CMD", "true"], "interval": "x"}}),
    ),
]


@pytest.mark.parametrize(("name", "td", "pointer", "fragment"), BAD, ids=[c[0] for c in BAD])
def test_rule_is_enforced(name: str, td: dict[str, Any], pointer: str, fragment: str) -> None:
    """Each broken rule gives exactly one problem, at the field that breaks it."""
    found = problems(td)
    assert len(found) == 1, found
    assert found[0][0] == pointer and fragment in found[0][1]


@pytest.mark.parametrize(("name", "td"), GOOD, ids=[c[0] for c in GOOD])
def test_what_ecs_accepts_passes(name: str, td: Any) -> None:
    """Nothing ECS registers is refused, and malformed input is left to the schema."""
    if isinstance(td, dict):
        td = {k: v for k, v in td.items() if v is not None}
    assert problems(td) == []


@pytest.mark.parametrize("cpu", sorted(FARGATE_SIZES))
def test_every_fargate_size_in_the_table_is_accepted(cpu: int) -> None:
    """Each cpu with each of its memory values is a valid Fargate task size."""
    for memory in FARGATE_SIZES[cpu]:
        assert problems(body(cpu=str(cpu), memory=str(memory))) == []


def test_problems_are_located_in_their_file() -> None:
    """located() gives the file, the pointer under the task definition's own pointer, and the line."""
    source = Source("services/web.yaml", 0, 1, {"/spec/taskDefinition/family": 7})
    td = TaskDefinitionFile(body(family="bad name"), source, "/spec/taskDefinition")
    [problem] = located([td, td])  # the same task definition twice is reported once
    assert (problem.file, problem.pointer, problem.line) == (
        "services/web.yaml",
        "/spec/taskDefinition/family",
        7,
    )
