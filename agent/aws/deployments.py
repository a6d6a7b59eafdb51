"""ECS service deployments for the ``ecs`` engine: find and read the one to follow, stop it, continue it.

Only services with a rollout in progress are read (a steady service costs nothing here):

* ListServiceDeployments (status: the in-flight ones) -> the newest in flight, else the deployment the
  record follows, else (just applied, its ARN not known yet) the newest created since the record
  started; then DescribeServiceDeployments of that one ARN.
* DescribeAlarms for the strategy's rollback alarms, only while a deployment is in flight.

StopServiceDeployment and ContinueServiceDeployment are paced like the other mutating calls; a
ConflictException from a stop (ECS is already rolling back or stopping) is not an error.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from agent.rollout.native import ECS_IN_FLIGHT, Deployment, Hook

from .errors import translated
from .pacing import Pacer

CLOCK_SKEW = timedelta(seconds=5)  # a deployment may be stamped slightly before the agent's own clock


class ServiceDeployments:
    """The four ServiceDeployment operations and alarm states, through the agent's clients."""

    def __init__(self, aws: Any, pacer: Pacer | None = None) -> None:
        self.ecs = aws.client("ecs")
        self.aws = aws
        self.pacer = pacer or Pacer(limits={})

    def find(
        self, cluster: str, service: str, following: str | None, since: datetime | None
    ) -> dict[str, Any] | None:
        """The service deployment to follow (DescribeServiceDeployments shape), or None."""
        with translated():
            listed = self.ecs.list_service_deployments(
                cluster=cluster, service=service, status=list(ECS_IN_FLIGHT)
            )["serviceDeployments"]
            arn = _newest(listed) or following
            if arn is None and since is not None:
                recent = self.ecs.list_service_deployments(
                    cluster=cluster, service=service, createdAt={"after": since - CLOCK_SKEW}
                )["serviceDeployments"]
                arn = _newest(recent)
            if arn is None:
                return None
            out = self.ecs.describe_service_deployments(serviceDeploymentArns=[arn])
        found = out.get("serviceDeployments") or []
        return dict(found[0]) if found else None

    def stop(self, arn: str) -> bool:
        """StopServiceDeployment(ROLLBACK); False when ECS is already past stopping it (ConflictException)."""
        self.pacer.acquire("StopServiceDeployment")
        with translated():
            try:
                self.ecs.stop_service_deployment(serviceDeploymentArn=arn, stopType="ROLLBACK")
            except ClientError as e:
                if e.response.get("Error", {}).get("Code") == "ConflictException":
                    return False
                raise
        return True

    def resume(self, arn: str, hook_id: str, action: str = "CONTINUE") -> None:
        """ContinueServiceDeployment at the paused hook ``hook_id``: CONTINUE or ROLLBACK."""
        self.pacer.acquire("ContinueServiceDeployment")
        with translated():
            self.ecs.continue_service_deployment(serviceDeploymentArn=arn, hookId=hook_id, action=action)

    def alarm_states(self, names: Iterable[str]) -> dict[str, str]:
        """Alarm name -> StateValue (ALARM | OK | INSUFFICIENT_DATA), 100 names per call."""
        names = sorted(set(names))
        states: dict[str, str] = {}
        cloudwatch = self.aws.client("cloudwatch")
        with translated():
            for i in range(0, len(names), 100):
                page = cloudwatch.describe_alarms(
                    AlarmNames=names[i : i + 100], AlarmTypes=["MetricAlarm", "CompositeAlarm"]
                )
                for alarm in page.get("MetricAlarms", []) + page.get("CompositeAlarms", []):
                    states[alarm["AlarmName"]] = alarm["StateValue"]
        return states


def _newest(briefs: list[dict[str, Any]]) -> str | None:
    if not briefs:
        return None
    newest = max(briefs, key=lambda b: b["createdAt"].timestamp() if b.get("createdAt") else 0.0)
    return str(newest["serviceDeploymentArn"])


def to_deployment(raw: dict[str, Any]) -> Deployment:
    """The engine's view of a DescribeServiceDeployments entry."""
    target = raw.get("targetServiceRevision") or {}
    rollback = raw.get("rollback") or {}
    alarms = raw.get("alarms") or {}
    return Deployment(
        arn=raw["serviceDeploymentArn"],
        status=raw.get("status", ""),
        stage=raw.get("lifecycleStage"),
        reason=rollback.get("reason") or raw.get("statusReason", ""),
        weight=float(target.get("requestedProductionTrafficWeight", 0.0) or 0.0),
        test_weight=float(target.get("requestedTestTrafficWeight", 0.0) or 0.0),
        running=int(target.get("runningTaskCount", 0) or 0),
        requested=int(target.get("requestedTaskCount", 0) or 0),
        hooks=tuple(
            Hook(
                id=h.get("hookId", ""),
                target_type=h.get("targetType", "AWS_LAMBDA"),
                status=h.get("status", ""),
                target_arn=h.get("targetArn"),
                expires_at=h.get("expiresAt"),
            )
            for h in raw.get("lifecycleHookDetails") or ()
        ),
        triggered_alarms=tuple(alarms.get("triggeredAlarmNames") or ()),
        created_at=raw.get("createdAt"),
    )
