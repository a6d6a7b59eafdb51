"""The JSON Schemas in schemas/ and the plain-words validation in agent.manifests.schemas."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator

from agent.manifests import schemas, taskdef_schema
from agent.manifests.schemas import KIND_FILES, validate
from agent.plan.taskdefs import READ_ONLY_FIELDS

REPO = Path(__file__).resolve().parents[2]
SCHEMAS = REPO / "schemas"
EXAMPLES = REPO / "manifests-example"
CORPUS = REPO.parent / "shared" / "corpus" / "taskdefs"
GENERATED = "taskdefinition.schema.json"
NOT_MANIFESTS = {"sandbox-seed.yaml", "agent-config.yaml", "iam-policy.json"}
SCHEMA_FILES = sorted(SCHEMAS.glob("*.schema.json"))


def _load(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def _undescribed(node: Any, where: str = "") -> list[str]:
    """Pointers of properties (at any depth, outside ``if`` conditions) that have no description."""
    missing: list[str] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "if":
                continue  # conditions, not fields a user writes
            if key == "properties" and isinstance(value, dict):
                missing += [
                    f"{where}/properties/{name}" for name, sub in value.items() if "description" not in sub
                ]
            missing += _undescribed(value, f"{where}/{key}")
    elif isinstance(node, list):
        for index, item in enumerate(node):
            missing += _undescribed(item, f"{where}/{index}")
    return missing


@pytest.mark.parametrize("path", SCHEMA_FILES, ids=lambda p: p.name)
def test_schema_file_is_valid_draft_2020_12_with_id(path: Path) -> None:
    """Every schema file is a valid Draft 2020-12 schema whose $id names its own file."""
    document = _load(path)
    Draft202012Validator.check_schema(document)
    assert document["$id"] == f"https://ecs-gitops.dev/schemas/{path.name}"


@pytest.mark.parametrize("path", [p for p in SCHEMA_FILES if p.name != GENERATED], ids=lambda p: p.name)
def test_every_property_has_a_description(path: Path) -> None:
    """Every property at every depth of our hand-written schemas has a description for editors to show."""
    assert _undescribed(_load(path)) == []


def test_every_kind_has_a_schema_file() -> None:
    """validate() knows a schema file for each manifest kind, the task definition and the agent config."""
    assert set(KIND_FILES.values()) <= {p.name for p in SCHEMA_FILES}
    assert schemas.schemas_dir() == SCHEMAS


def test_generated_taskdefinition_schema_is_up_to_date() -> None:
    """The committed task-definition schema is exactly what the installed botocore model generates."""
    committed = (SCHEMAS / GENERATED).read_text(encoding="utf-8")
    fresh = taskdef_schema.render(taskdef_schema.build())
    assert committed == fresh, (
        "schemas/taskdefinition.schema.json differs from botocore's RegisterTaskDefinition model; regenerate "
        "it with `.venv/bin/python -m agent.manifests.taskdef_schema > schemas/taskdefinition.schema.json` "
        "and review the diff"
    )


@pytest.mark.parametrize(
    ("html", "text"),
    [
        ("<p>The <code>family</code> name.</p>", "The family name."),
        ("<p>One. Two. Three.</p>", "One. Two."),
        ("<p>Choose:</p><ul><li><p>a</p></li></ul>", "Choose."),
        ("<p>Use e.g. <code>x</code> here. Then more.</p>", "Use e.g. x here. Then more."),
        ("<p>" + "word " * 100 + "</p>", ("word " * 59).strip() + "…"),
    ],
)
def test_documentation_becomes_short_plain_text(html: str, text: str) -> None:
    """botocore's HTML documentation becomes its first sentence or two of plain text, at most ~300 chars."""
    assert taskdef_schema.plain_text(html) == text


def _example_documents() -> list[Any]:
    params = []
    for path in sorted(EXAMPLES.rglob("*")):
        if path.suffix not in (".yaml", ".yml", ".json") or path.name in NOT_MANIFESTS:
            continue
        for index, document in enumerate(yaml.safe_load_all(path.read_text(encoding="utf-8"))):
            kind = "TaskDefinition" if "containerDefinitions" in document else document["kind"]
            params.append(pytest.param(kind, document, id=f"{path.relative_to(EXAMPLES)}#{index}"))
    params.append(
        pytest.param(
            "AgentConfig",
            yaml.safe_load((EXAMPLES / "agent-config.yaml").read_text()),
            id="agent-config.yaml",
        )
    )
    return params


@pytest.mark.parametrize(("kind", "document"), _example_documents())
def test_manifests_example_validates(kind: str, document: Any) -> None:
    """Every document in manifests-example validates against its kind's schema."""
    assert validate(kind, document) == []


@pytest.mark.parametrize(
    "path",
    [p for p in sorted(EXAMPLES.rglob("*.y*ml")) if p.name != "sandbox-seed.yaml"],
    ids=lambda p: str(p.relative_to(EXAMPLES)),
)
def test_example_schema_comments_point_at_the_right_schema(path: Path) -> None:
    """Each YAML example's yaml-language-server comment names an existing schema of the document's kind."""
    text = path.read_text(encoding="utf-8")
    documents = list(yaml.safe_load_all(text))
    comments = re.findall(r"^# yaml-language-server: \$schema=(\S+)$", text, flags=re.MULTILINE)
    if all("containerDefinitions" in d for d in documents):
        return  # a native task definition: nothing to point at but the generated schema
    assert len(comments) == len(documents)
    for comment, document in zip(comments, documents, strict=True):
        target = (path.parent / comment).resolve()
        assert target.is_file(), comment
        assert target.name == KIND_FILES[document["kind"]]


def _corpus_files() -> list[Path]:
    return sorted(CORPUS.glob("*.json"))  # CI has ../shared too: an empty corpus fails test_corpus_is_there


@pytest.mark.parametrize("path", _corpus_files(), ids=lambda p: p.name[:80])
def test_real_task_definitions_validate(path: Path) -> None:
    """Task definitions from public repositories validate once read-only fields and wrapper are dropped."""
    body = _load(path)
    body = body.get("taskDefinition", body)
    body = {k: v for k, v in body.items() if k not in READ_ONLY_FIELDS}
    assert validate("TaskDefinition", body) == []


def _doc(kind: str, spec: Any, **overrides: Any) -> dict[str, Any]:
    document = {"apiVersion": "ecs-gitops/v1", "kind": kind, "metadata": {"name": "x"}, "spec": spec}
    document.update(overrides)
    return document


SERVICE = {"cluster": "prod", "taskDefinition": "td.json"}
CANARY = {"type": "canary", "canary": {"percent": 10, "bake": "5m"}}
WINDOW = {"type": "freeze", "schedule": "0 0 * * *", "duration": "1h"}
ASG = {"autoScalingGroup": {"name": "asg"}}
MANAGED = {
    "infrastructureRole": {"name": "r"},
    "instanceLaunchTemplate": {
        "ec2InstanceProfile": {"name": "p"},
        "networkConfiguration": {"subnets": ["s"]},
    },
}

INVALID = [
    pytest.param(
        "Service",
        _doc("Service", {**SERVICE, "desiredcount": 2}),
        "/spec/desiredcount",
        'unknown field "desiredcount" (did you mean "desiredCount"?)',
        id="unknown-field",
    ),
    pytest.param(
        "Service",
        _doc("Service", {"taskDefinition": "td.json"}),
        "/spec/cluster",
        "required field is missing",
        id="missing-required",
    ),
    pytest.param(
        "Service",
        _doc("Service", {**SERVICE, "launchType": "fargate"}),
        "/spec/launchType",
        'must be one of FARGATE, EC2, EXTERNAL (got "fargate"',
        id="bad-enum",
    ),
    pytest.param(
        "Window",
        _doc("Window", {**WINDOW, "duration": "5 minutes"}),
        "/spec/duration",
        'must be a duration such as 90s, 5m, 1h30m or 2h (got "5 minutes")',
        id="bad-duration",
    ),
    pytest.param(
        "DeploymentStrategy",
        _doc("DeploymentStrategy", {**CANARY, "bake": "1m30"}),
        "/spec/bake",
        "must be a duration",
        id="bad-duration-order",
    ),
    pytest.param(
        "Service",
        _doc(
            "Service",
            {**SERVICE, "launchType": "FARGATE", "capacityProviderStrategy": [{"capacityProvider": "X"}]},
        ),
        "/spec",
        "set either launchType or capacityProviderStrategy, not both",
        id="launchtype-and-strategy",
    ),
    pytest.param(
        "DeploymentStrategy",
        _doc("DeploymentStrategy", {"type": "canary"}),
        "/spec/canary",
        "required field is missing (a canary strategy needs a canary block)",
        id="canary-no-block",
    ),
    pytest.param(
        "DeploymentStrategy",
        _doc("DeploymentStrategy", {"type": "linear", "linear": {"stepPercent": 2, "stepBake": "1m"}}),
        "/spec/linear/stepPercent",
        "must be at least 3 (got 2)",
        id="step-percent-low",
    ),
    pytest.param(
        "DeploymentStrategy",
        _doc("DeploymentStrategy", {**CANARY, "canary": {"percent": 0.05, "bake": "1m"}}),
        "/spec/canary/percent",
        "must be at least 0.1 (got 0.05)",
        id="percent-low",
    ),
    pytest.param(
        "DeploymentStrategy",
        _doc("DeploymentStrategy", {**CANARY, "canary": {"percent": 150, "bake": "1m"}}),
        "/spec/canary/percent",
        "must be at most 100 (got 150)",
        id="percent-high",
    ),
    pytest.param(
        "CapacityProvider",
        _doc(
            "CapacityProvider",
            {"cluster": "prod", "autoScalingGroupProvider": ASG, "managedInstancesProvider": MANAGED},
        ),
        "/spec",
        'set only one of "autoScalingGroupProvider", "managedInstancesProvider"',
        id="both-providers",
    ),
    pytest.param(
        "CapacityProvider",
        _doc("CapacityProvider", {"tags": {}}),
        "/spec",
        'set one of "autoScalingGroupProvider" or "managedInstancesProvider"',
        id="no-provider",
    ),
    pytest.param(
        "CapacityProvider",
        _doc("CapacityProvider", {"managedInstancesProvider": MANAGED}),
        "/spec/cluster",
        "required field is missing (a managedInstancesProvider needs its cluster)",
        id="managed-needs-cluster",
    ),
    pytest.param(
        "Cluster",
        _doc("Cluster", {}, apiVersion="ecs-gitops/v2"),
        "/apiVersion",
        'must be "ecs-gitops/v1" (got "ecs-gitops/v2")',
        id="wrong-apiversion",
    ),
    pytest.param(
        "Cluster",
        _doc("Window", {}),
        "/kind",
        'must be "Cluster" (got "Window")',
        id="wrong-kind",
    ),
    pytest.param(
        "Cluster",
        _doc("Cluster", {}, metadata={"name": "prod cluster"}),
        "/metadata/name",
        "must be letters, digits, hyphens and underscores",
        id="bad-name",
    ),
    pytest.param(
        "Service",
        _doc("Service", {**SERVICE, "taskDefinition": 7}),
        "/spec/taskDefinition",
        "must be a string or a mapping (got 7)",
        id="taskdef-wrong-type",
    ),
    pytest.param(
        "Service",
        _doc(
            "Service",
            {
                **SERVICE,
                "taskDefinition": {"family": "f", "containerDefinitions": [{"name": "a", "imag": "b"}]},
            },
        ),
        "/spec/taskDefinition/containerDefinitions/0/imag",
        'unknown field "imag" (did you mean "image"?)',
        id="inline-taskdef-typo",
    ),
    pytest.param(
        "Service",
        _doc(
            "Service",
            {
                **SERVICE,
                "loadBalancers": [{"targetGroup": {"nmae": "tg"}, "containerName": "a", "containerPort": 80}],
            },
        ),
        "/spec/loadBalancers/0/targetGroup/nmae",
        'unknown field "nmae" (did you mean "name"?)',
        id="reference-typo",
    ),
    pytest.param(
        "Service",
        _doc("Service", {**SERVICE, "desiredCount": -1}),
        "/spec/desiredCount",
        "must be at least 0 (got -1)",
        id="negative-count",
    ),
    pytest.param(
        "Service",
        _doc("Service", {**SERVICE, "capacityProviderStrategy": [{"capacityProvider": "X", "weight": 1001}]}),
        "/spec/capacityProviderStrategy/0/weight",
        "must be at most 1000",
        id="weight-high",
    ),
    pytest.param(
        "DeploymentStrategy",
        _doc(
            "DeploymentStrategy",
            {
                **CANARY,
                "hooks": [
                    {
                        "stage": "postTestTraffic",
                        "url": "http://h",
                        "lambda": "arn:aws:lambda:eu-west-1:1:function:f",
                    }
                ],
            },
        ),
        "/spec/hooks/0",
        'set only one of "url", "lambda"',
        id="hook-url-and-lambda",
    ),
    pytest.param(
        "Window",
        _doc("Window", {**WINDOW, "overrun": "stop"}),
        "/spec/overrun",
        "must be one of finish, pause, rollback",
        id="window-overrun",
    ),
    pytest.param(
        "Window",
        _doc("Window", {**WINDOW, "schedule": "@daily"}),
        "/spec/schedule",
        "must be a cron expression with five fields",
        id="cron-fields",
    ),
    pytest.param(
        "TaskDefinition",
        {"family": "f", "containerDefinitions": [], "networkMode": "vpc"},
        "/networkMode",
        "must be one of bridge, host, awsvpc, none",
        id="taskdef-enum",
    ),
    pytest.param(
        "Window",
        ["a", "list"],
        "",
        "must be a mapping",
        id="not-a-mapping",
    ),
]


@pytest.mark.parametrize(("kind", "document", "pointer", "fragment"), INVALID)
def test_invalid_document_is_reported_in_plain_words(
    kind: str, document: Any, pointer: str, fragment: str
) -> None:
    """Each defect is reported at the pointer of the offending field, with a message a user understands."""
    problems = validate(kind, document)
    assert any(p == pointer and fragment in m for p, m in problems), problems


def test_every_problem_is_reported_sorted_by_pointer() -> None:
    """All problems in a document come back at once, ordered by JSON pointer (numeric indexes as numbers)."""
    spec = {
        "taskDefinition": "td.json",
        "launchType": "fargate",
        "desiredcount": 1,
        "dependsOn": ["a"] * 2,
        "ignoreDrift": ["ok"] + [f"/x{i}" for i in range(10)] + ["bad"],
    }
    problems = validate("Service", _doc("Service", spec, metadata={"name": "-x"}))
    pointers = [p for p, _ in problems]
    assert pointers == [
        "/metadata/name",
        "/spec/cluster",
        "/spec/dependsOn",
        "/spec/desiredcount",
        "/spec/ignoreDrift/0",
        "/spec/ignoreDrift/11",
        "/spec/launchType",
    ]


def test_messages_never_repeat_a_huge_instance() -> None:
    """A big wrong value is shown cut short, so a message stays one readable line."""
    huge = {f"key{i}": "v" * 50 for i in range(100)}
    problems = validate("Service", _doc("Service", {**SERVICE, "desiredCount": huge, "strategy": [huge]}))
    assert problems
    assert all(len(message) < 200 for _, message in problems), problems


def test_unknown_kind_is_refused() -> None:
    """Asking for a kind without a schema is a programming error, not a validation result."""
    with pytest.raises(ValueError, match="unknown kind"):
        validate("Ingress", {})


def test_a_document_validated_before_is_answered_from_memory_and_a_changed_one_afresh(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The same document (as JSON) is validated once; a copy gets the same answer without jsonschema; a
    changed value, a value of another type or another kind is validated again."""
    window = {
        "apiVersion": "ecs-gitops/v1",
        "kind": "Window",
        "metadata": {"name": "memo-window"},
        "spec": {"type": "freeze", "schedule": "0 0 * * *", "duration": "2 hours"},
    }
    first = validate("Window", window)
    assert first and first[0][0] == "/spec/duration"
    validators: list[str] = []
    real = schemas._validator
    monkeypatch.setattr(schemas, "_validator", lambda kind: validators.append(kind) or real(kind))
    assert validate("Window", json.loads(json.dumps(window))) == first and validators == []
    fixed = {**window, "spec": {**window["spec"], "duration": "2h"}}
    assert validate("Window", fixed) == [] and validators == ["Window"]
    typed = {**window, "spec": {**window["spec"], "duration": True}}
    assert validate("Window", typed) != first and validators == ["Window", "Window"]
    assert validate("Cluster", window) and validators[-1] == "Cluster"
