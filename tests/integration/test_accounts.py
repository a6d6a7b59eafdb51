"""One agent, two accounts: clusters map to accounts and regions in the agent config, each reached by
assuming a role (with an external id), on one sandbox holding both accounts.

The home account (123456789012, eu-west-1) runs manifests-example; a second account (222222222222,
us-east-1) runs cluster ``staging`` with a ``worker`` of the same task-definition family.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from accounts_story import EXTERNAL_ID, HOME, OTHER, seed_second_account, two_account_story
from dateutil.tz import tzlocal
from gitops_story import Story

from agent.aws.accounts import Account, aws_for
from agent.aws.clients import Aws
from agent.manifests.tree import DirTree
from agent.plan.render import render_text


@pytest.fixture(scope="module")
def two_accounts(sim_sandbox: Any) -> Any:
    """The sim sandbox with the second account seeded and its deployer role trusting the home account."""
    return seed_second_account(sim_sandbox)


def _story(sandbox: Any, tmp_path: Path, external_id: str = EXTERNAL_ID) -> Story:
    return two_account_story(sandbox, tmp_path, external_id)


def test_one_agent_deploys_to_two_accounts(two_accounts: Any, tmp_path: Path) -> None:
    """The plan names each account and region; each cluster is created and deployed in its own account."""
    story = _story(two_accounts, tmp_path)
    sha = story.commit("prod and staging")
    plan = story.agent.reconciler.plan(DirTree(story.root)).plan
    text = render_text(plan)
    prod_at, staging_at = (
        text.index("Account prod (123456789012, eu-west-1):"),
        text.index("Account staging (222222222222, us-east-1):"),
    )
    assert (
        prod_at
        < text.index("+ Cluster prod (create)")
        < staging_at
        < text.index("+ Cluster staging (create)")
    )
    assert text.index("+ Service staging/worker (create)") > staging_at
    # The worker family is registered in both accounts: task definitions belong to an account.
    registers = [c for c in plan.changes if c.kind == "TaskDefinition" and c.name == "worker"]
    assert [c.account.name for c in registers if c.account] == ["prod", "staging"]

    result = story.settle()
    assert result.outcome == "unchanged"
    notes = story.notes(sha)
    assert notes["ecs-gitops"]["state"] == "success"
    assert notes["ecs-gitops/staging/worker"]["state"] == "success"
    assert notes["ecs-gitops/staging/worker"]["description"].endswith("[staging 222222222222 us-east-1]")
    assert notes["ecs-gitops/prod/worker"]["description"].endswith("[prod 123456789012 eu-west-1]")

    other = two_accounts.client("ecs", account=OTHER, region="us-east-1")
    assert other.list_clusters()["clusterArns"] == [f"arn:aws:ecs:us-east-1:{OTHER}:cluster/staging"]
    service = other.describe_services(cluster="staging", services=["worker"])["services"][0]
    assert service["taskDefinition"] == f"arn:aws:ecs:us-east-1:{OTHER}:task-definition/worker:1"
    assert service["runningCount"] == 2
    home = two_accounts.client("ecs")
    assert not [a for a in home.list_clusters()["clusterArns"] if a.endswith("/staging")]
    # Both accounts' sessions came from AssumeRole; the external id let the agent into the second one.
    assert story.aws.counter.counts["sts.AssumeRole"] == 2

    # An image bump rolls the shared family out in both accounts.
    story.commit("worker 1.9.1", {"taskdefs/worker.yaml": ("worker:1.9.0", "worker:1.9.1")})
    story.settle()
    assert story.running("prod", "worker") == "worker:2"
    assert other.describe_services(cluster="staging", services=["worker"])["services"][0][
        "taskDefinition"
    ].endswith(":task-definition/worker:2")


def test_an_account_the_agent_cannot_enter_fails_alone(two_accounts: Any, tmp_path: Path) -> None:
    """With a wrong external id the second account's services get an error status; the first deploys."""
    story = _story(two_accounts, tmp_path, external_id="not-the-right-id")
    sha = story.commit("prod and staging, wrong external id")
    result = story.settle()
    assert result.outcome == "failed"
    notes = story.notes(sha)
    staging = notes["ecs-gitops/staging/worker"]
    assert staging["state"] == "error"
    assert "AccessDenied" in staging["description"]
    assert staging["description"].endswith("[staging 222222222222 us-east-1]")
    assert notes["ecs-gitops/prod/web"]["state"] == "success"
    aggregate = notes["ecs-gitops"]
    assert aggregate["state"] == "error"
    assert aggregate["description"].startswith("staging (222222222222, us-east-1): AssumeRole: AccessDenied")
    assert len(aggregate["description"]) <= 140


def test_assumed_sessions_are_refreshed_before_they_expire(two_accounts: Any) -> None:
    """botocore assumes the role again once the one-hour session has less than 15 minutes left."""
    base = Aws(endpoint_url=two_accounts.endpoint)
    ahead = timedelta(0)

    def now() -> datetime:
        return datetime.now(tzlocal()) + ahead

    staging = base.assume_role(
        f"arn:aws:iam::{OTHER}:role/ecs-gitops-deployer",
        region="us-east-1",
        external_id=EXTERNAL_ID,
        time_fetcher=now,
    )
    ecs = staging.client("ecs")  # DescribeClusters: a call the agent makes (the IAM policy test counts them)
    ecs.describe_clusters(clusters=["staging"])
    ahead = timedelta(minutes=30)
    ecs.describe_clusters(clusters=["staging"])
    assert base.counter.counts["sts.AssumeRole"] == 1  # 30 minutes left: the session is kept
    ahead = timedelta(minutes=46)
    ecs.describe_clusters(clusters=["staging"])
    assert base.counter.counts["sts.AssumeRole"] == 2  # 14 minutes left: a new session before expiry


def test_an_account_without_a_role_is_the_agents_own_in_its_region(two_accounts: Any) -> None:
    """No roleArn: the agent's own credentials, in the entry's region, and no AssumeRole at all."""
    two_accounts.client("ecs", region="us-west-2").create_cluster(clusterName="home-west")
    base = Aws(endpoint_url=two_accounts.endpoint)
    west = aws_for(base, Account("home", "us-west-2", ("home-west",)))
    [cluster] = west.client("ecs").describe_clusters(clusters=["home-west"])["clusters"]
    assert cluster["clusterArn"] == f"arn:aws:ecs:us-west-2:{HOME}:cluster/home-west"
    assert "sts.AssumeRole" not in base.counter.counts
    assert aws_for(base, Account("home", base.region, ("prod",))) is base
