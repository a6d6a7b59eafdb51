"""`ecs-gitops status --config <github config>` reads the statuses from GitHub, every page of them."""

from __future__ import annotations

import json
from pathlib import Path

import git
import pytest

from agent.cli import main
from agent.sandbox.git_hosts import FakeGitHub
from agent.status.github import GitHubPublisher
from agent.status.model import CommitStatus


def test_status_reads_the_configured_github_over_every_page(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = git.Repo.init(tmp_path / "repo", initial_branch="main")
    (tmp_path / "repo" / "README.md").write_text("hi\n")
    repo.index.add(["README.md"])
    sha = repo.index.commit("first", author=git.Actor("Dev", "dev@example.com")).hexsha
    with FakeGitHub() as github:
        monkeypatch.setenv("ECS_GITOPS_TEST_GH", github.token)
        publisher = GitHubPublisher(github.repository, token=github.token, base_url=github.url)
        for i in range(150):  # more than one page of the combined status
            publisher.publish(CommitStatus(sha, f"ecs-gitops/prod/svc{i:03}", "success", f"svc{i} deployed"))
        publisher.publish(CommitStatus(sha, "ecs-gitops", "pending", "rolling out 1: web"))
        config = tmp_path / "agent.yaml"
        config.write_text(
            "apiVersion: ecs-gitops/v1\nkind: AgentConfig\n"
            f"status: {{publisher: github, github: {{repository: {github.repository}, "
            f"apiUrl: '{github.url}', tokenEnv: ECS_GITOPS_TEST_GH}}}}\n"
        )
        code = main(["status", "--config", str(config), "--repo", str(tmp_path / "repo"), "--json"])
    assert code == 0
    document = json.loads(capsys.readouterr().out)
    assert document["sha"] == sha and len(document["statuses"]) == 151
    assert document["statuses"]["ecs-gitops"]["state"] == "pending"
    assert document["statuses"]["ecs-gitops/prod/svc149"]["description"] == "svc149 deployed"
