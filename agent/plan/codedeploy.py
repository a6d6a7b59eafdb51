"""Services on the CODE_DEPLOY deployment controller: detected, explained, and migrated only when asked.

Many existing accounts run services whose blue/green deployments CodeDeploy drives (deployment controller
``CODE_DEPLOY``). On such a service ECS refuses UpdateService for the task definition, load balancers,
network configuration and platform version: a new version has to be a CodeDeploy deployment (an AppSpec
and a deployment group the agent does not own). So the agent does not deploy through CodeDeploy. It
offers one explicit step instead: **migration to the native ECS engine**. ECS lets UpdateService switch
a service's controller from CODE_DEPLOY to ECS; the manifest's strategy (rolling, or the ``ecs`` engine's
blue/green, linear or canary, which reuse the same target groups and listener rules) then applies, and
the agent's rollouts work as for any other service.

The migration is never implied. :func:`gate` decides, for a planned change of a live CODE_DEPLOY
service:

* without ``migrateFromCodeDeploy: true`` on the Service: the change is **held** (nothing applied, a
  failure status says what to set);
* with it, while a CodeDeploy deployment is under way (more than one task set): **waiting**;
* towards the agent engine (EXTERNAL): held, ECS cannot switch CODE_DEPLOY to EXTERNAL in place;
* otherwise: applied as one UpdateService (controller, deployment configuration and whatever else
  differs), with a note in the plan explaining the step.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from agent.plan.model import Hold

CODE_DEPLOY = "CODE_DEPLOY"
OPT_IN = "migrateFromCodeDeploy"


def controller(service: Mapping[str, Any] | None) -> str:
    """The deployment controller type of a described service (ECS when not reported)."""
    return str(((service or {}).get("deploymentController") or {}).get("type") or "ECS")


def gate(spec: Mapping[str, Any], current: Mapping[str, Any], wanted: str) -> tuple[str, Hold | None]:
    """(note for the plan, hold or None) for a change to ``current``, a live CODE_DEPLOY service whose
    manifest wants controller ``wanted`` (ECS or EXTERNAL)."""
    if wanted == "EXTERNAL":
        return "", Hold(
            "deployment controller CODE_DEPLOY cannot become EXTERNAL (agent engine) in place; "
            "use an ecs-engine strategy with migrateFromCodeDeploy, or re-create the service"
        )
    if spec.get(OPT_IN) is not True:
        return "", Hold(
            "runs on CodeDeploy (deployment controller CODE_DEPLOY); set migrateFromCodeDeploy: true "
            "to migrate it to the native ECS engine"
        )
    task_sets = [t for t in current.get("taskSets") or [] if t.get("status") != "INACTIVE"]
    if len(task_sets) > 1:
        return "", Hold(
            f"a CodeDeploy deployment is in progress ({len(task_sets)} task sets); "
            "the migration to the native ECS engine waits for it to end",
            waiting=True,
        )
    note = (
        "migration from CodeDeploy: UpdateService switches the deployment controller CODE_DEPLOY -> ECS; "
        "from now on the native ECS engine deploys this service, CodeDeploy no longer does "
        "(turn off the deployment group's automatic deployments)"
    )
    return note, None
