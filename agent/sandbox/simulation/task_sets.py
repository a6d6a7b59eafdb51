"""Task sets in the simulator: the EXTERNAL controller's five task-set operations (served here, never by
moto: its CreateTaskSet crashes on Fargate), CodeDeploy's task set, and their tasks over time.
Timing model (``T`` = ``task_start_seconds``):

* **EXTERNAL controller (task sets).** ``computedDesiredCount = ceil(desiredCount * scale / 100)``. Each
  task set starts one task per tick until it runs that many (or drops to it at once), and reports
  STEADY_STATE from that tick on: ``computedDesiredCount * T`` seconds after its creation or scaling.
  A task set with a broken image never runs a task and stays STABILIZING (``pendingCount`` =
  ``computedDesiredCount``). DeleteTaskSet makes it DRAINING; it is gone on the next tick (``T`` s).

  A task set's ``loadBalancers`` are what registers it to a target group. UpdateService's
  ``desiredCount`` changes every task set's ``computedDesiredCount`` at once (STABILIZING until the
  tasks follow).
* **CODE_DEPLOY controller.** CreateService makes one PRIMARY task set from the service (CodeDeploy's
  first one), which starts its tasks like an EXTERNAL task set. UpdateService of the task definition,
  load balancers, network configuration or platform version is refused, as ECS does (that is a
  CodeDeploy deployment), unless the same call moves the service to the ECS controller: then its task
  sets become ACTIVE deployments (the primary one the last COMPLETED) and a new deployment replaces them.
"""

from __future__ import annotations

import copy
import math

from agent.sandbox.overlay.calls import Call, EcsError, Reply
from agent.sandbox.overlay.capacity_providers import check_capacity_strategy
from agent.sandbox.simulation.model import (
    ACTIVE,
    COMPLETED,
    DRAINING,
    PRIMARY,
    STABILIZING,
    STEADY_STATE,
    TASK_SET_ONLY,
    Json,
    SimDeployment,
    SimService,
    SimTaskSet,
    compute_fields,
    container_images,
    describe_task_definition,
)


class TaskSets:
    """EXTERNAL and CODE_DEPLOY task sets, mixed into :class:`~agent.sandbox.simulator.Simulator` (which
    provides the clock, ids, events, ``_broken``, ``_wake`` and ``_adopt`` used here)."""

    @staticmethod
    def _computed(service: SimService, task_set: SimTaskSet) -> int:
        if task_set.status == DRAINING:
            return 0
        return math.ceil(service.desired * task_set.scale / 100 - 1e-9)

    def _tick_task_sets(self, service: SimService, at: float) -> None:
        was_steady = all(ts.stability == STEADY_STATE for ts in service.task_sets)
        self._step_task_sets(service, at)
        steady = all(ts.stability == STEADY_STATE for ts in service.task_sets)
        if service.task_sets and steady and not was_steady:
            self._event(service, at, "has reached a steady state.")

    def _step_task_sets(self, service: SimService, at: float) -> None:
        for task_set in list(service.task_sets):
            if task_set.status == DRAINING:
                service.task_sets.remove(task_set)
                if task_set.running:
                    self._event(
                        service,
                        at,
                        f"has stopped {task_set.running} running tasks: {self._task_ids(task_set.running)}.",
                    )
                continue
            target = self._computed(service, task_set)
            before = task_set.running
            if task_set.running < target and not self._broken(task_set.images):
                task_set.running += 1
                started = self._task_ids(1)
                self._event(service, at, f"(task-set {task_set.id}) has started 1 tasks: {started}.")
            elif task_set.running > target:
                task_set.running = target
                self._event(
                    service, at, f"(task-set {task_set.id}) has stopped {before - target} running tasks."
                )
            if task_set.running != before:
                task_set.updated_at = at
            self._restabilise(task_set, target, at)

    def _restabilise(self, task_set: SimTaskSet, target: int, at: float) -> None:
        stability = STEADY_STATE if task_set.running == target else STABILIZING
        if stability != task_set.stability:
            task_set.stability, task_set.stability_at = stability, at

    def _render_task_set(self, service: SimService, task_set: SimTaskSet, tags: bool = False) -> Json:
        target = self._computed(service, task_set)
        out: Json = {
            "id": task_set.id,
            "taskSetArn": task_set.arn,
            "serviceArn": service.arn,
            "clusterArn": service.cluster_arn,
            "status": task_set.status,
            "taskDefinition": task_set.task_definition,
            "computedDesiredCount": target,
            "pendingCount": max(0, target - task_set.running),
            "runningCount": task_set.running,
            "createdAt": task_set.created_at,
            "updatedAt": task_set.updated_at or task_set.created_at,
            **copy.deepcopy(task_set.fields),
            "scale": {"value": task_set.scale, "unit": "PERCENT"},
            "stabilityStatus": task_set.stability,
            "stabilityStatusAt": task_set.stability_at or task_set.created_at,
        }
        if task_set.external_id is not None:
            out["externalId"] = task_set.external_id
        if tags:
            out["tags"] = copy.deepcopy(task_set.tags)
        return out

    @staticmethod
    def _ordered(sim: SimService) -> list[SimTaskSet]:
        rank = {PRIMARY: 0, ACTIVE: 1, DRAINING: 2}
        return sorted(sim.task_sets, key=lambda ts: (rank.get(ts.status, 3), -ts.created_at))

    # -- CODE_DEPLOY controller: CodeDeploy's task set, and the migration to the ECS controller ------

    def _code_deploy_task_set(self, call: Call, sim: SimService, service: Json, at: float) -> None:
        """CreateService with CODE_DEPLOY: ECS makes the first (PRIMARY) task set from the service."""
        described = describe_task_definition(call, service["taskDefinition"])
        fields = compute_fields(service)
        for name in ("loadBalancers", "serviceRegistries"):
            fields[name] = copy.deepcopy(service.get(name) or [])
        task_set_id = self._deployment_id()
        cluster_name = sim.cluster_arn.rsplit("/", 1)[-1]
        task_set = SimTaskSet(
            id=task_set_id,
            arn=call.arn(f"task-set/{cluster_name}/{sim.name}/{task_set_id}"),
            external_id=None,
            task_definition=described["taskDefinitionArn"],
            images=container_images(described),
            created_at=at,
            updated_at=at,
            fields=fields,
            status=PRIMARY,
            stability_at=at,
        )
        sim.task_sets.append(task_set)
        self._restabilise(task_set, self._computed(sim, task_set), at)

    def _leave_code_deploy(self, sim: SimService, at: float) -> None:
        """UpdateService CODE_DEPLOY -> ECS: the task sets' tasks become the ECS controller's deployments
        (the primary one COMPLETED, so a failed first deployment can roll back to it); the caller then
        starts a new deployment that replaces them."""
        deployments = []
        for task_set in self._ordered(sim):
            if task_set.status == DRAINING:
                continue
            fields = {k: copy.deepcopy(v) for k, v in task_set.fields.items() if k not in TASK_SET_ONLY}
            deployments.append(
                SimDeployment(
                    id=task_set.id,
                    task_definition=task_set.task_definition,
                    images=task_set.images,
                    created_at=task_set.created_at,
                    fields=fields,
                    status=PRIMARY if not deployments else ACTIVE,
                    running=task_set.running,
                    rollout_state=COMPLETED,
                    reason=f"ECS deployment {task_set.id} completed.",
                    updated_at=at,
                )
            )
        sim.deployments, sim.task_sets, sim.controller = deployments, [], "ECS"
        sim.last_completed = deployments[0] if deployments else None
        self._event(sim, at, "updated its deployment controller from CODE_DEPLOY to ECS.")

    # -- task-set operations (served here, never by moto: its CreateTaskSet crashes on Fargate) -----

    def _service_of(self, call: Call) -> SimService:
        params = call.params
        for name in ("cluster", "service"):
            if not params.get(name):
                raise EcsError("InvalidParameterException", f"{name} is required.")
        out = call.moto("DescribeServices", {"cluster": params["cluster"], "services": [params["service"]]})
        found = [s for s in out.get("services") or [] if s.get("status") == ACTIVE]
        if not found:
            raise EcsError("ServiceNotFoundException", "Service not found.")
        service = found[0]
        sim = self.services.get(service["serviceArn"]) or self._adopt(service, self.clock.timestamp())
        if sim.controller != "EXTERNAL":
            raise EcsError(
                "InvalidParameterException",
                "Task sets can be managed only for services that use the EXTERNAL deployment controller.",
            )
        return sim

    @staticmethod
    def _task_set(sim: SimService, ref: str | None) -> SimTaskSet:
        for task_set in sim.task_sets:
            if ref in (task_set.arn, task_set.id):
                return task_set
        raise EcsError("TaskSetNotFoundException", "The specified task set does not exist.")

    @staticmethod
    def _scale(params: Json) -> float:
        scale = params.get("scale")
        if scale is None:
            return 100.0
        value = float(scale.get("value", 0.0))
        if scale.get("unit", "PERCENT") != "PERCENT" or not 0.0 <= value <= 100.0:
            raise EcsError("InvalidParameterException", "scale must be a PERCENT value between 0 and 100.")
        return value

    def create_task_set(self, call: Call) -> Reply:
        """CreateTaskSet: a new ACTIVE task set whose tasks start over time."""
        params = call.params
        sim = self._service_of(call)
        if not params.get("taskDefinition"):
            raise EcsError("InvalidParameterException", "taskDefinition is required.")
        if params.get("launchType") and params.get("capacityProviderStrategy"):
            raise EcsError(
                "InvalidParameterException",
                "Specifying both a launch type and capacity provider strategy is not supported. "
                "Remove one and try again.",
            )
        cluster = call.describe_cluster(params["cluster"])
        source = {
            k: params[k] for k in ("launchType", "capacityProviderStrategy", "platformVersion") if k in params
        }
        if not source.get("launchType") and not source.get("capacityProviderStrategy"):
            default = cluster.get("defaultCapacityProviderStrategy") or []
            source["capacityProviderStrategy" if default else "launchType"] = default or "EC2"
        if source.get("capacityProviderStrategy"):
            check_capacity_strategy(cluster, source["capacityProviderStrategy"])
        source["networkConfiguration"] = params.get("networkConfiguration")
        fields = compute_fields(source)
        for name in ("loadBalancers", "serviceRegistries"):
            fields[name] = copy.deepcopy(params.get(name) or [])
        described = describe_task_definition(call, params["taskDefinition"])
        at = self.clock.timestamp()
        task_set_id = self._deployment_id()
        cluster_name, service_name = sim.cluster_arn.rsplit("/", 1)[-1], sim.arn.rsplit("/", 1)[-1]
        task_set = SimTaskSet(
            id=task_set_id,
            arn=call.arn(f"task-set/{cluster_name}/{service_name}/{task_set_id}"),
            external_id=params.get("externalId"),
            task_definition=described["taskDefinitionArn"],
            images=container_images(described),
            created_at=at,
            updated_at=at,
            fields=fields,
            scale=self._scale(params),
            tags=copy.deepcopy(params.get("tags") or []),
        )
        sim.task_sets.append(task_set)
        self._restabilise(task_set, self._computed(sim, task_set), at)
        task_set.stability_at = at
        self._wake(sim, at)
        return Reply(200, {"taskSet": self._render_task_set(sim, task_set, tags=True)})

    def describe_task_sets(self, call: Call) -> Reply:
        sim = self._service_of(call)
        tags = "TAGS" in (call.params.get("include") or [])
        refs = call.params.get("taskSets")
        if refs is None:
            rendered = [self._render_task_set(sim, ts, tags) for ts in self._ordered(sim)]
            return Reply(200, {"taskSets": rendered, "failures": []})
        found, failures = [], []
        for ref in refs:
            try:
                found.append(self._render_task_set(sim, self._task_set(sim, ref), tags))
            except EcsError:
                failures.append({"arn": ref, "reason": "MISSING"})
        return Reply(200, {"taskSets": found, "failures": failures})

    def update_task_set(self, call: Call) -> Reply:
        """UpdateTaskSet: a new scale; tasks start or stop from the next tick."""
        sim = self._service_of(call)
        task_set = self._task_set(sim, call.params.get("taskSet"))
        if task_set.status == DRAINING:
            raise EcsError("InvalidParameterException", "The task set is being deleted.")
        at = self.clock.timestamp()
        task_set.scale = self._scale({"scale": call.params.get("scale") or {}})
        task_set.updated_at = at
        self._restabilise(task_set, self._computed(sim, task_set), at)
        self._wake(sim, at)
        return Reply(200, {"taskSet": self._render_task_set(sim, task_set)})

    def update_service_primary_task_set(self, call: Call) -> Reply:
        """UpdateServicePrimaryTaskSet: this one PRIMARY, the previous primary ACTIVE."""
        sim = self._service_of(call)
        task_set = self._task_set(sim, call.params.get("primaryTaskSet"))
        if task_set.status == DRAINING:
            raise EcsError("InvalidParameterException", "A DRAINING task set cannot become primary.")
        at = self.clock.timestamp()
        for other in sim.task_sets:
            if other.status == PRIMARY and other is not task_set:
                other.status, other.updated_at = ACTIVE, at
        if task_set.status != PRIMARY:
            task_set.status, task_set.updated_at = PRIMARY, at
            self._event(sim, at, f"updated the primary task set to {task_set.id}.")
        return Reply(200, {"taskSet": self._render_task_set(sim, task_set)})

    def delete_task_set(self, call: Call) -> Reply:
        """DeleteTaskSet: DRAINING now, gone on the next tick; without ``force`` it must run no task."""
        sim = self._service_of(call)
        task_set = self._task_set(sim, call.params.get("taskSet"))
        if not call.params.get("force") and (task_set.running or self._computed(sim, task_set)):
            raise EcsError(
                "InvalidParameterException",
                "The task set cannot be deleted until it is scaled down to zero; use force to delete it now.",
            )
        at = self.clock.timestamp()
        if task_set.status != DRAINING:
            task_set.status, task_set.updated_at = DRAINING, at
            self._restabilise(task_set, 0, at)
        self._wake(sim, at)
        return Reply(200, {"taskSet": self._render_task_set(sim, task_set)})
