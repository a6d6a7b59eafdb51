"""Prune on the sandbox: a service deleted from Git is scaled to zero and deleted only with sync.prune, only
once the rest of the commit rolled out, and only if the agent manages it (tag ecs-gitops:managed)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from gitops_story import Story

from agent.config import PruneLimit, SyncConfig
from agent.plan.model import DELETE
from agent.plan.render import render_text

REPORTS = "services/reports.yaml"
WORKER_TD = "taskdefs/worker.yaml"


@pytest.fixture
def story(sim_sandbox, tmp_path: Path) -> Story:
    story = Story(sim_sandbox, tmp_path)
    story.commit("deploy manifests-example")
    story.settle()
    return story


def _prune(story: Story) -> None:
    story.config = replace(story.config, sync=SyncConfig(prune=True))
    story.agent = story.new_agent()


def _status(story: Story, service: str) -> str:
    found = story.ecs.describe_services(cluster="prod", services=[service])["services"]
    return str(found[0]["status"]) if found else "MISSING"


def _by_hand(story: Story, name: str) -> None:
    """A service someone created outside the agent (no ecs-gitops:managed tag)."""
    if _status(story, name) == "ACTIVE":
        return
    ec2 = story.sandbox.client("ec2")
    subnet = ec2.describe_subnets()["Subnets"][0]["SubnetId"]
    group = ec2.describe_security_groups()["SecurityGroups"][0]["GroupId"]
    story.ecs.create_service(
        cluster="prod",
        serviceName=name,
        taskDefinition=story.revisions("worker")[0],
        desiredCount=1,
        launchType="FARGATE",
        networkConfiguration={"awsvpcConfiguration": {"subnets": [subnet], "securityGroups": [group]}},
    )


def test_without_prune_a_removed_service_keeps_running(story: Story) -> None:
    """The default: the service is no longer managed, but it is not touched and not looked for."""
    (story.root / REPORTS).unlink()
    story.commit("retire reports")
    story.aws.counter.reset()
    result = story.settle()
    assert result.plan is not None and not any(c.action == DELETE for c in result.plan.changes)
    assert _status(story, "reports") == "ACTIVE"
    assert "ecs.ListServices" not in story.aws.counter.counts
    assert story.aws.counter.mutating() == {}


def test_prune_deletes_a_removed_managed_service_after_the_rollout(story: Story) -> None:
    """With prune: the plan shows the DELETE loudly; the service goes once the commit's rollout is done,
    its status says so, and a service made by hand in the same cluster is left alone."""
    _prune(story)
    _by_hand(story, "by-hand")
    (story.root / REPORTS).unlink()
    sha = story.commit("retire reports, bump worker", {WORKER_TD: ("worker:1.9.0", "worker:1.9.2")})

    first = story.agent.tick()
    assert first is not None and first.plan is not None
    text = render_text(first.plan)
    assert "- Service prod/reports (DELETE: pruned: no longer in Git; scaled to 0, then deleted)" in text
    assert "! Service prod/reports will be DELETED: no manifest names it any more (sync.prune is on)" in text
    assert "prod/by-hand" not in text
    pending = first.statuses["ecs-gitops/prod/reports"]
    assert (pending.state, pending.description) == (
        "pending",
        "to be deleted (no longer in Git) once the rollout finishes",
    )
    assert _status(story, "reports") == "ACTIVE"

    story.aws.counter.reset()
    result = story.settle()
    assert _status(story, "reports") in ("DRAINING", "INACTIVE", "MISSING")
    assert story.aws.counter.mutating().get("ecs.DeleteService") == 1
    assert _status(story, "by-hand") == "ACTIVE"
    assert (
        story.notes(sha)["ecs-gitops/prod/reports"]["description"] == "deleted: no longer in Git (sync.prune)"
    )
    assert result.outcome == "unchanged"
    assert story.agent.store.get("rollout/prod/reports") is None

    # Deleted once: the next tick finds nothing to prune.
    story.aws.counter.reset()
    again = story.agent.tick()
    assert again is not None and again.pruned == () and story.aws.counter.mutating() == {}


def test_prune_waits_when_the_rollout_fails(story: Story) -> None:
    """A commit that removes a service but breaks another deletes nothing, and says why."""
    _prune(story)
    (story.root / REPORTS).unlink()
    sha = story.commit("retire reports, break worker", {WORKER_TD: ("worker:1.9.0", "worker:broken-9")})
    result = story.settle()
    assert result.outcome == "failed"
    assert _status(story, "reports") == "ACTIVE"
    status = story.notes(sha)["ecs-gitops/prod/reports"]
    assert (status["state"], status["description"]) == (
        "failure",
        "not deleted: this commit did not roll out (worker failed)",
    )


SERVICES = ("services/api.yaml", "services/web.yaml", "services/worker.yaml", REPORTS, "agent/service.yaml")


def test_a_commit_that_drops_every_service_is_refused_until_its_trailer_allows_it(story: Story) -> None:
    """The blast radius of prune: a commit that deletes every Service manifest (keeping the rest) is over
    sync.pruneLimit (5 services and 10 % of 5, rounded up: 1), so nothing is deleted and the commit fails
    saying how to allow it; a commit carrying the trailer ecs-gitops-allow-prune: 5 deletes them."""
    _prune(story)
    for rel in SERVICES:
        (story.root / rel).unlink()
    sha = story.commit("drop every service")
    story.aws.counter.reset()
    result = story.settle()
    assert result.outcome == "failed"
    assert "ecs.DeleteService" not in story.aws.counter.mutating()
    assert all(_status(story, s) == "ACTIVE" for s in ("api", "web", "worker", "reports"))
    why = (
        "5 services to delete, over sync.pruneLimit (1 of 5); "
        "allow with the commit trailer 'ecs-gitops-allow-prune: 5'"
    )
    notes = story.notes(sha)
    assert (notes["ecs-gitops"]["state"], notes["ecs-gitops"]["description"]) == (
        "failure",
        f"prune refused: {why}",
    )
    assert (notes["ecs-gitops/prod/reports"]["state"], notes["ecs-gitops/prod/reports"]["description"]) == (
        "failure",
        f"not deleted: {why}",
    )

    story.commit("retire every service\n\nReviewed-by: Ops <ops@example.com>\necs-gitops-allow-prune: 5\n")
    story.settle()
    assert all(_status(story, s) != "ACTIVE" for s in ("api", "web", "worker", "reports"))


def test_retiring_one_service_stays_within_the_default_limit_and_a_zero_limit_needs_the_trailer(
    story: Story,
) -> None:
    """One service of five is within the default limit; with pruneLimit {services: 0} even one needs the
    trailer, and a trailer allowing fewer than the commit deletes does not count."""
    story.config = replace(
        story.config, sync=SyncConfig(prune=True, prune_limit=PruneLimit(services=0, percent=10))
    )
    story.agent = story.new_agent()
    (story.root / REPORTS).unlink()
    story.commit("retire reports\n\necs-gitops-allow-prune: 0")
    assert story.settle().outcome == "failed"
    assert _status(story, "reports") == "ACTIVE"
    story.commit("retire reports, allowed\n\necs-gitops-allow-prune: 1")
    story.settle()
    assert _status(story, "reports") != "ACTIVE"
