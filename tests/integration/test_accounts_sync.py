"""Drift, rollout order and prune with several accounts: each account's services are compared and pruned
with that account's role, and the commit's order holds across accounts (a failure in one account stops
what depends on it in another)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from accounts_story import OTHER, seed_second_account, two_account_story
from gitops_story import Story

from agent.config import SyncConfig
from agent.plan.model import DELETE
from agent.plan.render import render_text

STAGING_WORKER = "services/worker-staging.yaml"
WORKER_TD = "taskdefs/worker.yaml"
IN_STAGING = " [staging 222222222222 us-east-1]"


@pytest.fixture(scope="module")
def two_accounts(sim_sandbox: Any) -> Any:
    return seed_second_account(sim_sandbox)


def _restart(story: Story, sync: SyncConfig) -> None:
    story.config = replace(story.config, sync=sync)
    story.agent = story.new_agent()


def _staging(sandbox: Any) -> Any:
    return sandbox.client("ecs", account=OTHER, region="us-east-1")


def _worker(sandbox: Any) -> dict[str, Any]:
    found = _staging(sandbox).describe_services(cluster="staging", services=["worker"])["services"]
    return dict(found[0]) if found else {"status": "MISSING"}


def test_drift_in_the_second_account_is_reported_then_healed(two_accounts: Any, tmp_path: Path) -> None:
    """A console change in the staging account is found with that account's role, reported naming the
    account, and corrected there once selfHeal is on; the home account's services stay in sync."""
    story = two_account_story(two_accounts, tmp_path)
    deployed = story.commit("prod and staging")
    story.settle()

    _staging(two_accounts).update_service(cluster="staging", service="worker", desiredCount=5)
    result = story.agent.tick()

    assert result is not None and result.outcome == "drifted"
    assert result.drifted == ("staging/worker",)
    assert _worker(two_accounts)["desiredCount"] == 5  # reported only
    notes = story.notes(deployed)
    assert notes["ecs-gitops/staging/worker"] == {
        **notes["ecs-gitops/staging/worker"],
        "state": "failure",
        "description": "drifted from Git: desiredCount 2 -> 5 in ECS; selfHeal off" + IN_STAGING,
    }
    assert notes["ecs-gitops/prod/worker"]["state"] == "success"
    assert result.plan is not None
    text = render_text(result.plan)
    staging_at = text.index("Account staging (222222222222, us-east-1):")
    assert text.index("! Service staging/worker (drifted from Git)") > staging_at
    assert "! worker in staging: drifted from Git (desiredCount 2 -> 5 in ECS); selfHeal off" in text

    _restart(story, SyncConfig(self_heal=True))
    healed = story.agent.tick()
    assert healed is not None and healed.drifted == ("staging/worker",)
    assert _worker(two_accounts)["desiredCount"] == 2
    assert story.notes(deployed)["ecs-gitops/staging/worker"]["description"] == (
        "healing drift: desiredCount 2 -> 5 in ECS" + IN_STAGING
    )
    assert story.settle().drifted == ()
    assert story.notes(deployed)["ecs-gitops/staging/worker"]["state"] == "success"


def test_prune_deletes_in_the_account_the_service_ran_in(two_accounts: Any, tmp_path: Path) -> None:
    """With prune, removing the staging account's every manifest still deletes its managed service there,
    with the staging account's role, and its status names the account."""
    story = two_account_story(two_accounts, tmp_path)
    story.commit("prod and staging")
    story.settle()
    assert _worker(two_accounts)["status"] == "ACTIVE"

    _restart(story, SyncConfig(prune=True))
    (story.root / STAGING_WORKER).unlink()
    (story.root / "platform" / "staging.yaml").unlink()
    sha = story.commit("retire staging")
    first = story.agent.tick()
    assert first is not None and first.plan is not None
    [delete] = [c for c in first.plan.changes if c.action == DELETE]
    assert (delete.name, delete.account and delete.account.name) == ("staging/worker", "staging")
    text = render_text(first.plan)
    assert text.index("Account staging (222222222222, us-east-1):") < text.index(
        "- Service staging/worker (DELETE: pruned: no longer in Git; scaled to 0, then deleted)"
    )

    story.settle()
    assert _worker(two_accounts)["status"] in ("DRAINING", "INACTIVE", "MISSING")
    assert story.notes(sha)["ecs-gitops/staging/worker"]["description"] == (
        "deleted: no longer in Git (sync.prune)" + IN_STAGING
    )
    assert story.running("prod", "worker").startswith("worker:")  # the home account's worker is kept
    assert story.agent.store.get("rollout/staging/worker") is None


def test_a_failure_in_one_account_stops_its_dependants_in_another(two_accounts: Any, tmp_path: Path) -> None:
    """The staging worker dependsOn the prod worker: it waits for it across accounts, and is not started
    when the prod worker fails."""
    story = two_account_story(two_accounts, tmp_path)
    (story.root / STAGING_WORKER).write_text(
        (story.root / STAGING_WORKER)
        .read_text()
        .replace("  cluster: staging\n", "  cluster: staging\n  dependsOn: [worker]\n")
    )
    story.commit("prod and staging, staging after prod")
    story.settle()
    staging_revision = _worker(two_accounts)["taskDefinition"]

    sha = story.commit("worker broken", {WORKER_TD: ("worker:1.9.0", "worker:broken-3")})
    first = story.agent.tick()
    assert first is not None and first.plan is not None
    assert "+ Service staging/worker" not in render_text(first.plan)
    assert "~ Service staging/worker  [wave 1, after worker]" in render_text(first.plan)
    assert first.statuses["ecs-gitops/staging/worker"].description == "waiting for worker" + IN_STAGING
    assert first.statuses["ecs-gitops/prod/worker"].description.startswith("rolling out")

    result = story.settle()
    assert result.outcome == "failed"
    notes = story.notes(sha)
    assert notes["ecs-gitops/prod/worker"]["state"] == "failure"
    assert notes["ecs-gitops/staging/worker"] == {
        **notes["ecs-gitops/staging/worker"],
        "state": "failure",
        "description": "not started: dependency worker failed" + IN_STAGING,
    }
    assert _worker(two_accounts)["taskDefinition"] == staging_revision  # never touched
