"""What a user does in the first hour, through the console script and a sandbox in its own process:
a repository of task definitions only (``apply --wait``, then one tick of ``run``), and the example's
canary rehearsed with ``sandbox up --clock-speed 20`` plus ``ecs-gitops run``, hook included."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import boto3
import git
import pytest
from e2e_support import (
    CLI,
    REPO_ROOT,
    SEED,
    base_env,
    free_port,
    make_repository,
    needs_cli,
    run,
    start_sandbox,
)

from agent.sandbox.harness import CALM_START, copy_example

pytestmark = [needs_cli, pytest.mark.slow]

EXAMPLE = REPO_ROOT / "manifests-example"
HOOK_URL = "http://127.0.0.1:8099/hooks/smoke"


def _ecs(endpoint: str) -> Any:
    return boto3.client(
        "ecs",
        endpoint_url=endpoint,
        region_name="eu-west-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def test_task_definitions_only_register_once_through_apply_and_run(tmp_path: Path) -> None:
    """``apply --wait`` registers each family of a repository holding only task definitions once; one tick
    of ``run`` (``--once``) then changes nothing, and ``plan`` says "No changes." with exit 0."""
    sandbox = start_sandbox("--no-seed")
    try:
        repo = tmp_path / "deployments"
        shutil.copytree(EXAMPLE / "taskdefs", repo / "taskdefs")
        make_repository(repo)
        families = sorted(p.stem for p in (repo / "taskdefs").iterdir())
        env, data = sandbox.env(), str(tmp_path / "state")

        applied = run(["apply", "--repo", str(repo), "--wait", "--data-dir", data], tmp_path, env)
        assert applied.returncode == 0, applied.stderr
        assert sandbox.mutations() == {"RegisterTaskDefinition": len(families)}
        ecs = _ecs(sandbox.endpoint)
        for family in families:
            arns = ecs.list_task_definitions(familyPrefix=family)["taskDefinitionArns"]
            assert [a.rsplit("/", 1)[1] for a in arns] == [f"{family}:1"]

        ticked = run(["run", "--once", "--repo", str(repo), "--data-dir", data], tmp_path, env)
        assert ticked.returncode == 0, ticked.stderr
        assert ticked.stdout.splitlines()[0].endswith(": unchanged"), ticked.stdout
        assert sandbox.mutations() == {"RegisterTaskDefinition": len(families)}

        planned = run(["plan", "--repo", str(repo)], tmp_path, env)
        assert planned.returncode == 0, planned
        assert planned.stdout.splitlines()[-1] == "No changes. ECS matches the manifests.", planned.stdout
    finally:
        sandbox.stop()


def _statuses(repo: git.Repo, sha: str) -> dict[str, Any]:
    try:
        return dict(json.loads(repo.git.notes("--ref", "ecs-gitops", "show", sha)))
    except (git.GitCommandError, ValueError):
        return {}


def _wait_for(what: str, check: Any, timeout: float, log: Path) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(1)
    raise AssertionError(f"{what}: not within {timeout:g} s; the agent said:\n{log.read_text()[-4000:]}")


def test_the_example_canary_rehearsed_at_20x_with_its_hook(tmp_path: Path) -> None:
    """``sandbox up --clock-speed 20`` and ``ecs-gitops run`` on a copy of manifests-example: the first
    deploy, then an image bump of web that its canary-10 strategy (10 % for 5 min, hook postTestTraffic,
    a 10 min final bake) carries to success, the hook answered by the sandbox. Nothing else is started."""
    hook_port = free_port()  # the example's 8099, moved so that test runs in parallel do not collide
    seed = tmp_path / "sandbox-seed.yaml"
    seed.write_text(SEED.read_text().replace("hooks: {port: 8099}", f"hooks: {{port: {hook_port}}}"))
    start = CALM_START.isoformat().replace("+00:00", "Z")
    sandbox = start_sandbox("--seed", str(seed), "--clock-speed", "20", "--clock-start", start)
    root = tmp_path / "rehearsal"
    copy_example(root)
    strategies = root / "strategies" / "strategies.yaml"
    strategies.write_text(strategies.read_text().replace(HOOK_URL, HOOK_URL.replace("8099", str(hook_port))))
    repo = make_repository(root)
    config = tmp_path / "agent.yaml"
    config.write_text(
        "apiVersion: ecs-gitops/v1\nkind: AgentConfig\n"
        f"server: {{port: {free_port()}}}\naws: {{region: eu-west-1, endpointUrl: {sandbox.endpoint}}}\n"
    )
    log = tmp_path / "agent.log"
    with log.open("w") as out:
        agent = subprocess.Popen(
            [
                str(CLI),
                "run",
                "--config",
                str(config),
                "--repo",
                str(root),
                "--data-dir",
                str(tmp_path / "state"),
            ],
            cwd=tmp_path,
            env=base_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        first = repo.head.commit.hexsha
        done = _wait_for(
            "the first deploy",
            lambda: _statuses(repo, first).get("ecs-gitops", {}).get("state") == "success",
            240,
            log,
        )
        assert done
        web = root / "taskdefs" / "web.json"
        web.write_text(web.read_text().replace("nginx:1.27", "nginx:1.28"))
        repo.git.add(A=True)
        started = time.monotonic()
        bump = repo.index.commit("web nginx 1.27 -> 1.28").hexsha
        status = _wait_for(
            "web's canary",
            lambda: (
                (_statuses(repo, bump).get("ecs-gitops/prod/web") or {}).get("state") == "success"
                and _statuses(repo, bump)["ecs-gitops/prod/web"]
            ),
            240,
            log,
        )
        took = time.monotonic() - started
        assert status["description"] == "web:2 serving 100 %", status
        assert took < 15 * 60 / 2, took  # 15 simulated minutes of bakes, well under the real time
        calls = sandbox.control("GET", "/_sandbox/http-hooks")["calls"]
        assert [(c["name"], c["stage"], c["httpStatus"]) for c in calls] == [
            ("smoke", "postTestTraffic", 200)
        ]
        assert "following the clock of the sandbox" in log.read_text()
    finally:
        agent.send_signal(signal.SIGTERM)
        try:
            agent.wait(timeout=60)
        except subprocess.TimeoutExpired:
            agent.kill()
            agent.wait()
        sandbox.stop()
