"""Task-definition normalisation, content hash and the RegisterTaskDefinition request."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.plan.taskdefs import (
    HASH_TAG,
    content_hash,
    cpu_units,
    family_revision,
    memory_mib,
    normalise_task_definition,
    register_request,
)

REPO = Path(__file__).resolve().parents[3]
CORPUS = REPO.parent / "shared" / "corpus" / "taskdefs"
EXAMPLE = REPO / "manifests-example"
CORPUS_FILES = sorted(CORPUS.glob("*.json"))


def _example_task_definitions() -> list[tuple[str, dict[str, Any]]]:
    """manifests-example's task definitions as the agent reads them (through the loader)."""
    from agent.manifests import load_desired
    from agent.manifests.tree import DirTree

    desired = load_desired(DirTree(EXAMPLE))
    return [
        (td.source.file + (f"#{td.pointer}" if td.pointer else ""), td.body)
        for _, td in sorted(desired.task_definitions.items())
    ]


EXAMPLES = _example_task_definitions()


def _td(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "family": "web",
        "networkMode": "awsvpc",
        "requiresCompatibilities": ["FARGATE"],
        "cpu": "256",
        "memory": "512",
        "containerDefinitions": [{"name": "web", "image": "repo/app:v1"}],
    }
    body.update(overrides)
    return body


@pytest.mark.parametrize(
    ("spelling", "units"),
    [
        ("0.25 vCPU", "256"),
        ("0.5 vCPU", "512"),
        ("1 vCPU", "1024"),
        ("1 vcpu", "1024"),
        ("2vCPU", "2048"),
        ("16 vCPU", "16384"),
        ("256", "256"),
        (1024, "1024"),
        ("nonsense", "nonsense"),
    ],
)
def test_cpu_units(spelling: Any, units: str) -> None:
    """Task CPU in any spelling ECS accepts becomes the unit string ECS stores."""
    assert cpu_units(spelling) == units


@pytest.mark.parametrize(
    ("spelling", "mib"),
    [
        ("1 GB", "1024"),
        ("0.5GB", "512"),
        ("2 gb", "2048"),
        ("3 GiB", "3072"),
        ("512 MiB", "512"),
        ("512", "512"),
        (2048, "2048"),
    ],
)
def test_memory_mib(spelling: Any, mib: str) -> None:
    """Task memory in any spelling ECS accepts becomes MiB as a string."""
    assert memory_mib(spelling) == mib


def _first_container(td: dict[str, Any]) -> dict[str, Any]:
    return normalise_task_definition(td)["containerDefinitions"][0]


@pytest.mark.parametrize(
    ("name", "body", "check"),
    [
        (
            "read-only fields dropped",
            _td(
                taskDefinitionArn="arn",
                revision=3,
                status="ACTIVE",
                compatibilities=["EC2", "FARGATE"],
                registeredAt="2024-01-01",
                registeredBy="me",
                requiresAttributes=[{"name": "x"}],
                tags=[{"key": "a", "value": "b"}],
            ),
            lambda n: (
                not {
                    "taskDefinitionArn",
                    "revision",
                    "status",
                    "compatibilities",
                    "registeredAt",
                    "registeredBy",
                    "requiresAttributes",
                    "tags",
                }
                & set(n)
            ),
        ),
        (
            "cpu spelled out",
            _td(cpu="0.25 vCPU", memory="0.5GB"),
            lambda n: (n["cpu"], n["memory"]) == ("256", "512"),
        ),
        ("essential filled", _td(), lambda n: n["containerDefinitions"][0]["essential"] is True),
        (
            "essential false kept",
            _td(containerDefinitions=[{"name": "a", "image": "i", "essential": False}]),
            lambda n: n["containerDefinitions"][0]["essential"] is False,
        ),
        (
            "container cpu 0 dropped",
            _td(containerDefinitions=[{"name": "a", "image": "i", "cpu": 0}]),
            lambda n: "cpu" not in n["containerDefinitions"][0],
        ),
        (
            "container cpu kept",
            _td(containerDefinitions=[{"name": "a", "image": "i", "cpu": 64}]),
            lambda n: n["containerDefinitions"][0]["cpu"] == 64,
        ),
        (
            "empty lists dropped",
            _td(
                volumes=[],
                placementConstraints=[],
                containerDefinitions=[
                    {
                        "name": "a",
                        "image": "i",
                        "environment": [],
                        "mountPoints": [],
                        "volumesFrom": [],
                        "portMappings": [],
                    }
                ],
            ),
            lambda n: (
                "volumes" not in n
                and "placementConstraints" not in n
                and set(n["containerDefinitions"][0]) == {"name", "image", "essential"}
            ),
        ),
        (
            "protocol and awsvpc hostPort filled",
            _td(containerDefinitions=[{"name": "a", "image": "i", "portMappings": [{"containerPort": 80}]}]),
            lambda n: (
                n["containerDefinitions"][0]["portMappings"]
                == [{"containerPort": 80, "hostPort": 80, "protocol": "tcp"}]
            ),
        ),
        (
            "bridge dynamic hostPort dropped",
            _td(
                networkMode="bridge",
                requiresCompatibilities=["EC2"],
                containerDefinitions=[
                    {"name": "a", "image": "i", "portMappings": [{"containerPort": 80, "hostPort": 0}]}
                ],
            ),
            lambda n: (
                n["containerDefinitions"][0]["portMappings"] == [{"containerPort": 80, "protocol": "tcp"}]
            ),
        ),
        (
            "environment sorted by name",
            _td(
                containerDefinitions=[
                    {
                        "name": "a",
                        "image": "i",
                        "environment": [{"name": "B", "value": "2"}, {"name": "A", "value": "1"}],
                    }
                ]
            ),
            lambda n: [e["name"] for e in n["containerDefinitions"][0]["environment"]] == ["A", "B"],
        ),
        (
            "secrets sorted by name",
            _td(
                containerDefinitions=[
                    {
                        "name": "a",
                        "image": "i",
                        "secrets": [{"name": "Z", "valueFrom": "arn:z"}, {"name": "M", "valueFrom": "arn:m"}],
                    }
                ]
            ),
            lambda n: [e["name"] for e in n["containerDefinitions"][0]["secrets"]] == ["M", "Z"],
        ),
        (
            "environmentFiles keep their order",
            _td(
                containerDefinitions=[
                    {
                        "name": "a",
                        "image": "i",
                        "environmentFiles": [
                            {"type": "s3", "value": "arn:b"},
                            {"type": "s3", "value": "arn:a"},
                        ],
                    }
                ]
            ),
            lambda n: (
                [e["value"] for e in n["containerDefinitions"][0]["environmentFiles"]] == ["arn:b", "arn:a"]
            ),
        ),
        (
            "containers sorted by name",
            _td(containerDefinitions=[{"name": "z", "image": "i"}, {"name": "a", "image": "i"}]),
            lambda n: [c["name"] for c in n["containerDefinitions"]] == ["a", "z"],
        ),
        (
            "requiresCompatibilities sorted",
            _td(requiresCompatibilities=["FARGATE", "EC2"]),
            lambda n: n["requiresCompatibilities"] == ["EC2", "FARGATE"],
        ),
        (
            "EC2-only absent networkMode is bridge",
            {"family": "x", "containerDefinitions": [{"name": "a", "image": "i"}]},
            lambda n: n["networkMode"] == "bridge",
        ),
        (
            "Fargate absent networkMode is awsvpc",
            _td(networkMode=None),
            lambda n: n["networkMode"] == "awsvpc",
        ),
        (
            "Windows absent networkMode stays absent",
            {
                "family": "x",
                "runtimePlatform": {"operatingSystemFamily": "WINDOWS_SERVER_2022_CORE"},
                "containerDefinitions": [{"name": "a", "image": "i"}],
            },
            lambda n: "networkMode" not in n,
        ),
        (
            "default runtime platform dropped",
            _td(runtimePlatform={"operatingSystemFamily": "LINUX"}),
            lambda n: "runtimePlatform" not in n,
        ),
        (
            "ARM runtime platform kept",
            _td(runtimePlatform={"cpuArchitecture": "ARM64"}),
            lambda n: n["runtimePlatform"] == {"cpuArchitecture": "ARM64", "operatingSystemFamily": "LINUX"},
        ),
        (
            "log options are strings",
            _td(
                containerDefinitions=[
                    {
                        "name": "a",
                        "image": "i",
                        "logConfiguration": {
                            "logDriver": "awslogs",
                            "options": {"awslogs-create-group": True, "max-buffer-size": 25},
                        },
                    }
                ]
            ),
            lambda n: (
                n["containerDefinitions"][0]["logConfiguration"]["options"]
                == {"awslogs-create-group": "true", "max-buffer-size": "25"}
            ),
        ),
        (
            "health check defaults",
            _td(
                containerDefinitions=[
                    {"name": "a", "image": "i", "healthCheck": {"command": ["CMD", "true"], "startPeriod": 0}}
                ]
            ),
            lambda n: (
                n["containerDefinitions"][0]["healthCheck"]
                == {"command": ["CMD", "true"], "interval": 30, "timeout": 5, "retries": 3}
            ),
        ),
        (
            "false flags dropped",
            _td(
                containerDefinitions=[
                    {"name": "a", "image": "i", "privileged": False, "readonlyRootFilesystem": False}
                ]
            ),
            lambda n: (
                "privileged" not in n["containerDefinitions"][0]
                and "readonlyRootFilesystem" not in n["containerDefinitions"][0]
            ),
        ),
        (
            "efs root directory filled",
            _td(volumes=[{"name": "v", "efsVolumeConfiguration": {"fileSystemId": "fs-1"}}]),
            lambda n: (
                n["volumes"][0]["efsVolumeConfiguration"] == {"fileSystemId": "fs-1", "rootDirectory": "/"}
            ),
        ),
        (
            "describe wrapper unwrapped",
            {"taskDefinition": _td(revision=4), "tags": [{"key": "a", "value": "b"}]},
            lambda n: n["family"] == "web" and "revision" not in n and "taskDefinition" not in n,
        ),
    ],
)
def test_normalisation_table(name: str, body: dict[str, Any], check: Any) -> None:
    """Each ECS default and ordering rule is applied (one row per rule)."""
    assert check(normalise_task_definition(body)), name


def test_normalise_does_not_mutate_input() -> None:
    """Normalising leaves the caller's dict untouched."""
    body = _td(cpu="0.25 vCPU", tags=[{"key": "a", "value": "b"}])
    before = copy.deepcopy(body)
    normalise_task_definition(body)
    assert body == before


@pytest.mark.parametrize("path", CORPUS_FILES, ids=[p.name[:60] for p in CORPUS_FILES])
def test_idempotent_on_corpus(path: Path) -> None:
    """Normalising a real-world task definition twice gives the same result as once."""
    body = json.loads(path.read_text())
    once = normalise_task_definition(body)
    assert normalise_task_definition(once) == once


@pytest.mark.parametrize(("name", "body"), EXAMPLES, ids=[n for n, _ in EXAMPLES])
def test_idempotent_on_examples(name: str, body: dict[str, Any]) -> None:
    """Normalising an example task definition twice gives the same result as once."""
    once = normalise_task_definition(body)
    assert normalise_task_definition(once) == once


def test_corpus_is_present() -> None:
    """The shared corpus is where the tests expect it (otherwise the corpus tests would silently vanish)."""
    assert len(CORPUS_FILES) >= 10


def test_hash_is_stable_across_spelling() -> None:
    """Key order, env order and unit spelling do not change the content hash."""
    a = _td(
        cpu="0.25 vCPU",
        memory="0.5 GB",
        containerDefinitions=[
            {
                "name": "web",
                "image": "repo/app:v1",
                "environment": [{"name": "B", "value": "2"}, {"name": "A", "value": "1"}],
            }
        ],
    )
    b = {
        "containerDefinitions": [
            {
                "environment": [{"value": "1", "name": "A"}, {"name": "B", "value": "2"}],
                "essential": True,
                "image": "repo/app:v1",
                "name": "web",
                "cpu": 0,
            }
        ],
        "memory": "512",
        "cpu": "256",
        "requiresCompatibilities": ["FARGATE"],
        "networkMode": "awsvpc",
        "family": "web",
        "revision": 9,
        "tags": [{"key": HASH_TAG, "value": "old"}],
    }
    assert content_hash(a) == content_hash(b)
    assert len(content_hash(a)) == 16
    assert all(c in "0123456789abcdef" for c in content_hash(a))


def test_hash_changes_with_content() -> None:
    """A different image is a different hash."""
    changed = _td(containerDefinitions=[{"name": "web", "image": "repo/app:v2"}])
    assert content_hash(_td()) != content_hash(changed)


def test_register_request_drops_read_only_and_tags_the_hash() -> None:
    """The request keeps the user's body and tags, drops read-only fields and adds the hash tag."""
    body = {
        "taskDefinition": _td(revision=2, status="ACTIVE", cpu="0.25 vCPU"),
        "tags": [{"key": "team", "value": "web"}, {"key": HASH_TAG, "value": "stale"}],
    }
    request = register_request(body)
    assert "revision" not in request and "status" not in request
    assert request["cpu"] == "0.25 vCPU"  # sent as written; ECS converts
    assert {"key": "team", "value": "web"} in request["tags"]
    assert {"key": HASH_TAG, "value": content_hash(body)} in request["tags"]
    assert [t["key"] for t in request["tags"]].count(HASH_TAG) == 1


@pytest.mark.parametrize(
    ("reference", "label"),
    [
        ("arn:aws:ecs:eu-west-1:123456789012:task-definition/web:7", "web:7"),
        ("web:7", "web:7"),
    ],
)
def test_family_revision(reference: str, label: str) -> None:
    """ARNs and family:revision both read as family:revision."""
    assert family_revision(reference) == label


# ------------------------------------------------------------------ contract: register, describe, compare


@pytest.fixture(scope="module")
def ecs() -> Iterator[Any]:
    """An ECS client on a moto server running in this process (plain moto, no sandbox overlay)."""
    boto3 = pytest.importorskip("boto3")
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield boto3.client(
            "ecs",
            endpoint_url=f"http://{host}:{port}",
            region_name="eu-west-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
    finally:
        server.stop()


CONTRACT_CASES = [(p.name[:60], json.loads(p.read_text())) for p in CORPUS_FILES] + EXAMPLES


@pytest.mark.parametrize(("name", "body"), CONTRACT_CASES, ids=[n for n, _ in CONTRACT_CASES])
def test_registered_revision_normalises_like_the_file(ecs: Any, name: str, body: dict[str, Any]) -> None:
    """What ECS describes after registering a file normalises to exactly what the file normalises to."""
    registered = ecs.register_task_definition(**register_request(body))["taskDefinition"]
    described = ecs.describe_task_definition(taskDefinition=registered["taskDefinitionArn"], include=["TAGS"])
    assert normalise_task_definition(described["taskDefinition"]) == normalise_task_definition(body)
    assert {"key": HASH_TAG, "value": content_hash(body)} in described["tags"]
    assert content_hash(described) == content_hash(body)
