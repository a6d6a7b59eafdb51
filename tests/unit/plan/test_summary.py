"""The one-line plan of a proposed commit (the ecs-gitops/plan status)."""

from __future__ import annotations

from agent.plan.model import (
    ABSENT,
    CREATE,
    DELETE,
    DRIFT_REPORT,
    NO_CHANGE,
    REGISTER,
    UPDATE,
    Change,
    FieldChange,
    Plan,
)
from agent.plan.summary import describe


def _td(family: str, *images: tuple[str, str, str]) -> Change:
    fields = tuple(FieldChange(f"/containerDefinitions/{c}/image", old, new) for c, old, new in images)
    return Change("TaskDefinition", family, REGISTER, f"taskdefs/{family}.json", fields, {}, "")


def _svc(name: str, action: str, *fields: FieldChange, drift: str = "") -> Change:
    return Change("Service", f"prod/{name}", action, "", fields, {}, "", drift=drift)


def test_three_services_change() -> None:
    """Image bumps read as tags, other fields as old→new, new services as created."""
    plan = Plan(
        (
            _td("web", ("web", "repo/web:v1", "repo/web:v2")),
            _svc("web", UPDATE, FieldChange("/taskDefinition", "web:1", "web:(new)")),
            _svc("api", UPDATE, FieldChange("/desiredCount", 2, 3)),
            _svc("worker", CREATE, FieldChange("/serviceName", ABSENT, "worker")),
            _svc("reports", NO_CHANGE),
        ),
        "abc",
    )
    assert describe(plan) == "3 services change: web image v1→v2, api desiredCount 2→3, worker created"


def test_no_changes_and_other_resources_and_drift() -> None:
    """Nothing to do says so; clusters, deletions and drift are named apart from service changes."""
    assert (
        describe(Plan((_svc("web", NO_CHANGE),), "abc1234def5678")) == "no changes: ECS matches abc1234def56"
    )
    cluster = Change("Cluster", "prod", UPDATE, "", (FieldChange("/tags/x", ABSENT, "1"),), {}, "")
    plan = Plan(
        (
            cluster,
            _svc("old", DELETE, FieldChange("/desiredCount", 2, 0)),
            _svc("web", UPDATE, FieldChange("/desiredCount", 7, 4), drift=DRIFT_REPORT),
        ),
        "abc",
    )
    assert describe(plan) == "1 service changes: old DELETED; cluster prod updated; 1 drifted in ECS: web"


def test_a_new_agent_engine_service_owns_its_task_definition() -> None:
    """An EXTERNAL service holds its task definition in its task set: registering it is the service's."""
    plan = Plan(
        (
            _td("web", ("web", ABSENT, "repo/web:v1")),
            _svc("web", CREATE, FieldChange("/taskSet", ABSENT, {"taskDefinition": "web:(new)"})),
        ),
        "abc",
    )
    assert describe(plan) == "1 service changes: web created"
    bump = Plan(
        (
            _td("web", ("web", "repo/web:v1", "repo/web:v2")),
            _svc("web", UPDATE, FieldChange("/taskSet/taskDefinition", "web:1", "web:(new)")),
        ),
        "abc",
    )
    assert describe(bump) == "1 service changes: web image v1→v2"


def test_image_moving_to_another_repository_shows_both() -> None:
    """A different repository is not a tag bump: both images are shown."""
    plan = Plan(
        (
            _td("web", ("web", "repo/web:v1", "other/web:v1")),
            _svc("web", UPDATE, FieldChange("/taskDefinition", "web:1", "web:(new)")),
        ),
        "abc",
    )
    assert describe(plan) == "1 service changes: web image repo/web:v1→other/web:v1"
