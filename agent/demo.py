"""``make demo``: the agent's main job, end to end, on the embedded sandbox.

1. The sandbox starts on a free loopback port (moto + the ECS simulator, tasks starting quickly) and is
   seeded with what manifests-example refers to.
2. A temporary git repository is seeded from manifests-example; ``ecs-gitops plan`` shows the creation.
3. The agent runs (the same ``Agent.run`` as ``ecs-gitops run``), watching the repository.
4. Scripted commits: (a) the first deploy, (b) an image bump, (c) a broken image that fails and is rolled
   back automatically, (d) ``git revert`` of the broken commit and then of the bump, (e) ``api`` switched
   to an ECS-native canary (engine ecs) and an image bump that ECS shifts in steps while the agent follows
   (:func:`native_canary`).

Each commit's statuses are printed as they change (read back from ``refs/notes/ecs-gitops``, as
``git notes --ref ecs-gitops show <sha>`` shows them). Exits 0 only when every step ended as expected.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import git
import structlog

from agent.aws.clients import Aws
from agent.config import AgentConfig
from agent.daemon import Agent
from agent.manifests.tree import DirTree
from agent.plan.render import render_text
from agent.reconcile import Reconciler
from agent.sandbox.server import Sandbox
from agent.status.gitnotes import GitNotesPublisher

EXAMPLE = Path(__file__).resolve().parents[1] / "manifests-example"
WORKER_TD = "taskdefs/worker.yaml"
FINAL = ("success", "failure", "error")
T0 = time.monotonic()


class DemoFailed(Exception):
    pass


def say(text: str = "") -> None:
    print(text, flush=True)


def stamp() -> str:
    return f"[{time.monotonic() - T0:5.1f}s]"


class Timeline:
    """Prints each commit's statuses as they change, and waits for the commit to reach a final state."""

    def __init__(self, repo_path: Path) -> None:
        self.notes = GitNotesPublisher(str(repo_path), push=False)

    def follow(self, sha: str, expect: str, context: str = "ecs-gitops", timeout: float = 90.0) -> dict:
        seen: dict[str, tuple[str, str]] = {}
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            statuses = self.notes.read(sha)
            for ctx, st in sorted(statuses.items()):
                now = (st["state"], st["description"])
                if seen.get(ctx) != now:
                    seen[ctx] = now
                    say(f"  {stamp()} {st['state']:<8} {ctx:<28} {st['description']}")
            top = statuses.get(context, {}).get("state")
            if top in FINAL and statuses.get("ecs-gitops", {}).get("state") in FINAL:
                if top != expect:
                    raise DemoFailed(f"{sha[:8]}: {context} ended {top}, expected {expect}")
                return statuses
            time.sleep(0.3)
        raise DemoFailed(f"{sha[:8]}: {context} did not finish within {timeout:.0f}s")


def main() -> int:
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(50))  # the timeline is the output
    workdir = Path(tempfile.mkdtemp(prefix="ecs-gitops-demo-"))
    try:
        return run(workdir)
    except DemoFailed as e:
        say(f"\ndemo FAILED: {e}")
        return 1
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def run(workdir: Path) -> int:
    with Sandbox(port=0) as sandbox:
        sandbox.simulator.task_start_seconds = 0.3
        sandbox.seed(EXAMPLE / "sandbox-seed.yaml")
        say(
            f"== sandbox: moto + ECS simulator on {sandbox.endpoint} (seeded: VPC, ALB, alarms, roles)"
        )

        repo = git.Repo.init(workdir / "deployments", initial_branch="main")
        with repo.config_writer() as cw:
            cw.set_value("user", "name", "Demo Dev").set_value("user", "email", "dev@example.com")
        root = Path(repo.working_dir)
        shutil.copytree(EXAMPLE, root, dirs_exist_ok=True)

        aws = Aws(region=sandbox.region, endpoint_url=sandbox.endpoint)
        planner = Reconciler(Aws(region=sandbox.region, endpoint_url=sandbox.endpoint))

        def show_plan(compact: bool = False) -> None:
            text = render_text(planner.plan(DirTree(root)).plan, color=sys.stdout.isatty())
            lines = [ln for ln in text.splitlines() if not compact or not ln.startswith("    ")]
            say("\n".join("  | " + ln for ln in lines if ln.strip()))

        say("\n== ecs-gitops plan, before the first merge (field details left out here)")
        show_plan(compact=True)

        config = AgentConfig.default()
        config = replace(config, source=replace(config.source, repo=str(root), interval="2s"))
        # The agent reads the sandbox's clock (real time until native_canary speeds the sandbox up).
        agent = Agent(config, workdir / "agent-data", aws, clock=sandbox.simulator.clock.now)
        stop = threading.Event()
        runner = threading.Thread(target=agent.run, args=(stop,), daemon=True)
        runner.start()
        say(f"\n== agent running: watching {root} (branch main), statuses in refs/notes/ecs-gitops")
        timeline = Timeline(root)
        ecs = sandbox.client("ecs")

        def commit(title: str, old: str | None = None, new: str | None = None) -> str:
            if old is not None and new is not None:
                path = root / WORKER_TD
                path.write_text(path.read_text().replace(old, new))
                say(f"\n{stamp()} ecs-gitops plan  (the change about to be committed)")
                show_plan()
            repo.git.add(A=True)
            sha = repo.index.commit(title).hexsha
            say(f"\n{stamp()} commit {sha[:8]}  {title}")
            return sha

        def revert(sha: str) -> str:
            repo.git.revert(sha, no_edit=True)
            head = repo.head.commit
            say(f"\n{stamp()} commit {head.hexsha[:8]}  {head.summary}")
            return head.hexsha

        def running_worker() -> str:
            svc = ecs.describe_services(cluster="prod", services=["worker"])["services"][0]
            return str(svc["taskDefinition"].rsplit("/", 1)[1])

        def check(what: str, ok: bool) -> None:
            say(f"  {'ok' if ok else 'NOT OK':>6}  {what}")
            if not ok:
                raise DemoFailed(what)

        try:
            first = commit("(a) deploy manifests-example")
            timeline.follow(first, "success")
            check(f"worker runs {running_worker()}", running_worker() == "worker:1")

            bump = commit("(b) worker 1.9.0 -> 1.9.1", "worker:1.9.0", "worker:1.9.1")
            timeline.follow(bump, "success", "ecs-gitops/prod/worker")
            check(f"worker runs {running_worker()} (new revision)", running_worker() == "worker:2")

            broken = commit("(c) worker 1.9.1 -> broken-2", "worker:1.9.1", "worker:broken-2")
            timeline.follow(broken, "failure", "ecs-gitops/prod/worker")
            check(
                f"circuit breaker rolled back: worker runs {running_worker()}", running_worker() == "worker:2"
            )

            undo = revert(broken)
            timeline.follow(undo, "success", "ecs-gitops/prod/worker")
            back = revert(bump)
            timeline.follow(back, "success", "ecs-gitops/prod/worker")
            arns = ecs.list_task_definitions(familyPrefix="worker")["taskDefinitionArns"]
            check(
                f"worker runs {running_worker()}, revisions registered: {len(arns)} (reverts reuse)",
                running_worker() == "worker:1" and len(arns) == 3,
            )
            native_canary(sandbox, root, commit, timeline, check)
        finally:
            stop.set()
            runner.join(timeout=30)

        say(f"\n{stamp()} git notes --ref ecs-gitops show {back[:8]}  (in the repository)")
        say(repo.git.notes("--ref", "ecs-gitops", "show", back))
    say("\ndemo OK")
    return 0


# -- (e) an ECS-native canary (issue 5: engine ecs) --------------------------------------------------------

API = "services/api.yaml"
API_TD = "taskdefs/api.json"
NATIVE_CANARY = (
    "  strategy: {type: canary, engine: ecs, canary: {percent: 20, bake: 1m}, bake: 1m,"
    " rollbackOn: {alarms: [{name: api-5xx}]}}\n"
)
NATIVE_SPEED = 10  # sandbox seconds per real second while ECS bakes (the agent reads the same clock)


def native_canary(sandbox: Sandbox, root: Path, commit: Any, timeline: Timeline, check: Any) -> None:
    """(e) ``api`` moves to a canary on engine ecs (a strategy switch, planned in place), then an image bump:
    ECS scales green up, shifts 20 % of production traffic, bakes, shifts the rest and bakes again; the
    agent follows the service deployment and says where it is on the commit. The maintenance window is
    dropped so the canary runs now (with it, ECS would hold at the agent's PAUSE hook until 22:00 Berlin)."""
    path = root / API
    text = path.read_text()
    path.write_text(
        text.replace("  strategy: blue-green\n", NATIVE_CANARY).replace(
            "  windows: [weekday-nights, year-end-freeze]\n", ""
        )
    )
    switch = commit("(e) api: canary 20 % on engine ecs")
    timeline.follow(switch, "success", "ecs-gitops/prod/api")
    td = root / API_TD
    td.write_text(td.read_text().replace("acme/api:2.4.1", "acme/api:2.4.2"))
    sandbox.simulator.configure(speed=NATIVE_SPEED)
    try:
        bump = commit("(e) api 2.4.1 -> 2.4.2, shifted by ECS")
        timeline.follow(bump, "success", "ecs-gitops/prod/api", timeout=120.0)
    finally:
        sandbox.simulator.configure(speed=1.0)
    ecs = sandbox.client("ecs")
    newest = ecs.list_service_deployments(cluster="prod", service="api")["serviceDeployments"][0]
    described = ecs.describe_service_deployments(serviceDeploymentArns=[newest["serviceDeploymentArn"]])
    config = described["serviceDeployments"][0]["deploymentConfiguration"]
    running = ecs.describe_services(cluster="prod", services=["api"])["services"][0]["taskDefinition"]
    check(
        f"api runs {running.rsplit('/', 1)[1]}; ECS deployment {newest['status']} "
        f"({config['strategy']} {config['canaryConfiguration']['canaryPercent']:g} %)",
        running.endswith("api:2") and newest["status"] == "SUCCESSFUL" and config["strategy"] == "CANARY",
    )


if __name__ == "__main__":
    sys.exit(main())
