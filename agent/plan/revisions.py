"""Task definitions: the revision of each family to run, and whether it is there already (no change),
registered with the same content before (reuse) or to be registered."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from agent.manifests.model import Desired
from agent.plan.diff import diff
from agent.plan.model import NO_CHANGE, REGISTER, REUSE, Change, TaskDefinitionRef
from agent.plan.observed import Observed
from agent.plan.resources import active, cluster_name
from agent.plan.taskdefs import family_revision, file_hash, normalise_task_definition, register_request


def running_task_definition(service: Mapping[str, Any]) -> str | None:
    """The task definition a described service runs: its own, or its PRIMARY task set's (EXTERNAL)."""
    if (service.get("deploymentController") or {}).get("type") == "EXTERNAL":
        for task_set in service.get("taskSets") or []:
            if task_set.get("status") == "PRIMARY":
                return task_set.get("taskDefinition")
        return None
    return service.get("taskDefinition")


def services_by_family(desired: Desired) -> dict[str, list[str]]:
    """The Service manifests running each task-definition family, by name: built once per plan, so
    finding a family's services does not scan every service."""
    users: dict[str, list[str]] = {}
    for manifest_name, family in sorted(desired.service_task_family.items()):
        users.setdefault(family, []).append(manifest_name)
    return users


def current_revision(family: str, users: Iterable[str], desired: Desired, observed: Observed) -> str | None:
    """The revision of ``family`` to diff against: the one a service of this family runs (``users``, the
    family's services by name, are asked in that order), else the latest."""
    for manifest_name in users:
        manifest = desired.services.get(manifest_name)
        if manifest is None:
            continue
        cluster = cluster_name(desired, str(manifest.spec.get("cluster", "")))
        service_name = str(manifest.spec.get("serviceName") or manifest.name)
        current = active(observed.services.get((cluster, service_name)))
        arn = running_task_definition(current) if current else None
        if arn and family_revision(arn).rsplit(":", 1)[0] == family:
            return arn
    return observed.latest_revision.get(family)


def task_definition_change(
    family: str, users: Iterable[str], desired: Desired, observed: Observed
) -> tuple[Change, TaskDefinitionRef]:
    """The change for one family (``users``: its services by name, see :func:`services_by_family`), and
    the reference services of that family run."""
    tdf = desired.task_definitions[family]
    digest = file_hash(tdf)
    source = tdf.source.file
    current_arn = current_revision(family, users, desired, observed)
    current = observed.task_definitions.get(current_arn) if current_arn else None
    # The observer vouches that the running revision carries the wanted content hash: no need to compare.
    vouched = current_arn is not None and observed.revisions_by_hash.get((family, digest)) == current_arn
    wanted = None if vouched and current is not None else normalise_task_definition(tdf.body)
    now = normalise_task_definition(current) if current is not None and wanted is not None else None
    if current_arn and current is not None and (wanted is None or now == wanted):
        label = family_revision(current_arn)
        change = Change(
            "TaskDefinition",
            family,
            NO_CHANGE,
            source,
            (),
            {"taskDefinitionArn": current_arn},
            f"content {digest} is {label}",
        )
        return change, TaskDefinitionRef(family, digest, current_arn)
    reused = observed.revisions_by_hash.get((family, digest))
    if reused:
        label = family_revision(reused)
        change = Change(
            "TaskDefinition",
            family,
            REUSE,
            source,
            (),
            {"taskDefinitionArn": reused},
            f"content {digest} matches {label}",
        )
        return change, TaskDefinitionRef(family, digest, reused)
    # Past the first return, ``wanted`` is set (only a vouched, described revision leaves it None).
    wanted = wanted if wanted is not None else normalise_task_definition(tdf.body)
    if now is not None and current_arn:
        fields = diff(now, wanted)
        reason = f"content {digest} differs from {family_revision(current_arn)}"
    else:
        fields = diff({}, wanted)
        reason = (
            f"content {digest}, first revision of the family"
            if not current_arn
            else (f"content {digest}; {family_revision(current_arn)} was not described")
        )
    change = Change(
        "TaskDefinition", family, REGISTER, source, tuple(fields), register_request(tdf.body, digest), reason
    )
    return change, TaskDefinitionRef(family, digest, None)
