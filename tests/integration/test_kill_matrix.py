"""The kill matrix: SIGKILL the agent inside each mutating step, restart it, and end where an uninterrupted
run ends — the same ECS state, no duplicate task-definition revision, every commit's final status.

Each ``Step`` names the call to kill the agent in, held from outside (the sandbox holds an ECS operation;
``GitRemoteFaults`` holds the status push to the remote), and which commit of a ``Scenario`` is being
applied. Adding a step is one line in ``STEPS``; another engine adds its ``Scenario`` (its manifests,
commit by commit) and its steps: ``rolling`` and ``native`` (engine ecs: the sandbox's service deployments)
are here, the agent engine's phases are in test_agent_engine_crash.py. The agent is the real CLI,
``ecs-gitops apply --wait``, in a subprocess.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import git
import pytest
from lossy_proxy import LossyProxy

from agent.sandbox.client_faults import GitRemoteFaults
from agent.sandbox.harness import write

SEED = Path(__file__).resolve().parents[2] / "manifests-example" / "sandbox-seed.yaml"


# -- scenarios: the manifests of each commit -----------------------------------------------------------


def _taskdef(image: str, family: str = "app", port: int | None = None) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "app", "image": image}
    if port is not None:
        container["portMappings"] = [{"containerPort": port}]
    return {
        "family": family, "networkMode": "awsvpc", "requiresCompatibilities": ["FARGATE"],
        "cpu": "256", "memory": "512", "containerDefinitions": [container],
    }  # fmt: skip


ROLLING_BASE = {
    "cluster.yaml": "apiVersion: ecs-gitops/v1\nkind: Cluster\nmetadata: {name: kill}\n"
    "spec: {capacityProviders: [FARGATE]}\n",
    "service.yaml": "apiVersion: ecs-gitops/v1\nkind: Service\nmetadata: {name: app}\nspec:\n"
    "  cluster: kill\n  taskDefinition: app.json\n  desiredCount: 2\n  launchType: FARGATE\n"
    "  networkConfiguration:\n"
    "    awsvpcConfiguration: {subnets: [{name: private-a}], securityGroups: [{name: workers}]}\n",
}


# engine ecs: a native canary whose PAUSE hook (the service has a maintenance window, open all day) the
# agent continues; the ServiceDeployment APIs are the sandbox's (agent/sandbox/service_deployments.py).
NATIVE_BASE = {
    "cluster.yaml": "apiVersion: ecs-gitops/v1\nkind: Cluster\nmetadata: {name: native}\n"
    "spec: {capacityProviders: [FARGATE]}\n",
    "window.yaml": "apiVersion: ecs-gitops/v1\nkind: Window\nmetadata: {name: all-day}\n"
    "spec: {type: maintenance, schedule: '0 0 * * *', duration: 24h, timezone: UTC}\n",
    "service.yaml": "apiVersion: ecs-gitops/v1\nkind: Service\nmetadata: {name: canary}\nspec:\n"
    "  cluster: native\n  taskDefinition: canary.json\n  desiredCount: 2\n  launchType: FARGATE\n"
    "  networkConfiguration:\n"
    "    awsvpcConfiguration: {subnets: [{name: private-a}], securityGroups: [{name: api}]}\n"
    "  loadBalancers:\n"
    "    - {targetGroup: {name: api-blue}, alternateTargetGroup: {name: api-green},\n"
    "       productionListenerRule: {name: api-prod}, testListenerRule: {name: api-test},\n"
    "       role: {name: ecsInfrastructureRole}, containerName: app, containerPort: 9000}\n"
    "  strategy: {type: canary, engine: ecs, canary: {percent: 50, bake: 0s}, bake: 0s}\n"
    "  windows: [all-day]\n",
}


def _native(image: str) -> dict[str, Any]:
    return _taskdef(image, family="canary", port=9000)


@dataclass(frozen=True)
class Scenario:
    """Commits, each a set of files (path -> text or JSON), and the ECS resources whose state is compared.
    Commits in ``no_wait`` (1-based) are applied without ``--wait``: the next commit lands mid-rollout."""

    commits: tuple[dict[str, Any], ...]
    cluster: str
    services: tuple[str, ...]
    families: tuple[str, ...]
    no_wait: tuple[int, ...] = ()


SCENARIOS = {
    "rolling": Scenario(
        commits=(
            {**ROLLING_BASE, "app.json": _taskdef("repo/app:1")},  # creates the cluster and the service
            {"app.json": _taskdef("repo/app:2")},  # rolls a new revision out
        ),
        cluster="kill",
        services=("app",),
        families=("app",),
    ),
    "native": Scenario(
        commits=(
            {**NATIVE_BASE, "canary.json": _native("repo/canary:1")},  # creates the service
            {"canary.json": _native("repo/canary:2")},  # a canary: PAUSE hook continued, 50 %, 100 %
            {  # started, then superseded while it bakes at 50 % (the bake is long enough for that)
                "canary.json": _native("repo/canary:3"),
                "service.yaml": NATIVE_BASE["service.yaml"].replace("bake: 0s}, bake", "bake: 5m}, bake"),
            },
            {"canary.json": _native("repo/canary:2")},  # the revert: StopServiceDeployment(ROLLBACK)
        ),
        cluster="native",
        services=("canary",),
        families=("canary",),
        no_wait=(3,),
    ),
}


# -- holds: park the agent inside one call -------------------------------------------------------------


def _faults(sandbox: Any, method: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    req = urllib.request.Request(
        f"{sandbox.endpoint}/_sandbox/faults",
        data=json.dumps(body or {}).encode(),
        method=method,
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        return dict(json.loads(resp.read()))


@dataclass(frozen=True)
class Hold:
    """``arm`` makes the next such call wait; ``held`` counts calls waiting; ``release`` drops them."""

    arm: Callable[[Any], None]
    held: Callable[[Any], int]
    release: Callable[[Any], None]


def ecs(operation: str) -> Hold:
    """Hold an ECS operation in the sandbox (agent/sandbox/faults.py): it never reaches ECS."""
    return Hold(
        arm=lambda run: _faults(run.sandbox, "POST", {"operation": operation, "action": "hold"}),
        held=lambda run: int(_faults(run.sandbox, "GET")["held"]),
        release=lambda run: _faults(run.sandbox, "DELETE"),
    )


def reached(operation: str) -> Hold:
    """Let an AWS call reach the sandbox, then keep its answer back (tests/integration/lossy_proxy.py): the
    agent dies at the moment after ECS acted."""
    return Hold(
        arm=lambda run: run.proxy.arm(operation, "hold"),
        held=lambda run: run.proxy.held,
        release=lambda run: run.proxy.clear(),
    )


def lost(operation: str) -> Hold:
    """Let an AWS call reach the sandbox, then drop its answer (the connection closes): the agent lives on
    without knowing whether the call happened."""
    return Hold(
        arm=lambda run: run.proxy.arm(operation, "lose"),
        held=lambda run: run.proxy.held,
        release=lambda run: run.proxy.clear(),
    )


def status_push() -> Hold:
    """Hold the git push that writes commit statuses (git notes) to the remote."""
    return Hold(
        arm=lambda run: run.git_faults.hold(push=True),
        held=lambda run: run.git_faults.held("push"),
        release=lambda run: run.git_faults.clear(),
    )


@dataclass(frozen=True)
class Step:
    """Kill the agent while ``hold`` parks it, during commit ``commit`` (1-based) of ``scenario``; with
    ``settled``, in the tick that finds the rollout done and writes the final statuses."""

    name: str
    hold: Hold
    commit: int
    scenario: str = "rolling"
    settled: bool = False
    kill: bool = True  # False: the agent is not killed (a lost answer), it carries on by itself


STEPS = [
    Step("create service", ecs("CreateService"), commit=1),
    Step("register task definition", ecs("RegisterTaskDefinition"), commit=2),
    Step("update service", ecs("UpdateService"), commit=2),
    Step("status write (pending)", status_push(), commit=2),
    Step("status write (final)", status_push(), commit=2, settled=True),
    Step("ecs: update service", ecs("UpdateService"), commit=2, scenario="native"),
    Step("ecs: continue at the PAUSE hook", ecs("ContinueServiceDeployment"), commit=2, scenario="native"),
    Step("ecs: stop service deployment", ecs("StopServiceDeployment"), commit=4, scenario="native"),
]

# Every mutating call of the rolling and native engines once more, as calls that reached ECS: the agent
# killed right after (its answer kept back), or alive with the answer lost. The agent engine's writes
# are in test_agent_engine_crash.py.
_MUTATING = [
    ("create service", "CreateService", 1, "rolling"),
    ("register task definition", "RegisterTaskDefinition", 2, "rolling"),
    ("update service", "UpdateService", 2, "rolling"),
    ("ecs: create service", "CreateService", 1, "native"),
    ("ecs: register task definition", "RegisterTaskDefinition", 2, "native"),
    ("ecs: update service", "UpdateService", 2, "native"),
    ("ecs: continue at the PAUSE hook", "ContinueServiceDeployment", 2, "native"),
    ("ecs: stop service deployment", "StopServiceDeployment", 4, "native"),
]
STEPS += [
    Step(f"{name} (reached ECS)", reached(op), commit, scenario) for name, op, commit, scenario in _MUTATING
]
STEPS += [
    Step(f"{name} (answer lost)", lost(op), commit, scenario, kill=False)
    for name, op, commit, scenario in _MUTATING
]


# -- one run -------------------------------------------------------------------------------------------


class Run:
    """A bare remote, a work tree, and the agent's data directory; the sandbox reset and seeded."""

    def __init__(self, sandbox: Any, root: Path, scenario: Scenario, proxy: LossyProxy) -> None:
        proxy.reset()
        self.proxy = proxy
        sandbox.reset()
        sandbox.seed(SEED)
        sandbox.simulator.configure(task_start_seconds=0.2)  # real time here: tasks start fast
        self.sandbox, self.root, self.scenario = sandbox, root, scenario
        self.remote = git.Repo.init(root / "origin.git", bare=True, initial_branch="main")
        self.work = git.Repo.clone_from(self.remote.git_dir, root / "work")
        with self.work.config_writer() as cw:
            cw.set_value("user", "name", "Dev").set_value("user", "email", "dev@example.com")
        self.git_faults = GitRemoteFaults(root / "git-faults")
        self.shas: list[str] = []

    def commit(self, index: int) -> None:
        for rel, content in self.scenario.commits[index].items():
            write(Path(self.work.working_dir), rel, content)
        self.work.git.add(A=True)
        self.work.index.commit(f"commit {index + 1}")
        self.work.git.push("origin", "main")
        self.shas.append(self.work.head.commit.hexsha)

    def start(self, wait: bool = True) -> subprocess.Popen[str]:
        cmd = [sys.executable, "-m", "agent.cli", "apply", "--repo", f"file://{self.remote.git_dir}",
               "--data-dir", str(self.root / "data"), "--endpoint-url", self.proxy.endpoint,
               "--region", self.sandbox.region, *(["--wait"] if wait else [])]  # fmt: skip
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(self.git_faults.env())
        return subprocess.Popen(
            cmd, cwd=self.root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )

    def apply(self, wait: bool = True) -> None:
        agent = self.start(wait)
        output = agent.communicate(timeout=180)[0]
        assert agent.returncode == 0, output

    def kill_inside(self, step: Step) -> None:
        """Start the agent with ``step`` held, SIGKILL it once it is parked there, release the hold."""
        step.hold.arm(self)
        agent = self.start()
        deadline = time.monotonic() + 90
        try:
            while step.hold.held(self) == 0:
                assert agent.poll() is None, f"the agent ended before {step.name}:\n{agent.communicate()[0]}"
                assert time.monotonic() < deadline, f"the agent never reached {step.name}"
                time.sleep(0.05)
            agent.send_signal(signal.SIGKILL)
            agent.communicate(timeout=30)
            assert agent.returncode == -signal.SIGKILL
        finally:
            step.hold.release(self)
            if agent.poll() is None:
                agent.kill()
                agent.communicate()

    def lose_inside(self, step: Step) -> None:
        """Run the agent with ``step``'s answer lost once; it carries on (retries) by itself."""
        step.hold.arm(self)
        try:
            self.apply()
        finally:
            step.hold.release(self)
        assert self.proxy.lost, f"the agent never made the call of {step.name}"

    def wait_for_rollout(self) -> None:
        """Until ECS reports every deployment of the scenario's services COMPLETED (the sandbox's clock
        is real time here)."""
        ecs = self.sandbox.client("ecs")
        deadline = time.monotonic() + 60
        while True:
            services = ecs.describe_services(
                cluster=self.scenario.cluster, services=list(self.scenario.services)
            )
            deployments = [d for s in services["services"] for d in s["deployments"]]
            if deployments and all(d.get("rolloutState") == "COMPLETED" for d in deployments):
                return
            assert time.monotonic() < deadline, f"the rollout never completed: {deployments}"
            time.sleep(0.1)

    def _named(self, text: str) -> str:
        """``text`` with commit ids as "commit N" (a rerun's commits have other ids)."""
        for n, sha in enumerate(self.shas, 1):
            text = text.replace(sha[:12], f"commit {n}").replace(sha[:7], f"commit {n}")
        return text

    def snapshot(self) -> dict[str, Any]:
        """What an observer compares: services, every revision of each family, each commit's statuses."""
        ecs = self.sandbox.client("ecs")
        services = ecs.describe_services(cluster=self.scenario.cluster, services=list(self.scenario.services))
        revisions = {}
        for family in self.scenario.families:
            arns = ecs.list_task_definitions(familyPrefix=family)["taskDefinitionArns"]
            revisions[family] = [
                (arn.rsplit("/", 1)[1], ecs.describe_task_definition(taskDefinition=arn)["taskDefinition"]
                 ["containerDefinitions"][0]["image"])
                for arn in arns
            ]  # fmt: skip
        statuses = []
        for sha in self.shas:
            note = self.remote.git.notes("--ref", "ecs-gitops", "show", sha)
            statuses.append(
                {ctx: (e["state"], self._named(e["description"])) for ctx, e in json.loads(note).items()}
            )
        return {
            "services": {
                s["serviceName"]: {
                    "status": s["status"],
                    "taskDefinition": s["taskDefinition"].rsplit("/", 1)[1],
                    "desiredCount": s["desiredCount"],
                    "launchType": s.get("launchType"),
                    "deployments": len(s["deployments"]),
                }
                for s in services["services"]
            },
            "revisions": revisions,
            "statuses": statuses,
        }


def _uninterrupted(sandbox: Any, root: Path, scenario: Scenario, proxy: LossyProxy) -> dict[str, Any]:
    run = Run(sandbox, root, scenario, proxy)
    for index in range(len(scenario.commits)):
        run.commit(index)
        run.apply(wait=index + 1 not in scenario.no_wait)
    return run.snapshot()


@pytest.fixture(scope="module")
def proxy(sandbox: Any) -> Any:
    """The agent's endpoint: the sandbox behind a proxy that can lose or keep back an answer."""
    lossy = LossyProxy(sandbox.endpoint)
    yield lossy
    lossy.close()


@pytest.fixture(scope="module")
def reference(
    sandbox: Any, proxy: LossyProxy, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, dict[str, Any]]:
    """The end state of each scenario run without interruption (the sandbox is reset before each run)."""
    return {
        name: _uninterrupted(sandbox, tmp_path_factory.mktemp(f"reference-{name}"), scenario, proxy)
        for name, scenario in SCENARIOS.items()
    }


@pytest.mark.parametrize("step", STEPS, ids=[s.name for s in STEPS])
def test_a_kill_inside_each_step_ends_like_an_uninterrupted_run(
    step: Step, sandbox: Any, proxy: LossyProxy, tmp_path: Path, reference: dict[str, dict[str, Any]]
) -> None:
    """SIGKILL inside the step (before or after the call reached ECS), then a restart on the same data
    directory, or the call's answer lost: the services, the task definitions (none registered twice) and
    every commit's final statuses equal the uninterrupted run's."""
    scenario = SCENARIOS[step.scenario]
    run = Run(sandbox, tmp_path, scenario, proxy)
    for index in range(len(scenario.commits)):
        run.commit(index)
        if index + 1 != step.commit:
            run.apply(wait=index + 1 not in scenario.no_wait)
            continue
        if step.settled:
            run.apply(wait=False)  # applied; the final statuses come from the tick that sees it done
            run.wait_for_rollout()
        if not step.kill:
            run.lose_inside(step)
            continue
        run.kill_inside(step)
        run.apply()  # the restart
    expected, got = reference[step.scenario], run.snapshot()
    for commit, (want, have) in enumerate(zip(expected["statuses"], got["statuses"], strict=True), 1):
        assert have == want, f"commit {commit}"
    assert got == expected
    finished = [c for n, c in enumerate(expected["statuses"], 1) if n not in scenario.no_wait]
    assert all(state == "success" for commit in finished for state, _ in commit.values())


def _newest_service_deployment(run: Run) -> dict[str, Any]:
    ecs = run.sandbox.client("ecs")
    briefs = ecs.list_service_deployments(cluster=run.scenario.cluster, service="canary")[
        "serviceDeployments"
    ]
    newest = max(briefs, key=lambda b: b["createdAt"])
    return dict(ecs.describe_service_deployments(serviceDeploymentArns=[newest["serviceDeploymentArn"]])[
        "serviceDeployments"
    ][0])  # fmt: skip


def _status(run: Run, commit: int) -> tuple[str, str]:
    note = json.loads(run.remote.git.notes("--ref", "ecs-gitops", "show", run.shas[commit - 1]))
    state, description = next((e["state"], e["description"]) for e in note.values())
    return state, description


def test_a_native_canary_whose_update_reached_ecs_is_continued_after_a_kill_and_a_lost_store(
    sandbox: Any, proxy: LossyProxy, tmp_path: Path
) -> None:
    """The agent dies right after its UpdateService reached ECS (the rollout record never written), and its
    store is deleted mid-canary: each restart reads ECS, continues the deployment at the PAUSE hook and
    reports pending until ECS says SUCCESSFUL; never a success while ECS waits."""
    scenario = SCENARIOS["native"]
    run = Run(sandbox, tmp_path, scenario, proxy)
    run.commit(0)
    run.apply()
    run.commit(1)
    run.kill_inside(
        Step("update service (reached ECS)", reached("UpdateService"), commit=2, scenario="native")
    )
    deployment = _newest_service_deployment(run)
    assert deployment["status"] in ("PENDING", "IN_PROGRESS"), deployment

    def honest() -> None:
        state, description = _status(run, 2)
        ecs_says = _newest_service_deployment(run)["status"]
        assert state in ("pending", "success"), description
        if state == "success":
            assert ecs_says == "SUCCESSFUL", f"success ({description}) while ECS says {ecs_says}"

    for _ in range(3):  # single ticks: the deployment is found and followed without a record
        run.apply(wait=False)
        honest()
    for leftover in (tmp_path / "data").glob("*.db*"):  # the store is lost mid-canary
        leftover.unlink()
    run.apply(wait=False)
    honest()
    run.apply()  # follows it to the end
    honest()
    assert _status(run, 2)[0] == "success"
    assert _newest_service_deployment(run)["status"] == "SUCCESSFUL"
    service = sandbox.client("ecs").describe_services(cluster="native", services=["canary"])["services"][0]
    assert service["taskDefinition"].endswith(":2")
