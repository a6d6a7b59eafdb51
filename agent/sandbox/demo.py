"""``make demo``: the agent's main job, end to end, on the embedded sandbox.

1. The sandbox starts on a free loopback port (moto + the ECS simulator) and is seeded with what
   manifests-example refers to. Its clock runs ``SPEED`` times faster than real time from ``START`` (a
   Tuesday noon in Berlin: no window of manifests-example is open), and the agent runs on that clock,
   so bakes of tens of seconds pass in a few and the demo gives the same story whenever it is run.
2. A temporary git repository is seeded from manifests-example (web's hook pointed at a loopback hook
   receiver, bakes shortened); ``ecs-gitops plan`` shows the creation.
3. The agent runs (the same ``Agent.run`` as ``ecs-gitops run``), watching the repository; for the
   agent-engine acts it is ticked directly, back to back (``Agent.run`` leaves at least 1 s between
   ticks, and these acts take a dozen ticks each).
4. Scripted commits: (a) the first deploy, (b) an image bump, (c) a broken image that fails and is rolled
   back automatically, (d) ``git revert`` of the broken commit and then of the bump; then the agent
   engine on ``web`` (task sets and listener weights): (e) a canary whose alarm fires during the bake
   and rolls back, (f) a linear rollout held by a maintenance window that opens a few seconds later;
   then ECS's own engine on ``api`` (engine ecs): (g) a strategy switch to a native canary and an image
   bump that ECS shifts in steps while the agent follows it and continues its PAUSE hook in the window
   (:func:`native_canary`).

Each commit's statuses are printed as they change (read back from ``refs/notes/ecs-gitops``, as
``git notes --ref ecs-gitops show <sha>`` shows them), stamped with real seconds since the start and
the sandbox's clock. Exits 0 only when every step ended as expected.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import git
import structlog

from agent.aws.clients import Aws
from agent.config import AgentConfig
from agent.daemon import Agent
from agent.manifests.tree import DirTree
from agent.plan.render import render_text
from agent.reconcile import Reconciler
from agent.sandbox.harness import CALM_START, EXAMPLE
from agent.sandbox.hooks import HookReceiver
from agent.sandbox.server import Sandbox
from agent.sandbox.simulator import SandboxClock
from agent.sandbox.traffic_invariant import check_traffic
from agent.status.gitnotes import GitNotesPublisher

WORKER_TD = "taskdefs/worker.yaml"
WEB_TD = "taskdefs/web.json"
WEB = "services/web.yaml"
STRATEGIES = "strategies/strategies.yaml"
FINAL = ("success", "failure", "error")
START = CALM_START  # a Tuesday, 12:00 in Berlin: every example window closed
SPEED = 20.0  # sandbox (and agent) seconds per real second
TASK_START = 4.0  # sandbox seconds to start one task (0.2 s of real time)
T0 = time.monotonic()
CLOCK: SandboxClock | None = None


class DemoFailed(Exception):
    pass


def say(text: str = "") -> None:
    print(text, flush=True)


def stamp() -> str:
    """``[ 12.3s 10:04:55]``: real seconds since the demo started, and the sandbox's (the agent's) time."""
    sandbox_time = f" {CLOCK.now():%H:%M:%S}" if CLOCK is not None else ""
    return f"[{time.monotonic() - T0:5.1f}s{sandbox_time}]"


Statuses = dict[str, dict]


class Timeline:
    """Prints each commit's statuses as they change, and waits for the commit to reach a final state."""

    def __init__(self, repo_path: Path) -> None:
        self.notes = GitNotesPublisher(str(repo_path), push=False)
        self.seen: dict[tuple[str, str], tuple[str, str]] = {}

    def follow(
        self,
        sha: str,
        expect: str,
        context: str = "ecs-gitops",
        timeout: float = 90.0,
        until: Callable[[Statuses], bool] | None = None,
        tick: Callable[[], float] | None = None,
    ) -> Statuses:
        """Print ``sha``'s statuses as they change until ``context`` and the aggregate are final (then
        check ``context`` ended ``expect``), or until ``until(statuses)`` holds. With ``tick``, run one
        agent tick before each look (it returns the real seconds to wait for the tick's wake-up)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            wait = tick() if tick is not None else 0.1
            statuses = self.notes.read(sha)
            for ctx, st in sorted(statuses.items()):
                now = (st["state"], st["description"])
                if self.seen.get((sha, ctx)) != now:
                    self.seen[(sha, ctx)] = now
                    say(f"  {stamp()} {st['state']:<8} {ctx:<28} {st['description']}")
            if until is not None and until(statuses):
                return statuses
            top = statuses.get(context, {}).get("state")
            if until is None and top in FINAL and statuses.get("ecs-gitops", {}).get("state") in FINAL:
                if top != expect:
                    raise DemoFailed(f"{sha[:8]}: {context} ended {top}, expected {expect}")
                return statuses
            time.sleep(min(wait, 2.0))
        raise DemoFailed(f"{sha[:8]}: {context} did not finish within {timeout:.0f}s")


def description(context: str, text: str) -> Callable[[Statuses], bool]:
    """True once ``context``'s status description contains ``text``."""
    return lambda statuses: text in statuses.get(context, {}).get("description", "")


def edit(root: Path, rel: str, old: str, new: str) -> None:
    path = root / rel
    text = path.read_text()
    if old not in text:
        raise DemoFailed(f"{rel}: {old!r} not found")
    path.write_text(text.replace(old, new, 1))


def prepare_repository(root: Path, hook_url: str) -> None:
    """manifests-example, with bakes a demo can wait for and web's hook pointed at the demo's receiver."""
    shutil.copytree(EXAMPLE, root, dirs_exist_ok=True)
    edit(root, STRATEGIES, "http://127.0.0.1:8099/hooks/smoke", hook_url)
    edit(root, STRATEGIES, "percent: 10\n    bake: 5m", "percent: 10\n    bake: 60s")
    edit(root, STRATEGIES, "bake: 10m", "bake: 20s")
    edit(
        root,
        STRATEGIES,
        "stepPercent: 25\n    stepBake: 2m\n  bake: 5m",
        "stepPercent: 25\n    stepBake: 10s\n  bake: 10s",
    )


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
    global CLOCK
    CLOCK = clock = SandboxClock(speed=SPEED, start=START)
    with Sandbox(port=0, clock=clock, task_start_seconds=TASK_START) as sandbox, HookReceiver() as hooks:
        seeded = sandbox.seed(EXAMPLE / "sandbox-seed.yaml")
        rules = seeded.ids["listener rule"]
        say(
            f"== sandbox: moto + ECS simulator on {sandbox.endpoint} (seeded: VPC, ALB, alarms, roles); "
            f"its clock starts at {START:%a %Y-%m-%d %H:%M} UTC and runs {SPEED:g}x"
        )

        repo = git.Repo.init(workdir / "deployments", initial_branch="main")
        with repo.config_writer() as cw:
            cw.set_value("user", "name", "Demo Dev").set_value("user", "email", "dev@example.com")
        root = Path(repo.working_dir)
        prepare_repository(root, hooks.url("smoke"))
        say(f"== hook receiver on {hooks.url('smoke')} (web's postTestTraffic hook; answers SUCCEEDED)")

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
        agent = Agent(config, workdir / "agent-data", aws, clock=clock.now)
        stop = threading.Event()
        runner = threading.Thread(target=agent.run, args=(stop,), daemon=True)
        runner.start()
        say(f"\n== agent running: watching {root} (branch main), statuses in refs/notes/ecs-gitops")
        timeline = Timeline(root)
        ecs = sandbox.client("ecs")

        def commit(title: str, old: str | None = None, new: str | None = None, plan: bool = True) -> str:
            if old is not None and new is not None:
                edit(root, WORKER_TD, old, new)
            if plan and old is not None:
                say(f"\n{stamp()} ecs-gitops plan  (the change about to be committed)")
                show_plan()
            repo.git.add(A=True)
            when = f"{int(clock.timestamp())} +0000"  # commit times on the agent's clock
            sha = repo.index.commit(title, author_date=when, commit_date=when).hexsha
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

        clients = SimpleNamespace(client=cache(sandbox.client))

        def web_traffic() -> str:
            """web's task sets and production weights, after checking the engine's invariant."""
            snapshot = check_traffic(clients, "prod", "web", rules["web-prod"], rules["web-test"])
            sets = ", ".join(
                f"{ts['taskDefinition'].rsplit('/', 1)[1]} {ts['status']}" for ts in snapshot.task_sets
            )
            weights = ", ".join(
                f"{arn.split(':targetgroup/')[1].split('/')[0]} {w} %"
                for arn, w in sorted(snapshot.production.items(), key=lambda kv: -kv[1])
            )
            return f"web task sets: {sets}; production traffic: {weights}"

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

            stop.set()
            runner.join(timeout=30)
            say(
                "\n== the agent engine on web: task sets, listener weights, hooks, alarms, windows\n"
                "   (the same agent, now ticked back to back on the sandbox clock: the daemon would wait\n"
                "   at least 1 s between ticks, and each of these rollouts takes a dozen)"
            )

            def tick() -> float:
                result = agent.tick()
                if result is None or result.wake_at is None:
                    return 0.5
                return max(0.0, (result.wake_at - clock.now()).total_seconds() / SPEED)

            say(f"  {web_traffic()}")
            edit(root, WEB_TD, "nginx:1.27", "nginx:1.28")
            canary = commit("(e) web nginx 1.27 -> 1.28: canary 10 % for 60s, then 100 %", plan=False)
            web = "ecs-gitops/prod/web"
            timeline.follow(canary, "pending", web, until=description(web, "canary 10 % baking"), tick=tick)
            say(f"  {web_traffic()}")
            sandbox.set_alarm("web-5xx", "ALARM", reason="5xx rate above 1 % (set by the demo)")
            say(f"  {stamp()} alarm web-5xx -> ALARM  (as `ecs-gitops sandbox alarm web-5xx ALARM` does)")
            timeline.follow(canary, "failure", web, tick=tick)
            hooked = [c.stage for c in hooks.calls()]
            check(f"hooks called: {', '.join(hooked)}", hooked == ["postTestTraffic"])
            traffic = web_traffic()
            check(traffic, "web:1 PRIMARY;" in traffic and "web-blue 100 %" in traffic)
            sandbox.set_alarm("web-5xx", "OK")

            opens = (clock.now() + timedelta(minutes=4)).replace(second=0, microsecond=0)
            write_release_window(root, opens)
            edit(root, WEB, "strategy: canary-10", "strategy: linear-25")
            edit(root, WEB, "windows: [year-end-freeze]", "windows: [year-end-freeze, release-train]")
            edit(root, WEB_TD, "nginx:1.28", "nginx:1.29")
            linear = commit(
                f"(f) web nginx 1.29: linear 25 % every 10s, in the release-train window ({opens:%H:%M})",
                plan=False,
            )
            waiting = description(web, "waiting for maintenance window")
            timeline.follow(linear, "pending", web, until=waiting, tick=tick)
            skip = (opens - clock.now()).total_seconds() - 5
            clock.advance(skip)
            say(f"  {stamp()} the sandbox clock skips {skip:.0f}s ahead: release-train opens in 5 s")
            timeline.follow(linear, "success", web, tick=tick)
            traffic = web_traffic()
            check(traffic, "web:3 PRIMARY;" in traffic and "web-green 100 %" in traffic)
            last = native_canary(sandbox, root, commit, timeline, check, tick)
        finally:
            stop.set()
            runner.join(timeout=30)

        say(f"\n{stamp()} git notes --ref ecs-gitops show {last[:8]}  (in the repository)")
        say(repo.git.notes("--ref", "ecs-gitops", "show", last))
    say("\ndemo OK")
    return 0


def write_release_window(root: Path, opens: datetime) -> None:
    """A maintenance window opening every day at ``opens`` (UTC) for 30 minutes."""
    (root / "windows" / "release-train.yaml").write_text(
        "# yaml-language-server: $schema=../../schemas/window.schema.json\n"
        "apiVersion: ecs-gitops/v1\n"
        "kind: Window\n"
        "metadata:\n"
        "  name: release-train\n"
        "spec:\n"
        "  type: maintenance\n"
        f'  schedule: "{opens.minute} {opens.hour} * * *"\n'
        "  duration: 30m\n"
        "  timezone: UTC\n"
        "  overrun: pause\n"
    )


# -- (g) an ECS-native canary (engine ecs) ------------------------------------------------------------------

API = "services/api.yaml"
API_TD = "taskdefs/api.json"
NATIVE_CANARY = (
    "  strategy: {type: canary, engine: ecs, canary: {percent: 20, bake: 1m}, bake: 1m,"
    " rollbackOn: {alarms: [{name: api-5xx}]}}\n"
)


def native_canary(
    sandbox: Sandbox, root: Path, commit: Any, timeline: Timeline, check: Any, tick: Callable[[], float]
) -> str:
    """(g) ``api`` moves from blue/green to a canary on engine ecs (a strategy switch, planned in place),
    then an image bump: ECS scales green up and stops at the agent's PAUSE hook before production traffic;
    the release-train window is open, so the agent continues it; ECS shifts 20 %, bakes, shifts the rest
    and bakes again, and the agent says where it is on the commit."""
    say(
        "\n== ECS's own engine on api: a native canary (engine ecs); ECS moves the traffic, the agent\n"
        "   gates it on the release-train window (a PAUSE lifecycle hook), watches api-5xx and reports"
    )
    edit(root, API, "  strategy: blue-green\n", NATIVE_CANARY)
    edit(root, API, "windows: [weekday-nights, year-end-freeze]", "windows: [release-train, year-end-freeze]")
    switch = commit("(g) api: blue/green -> canary 20 % on engine ecs, in the release-train window")
    api = "ecs-gitops/prod/api"
    timeline.follow(switch, "success", api, tick=tick)
    edit(root, API_TD, "acme/api:2.4.1", "acme/api:2.4.2")
    bump = commit("(g) api 2.4.1 -> 2.4.2, shifted by ECS", plan=False)
    timeline.follow(bump, "success", api, tick=tick)
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
    return bump


if __name__ == "__main__":
    sys.exit(main())
