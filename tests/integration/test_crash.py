"""Crash safety: an agent killed between RegisterTaskDefinition and UpdateService registers nothing twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import git

from agent.sandbox.harness import write

SERVICE = """\
apiVersion: ecs-gitops/v1
kind: Service
metadata: {name: app}
spec:
  cluster: crash
  taskDefinition: app.json
  desiredCount: 1
  launchType: FARGATE
  networkConfiguration:
    awsvpcConfiguration: {subnets: [{name: private-a}], securityGroups: [{name: workers}]}
"""
CLUSTER = """\
apiVersion: ecs-gitops/v1
kind: Cluster
metadata: {name: crash}
spec: {capacityProviders: [FARGATE]}
"""


def _taskdef(image: str) -> dict:
    return {
        "family": "app", "networkMode": "awsvpc", "requiresCompatibilities": ["FARGATE"],
        "cpu": "256", "memory": "512",
        "containerDefinitions": [{"name": "app", "image": image}],
    }  # fmt: skip


def _control(sandbox, method: str, body: dict | None = None) -> dict:
    req = urllib.request.Request(
        f"{sandbox.endpoint}/_sandbox/faults",
        data=json.dumps(body or {}).encode(),
        method=method,
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


def _apply(sandbox, remote: str, data_dir: Path, cwd: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "agent.cli", "apply", "--repo", remote, "--data-dir", str(data_dir),
           "--endpoint-url", sandbox.endpoint, "--region", sandbox.region]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    return subprocess.Popen(
        cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def test_sigkill_between_register_and_update_leaves_one_new_revision(sandbox, tmp_path: Path) -> None:
    """SIGKILL while UpdateService is in flight, then a restart: the revision registered before the crash
    is found by its content hash and reused, so exactly one new revision exists and the service runs it."""
    remote = git.Repo.init(tmp_path / "origin.git", bare=True, initial_branch="main")
    work = git.Repo.clone_from(remote.git_dir, tmp_path / "work")
    with work.config_writer() as cw:
        cw.set_value("user", "name", "Dev").set_value("user", "email", "dev@example.com")
    root = Path(work.working_dir)
    write(root, "cluster.yaml", CLUSTER)
    write(root, "service.yaml", SERVICE)
    write(root, "app.json", _taskdef("repo/app:1"))
    work.git.add(A=True)
    work.index.commit("app v1")
    work.git.push("origin", "main")
    url = f"file://{remote.git_dir}"
    data = tmp_path / "agent-data"
    first = _apply(sandbox, url, data, tmp_path)
    output = first.communicate(timeout=120)[0]
    assert first.returncode == 0, output

    write(root, "app.json", _taskdef("repo/app:2"))
    work.git.add(A=True)
    work.index.commit("app v2")
    work.git.push("origin", "main")

    _control(sandbox, "POST", {"operation": "UpdateService", "action": "hold"})
    agent = _apply(sandbox, url, data, tmp_path)
    deadline = time.monotonic() + 60
    while _control(sandbox, "GET")["held"] == 0:
        assert agent.poll() is None, agent.communicate()[0]
        assert time.monotonic() < deadline, "the agent never reached UpdateService"
        time.sleep(0.05)
    agent.send_signal(signal.SIGKILL)
    agent.communicate(timeout=30)
    _control(sandbox, "DELETE")

    ecs = sandbox.client("ecs")
    revisions = ecs.list_task_definitions(familyPrefix="app")["taskDefinitionArns"]
    assert [r.rsplit("/", 1)[1] for r in revisions] == ["app:1", "app:2"]  # registered, then killed
    service = ecs.describe_services(cluster="crash", services=["app"])["services"][0]
    assert service["taskDefinition"].endswith("app:1")

    restarted = _apply(sandbox, url, data, tmp_path)
    output = restarted.communicate(timeout=120)[0]
    assert restarted.returncode == 0, output
    revisions = ecs.list_task_definitions(familyPrefix="app")["taskDefinitionArns"]
    assert [r.rsplit("/", 1)[1] for r in revisions] == ["app:1", "app:2"]
    service = ecs.describe_services(cluster="crash", services=["app"])["services"][0]
    assert service["taskDefinition"].endswith("app:2")
