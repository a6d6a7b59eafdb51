"""Task definitions: which one each service runs, one owner per family, their size, and credentials in
plain sight.

A service names a task-definition file (relative to its own file, inside the root) or holds one
inline under ``/spec/taskDefinition``. Environment values that look like credentials are warnings
that point at Secrets Manager or SSM. ECS refuses a task definition over 64 KiB ("Actual length: N.
Max allowed length is 65536 bytes"): that length is the task definition as compact JSON in UTF-8,
without its tags (a separate parameter), and it is checked here, before any call. Images and
environment names that no container runtime can take (control characters) are refused too.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

from agent.manifests.checks.context import Context, valid_entries
from agent.manifests.classification import READ_ONLY_TASK_DEFINITION_FIELDS
from agent.manifests.fields import credential_reason
from agent.manifests.loading import resolve_reference
from agent.manifests.model import TaskDefinitionFile
from agent.manifests.tree import is_candidate

MAX_TASK_DEFINITION_BYTES = 64 * 1024
MAX_ENVIRONMENT = 1000  # entries per container; far past what 64 KiB leaves room for in practice
_CONTROL = re.compile("[\x00-\x1f\x7f]")

def _register_family(ctx: Context, td: TaskDefinitionFile) -> None:
    family = td.body.get("family")
    if not isinstance(family, str) or not family:
        return
    other = ctx.families.get(family)
    if other is None:
        ctx.families[family] = td
        return
    if other.source == td.source and other.pointer == td.pointer:
        return
    line = other.source.line_of(f"{other.pointer}/family")
    where = other.source.file if line is None else f"{other.source.file}:{line}"
    if other.pointer.startswith("/spec"):
        where += f" at {other.pointer}"
    ctx.add(
        td.source,
        f"{td.pointer}/family",
        f'task-definition family "{family}" is already managed by {where}; '
        "a family must be defined in exactly one place",
    )


def resolve_task_definitions(ctx: Context) -> None:
    """Every service's task definition (file or inline), and one owner per family."""
    for tds in ctx.td_by_file.values():
        for td in tds:
            _register_family(ctx, td)
    for entry in valid_entries(ctx, "Service"):
        m = entry.manifest
        ref = m.spec.get("taskDefinition")
        pointer = "/spec/taskDefinition"
        if isinstance(ref, dict):
            body = {k: v for k, v in ref.items() if k not in READ_ONLY_TASK_DEFINITION_FIELDS}
            td = TaskDefinitionFile(body, m.source, pointer)
            _register_family(ctx, td)
            ctx.service_td[m.name] = td
            continue
        if not isinstance(ref, str):
            continue
        real, why = resolve_reference(ctx.tree, m.source.file, ref)
        if real is None:
            ctx.add(m.source, pointer, why or "cannot be resolved")
            continue
        if real in ctx.broken_files:
            continue  # the file's own problems are reported already
        if real not in ctx.loaded_files or not is_candidate(real):
            ctx.add(
                m.source,
                pointer,
                f'"{ref}" is not read as a manifest file (only .yaml, .yml and .json outside hidden folders)',
            )
            continue
        found = ctx.td_by_file.get(real, [])
        if not found:
            ctx.add(m.source, pointer, f'"{ref}" ({real}) holds no task definition (no containerDefinitions)')
        elif len(found) > 1:
            ctx.add(
                m.source,
                pointer,
                f'"{ref}" ({real}) holds {len(found)} task definitions; '
                "a referenced file must hold exactly one",
            )
        else:
            ctx.service_td[m.name] = found[0]


def check_secrets(ctx: Context, tds: Iterable[TaskDefinitionFile]) -> None:
    for td in tds:
        containers = td.body.get("containerDefinitions")
        if not isinstance(containers, list):
            continue
        for ci, c in enumerate(containers):
            env = c.get("environment") if isinstance(c, dict) else None
            for ei, item in enumerate(env if isinstance(env, list) else []):
                if not isinstance(item, dict):
                    continue
                name, value = str(item.get("name", "")), item.get("value")
                value = value if isinstance(value, str) else ""
                pointer = f"{td.pointer}/containerDefinitions/{ci}/environment/{ei}"
                reason = credential_reason(name, value)
                if reason:
                    ctx.add(
                        td.source,
                        pointer,
                        f"{reason}; put it in Secrets Manager or SSM and use secrets[].valueFrom instead "
                        "of environment",
                        severity="warning",
                    )


def task_definition_size(body: dict[str, Any]) -> int:
    """The length ECS measures against its 64 KiB limit: compact JSON, UTF-8, without ``tags``."""
    sent = {k: v for k, v in body.items() if k != "tags"}
    return len(json.dumps(sent, separators=(",", ":"), ensure_ascii=False).encode("utf-8", "surrogatepass"))


def check_limits(ctx: Context, tds: Iterable[TaskDefinitionFile]) -> None:
    """What ECS (or the container runtime) would refuse of each task definition, found before any call:
    more than MAX_ENVIRONMENT environment entries in a container, an image or environment name holding a
    control character, and a task definition over 64 KiB."""
    for td in tds:
        containers = td.body.get("containerDefinitions")
        for ci, c in enumerate(containers if isinstance(containers, list) else []):
            if not isinstance(c, dict):
                continue
            base = f"{td.pointer}/containerDefinitions/{ci}"
            image = c.get("image")
            if isinstance(image, str) and _CONTROL.search(image):
                message = f"{json.dumps(image)} holds a control character; no image name does"
                ctx.add(td.source, f"{base}/image", message)
            env = c.get("environment")
            if not isinstance(env, list):
                continue
            if len(env) > MAX_ENVIRONMENT:
                ctx.add(
                    td.source,
                    f"{base}/environment",
                    f"{len(env)} environment variables; at most {MAX_ENVIRONMENT} per container "
                    "(use environmentFiles or secrets for large configurations)",
                )
                continue
            for ei, item in enumerate(env):
                name = item.get("name") if isinstance(item, dict) else None
                if isinstance(name, str) and _CONTROL.search(name):
                    ctx.add(
                        td.source,
                        f"{base}/environment/{ei}/name",
                        f"{json.dumps(name)} holds a control character; an environment name cannot",
                    )
        size = task_definition_size(td.body)
        if size > MAX_TASK_DEFINITION_BYTES:
            ctx.add(
                td.source,
                td.pointer,
                f"the task definition is {size} bytes as JSON; ECS refuses more than "
                f"{MAX_TASK_DEFINITION_BYTES} bytes (64 KiB)",
            )
