"""Drift on the sandbox: a console change to a service is found on the next tick, reported on the deployed
commit, in the metrics and the log, and corrected when selfHeal is on; ignoreDrift fields are left alone."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from gitops_story import Story
from structlog.testing import capture_logs

from agent.config import SyncConfig
from agent.plan.render import render_text

WEB = "services/web.yaml"
API = "services/api.yaml"


@pytest.fixture
def story(sim_sandbox, tmp_path: Path) -> Story:
    return Story(sim_sandbox, tmp_path)


def _heal(story: Story, on: bool = True) -> None:
    """Restart the story's agent with sync.selfHeal set."""
    story.config = replace(story.config, sync=SyncConfig(self_heal=on))
    story.agent = story.new_agent()


def _desired_count(story: Story, service: str) -> int:
    return int(story.ecs.describe_services(cluster="prod", services=[service])["services"][0]["desiredCount"])


def _gauge(story: Story) -> str:
    lines = story.agent.metrics.render().decode().splitlines()
    return next(line for line in lines if line.startswith("ecs_gitops_drifted_services "))


def test_console_change_is_reported_in_one_tick_and_left_alone(story: Story) -> None:
    """selfHeal off: the next tick reports the drift (status, metric, log, plan) and changes nothing."""
    deployed = story.commit("deploy manifests-example")
    story.settle()
    assert _gauge(story) == "ecs_gitops_drifted_services 0.0"

    story.ecs.update_service(cluster="prod", service="web", desiredCount=7)  # someone, in the console
    story.aws.counter.reset()
    with capture_logs() as logs:
        result = story.agent.tick()

    assert result is not None and result.outcome == "drifted"
    assert result.drifted == ("prod/web",)
    assert story.aws.counter.mutating() == {}
    assert _desired_count(story, "web") == 7
    notes = story.notes(deployed)
    assert notes["ecs-gitops/prod/web"]["state"] == "failure"
    assert notes["ecs-gitops/prod/web"]["description"] == (
        "drifted from Git: desiredCount 4 -> 7 in ECS; selfHeal off"
    )
    assert notes["ecs-gitops"]["description"] == "1 drifted from Git: web"
    assert notes["ecs-gitops/prod/api"]["state"] == "success"  # the others are untouched
    assert _gauge(story) == "ecs_gitops_drifted_services 1.0"
    assert {
        "event": "drift.detected",
        "service": "prod/web",
        "drift": "desiredCount 4 -> 7 in ECS",
        "action": "report",
        "log_level": "warning",
    } in [{k: e.get(k) for k in ("event", "service", "drift", "action", "log_level")} for e in logs]
    assert result.plan is not None
    text = render_text(result.plan)
    assert "! Service prod/web (drifted from Git)" in text, text
    assert (
        "! web: drifted from Git (desiredCount 4 -> 7 in ECS); selfHeal off: reported, not corrected" in text
    )

    # Setting the drift back by hand clears the report on the next tick.
    story.ecs.update_service(cluster="prod", service="web", desiredCount=4)
    result = story.agent.tick()
    assert result is not None and result.drifted == ()
    assert story.notes(deployed)["ecs-gitops/prod/web"]["state"] == "success"
    assert _gauge(story) == "ecs_gitops_drifted_services 0.0"


def test_self_heal_corrects_a_console_change_in_one_tick(story: Story) -> None:
    """selfHeal on: the tick that finds the drift applies Git again, and the rollout ends in success."""
    _heal(story)
    deployed = story.commit("deploy manifests-example")
    story.settle()

    story.ecs.update_service(cluster="prod", service="web", desiredCount=7)
    story.aws.counter.reset()
    result = story.agent.tick()

    assert result is not None and result.drifted == ("prod/web",)
    assert story.aws.counter.mutating() == {"ecs.UpdateService": 1}
    assert _desired_count(story, "web") == 4
    status = story.notes(deployed)["ecs-gitops/prod/web"]
    assert (status["state"], status["description"]) == (
        "pending",
        "healing drift: desiredCount 4 -> 7 in ECS",
    )
    settled = story.settle()
    assert settled.drifted == ()
    assert story.notes(deployed)["ecs-gitops/prod/web"]["state"] == "success"


def test_the_service_setting_overrides_the_agent_default(story: Story) -> None:
    """spec.selfHeal: false keeps a service report-only under an agent that heals."""
    _heal(story)
    # api leaves its maintenance window out: healing it is a change that would wait for the window.
    edits = {
        WEB: ("  dependsOn: [api]", "  dependsOn: [api]\n  selfHeal: false"),
        API: ("  windows: [weekday-nights, year-end-freeze]\n", ""),
    }
    deployed = story.commit("web reports only", edits)
    story.settle()
    story.ecs.update_service(cluster="prod", service="web", desiredCount=7)
    story.ecs.update_service(cluster="prod", service="api", desiredCount=5)
    result = story.agent.tick()

    assert result is not None and result.drifted == ("prod/api", "prod/web")
    assert (_desired_count(story, "web"), _desired_count(story, "api")) == (7, 3)
    notes = story.notes(deployed)
    assert notes["ecs-gitops/prod/web"]["state"] == "failure"
    assert notes["ecs-gitops/prod/api"]["description"] == "healing drift: desiredCount 3 -> 5 in ECS"


def test_ignore_drift_fields_are_not_drift(story: Story) -> None:
    """worker ignores /desiredCount (autoscaling owns it): scaling it in ECS is no drift and stays."""
    _heal(story)
    story.commit("deploy manifests-example")
    story.settle()
    story.ecs.update_service(cluster="prod", service="worker", desiredCount=6)
    story.aws.counter.reset()
    result = story.agent.tick()
    assert result is not None and result.drifted == () and result.outcome == "unchanged"
    assert story.aws.counter.mutating() == {}
    assert _desired_count(story, "worker") == 6


def test_a_change_in_git_is_not_drift(story: Story) -> None:
    """A commit that changes desiredCount is a rollout of Git, even with selfHeal off."""
    story.commit("deploy manifests-example")
    story.settle()
    bump = story.commit("web to 5", {WEB: ("desiredCount: 4", "desiredCount: 5")})
    result = story.agent.tick()
    assert result is not None and result.drifted == () and result.outcome == "applied"
    assert _desired_count(story, "web") == 5
    story.settle()
    assert story.notes(bump)["ecs-gitops/prod/web"]["state"] == "success"
