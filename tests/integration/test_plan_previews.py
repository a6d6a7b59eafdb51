"""Plans of pull-request heads on the sandbox: each new head gets the ecs-gitops/plan status and one
comment on its pull request, edited in place; an invalid manifest gets a failure and nothing deploys."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from gitops_story import Story

from agent.aws.observing import current_task_definition
from agent.sandbox.git_hosts import FakeGitHub
from agent.status.comments import MARKER

TOKEN_ENV = "ECS_GITOPS_TEST_PLAN_TOKEN"
WEB_TD = "taskdefs/web.json"
WORKER = "services/worker.yaml"


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    with FakeGitHub() as fake:
        yield fake


@pytest.fixture
def story(sim_sandbox, tmp_path: Path, github: FakeGitHub, monkeypatch: pytest.MonkeyPatch) -> Story:
    """The story's agent plans refs/pull/*/head and reports to a fake GitHub, comments included."""
    monkeypatch.setenv(TOKEN_ENV, github.token)
    story = Story(sim_sandbox, tmp_path)
    config = story.config
    story.config = replace(
        config,
        source=replace(config.source, plan_refs=("refs/pull/*/head",)),
        status=replace(
            config.status,
            publisher="github",
            plan_comments=True,
            github=replace(
                config.status.github, repository=github.repository, api_url=github.url, token_env=TOKEN_ENV
            ),
        ),
    )
    story.agent = story.new_agent()
    story.commit("deploy manifests-example")
    story.settle()
    return story


def propose(story: Story, number: int, message: str, edit: dict[str, tuple[str, str]]) -> str:
    """Commit on the pull request's branch (made from main the first time) and push its head ref."""
    work = story.work
    branch = f"pr-{number}"
    work.git.checkout(branch) if branch in [h.name for h in work.heads] else work.git.checkout("-b", branch)
    for rel, (old, new) in edit.items():
        path = story.root / rel
        text = path.read_text()
        assert old in text, f"{old!r} not in {rel}"
        path.write_text(text.replace(old, new))
    work.git.add(A=True)
    work.index.commit(message)
    work.git.push("--force", "origin", f"HEAD:refs/pull/{number}/head")
    sha = work.head.commit.hexsha
    work.git.checkout("main")
    return sha


def _web(story: Story) -> str:
    described = story.ecs.describe_services(cluster="prod", services=["web"])["services"][0]
    return str(current_task_definition(described))


def test_pull_request_heads_are_planned_once_and_commented_in_place(story: Story, github: FakeGitHub) -> None:
    """A valid head: success with the plan in one line, one comment; a second head, invalid: failure,
    the same comment edited; neither deploys anything, and the branch the agent deploys is untouched."""
    running = _web(story)
    head = propose(story, 7, "web 1.27.1", {WEB_TD: ("nginx:1.27", "nginx:1.27.1")})
    story.aws.counter.reset()

    (preview,) = story.agent.plan_proposals()

    assert (preview.ref, preview.sha) == ("refs/pull/7/head", head)
    assert github.statuses[head]["ecs-gitops/plan"] == {
        "state": "success",
        "description": "1 service changes: web image 1.27→1.27.1",
        "context": "ecs-gitops/plan",
        "target_url": None,
    }
    assert story.aws.counter.mutating() == {}
    assert _web(story) == running
    (comment,) = github.comments[7]
    assert comment["body"].startswith(f"{MARKER}\n#### ecs-gitops plan for `{head[:12]}` (refs/pull/7/head)")
    assert "**1 service changes: web image 1.27→1.27.1**" in comment["body"]
    assert "```diff\necs-gitops plan for " in comment["body"]
    assert '    ~ /containerDefinitions/web/image: "public.ecr.aws/nginx/nginx:1.27" -> ' in comment["body"]

    assert story.agent.plan_proposals() == []  # each head once
    assert preview.status.updated_at == story.clock.now().strftime("%Y-%m-%dT%H:%M:%SZ")

    bad = propose(story, 7, "typo", {WORKER: ("cluster: prod", "clustr: prod")})
    (preview,) = story.agent.plan_proposals()
    status = github.statuses[bad]["ecs-gitops/plan"]
    assert status["state"] == "failure"
    assert status["description"].startswith("invalid: services/worker.yaml:")
    assert preview.plan is None and preview.comment == "updated"
    (comment,) = github.comments[7]  # still one comment, edited
    assert "**Invalid manifests: nothing can be deployed from this commit.**" in comment["body"]
    assert "services/worker.yaml:" in comment["body"]
    assert [r for r in github.requests if r[1].endswith("/comments") and r[0] == "POST"] == [
        ("POST", "/repos/acme/deployments/issues/7/comments")
    ]
    assert story.aws.counter.mutating() == {}

    # The deployed branch goes on as before: nothing of the pull request was applied.
    result = story.agent.tick()
    assert result is not None and result.outcome == "unchanged"
    assert story.aws.counter.mutating() == {} and _web(story) == running


def test_plan_publish_from_the_command_line(story: Story, github: FakeGitHub, tmp_path: Path) -> None:
    """`plan --publish --ref refs/pull/8/head` prints the plan, sets the status, comments, exits 2."""
    head = propose(story, 8, "web 1.27.3", {WEB_TD: ("nginx:1.27", "nginx:1.27.3")})
    config = tmp_path / "cli.yaml"
    config.write_text(
        "apiVersion: ecs-gitops/v1\nkind: AgentConfig\n"
        f"source: {{repo: 'file://{story.remote.git_dir}'}}\n"
        f"status: {{publisher: github, planComments: true, github: {{repository: {github.repository}, "
        f"apiUrl: '{github.url}', tokenEnv: {TOKEN_ENV}}}}}\n"
        "log: {level: warning}\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    done = subprocess.run(
        [sys.executable, "-m", "agent.cli", "plan", "--publish", "--ref", "refs/pull/8/head",
         "--config", str(config), "--data-dir", str(tmp_path / "cli-data"),
         "--endpoint-url", story.sandbox.endpoint, "--region", story.sandbox.region],
        capture_output=True, text=True, env=env, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "~ Service prod/web" in done.stdout
    assert (
        f"ecs-gitops/plan on {head[:12]}: success (1 service changes: web image 1.27→1.27.3)" in done.stdout
    )
    assert "plan comment created on request 8" in done.stdout
    assert github.statuses[head]["ecs-gitops/plan"]["state"] == "success"
    assert len(github.comments[8]) == 1
