"""A commit that renames the configured manifests folder: the tick reports it on the commit as a failure
naming the folder, changes nothing in ECS, and the agent goes on (the next commit that restores the folder
deploys)."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

from gitops_story import EXAMPLE, Story


def test_a_renamed_manifests_folder_is_a_failure_status_and_nothing_changes(
    sim_sandbox, tmp_path: Path
) -> None:
    story = Story(sim_sandbox, tmp_path, copy_example=False)
    shutil.copytree(EXAMPLE / "taskdefs", story.root / "deploy" / "taskdefs")
    story.config = replace(story.config, source=replace(story.config.source, path="deploy"))
    story.agent = story.new_agent()
    story.commit("task definitions under deploy/")
    assert story.agent.tick().statuses["ecs-gitops"].state == "success"
    assert story.revisions("web") == ["web:1"]

    story.work.git.mv("deploy", "manifests")
    renamed = story.commit("rename deploy/ to manifests/")
    story.aws.counter.reset()
    result = story.agent.tick()
    assert result is not None and result.outcome == "invalid"
    status = result.statuses["ecs-gitops"]
    assert status.state == "failure"
    assert f"no folder 'deploy' at commit {renamed[:12]}" in status.description
    assert story.aws.counter.mutating() == {}

    story.work.git.mv("manifests", "deploy")
    story.commit("back to deploy/")
    assert story.agent.tick().statuses["ecs-gitops"].state == "success"
    assert story.revisions("web") == ["web:1"]  # the same content: nothing registered again
