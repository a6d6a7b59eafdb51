"""Typed view of what a manifest root holds after loading and validation.

Specs stay plain dicts in the JSON shape the schemas describe (so JSON pointers in errors point at
exactly what the user wrote); the dataclasses carry where each document came from.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from agent.errors import Problem

API_VERSION = "ecs-gitops/v1"
KINDS = ("Service", "DeploymentStrategy", "Window", "CapacityProvider", "Cluster")


@dataclass(frozen=True)
class Source:
    """Where a document was read: file relative to the manifest root, 0-based document index, line."""

    file: str
    doc: int = 0
    line: int | None = None
    lines: dict[str, int] = field(default_factory=dict, compare=False, hash=False, repr=False)

    def line_of(self, pointer: str) -> int | None:
        """The line of the node at ``pointer`` (or of its nearest ancestor that has one)."""
        while True:
            if pointer in self.lines:
                return self.lines[pointer]
            if not pointer:
                return self.line
            pointer = pointer.rsplit("/", 1)[0]


@dataclass(frozen=True)
class Manifest:
    """One ecs-gitops document: ``kind``, ``metadata.name`` and its ``spec``."""

    kind: str
    name: str
    spec: dict[str, Any]
    source: Source
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TaskDefinitionFile:
    """A native task definition (RegisterTaskDefinition input), read-only fields dropped.

    ``pointer`` is where the body sits in the document: "" for a plain file, "/taskDefinition" for
    describe-task-definition output, "/spec/taskDefinition" for one inline in a Service.
    """

    body: dict[str, Any]
    source: Source
    pointer: str = ""

    @property
    def family(self) -> str:
        return str(self.body.get("family", ""))


@dataclass
class Desired:
    """Everything one commit asks for, by kind and name."""

    services: dict[str, Manifest] = field(default_factory=dict)
    strategies: dict[str, Manifest] = field(default_factory=dict)
    windows: dict[str, Manifest] = field(default_factory=dict)
    capacity_providers: dict[str, Manifest] = field(default_factory=dict)
    clusters: dict[str, Manifest] = field(default_factory=dict)
    # Task definitions keyed by family (a family is managed by exactly one file or inline body).
    task_definitions: dict[str, TaskDefinitionFile] = field(default_factory=dict)
    # Which task-definition family each Service uses, by service manifest name.
    service_task_family: dict[str, str] = field(default_factory=dict)
    # Problems of severity "warning" found while loading (ignored documents, credentials in environment).
    warnings: list[Problem] = field(default_factory=list)
    # The commit the manifests were read at (None for a plain folder).
    revision: str | None = field(default=None, compare=False)
    # What is computed from these manifests alone (each service's fingerprint, the rollout order), kept
    # with them: a Desired is not changed once loaded, and an unchanged commit's is reused tick after tick
    # (DesiredCache). A copy (dataclasses.replace) starts empty.
    derived: dict[Any, Any] = field(default_factory=dict, init=False, repr=False, compare=False)

    def by_kind(self, kind: str) -> dict[str, Manifest]:
        return {
            "Service": self.services,
            "DeploymentStrategy": self.strategies,
            "Window": self.windows,
            "CapacityProvider": self.capacity_providers,
            "Cluster": self.clusters,
        }[kind]
