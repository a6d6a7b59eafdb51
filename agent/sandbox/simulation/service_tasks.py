"""The tasks of simulated services, as ListTasks and DescribeTasks report them.

The simulator keeps counts, not tasks: a deployment (or task set) with ``running`` = k has k RUNNING
tasks here, of its task definition, ``startedBy`` its id and in group ``service:<name>``. A task's id is
derived from its deployment's id and its index, so the same task keeps its ARN from call to call while
the count holds. Stopped tasks are not kept (``desiredStatus: STOPPED`` lists none). Tasks of no simulated
service (RunTask, or a service the simulator has not met) are moto's, and those calls go to it.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

from agent.sandbox.overlay.calls import Call, Reply
from agent.sandbox.simulation.model import Json, SimService

if TYPE_CHECKING:
    from agent.sandbox.simulation.model import SimDeployment, SimTaskSet

PAGE = 100  # ListTasks' largest page


def _task_id(owner: str, index: int) -> str:
    return hashlib.sha256(f"{owner}/{index}".encode()).hexdigest()[:32]


def _cluster_name(arn_or_name: str | None) -> str:
    return (arn_or_name or "default").rsplit("/", 1)[-1]


class ServiceTasks:
    """ListTasks and DescribeTasks over the simulated services, mixed into
    :class:`~agent.sandbox.simulator.Simulator` (which provides ``services``)."""

    services: dict[str, SimService]

    def _owners(self, sim: SimService) -> list[SimDeployment | SimTaskSet]:
        return [*sim.deployments, *sim.task_sets]

    def _tasks(self, call: Call, sim: SimService) -> list[Json]:
        cluster = _cluster_name(sim.cluster_arn)
        tasks = []
        for owner in self._owners(sim):
            for index in range(owner.running):
                tasks.append(
                    {
                        "taskArn": call.arn(f"task/{cluster}/{_task_id(owner.id, index)}"),
                        "clusterArn": sim.cluster_arn,
                        "taskDefinitionArn": owner.task_definition,
                        "lastStatus": "RUNNING",
                        "desiredStatus": "RUNNING",
                        "group": f"service:{sim.name}",
                        "startedBy": owner.id,
                        "createdAt": owner.created_at,
                        "startedAt": owner.updated_at or owner.created_at,
                        "launchType": owner.fields.get("launchType", "FARGATE"),
                        "containers": [],
                        "version": 1,
                    }
                )
        return tasks

    def _in_cluster(self, call: Call, cluster: str | None) -> list[SimService]:
        arn = call.arn(f"cluster/{_cluster_name(cluster)}")
        return [s for s in self.services.values() if s.cluster_arn == arn]

    def list_tasks(self, call: Call) -> Reply:
        """ListTasks of one service (``serviceName``): its running tasks; any other listing is moto's."""
        params = call.params
        name = params.get("serviceName")
        found = [s for s in self._in_cluster(call, params.get("cluster")) if name in (s.name, s.arn)]
        if not name or not found:
            return call.forward()
        if params.get("desiredStatus", "RUNNING") != "RUNNING":
            return Reply(200, {"taskArns": []})
        arns = [t["taskArn"] for t in self._tasks(call, found[0])]
        start = int(params.get("nextToken") or 0)
        size = int(params.get("maxResults") or PAGE)
        page: Json = {"taskArns": arns[start : start + size]}
        if start + size < len(arns):
            page["nextToken"] = str(start + size)
        return Reply(200, page)

    def describe_tasks(self, call: Call) -> Reply:
        """DescribeTasks: the simulated services' tasks among ``tasks`` (ARNs or ids), moto's for the rest."""
        params = call.params
        known: dict[str, Json] = {}
        for sim in self._in_cluster(call, params.get("cluster")):
            for task in self._tasks(call, sim):
                known[task["taskArn"]] = known[task["taskArn"].rsplit("/", 1)[-1]] = task
        refs = list(params.get("tasks") or [])
        ours = [known[r] for r in refs if r in known]
        if not ours:
            return call.forward()
        out: Json = {"tasks": ours, "failures": []}
        rest = [r for r in refs if r not in known]
        if rest:
            moto = call.moto("DescribeTasks", {**params, "tasks": rest})
            out["tasks"] += moto.get("tasks") or []
            out["failures"] += moto.get("failures") or []
        return Reply(200, out)
