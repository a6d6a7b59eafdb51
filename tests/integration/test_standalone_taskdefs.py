"""Task definitions no Service runs are managed like any other: the tick registers them once, then plans
no change."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from gitops_story import EXAMPLE, Story

from agent.manifests.tree import DirTree


@pytest.fixture
def story(sim_sandbox, tmp_path: Path) -> Story:
    story = Story(sim_sandbox, tmp_path, copy_example=False)
    shutil.copytree(EXAMPLE / "taskdefs", story.root / "taskdefs")
    return story


def test_a_repository_of_task_definitions_only_registers_each_family_once(story: Story) -> None:
    """A commit holding only task-definition files registers each family once through the tick, and the
    next tick plans no change and registers nothing."""
    families = sorted(p.stem for p in (story.root / "taskdefs").iterdir())
    story.commit("task definitions only")
    story.aws.counter.reset()
    first = story.agent.tick()
    assert first is not None and first.statuses["ecs-gitops"].state == "success"
    assert story.aws.counter.mutating() == {"ecs.RegisterTaskDefinition": len(families)}
    ecs = story.ecs
    for family in families:
        arns = ecs.list_task_definitions(familyPrefix=family)["taskDefinitionArns"]
        assert [a.rsplit("/", 1)[1] for a in arns] == [f"{family}:1"]

    story.aws.counter.reset()
    story.agent.tick()
    assert story.aws.counter.mutating() == {}
    plan = story.agent.reconciler.plan(DirTree(story.root)).plan
    assert not plan.has_changes
