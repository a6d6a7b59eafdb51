"""A user's deployment repository and an agent watching it, on the sim sandbox with a driven clock.

Shared by the loop, server and self-hosting tests. Commit times come from the fake clock (so
commit-to-deployed seconds are exact); ``new_agent`` is a restart on the same data directory.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path
from typing import Any

import git

from agent.aws.clients import Aws
from agent.aws.pacing import Pacer
from agent.config import AgentConfig
from agent.daemon import Agent
from agent.reconcile import TickResult
from agent.testing import EXAMPLE, FakeClock


class Story:
    """A work tree and bare remote seeded from manifests-example, and an agent reconciling the remote."""

    def __init__(self, sandbox: Any, tmp_path: Path, copy_example: bool = True) -> None:
        self.sandbox = sandbox
        self.data_dir = tmp_path / "data"
        self.remote = git.Repo.init(tmp_path / "origin.git", bare=True, initial_branch="main")
        self.work = git.Repo.clone_from(self.remote.git_dir, tmp_path / "work")
        with self.work.config_writer() as cw:
            cw.set_value("user", "name", "Dev").set_value("user", "email", "dev@example.com")
        self.root = Path(self.work.working_dir)
        if copy_example:
            shutil.copytree(EXAMPLE, self.root, dirs_exist_ok=True)
        else:
            (self.root / "README.md").write_text("No manifests yet.\n")
        self.clock = FakeClock(sandbox.simulator.clock.now())
        config = AgentConfig.default()
        self.config = replace(
            config, source=replace(config.source, repo=f"file://{self.remote.git_dir}", interval="60s")
        )
        self.agent = self.new_agent()
        self.ecs = sandbox.client("ecs")

    def new_agent(self) -> Agent:
        """A fresh Agent (as after a restart) on this story's data directory, state store and clock."""
        return Agent(
            self.config,
            self.data_dir,
            Aws(region=self.sandbox.region, endpoint_url=self.sandbox.endpoint),
            clock=self.clock.now,
            monotonic=self.clock.monotonic,
            pacer=Pacer(limits={}),
        )

    def commit(self, message: str, edit: dict[str, tuple[str, str]] | None = None) -> str:
        """Edit files (old -> new text), commit at the fake clock's time, and push to the remote."""
        for rel, (old, new) in (edit or {}).items():
            path = self.root / rel
            text = path.read_text()
            assert old in text, f"{old!r} not in {rel}"
            path.write_text(text.replace(old, new))
        self.work.git.add(A=True)
        when = f"{int(self.clock.now().timestamp())} +0000"  # git's internal date format
        self.work.index.commit(message, author_date=when, commit_date=when)
        self.work.git.push("origin", "main")
        return self.work.head.commit.hexsha

    def revert(self, sha: str) -> str:
        """``git revert`` a commit and push it, as a user rolls back."""
        self.work.git.revert(sha, no_edit=True)
        self.work.git.push("origin", "main")
        return self.work.head.commit.hexsha

    @property
    def aws(self) -> Aws:
        return self.agent.aws

    def notes(self, sha: str) -> dict[str, Any]:
        """The statuses on ``sha`` as the user sees them in the remote: git notes --ref ecs-gitops show."""
        out = subprocess.run(
            ["git", "notes", "--ref", "ecs-gitops", "show", sha],
            cwd=self.remote.git_dir,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        return dict(json.loads(out))

    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)
        self.sandbox.simulator.clock.advance(seconds)

    def settle(self, agent: Agent | None = None, max_ticks: int = 60) -> TickResult:
        """Tick, moving both clocks to each wake-up, until nothing is pending."""
        agent = agent or self.agent
        for _ in range(max_ticks):
            result = agent.tick()
            assert result is not None
            if result.wake_at is None:
                return result
            self.advance(max(1.0, (result.wake_at - self.clock.now()).total_seconds()))
        raise AssertionError("the rollout did not settle")

    def running(self, cluster: str, service: str) -> str:
        svc = self.ecs.describe_services(cluster=cluster, services=[service])["services"][0]
        return svc["taskDefinition"].rsplit("/", 1)[1]

    def revisions(self, family: str) -> list[str]:
        arns = self.ecs.list_task_definitions(familyPrefix=family)["taskDefinitionArns"]
        return sorted(a.rsplit("/", 1)[1] for a in arns if a.rsplit("/", 1)[1].split(":")[0] == family)
