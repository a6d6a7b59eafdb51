"""The four ServiceDeployment APIs, served from the simulator's records, and the checks in front of
CreateService / UpdateService.

moto answers ``ListServiceDeployments``, ``DescribeServiceDeployments``, ``StopServiceDeployment`` and
``ContinueServiceDeployment`` with "not implemented". :class:`ServiceDeployments` serves them from the
:class:`~agent.sandbox.simulator.Simulator`'s own records, in exactly the shapes of botocore's model
(every reply is checked against it by the tests), and drives the ECS-native strategies.

Every deployment of an ECS-controller service gets a service deployment (ARN
``...:service-deployment/<cluster>/<service>/<id>``) whose target and source service revisions are the
simulator's deployments (``...:service-revision/<cluster>/<service>/<id>``):
"""

from __future__ import annotations

import copy
from collections.abc import Callable

from agent.sandbox.overlay.calls import Call, EcsError, Reply
from agent.sandbox.overlay.services import merge_service
from agent.sandbox.overlay.shapes import conform
from agent.sandbox.simulation.deployment_checks import check_controller_switch, check_deployment_request
from agent.sandbox.simulation.deployment_records import (
    AWAITING_ACTION,
    CLEAN_UP,
    CONTINUE,
    FAILED,
    IN_PROGRESS,
    MAX_DESCRIBE,
    PAUSE,
    PENDING,
    PRE_PRODUCTION_TRAFFIC_SHIFT,
    PRODUCTION_TRAFFIC_SHIFT,
    ROLLBACK,
    ROLLBACK_IN_PROGRESS,
    STOP_REQUESTED,
    STOPPED,
    SUCCEEDED,
    SUCCESSFUL,
    SimServiceDeployment,
)
from agent.sandbox.simulation.model import Json, SimService, SimulatorPort, failure_threshold


class ServiceDeploymentApi:
    """Renders and serves service deployments, mixed into
    :class:`~agent.sandbox.service_deployments.ServiceDeployments` (which keeps the records and provides
    the lifecycle's endings used here)."""

    sim: SimulatorPort
    by_arn: dict[str, SimServiceDeployment]
    by_service: dict[str, list[SimServiceDeployment]]

    def render(self, record: SimServiceDeployment) -> Json:
        desired = (
            self.sim.services[record.service_arn].desired if record.service_arn in self.sim.services else 0
        )
        requested = desired if record.in_flight or record.status == SUCCESSFUL else 0
        target: Json = {
            "arn": record.target.revision_arn,
            "requestedTaskCount": requested,
            "runningTaskCount": record.target.running,
            "pendingTaskCount": max(0, requested - record.target.running) if record.in_flight else 0,
        }
        if record.native or record.weight:
            target["requestedProductionTrafficWeight"] = record.weight
            target["requestedTestTrafficWeight"] = record.test_weight
        sources = []
        for source in record.sources:
            if not source.revision_arn:
                continue
            summary: Json = {
                "arn": source.revision_arn,
                "requestedTaskCount": source.running,
                "runningTaskCount": source.running,
                "pendingTaskCount": 0,
            }
            if record.native:
                summary["requestedProductionTrafficWeight"] = 100.0 - record.weight
                summary["requestedTestTrafficWeight"] = 100.0 - record.test_weight
            sources.append(summary)
        out: Json = {
            "serviceDeploymentArn": record.arn,
            "serviceArn": record.service_arn,
            "clusterArn": record.cluster_arn,
            "createdAt": record.created_at,
            "updatedAt": record.updated_at,
            "sourceServiceRevisions": sources,
            "targetServiceRevision": target,
            "status": record.status,
            "deploymentConfiguration": conform(record.config, "DeploymentConfiguration"),
        }
        if record.started_at is not None:
            out["startedAt"] = record.started_at
        if record.finished_at is not None:
            out["finishedAt"] = record.finished_at
        if record.stopped_at is not None:
            out["stoppedAt"] = record.stopped_at
        if record.status_reason:
            out["statusReason"] = record.status_reason
        if record.native and record.stage:
            # PRE_PRODUCTION_TRAFFIC_SHIFT is a hook stage, not a ServiceDeploymentLifecycleStage: while its
            # hooks run before a traffic step the deployment reports PRODUCTION_TRAFFIC_SHIFT.
            stage = record.stage
            pre = stage == PRE_PRODUCTION_TRAFFIC_SHIFT
            out["lifecycleStage"] = PRODUCTION_TRAFFIC_SHIFT if pre else stage
            out["lifecycleHookDetails"] = [h.render() for h in record.hooks]
        if record.rollback:
            out["rollback"] = copy.deepcopy(record.rollback)
        out["deploymentCircuitBreaker"] = self._breaker(record)
        out["alarms"] = self._alarms(record)
        return out

    def _breaker(self, record: SimServiceDeployment) -> Json:
        breaker = record.config.get("deploymentCircuitBreaker") or {}
        if record.native or not breaker.get("enable"):
            return {"status": "DISABLED", "failureCount": record.target.failed, "threshold": 0}
        desired = (
            self.sim.services[record.service_arn].desired if record.service_arn in self.sim.services else 0
        )
        status = "MONITORING" if record.status == IN_PROGRESS else "MONITORING_COMPLETE"
        if record.status.startswith("ROLLBACK") or (
            record.status == STOPPED and record.target.rollout_state == "FAILED"
        ):
            status = "TRIGGERED"
        return {
            "status": status,
            "failureCount": record.target.failed,
            "threshold": failure_threshold(desired),
        }

    @staticmethod
    def _alarms(record: SimServiceDeployment) -> Json:
        alarms = record.alarm_config()
        names = list(alarms.get("alarmNames") or [])
        if not alarms.get("enable") or not names:
            return {"status": "DISABLED", "alarmNames": names, "triggeredAlarmNames": []}
        status = "MONITORING" if record.in_flight else "MONITORING_COMPLETE"
        if record.triggered:
            status = "TRIGGERED"
        return {"status": status, "alarmNames": names, "triggeredAlarmNames": list(record.triggered)}

    def brief(self, record: SimServiceDeployment) -> Json:
        full = self.render(record)
        out = {
            k: full[k]
            for k in ("serviceDeploymentArn", "serviceArn", "clusterArn", "createdAt", "status")
            if k in full
        }
        for key in ("startedAt", "finishedAt", "statusReason"):
            if key in full:
                out[key] = full[key]
        out["targetServiceRevisionArn"] = record.target.revision_arn
        return out

    # -- the four operations -----------------------------------------------------------------------

    def _service_arn_of(self, call: Call) -> str:
        params = call.params
        if not params.get("service"):
            raise EcsError("InvalidParameterException", "service is required.")
        out = call.moto(
            "DescribeServices",
            {"cluster": params.get("cluster") or "default", "services": [params["service"]]},
        )
        found = out.get("services") or []
        if not found:
            failures = out.get("failures") or []
            if failures and "cluster" in str(failures[0].get("reason", "")).lower():
                raise EcsError("ClusterNotFoundException", "Cluster not found.")
            raise EcsError("ServiceNotFoundException", "Service not found.")
        return str(found[0]["serviceArn"])

    def list_service_deployments(self, call: Call) -> Reply:
        """ListServiceDeployments: newest first, filtered by status and createdAt, paginated."""
        params = call.params
        service_arn = self._service_arn_of(call)
        statuses = params.get("status")
        window = params.get("createdAt") or {}
        records = [
            r
            for r in reversed(self.by_service.get(service_arn, []))
            if (not statuses or r.status in statuses)
            and (window.get("after") is None or r.created_at >= float(window["after"]))
            and (window.get("before") is None or r.created_at <= float(window["before"]))
        ]
        size = params.get("maxResults")
        size = 20 if size is None else int(size)
        if not 1 <= size <= 100:
            raise EcsError("InvalidParameterException", "maxResults must be between 1 and 100.")
        start = int(params.get("nextToken") or 0)
        body: Json = {"serviceDeployments": [self.brief(r) for r in records[start : start + size]]}
        if start + size < len(records):
            body["nextToken"] = str(start + size)
        return Reply(200, body)

    def describe_service_deployments(self, call: Call) -> Reply:
        arns = call.params.get("serviceDeploymentArns")
        if not isinstance(arns, list) or not arns:
            raise EcsError("InvalidParameterException", "serviceDeploymentArns is required.")
        if len(arns) > MAX_DESCRIBE:
            raise EcsError(
                "InvalidParameterException", f"At most {MAX_DESCRIBE} serviceDeploymentArns are allowed."
            )
        found, failures = [], []
        for arn in arns:
            record = self.by_arn.get(arn)
            if record is None:
                failures.append({"arn": arn, "reason": "MISSING"})
            else:
                found.append(self.render(record))
        return Reply(200, {"serviceDeployments": found, "failures": failures})

    def _record(self, call: Call) -> SimServiceDeployment:
        arn = call.params.get("serviceDeploymentArn")
        record = self.by_arn.get(arn or "")
        if record is None:
            raise EcsError(
                "ServiceDeploymentNotFoundException", f"The service deployment {arn} does not exist."
            )
        return record

    def stop_service_deployment(self, call: Call) -> Reply:
        """StopServiceDeployment: ROLLBACK (default) or ABORT an in-flight deployment."""
        record = self._record(call)
        stop_type = call.params.get("stopType") or ROLLBACK
        at = self.sim.clock.timestamp()
        conflict = None
        if record.status not in (PENDING, IN_PROGRESS):
            conflict = (
                f"The service deployment is {record.status}; only a deployment in progress can be stopped."
            )
        elif record.native and record.stage == CLEAN_UP and stop_type == ROLLBACK:
            conflict = (
                "The service deployment is cleaning up the previous revision; it can no longer roll back."
            )
        if conflict:
            raise EcsError("ConflictException", conflict)
        service = self.sim.services.get(record.service_arn)
        if stop_type == "ABORT":
            record.status, record.status_reason = (
                STOP_REQUESTED,
                "Service deployment stopped by a StopServiceDeployment request.",
            )
            record.updated_at = at
        elif record.native:
            self._roll_back(
                record, "Service deployment rolled back because of a StopServiceDeployment request.", at
            )
        else:
            self._stop_rolling(service, record, at)
        if service is not None:
            self.sim._wake(service, at)
        return Reply(200, {"serviceDeploymentArn": record.arn})

    def _stop_rolling(self, service: SimService | None, record: SimServiceDeployment, at: float) -> None:
        """StopServiceDeployment(ROLLBACK) of a rolling deployment: redeploy the last completed one."""
        if service is None or service.last_completed is None or service.last_completed is record.target:
            raise EcsError("ConflictException", "There is no completed deployment to roll back to.")
        reason = "Service deployment rolled back because of a StopServiceDeployment request."
        record.target.rollout_state, record.target.reason, record.target.updated_at = FAILED, reason, at
        rollback = self.sim._rollback_rolling(service, record.target, at)
        record.rollback_to = rollback
        self._roll_back(record, reason, at)
        record.status = ROLLBACK_IN_PROGRESS

    def continue_service_deployment(self, call: Call) -> Reply:
        """ContinueServiceDeployment: act on the PAUSE hook ``hookId`` that awaits action."""
        record = self._record(call)
        hook_id = call.params.get("hookId")
        action = call.params.get("action") or CONTINUE
        hook = next((h for h in record.hooks if h.hook_id == hook_id), None)
        if hook is None or not record.in_flight:
            raise EcsError(
                "InvalidParameterException",
                f"The lifecycle hook {hook_id} is not active in this service deployment.",
            )
        if hook.target_type != PAUSE or hook.status != AWAITING_ACTION:
            raise EcsError(
                "InvalidParameterException",
                f"The lifecycle hook {hook_id} is {hook.status}, not a PAUSE hook awaiting action.",
            )
        at = self.sim.clock.timestamp()
        hook.finished_at = at
        if action == ROLLBACK:
            hook.status = FAILED
            self._roll_back(
                record,
                f"Service deployment rolled back by ContinueServiceDeployment at lifecycle hook {hook_id}.",
                at,
            )
        else:
            hook.status = SUCCEEDED
            record.updated_at = at
        service = self.sim.services.get(record.service_arn)
        if service is not None:
            self.sim._wake(service, at)
        return Reply(200, {"serviceDeploymentArn": record.arn})

    # -- CreateService / UpdateService checks ----------------------------------------------------

    def _checked(self, handler: Callable[[Call], Reply]) -> Callable[[Call], Reply]:
        """CreateService/UpdateService, refused first when ECS would refuse the deployment configuration
        or the change of deployment controller."""

        def checked(call: Call) -> Reply:
            params = call.params
            if not {"deploymentConfiguration", "loadBalancers", "deploymentController"} & set(params):
                return handler(call)
            stored: Json = {}
            if call.operation == "UpdateService" and params.get("service"):
                out = call.moto(
                    "DescribeServices",
                    {"cluster": params.get("cluster") or "default", "services": [params["service"]]},
                )
                stored = merge_service(call, out["services"][0]) if out.get("services") else {}
                if "deploymentController" in params:
                    check_controller_switch(stored, params["deploymentController"], self.sim.services)
            check_deployment_request(params, stored)
            return handler(call)

        return checked
