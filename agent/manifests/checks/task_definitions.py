"""Task definitions: which one each service runs, one owner per family, and credentials in plain sight.

A service names a task-definition file (relative to its own file, inside the root) or holds one
inline under ``/spec/taskDefinition``. Environment values that look like credentials are warnings
that point at Secrets Manager or SSM.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from agent.manifests.checks.context import Context, valid_entries
from agent.manifests.classification import READ_ONLY_TASK_DEFINITION_FIELDS
from agent.manifests.loading import resolve_reference
from agent.manifests.model import TaskDefinitionFile
from agent.manifests.tree import is_candidate

_CREDENTIAL_NAME = re.compile(
    r"PASSWORD|PASSWD|PASSPHRASE|SECRET|TOKEN|API_?KEY|PRIVATE_?KEY|ACCESS_?KEY|CREDENTIAL|AUTH_?KEY",
    re.IGNORECASE,
)
_CREDENTIAL_VALUES = (
    (re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"), "an AWS access key id"),
    (re.compile(r"-----BEGIN [A-Z ]*(?:PRIVATE KEY|CERTIFICATE)"), "a PEM key"),
    (re.compile(r"://[^/\s:@]+:[^/\s@]+@"), "a URL with a password"),
    (
        re.compile(r"^(?:gh[pousr]_[A-Za-z0-9]{30,}|xox[abpr]-[A-Za-z0-9-]{10,}|sk_live_[A-Za-z0-9]{16,})$"),
        "a token",
    ),
    (re.compile(r"^[0-9a-fA-F]{32,}$"), "a long hex string"),
    (re.compile(r"^(?=.*[0-9])(?=.*[a-z])(?=.*[A-Z])[A-Za-z0-9+/_-]{40,}={0,2}$"), "a long base64 string"),
)


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
                reason = None
                if value and not value.startswith("arn:") and _CREDENTIAL_NAME.search(name):
                    reason = f'"{name}" looks like a credential'
                else:
                    for rx, what in _CREDENTIAL_VALUES:
                        if rx.search(value):
                            reason = f'the value of "{name}" looks like {what}'
                            break
                if reason:
                    ctx.add(
                        td.source,
                        pointer,
                        f"{reason}; put it in Secrets Manager or SSM and use secrets[].valueFrom instead "
                        "of environment",
                        severity="warning",
                    )
