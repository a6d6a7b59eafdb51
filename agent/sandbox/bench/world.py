"""The bench's world: the sandbox in a process of its own, and a git repository of N services."""

from __future__ import annotations

import json
import logging
import socket
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path
from typing import Any

REGION = "eu-west-1"
CLUSTER = "bench"


class SandboxProcess:
    """``python -m agent.sandbox.cli up --port 0 --no-seed`` in a subprocess; its endpoint from line one."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "agent.sandbox.cli", "up", "--port", "0", "--no-seed"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self.proc.stdout is not None
        first = self.proc.stdout.readline().strip()
        if not first.startswith("AWS_ENDPOINT_URL="):
            self.stop()
            raise RuntimeError(f"the sandbox did not start: {first!r}")
        self.endpoint = first.split("=", 1)[1]
        # Drain the rest of its output so it never blocks on a full pipe.
        threading.Thread(target=self.proc.stdout.read, daemon=True).start()
        self.control("/_sandbox/config", {"taskStartSeconds": 0.001})

    def control(self, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        """POST ``body`` to a control route, or GET it when there is no body."""
        req = urllib.request.Request(
            self.endpoint + path,
            data=None if body is None else json.dumps(body).encode(),
            method="GET" if body is None else "POST",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=30) as resp:
            return dict(json.loads(resp.read()))

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Repo:
    """A local git repository holding N services, each with its own task-definition family, in one
    cluster; services and families are named ``{prefix}0000``, ``{prefix}0001``..."""

    def __init__(self, root: Path, n: int, cluster: str = CLUSTER, prefix: str = "svc") -> None:
        import git

        self.root, self.n, self.cluster, self.prefix = root, n, cluster, prefix
        self.git = git.Repo.init(root, initial_branch="main")
        with self.git.config_writer() as cw:
            cw.set_value("user", "name", "Bench").set_value("user", "email", "bench@example.com")
        (root / "cluster.yaml").write_text(
            f"apiVersion: ecs-gitops/v1\nkind: Cluster\nmetadata: {{name: {cluster}}}\nspec: {{}}\n"
        )
        (root / "taskdefs").mkdir()
        docs = []
        for i in range(n):
            self.write_taskdef(i, "1")
            docs.append(
                "apiVersion: ecs-gitops/v1\nkind: Service\n"
                f"metadata: {{name: {self.name(i)}}}\n"
                f"spec: {{cluster: {cluster}, taskDefinition: taskdefs/{self.name(i)}.json, desiredCount: 1, "
                "launchType: EC2}\n"
            )
        (root / "services.yaml").write_text("---\n".join(docs))
        self.commit("N services")

    def name(self, i: int) -> str:
        """The name of service i, and of its task-definition family."""
        return f"{self.prefix}{i:04d}"

    def write_taskdef(self, i: int, tag: str) -> None:
        body = {
            "family": self.name(i),
            "networkMode": "bridge",
            "requiresCompatibilities": ["EC2"],
            "containerDefinitions": [{"name": "app", "image": f"repo/app:{tag}", "memory": 128}],
        }
        (self.root / "taskdefs" / f"{self.name(i)}.json").write_text(json.dumps(body, indent=2))

    def commit(self, message: str) -> str:
        self.git.git.add(A=True)
        return str(self.git.index.commit(message).hexsha)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def quiet_logs() -> None:
    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    logging.getLogger("apscheduler").setLevel(logging.ERROR)
    logging.getLogger("watchfiles").setLevel(logging.ERROR)
