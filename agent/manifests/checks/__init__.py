"""Validation after parsing: JSON Schema per document, then the semantic checks a schema cannot express.

Everything is collected, nothing stops at the first problem. Semantic checks run only on documents
that passed their schema (so the checks can trust shapes and a broken document gives one clear error,
not a cascade), but every document with a name still counts for references and uniqueness, so a typo
in one strategy does not also make every service using it "unresolved".

Each problem points at the place the user has to edit: a missing ``networkConfiguration`` at the
Service, missing Fargate ``cpu`` at the task definition (the file, or ``/spec/taskDefinition/cpu``).

``check`` here runs the steps in order, each guarded so a bug in one becomes a problem, not a
traceback: schemas and names (``entries``), task definitions, one module per kind (``services``,
``strategies``, ``windows``, ``clusters``), then dependsOn cycles, the cluster allow-lists,
credentials in environment values and what ECS would refuse of a task definition (size, values).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from agent.errors import Problem
from agent.manifests import ecs_rules
from agent.manifests.checks import clusters, entries, services, strategies, task_definitions, windows
from agent.manifests.checks.clusters import FARGATE_PROVIDERS, account_clusters, allowed_clusters
from agent.manifests.checks.context import Context, valid_entries
from agent.manifests.checks.durations import MAX_DURATION, parse_duration
from agent.manifests.checks.services import SERVICE_FIELDS
from agent.manifests.checks.strategies import (
    ECS_MAX_BAKE,
    ECS_MAX_HOOK_TIMEOUT,
    TEST_TRAFFIC_STAGES,
    TRAFFIC_SHIFTING,
)
from agent.manifests.classification import Classified
from agent.manifests.model import KINDS, Desired, Manifest, Source
from agent.manifests.tree import Tree

__all__ = [
    "ECS_MAX_BAKE",
    "ECS_MAX_HOOK_TIMEOUT",
    "FARGATE_PROVIDERS",
    "MAX_DURATION",
    "SERVICE_FIELDS",
    "TEST_TRAFFIC_STAGES",
    "TRAFFIC_SHIFTING",
    "account_clusters",
    "allowed_clusters",
    "check",
    "parse_duration",
]


def _guard(ctx: Context, source: Source | None, what: str, fn: Callable[[], None]) -> None:
    """Run one check; a bug in it becomes a problem for that document, never a traceback."""
    try:
        fn()
    except Exception as err:
        file = source.file if source else "(manifests)"
        line = source.line if source else None
        ctx.problems.append(
            Problem(file, "", f"internal error while checking {what}: {type(err).__name__}: {err}", line)
        )


def check(
    classified: Classified,
    tree: Tree,
    config: Any = None,
    loaded_files: Iterable[str] = (),
    broken_files: Iterable[str] = (),
) -> tuple[Desired, list[Problem]]:
    """Validate classified documents; return what they ask for and every problem found.

    ``loaded_files`` are the paths that were read as manifest files, ``broken_files`` those that could
    not be read or parsed (references to them are not reported a second time).
    """
    ctx = Context(tree, config)
    ctx.loaded_files = set(loaded_files)
    ctx.broken_files = set(broken_files)
    _guard(ctx, None, "schemas", lambda: entries.validate_documents(ctx, classified))
    for td in classified.task_definitions:
        ctx.td_by_file.setdefault(td.source.file, []).append(td)
        _guard(
            ctx,
            td.source,
            "the task definition",
            lambda td=td: entries.schema_problems(ctx, "TaskDefinition", td.body, td.source, td.pointer),
        )
    _guard(ctx, None, "names", lambda: entries.check_unique_names(ctx))
    _guard(ctx, None, "task definitions", lambda: task_definitions.resolve_task_definitions(ctx))
    per_kind: dict[str, Callable[[Context, Manifest], None]] = {
        "Service": services.check_service,
        "Window": windows.check_window,
        "Cluster": clusters.check_cluster,
        "CapacityProvider": clusters.check_capacity_provider,
        "DeploymentStrategy": lambda c, m: strategies.check_strategy(c, m.spec, m.source, "/spec"),
    }
    for kind, fn in per_kind.items():
        for e in valid_entries(ctx, kind):
            _guard(
                ctx, e.manifest.source, f"{kind} {e.manifest.name}", lambda fn=fn, e=e: fn(ctx, e.manifest)
            )
    _guard(ctx, None, "dependsOn", lambda: services.check_cycles(ctx))
    _guard(ctx, None, "the cluster allow-list", lambda: clusters.check_allow_list(ctx))
    all_tds = [
        *classified.task_definitions,
        *(td for td in ctx.service_td.values() if td.pointer.startswith("/spec")),
    ]
    _guard(ctx, None, "secrets", lambda: task_definitions.check_secrets(ctx, all_tds))
    _guard(ctx, None, "ECS rules", lambda: ctx.problems.extend(ecs_rules.located(all_tds)))
    _guard(ctx, None, "task-definition limits", lambda: task_definitions.check_limits(ctx, all_tds))

    desired = Desired(revision=tree.revision)
    for kind in KINDS:
        desired.by_kind(kind).update(ctx.names[kind])
    for family, td in ctx.families.items():
        desired.task_definitions[family] = td
    for name, td in ctx.service_td.items():
        family = td.body.get("family")
        if isinstance(family, str) and family:
            desired.service_task_family[name] = family
    return desired, ctx.problems
