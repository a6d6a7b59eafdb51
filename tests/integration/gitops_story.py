"""A user's deployment repository and an agent watching it, on the sim sandbox with a driven clock.

Shared by the loop, server, self-hosting and agent-engine tests (``EngineStory``). Commit times come
from the fake clock (so commit-to-deployed seconds are exact); ``new_agent`` is a restart on the same
data directory.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import urllib.request
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import git
import yaml

from agent.aws.clients import Aws
from agent.aws.pacing import Pacer
from agent.config import AgentConfig
from agent.daemon import Agent
from agent.reconcile import TickResult
from agent.sandbox.harness import EXAMPLE, FakeClock
from agent.sandbox.seed import load_seed
from agent.sandbox.traffic_invariant import TrafficSnapshot, check_traffic, target_group_name


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


# -- the agent engine: one service on task sets, with a load balancer of its own -------------------------

SEED_FILE = EXAMPLE / "sandbox-seed.yaml"
CONTEXT = "ecs-gitops/{cluster}/web"


def _yaml_doc(kind: str, name: str, spec: dict[str, Any]) -> str:
    doc = {"apiVersion": "ecs-gitops/v1", "kind": kind, "metadata": {"name": name}, "spec": spec}
    return yaml.safe_dump(doc, sort_keys=False)


class EngineStory(Story):
    """A repository with one ``engine: agent`` service ``web`` in cluster ``<name>``, and an agent on it.

    The service gets a load balancer of its own in the sandbox (target groups ``<name>-blue`` /
    ``<name>-green``, listener rules ``<name>-prod`` / ``<name>-test``, alarms ``<name>-5xx`` /
    ``<name>-p99``), so tests sharing one sandbox never see each other's weights. ``strategy`` is the
    DeploymentStrategy spec (``engine: agent`` is added); ``windows`` maps Window names to their specs.
    Every :meth:`tick` asserts the traffic invariant (:func:`agent.sandbox.traffic_invariant.check_traffic`).
    """

    def __init__(
        self,
        sandbox: Any,
        tmp_path: Path,
        name: str,
        strategy: dict[str, Any],
        windows: dict[str, dict[str, Any]] | None = None,
        desired: int = 2,
        test_rule: bool = True,
    ) -> None:
        super().__init__(sandbox, tmp_path, copy_example=False)
        self.name = self.cluster = name
        self.family = f"{name}-web"
        self.context = CONTEXT.format(cluster=name)
        self.alarms = (f"{name}-5xx", f"{name}-p99")
        vpc = load_seed(SEED_FILE)["vpc"]
        listeners = [
            {
                "port": 80,
                "defaultTargetGroup": f"{name}-blue",
                "rules": [
                    {"name": f"{name}-prod", "priority": 10, "pathPattern": "/*", "forward": f"{name}-blue"}
                ],
            }
        ]
        if test_rule:
            listeners.append(
                {
                    "port": 8443,
                    "defaultTargetGroup": f"{name}-green",
                    "rules": [
                        {
                            "name": f"{name}-test",
                            "priority": 10,
                            "pathPattern": "/*",
                            "forward": f"{name}-green",
                        }
                    ],
                }
            )
        seeded = sandbox.seed(
            {
                "apiVersion": "ecs-gitops/v1",
                "kind": "SandboxSeed",
                "vpc": vpc,
                "loadBalancers": [
                    {
                        "name": f"{name}-lb",
                        "subnets": ["private-a", "private-b"],
                        "securityGroups": ["web"],
                        "targetGroups": [
                            {"name": f"{name}-blue", "port": 8080},
                            {"name": f"{name}-green", "port": 8080},
                        ],
                        "listeners": listeners,
                    }
                ],
                "alarms": list(self.alarms),
            }
        )
        self.blue_tg = seeded.ids["target group"][f"{name}-blue"]
        self.green_tg = seeded.ids["target group"][f"{name}-green"]
        self.prod_rule = seeded.ids["listener rule"][f"{name}-prod"]
        self.test_rule = seeded.ids["listener rule"][f"{name}-test"] if test_rule else None
        self.snapshots: list[TrafficSnapshot] = []  # one per checked tick, after its actions ran
        self.times: list[datetime] = []  # when each checked tick ran
        self.results: list[TickResult] = []
        self.checking = True
        self.image = "repo/web:1"
        self.write_manifests(strategy, windows or {}, desired)

    # -- the repository ---------------------------------------------------------------------------------

    def write_manifests(
        self, strategy: dict[str, Any], windows: dict[str, dict[str, Any]], desired: int = 2
    ) -> None:
        """(Re)write cluster, service, strategy, windows and task definition; commit is the caller's."""
        balancer: dict[str, Any] = {
            "targetGroup": {"name": f"{self.name}-blue"},
            "alternateTargetGroup": {"name": f"{self.name}-green"},
            "productionListenerRule": {"name": f"{self.name}-prod"},
            "containerName": "web",
            "containerPort": 8080,
        }
        if self.test_rule is not None:
            balancer["testListenerRule"] = {"name": f"{self.name}-test"}
        service: dict[str, Any] = {
            "cluster": self.cluster,
            "taskDefinition": "web.json",
            "desiredCount": desired,
            "launchType": "FARGATE",
            "networkConfiguration": {
                "awsvpcConfiguration": {
                    "subnets": [{"name": "private-a"}, {"name": "private-b"}],
                    "securityGroups": [{"name": "web"}],
                }
            },
            "loadBalancers": [balancer],
            "strategy": "progressive",
        }
        if windows:
            service["windows"] = sorted(windows)
        docs = [
            _yaml_doc("Cluster", self.cluster, {"capacityProviders": ["FARGATE"]}),
            _yaml_doc("Service", "web", service),
            _yaml_doc("DeploymentStrategy", "progressive", {"engine": "agent", **strategy}),
            *(_yaml_doc("Window", n, spec) for n, spec in sorted(windows.items())),
        ]
        (self.root / "manifests.yaml").write_text("---\n".join(docs))
        self.write_image(self.image)

    def write_image(self, image: str) -> None:
        self.image = image
        taskdef = {
            "family": self.family,
            "networkMode": "awsvpc",
            "requiresCompatibilities": ["FARGATE"],
            "cpu": "256",
            "memory": "512",
            "containerDefinitions": [
                {"name": "web", "image": image, "portMappings": [{"containerPort": 8080}], "essential": True}
            ],
        }
        (self.root / "web.json").write_text(json.dumps(taskdef, indent=2) + "\n")

    def deploy(self, image: str, message: str | None = None) -> str:
        """Commit ``image`` as the web container's image and push it."""
        self.write_image(image)
        return self.commit(message or f"web {image}")

    # -- driving the agent --------------------------------------------------------------------------------

    def create(self) -> str:
        """Commit and push the manifests and run the agent until ``web`` serves on its first task set.

        The invariant is checked only at the end: before the service exists, the seeded production
        rule already forwards to the empty blue group, as a user's load balancer does."""
        sha = self.commit("web: first deploy")
        self.checking = False
        try:
            self.run()
        finally:
            self.checking = True
        assert self.results[-1].outcome != "invalid", [str(p) for p in self.results[-1].problems]
        self.times.append(self.clock.now())
        self.snapshots.append(self.check())
        assert self.status()[0] == "success", self.status()
        return sha

    def tick(self) -> TickResult:
        """One agent tick, then the traffic invariant (weights sum to 100, traffic on stable task sets)."""
        at = self.clock.now()
        result = self.agent.tick()
        assert result is not None, "the tick did not finish"
        self.results.append(result)
        if self.checking:
            self.snapshots.append(self.check())
            self.times.append(at)
        return result

    def check(self) -> TrafficSnapshot:
        return check_traffic(self.sandbox, self.cluster, "web", self.prod_rule, self.test_rule)

    def step(self) -> TickResult:
        """Tick, then move both clocks to the wake-up the tick asked for (at least 1 s)."""
        result = self.tick()
        if result.wake_at is not None:
            self.advance(max(1.0, (result.wake_at - self.clock.now()).total_seconds()))
        return result

    def run(self, max_ticks: int = 200, until: Callable[[TickResult], bool] | None = None) -> TickResult:
        """Step until nothing is pending (or ``until(result)``), checking the invariant after every tick."""
        for _ in range(max_ticks):
            result = self.tick()
            if (until is not None and until(result)) or (until is None and result.wake_at is None):
                return result
            if result.wake_at is not None:
                self.advance(max(1.0, (result.wake_at - self.clock.now()).total_seconds()))
            else:
                self.advance(self.config.source.interval_seconds)
        raise AssertionError(f"not done after {max_ticks} ticks; last: {self.describe_last()}")

    def describe_last(self) -> str:
        if not self.results:
            return "no tick"
        last = self.results[-1].statuses.get(self.context)
        return f"{last.state} {last.description}" if last else "no status"

    def advance_to(self, when: datetime) -> None:
        """Move both clocks forward to ``when`` (which must not be in the past)."""
        seconds = (when - self.clock.now()).total_seconds()
        assert seconds >= 0, f"{when} is before the story's now {self.clock.now()}"
        self.advance(seconds)

    # -- reading what happened ---------------------------------------------------------------------------

    def status(self, result: TickResult | None = None) -> tuple[str, str]:
        """(state, description) of web's context on the last tick (or ``result``)."""
        result = result or self.results[-1]
        status = result.statuses[self.context]
        return status.state, status.description

    def task_sets(self) -> list[dict[str, Any]]:
        service = self.ecs.describe_services(cluster=self.cluster, services=["web"])["services"][0]
        return list(service.get("taskSets") or [])

    def labels(self, draining: bool = False) -> list[tuple[str, str, str]]:
        """(task definition, status, target group name) of each task set, primary first; DRAINING ones
        (deleted, gone on the sandbox's next task tick) only when asked for."""
        return [
            (
                ts["taskDefinition"].rsplit("/", 1)[1],
                ts["status"],
                target_group_name((ts.get("loadBalancers") or [{}])[0].get("targetGroupArn", "")),
            )
            for ts in self.task_sets()
            if draining or ts["status"] != "DRAINING"
        ]

    def split(self, snapshot: TrafficSnapshot | None = None, rule: str = "production") -> tuple[int, int]:
        """(weight on <name>-blue, weight on <name>-green) on the production (or test) rule."""
        snap = snapshot or (self.snapshots[-1] if self.snapshots else self.check())
        return snap.weight(f"{self.name}-blue", rule), snap.weight(f"{self.name}-green", rule)

    def moves(self, rule: str = "production") -> list[tuple[datetime, tuple[int, int]]]:
        """Each (time, (blue, green)) at which the rule's weights changed, from the checked ticks."""
        out: list[tuple[datetime, tuple[int, int]]] = []
        for at, snap in zip(self.times, self.snapshots, strict=True):
            split = self.split(snap, rule)
            if not out or out[-1][1] != split:
                out.append((at, split))
        return out

    def mutating_calls(self) -> dict[str, int]:
        return self.aws.counter.mutating()


# -- an agent in another process, on the sandbox's clock (crash tests SIGKILL it) -----------------------


class SandboxTime:
    """The clock of a sandbox running in another process: read and moved over its control API."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint.rstrip("/")

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        request = urllib.request.Request(
            self.endpoint + path,
            data=json.dumps(body).encode() if body is not None else None,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return dict(json.loads(response.read()))

    def now(self) -> datetime:
        return datetime.fromisoformat(self._call("GET", "/_sandbox/clock")["now"])

    def advance(self, seconds: float) -> None:
        self._call("POST", "/_sandbox/clock/advance", {"seconds": seconds})


def drive(argv: list[str]) -> int:
    """``gitops_story.py REPO DATA_DIR ENDPOINT REGION CLUSTER PROD_RULE [TEST_RULE]``: tick an agent on
    the sandbox's clock until nothing is pending, moving that clock to each wake-up and checking the
    traffic invariant after every tick; one JSON line per tick on stdout. Exit 0 when settled, 1 when
    the invariant broke, 2 when it did not settle."""
    repo, data_dir, endpoint, region, cluster, prod_rule, *rest = argv
    time_ = SandboxTime(endpoint)
    config = AgentConfig.default()
    config = replace(config, source=replace(config.source, repo=repo, interval="60s"))
    aws = Aws(region=region, endpoint_url=endpoint)
    agent = Agent(config, Path(data_dir), aws, clock=time_.now, pacer=Pacer(limits={}))
    for _ in range(200):
        result = agent.tick()
        line: dict[str, Any] = {"now": time_.now().isoformat()}
        if result is not None:
            status = result.statuses.get(CONTEXT.format(cluster=cluster))
            line.update(
                outcome=result.outcome,
                state=status.state if status else None,
                description=status.description if status else None,
                wake_at=result.wake_at.isoformat() if result.wake_at else None,
            )
        print(json.dumps(line), flush=True)
        try:
            check_traffic(aws, cluster, "web", prod_rule, rest[0] if rest else None)
        except AssertionError as exc:
            print(json.dumps({"invariant": str(exc)}), flush=True)
            return 1
        if result is not None and result.wake_at is None:
            return 0
        wait = (result.wake_at - time_.now()).total_seconds() if result and result.wake_at else 5.0
        time_.advance(max(1.0, wait))
    return 2


if __name__ == "__main__":
    sys.exit(drive(sys.argv[1:]))
