"""Sorting parsed documents: ecs-gitops manifests, native task definitions, and everything else.

A document is a manifest when its ``apiVersion`` or ``kind`` says so, a task definition when it holds
``containerDefinitions`` (bare, or under ``taskDefinition`` as describe-task-definition prints it).
The agent's own files (config, sandbox seed, IAM policies) are skipped; anything else is a warning.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from agent.errors import Problem
from agent.manifests.documents import Document
from agent.manifests.fields import READ_ONLY_FIELDS
from agent.manifests.model import API_VERSION, KINDS, TaskDefinitionFile

# Fields describe-task-definition prints that RegisterTaskDefinition does not take (one list, shared
# with the planner's normalisation).
READ_ONLY_TASK_DEFINITION_FIELDS = READ_ONLY_FIELDS


@dataclass
class Classified:
    """Documents sorted by what they are."""

    manifests: list[Document] = field(default_factory=list)  # ecs-gitops documents, not yet validated
    task_definitions: list[TaskDefinitionFile] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


def _is_manifest(data: dict[str, Any]) -> bool:
    api = data.get("apiVersion")
    if isinstance(api, str) and api.startswith("ecs-gitops"):
        return True
    if data.get("kind") in KINDS:
        return True
    return api is None and {"kind", "metadata", "spec"} <= data.keys()


def task_definition_body(data: dict[str, Any]) -> tuple[dict[str, Any], str] | None:
    """The RegisterTaskDefinition body in a document and its pointer, or None if it holds none."""
    if "containerDefinitions" in data:
        body, pointer = data, ""
    elif isinstance(data.get("taskDefinition"), dict) and "containerDefinitions" in data["taskDefinition"]:
        body, pointer = data["taskDefinition"], "/taskDefinition"
        tags = data.get("tags")
        if isinstance(tags, list) and tags and "tags" not in body:
            body = {**body, "tags": tags}
    else:
        return None
    dropped = (*READ_ONLY_TASK_DEFINITION_FIELDS, "$schema")  # "$schema": the editor's hint, not ECS's
    return {k: v for k, v in body.items() if k not in dropped}, pointer


# Our own files that may sit in a manifest root but are not manifests.
NOT_MANIFESTS = ("AgentConfig", "SandboxSeed")


def classify(documents: list[Document]) -> Classified:
    """ecs-gitops manifests, native task definitions, and warnings for everything else."""
    out = Classified()
    for doc in documents:
        data, src = doc.data, doc.source
        # An IAM policy file (JSON, the only form IAM takes), e.g. the agent's own beside its service.
        policy_shaped = isinstance(data, dict) and {"Version", "Statement"} <= set(data)
        iam_policy = policy_shaped and src.file.endswith(".json")
        if iam_policy or (isinstance(data, dict) and data.get("kind") in NOT_MANIFESTS):
            continue  # the agent's settings, the sandbox seed, IAM policies may live beside the manifests
        if isinstance(data, dict) and _is_manifest(data):
            out.manifests.append(doc)
            continue
        found = task_definition_body(data) if isinstance(data, dict) else None
        if found:
            body, pointer = found
            out.task_definitions.append(TaskDefinitionFile(body, src, pointer))
            continue
        what = "a mapping without apiVersion or containerDefinitions"
        if not isinstance(data, dict):
            what = {list: "a list", str: "a string"}.get(type(data), "a single value")
        elif "apiVersion" in data:
            what = f"apiVersion {data['apiVersion']!r}, not {API_VERSION}"
        out.problems.append(
            Problem(
                src.file,
                "",
                f"ignored: not an ecs-gitops manifest or a task definition ({what})",
                src.line,
                severity="warning",
            )
        )
    return out
