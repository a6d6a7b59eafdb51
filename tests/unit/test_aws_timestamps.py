"""Response timestamps: epoch seconds become UTC datetimes at once, anything else goes to botocore."""

from __future__ import annotations

from datetime import UTC, datetime

import botocore.utils
import pytest

from agent.aws.clients import Aws, parse_timestamp


@pytest.mark.parametrize(
    "value", [0, 1_765_000_000, 1_765_000_000.123, "1765000000.5", "2026-12-07T05:00:00Z"]
)
def test_the_same_instant_as_botocore_s_parser(value: object) -> None:
    """Every form botocore accepts gives the same instant, as an aware datetime."""
    ours, theirs = parse_timestamp(value), botocore.utils.parse_timestamp(value)
    assert ours == theirs and ours.tzinfo is not None


def test_epoch_seconds_are_utc() -> None:
    """The JSON protocols' epoch seconds come back in UTC."""
    assert parse_timestamp(1_796_619_600) == datetime(2026, 12, 7, 5, 0, tzinfo=UTC)
    assert parse_timestamp(1_796_619_600).tzinfo is UTC


def test_clients_parse_with_it(sandbox) -> None:  # type: ignore[no-untyped-def]
    """A client made by Aws answers ECS timestamps (a cluster's, a service's createdAt) in UTC."""
    aws = Aws(region=sandbox.region, endpoint_url=sandbox.endpoint)
    ecs = aws.client("ecs")
    ecs.create_cluster(clusterName="stamps")
    arn = ecs.register_task_definition(
        family="stamps", containerDefinitions=[{"name": "a", "image": "a:1", "memory": 128}]
    )["taskDefinition"]["taskDefinitionArn"]
    ecs.create_service(cluster="stamps", serviceName="s", taskDefinition=arn, desiredCount=0)
    created = ecs.describe_services(cluster="stamps", services=["s"])["services"][0]["createdAt"]
    assert created.tzinfo is UTC
