"""Services as the simulator reports them: its post-processors put the simulated ``deployments``,
``taskSets``, counts and ``events`` into CreateService, UpdateService, DescribeServices and DeleteService
replies, and start the deployment an update asks for.

A service the simulator has not seen (created before a reset) is adopted as moto left it: steady.
UpdateService from the EXTERNAL or CODE_DEPLOY controller to ECS turns its task set(s) into completed
deployments (checked first by :func:`~agent.sandbox.simulation.deployment_checks.check_controller_switch`).
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING

from agent.sandbox.overlay.calls import Call
from agent.sandbox.overlay.services import DEPLOYMENT_FIELDS, merge_service
from agent.sandbox.simulation.model import (
    ACTIVE,
    CODE_DEPLOY,
    COMPLETED,
    INACTIVE,
    PRIMARY,
    Json,
    SimDeployment,
    SimService,
    compute_fields,
    container_images,
    deployment_config,
    describe_task_definition,
    sim_service,
)

if TYPE_CHECKING:
    from agent.sandbox.service_deployments import ServiceDeployments


class ServiceReplies:
    """The service post-processors, mixed into :class:`~agent.sandbox.simulator.Simulator` (which
    provides the clock, ids, events, deployments and task sets used here)."""

    services: dict[str, SimService]
    service_deployments: ServiceDeployments

    def _adopt(self, service: Json, at: float) -> SimService:
        """A service the simulator has not seen (created before a reset): steady, as moto left it."""
        sim = sim_service(service)
        controller = sim.controller
        if controller == "ECS" and service.get("taskDefinition"):
            fields = compute_fields(service)
            deployment = self._start_deployment(sim, service["taskDefinition"], (), fields, at, record=False)
            deployment.running = sim.desired
            deployment.rollout_state = COMPLETED
            deployment.reason = f"ECS deployment {deployment.id} completed."
            sim.last_completed = deployment
        self.services[sim.arn] = sim
        return sim

    def _render_service(self, service: Json) -> Json:
        sim = self.services.get(service.get("serviceArn", ""))
        if service.get("status") == INACTIVE or (sim is None and service.get("status") != ACTIVE):
            service["deployments"] = []
            service["runningCount"] = service["pendingCount"] = 0
            service.pop("taskSets", None)
            return service
        if sim is None:
            sim = self._adopt(service, self.clock.timestamp())
        service["desiredCount"] = sim.desired
        service["events"] = [copy.deepcopy(e) for e in reversed(sim.events)]
        if sim.controller == "ECS":
            rendered = [d.render(sim.desired) for d in sim.deployments]
            service["deployments"] = rendered
            service.pop("taskSets", None)
            if sim.primary is not None:
                service["taskDefinition"] = sim.primary.task_definition
        else:
            rendered = [self._render_task_set(sim, ts) for ts in self._ordered(sim)]
            service["deployments"] = []
            service["taskSets"] = rendered
        service["runningCount"] = sum(r["runningCount"] for r in rendered)
        service["pendingCount"] = sum(r["pendingCount"] for r in rendered)
        return service

    def _create_service_post(self, call: Call, body: Json) -> Json:
        service = body["service"]
        at = self.clock.timestamp()
        sim = sim_service(service)
        controller = sim.controller
        self.services[sim.arn] = sim
        if controller == "ECS" and service.get("taskDefinition"):
            described = describe_task_definition(call, service["taskDefinition"])
            fields = compute_fields(service)
            fields.update({k: copy.deepcopy(call.params[k]) for k in DEPLOYMENT_FIELDS if k in call.params})
            self._start_deployment(
                sim, described["taskDefinitionArn"], container_images(described), fields, at
            )
        elif controller == CODE_DEPLOY and service.get("taskDefinition"):
            self._code_deploy_task_set(call, sim, service, at)
        self._wake(sim, at)
        body["service"] = self._render_service(service)
        return body

    def _update_service_post(self, call: Call, body: Json) -> Json:
        service = body["service"]
        at = self.clock.timestamp()
        sim = self.services.get(service["serviceArn"]) or self._adopt(service, at)
        params = call.params
        migrated = (
            sim.controller == CODE_DEPLOY and (service.get("deploymentController") or {}).get("type") == "ECS"
        )
        if migrated:
            self._leave_code_deploy(sim, at)
        sim.desired = int(service.get("desiredCount") or 0)
        sim.config = deployment_config(service)
        sim.deployment_configuration = copy.deepcopy(service.get("deploymentConfiguration") or {})
        sim.load_balancers = copy.deepcopy(service.get("loadBalancers") or [])
        if sim.controller == "EXTERNAL" and (service.get("deploymentController") or {}).get("type") == "ECS":
            self._to_ecs_controller(call, sim, at)
            service = merge_service(call, service)
        for task_set in sim.task_sets:  # a new desiredCount changes every computedDesiredCount at once
            self._restabilise(task_set, self._computed(sim, task_set), at)
        if sim.controller == "ECS":
            primary = sim.primary
            task_definition = service.get("taskDefinition") if "taskDefinition" in params else None
            if primary is not None and task_definition is None:
                task_definition = primary.task_definition
            fields = compute_fields(service)
            previous = primary.fields if primary else {}
            fields.update({k: copy.deepcopy(previous[k]) for k in DEPLOYMENT_FIELDS if k in previous})
            fields.update({k: copy.deepcopy(params[k]) for k in DEPLOYMENT_FIELDS if k in params})
            if task_definition and (
                primary is None
                or params.get("forceNewDeployment")
                or migrated
                or task_definition != primary.task_definition
                or fields != primary.fields
            ):
                described = describe_task_definition(call, task_definition)
                self._start_deployment(
                    sim, described["taskDefinitionArn"], container_images(described), fields, at
                )
        self._wake(sim, at)
        body["service"] = self._render_service(service)
        return body

    def _to_ecs_controller(self, call: Call, sim: SimService, at: float) -> None:
        """EXTERNAL -> ECS (checked: one PRIMARY task set): that task set becomes a completed deployment,
        and the fields a service reports from its primary task set become the service's own."""
        task_set = next(ts for ts in sim.task_sets if ts.status == PRIMARY)
        record = call.state.services.setdefault(sim.arn, {})
        for key in ("launchType", "capacityProviderStrategy", "platformVersion", "networkConfiguration"):
            record.pop(key, None)
            if key in task_set.fields:
                record[key] = copy.deepcopy(task_set.fields[key])
        for key in ("loadBalancers", "serviceRegistries"):
            if key not in call.params and key in task_set.fields:
                record[key] = copy.deepcopy(task_set.fields[key])
        fields = {k: v for k, v in task_set.fields.items() if k not in ("loadBalancers", "serviceRegistries")}
        deployment = SimDeployment(
            id=self._deployment_id(),
            task_definition=task_set.task_definition,
            images=task_set.images,
            created_at=at,
            updated_at=at,
            fields=copy.deepcopy(fields),
            running=task_set.running,
            rollout_state=COMPLETED,
            revision_arn=self.service_deployments._revision_arn(sim),
        )
        deployment.reason = f"ECS deployment {deployment.id} completed."
        sim.controller, sim.task_sets, sim.deployments = "ECS", [], [deployment]
        sim.last_completed = deployment
        self._event(
            sim,
            at,
            f"deployment controller changed to ECS; task set {task_set.id} is deployment {deployment.id}.",
        )

    def _describe_services_post(self, call: Call, body: Json) -> Json:
        body["services"] = [self._render_service(s) for s in body.get("services") or []]
        return body

    def _delete_service_post(self, call: Call, body: Json) -> Json:
        service = body.get("service")
        if service:
            sim = self.services.pop(service.get("serviceArn", ""), None)
            if sim is not None:
                service["deployments"] = [d.render(0) for d in sim.deployments]
                service["runningCount"] = sum(d.running for d in sim.deployments) + sum(
                    ts.running for ts in sim.task_sets
                )
                service["pendingCount"] = 0
            service.pop("taskSets", None)
        return body
