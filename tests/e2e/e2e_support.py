"""End to end: the installed ``ecs-gitops`` console script, run as a user runs it, against a sandbox
started the same way (``ecs-gitops sandbox up`` in a process of its own). Helpers; the fixtures are in
conftest.py."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import git
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
CLI = Path(sys.executable).with_name("ecs-gitops")
SEED = REPO_ROOT / "manifests-example" / "sandbox-seed.yaml"
READS = ("Describe", "List", "Get")

needs_cli = pytest.mark.skipif(not CLI.exists(), reason="the ecs-gitops console script is not installed")


def base_env(**extra: str) -> dict[str, str]:
    """The environment of a user with no AWS account: no AWS or ECS_GITOPS_ variables but the ones given,
    no instance metadata lookups, plain logs."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "ECS_GITOPS_"))}
    env.update(
        AWS_EC2_METADATA_DISABLED="true",
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        NO_COLOR="1",
        PATH=f"{CLI.parent}{os.pathsep}{env.get('PATH', '')}",
        GIT_AUTHOR_NAME="Dev",
        GIT_AUTHOR_EMAIL="dev@example.com",
        GIT_COMMITTER_NAME="Dev",
        GIT_COMMITTER_EMAIL="dev@example.com",
    )
    env.update(extra)
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def closed_port() -> int:
    """A loopback port nothing listens on (bound and released: connections are refused)."""
    return free_port()


@dataclass
class SandboxProcess:
    """``ecs-gitops sandbox up`` in its own process: its endpoint and the lines it printed when ready."""

    process: subprocess.Popen[str]
    endpoint: str
    banner: list[str]

    def control(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"{self.endpoint}{path}", data=data, method=method)
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())

    def mutations(self) -> dict[str, int]:
        """Every AWS operation served so far that is not a read: what an invocation must not add to."""
        served = self.control("GET", "/_sandbox/faults")["served"]
        return {op: n for op, n in served.items() if not op.startswith(READS)}

    def env(self, **extra: str) -> dict[str, str]:
        aws = {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_REGION": "eu-west-1",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
        }
        return base_env(**{**aws, **extra})

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()


def start_sandbox(*args: str, cwd: Path | None = None, banner_lines: int = 1) -> SandboxProcess:
    """Start ``ecs-gitops sandbox up --port 0 ARGS``; return once it printed its ready line (and
    ``banner_lines`` lines in all)."""
    process = subprocess.Popen(
        [str(CLI), "sandbox", "up", "--port", "0", *args],
        cwd=cwd or REPO_ROOT,
        env=base_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    banner = []
    while len(banner) < banner_lines:
        line = process.stdout.readline()
        if not line:
            raise AssertionError(f"the sandbox stopped before it was ready: {banner}")
        banner.append(line.rstrip("\n"))
    ready = banner[0]
    assert ready.startswith("AWS_ENDPOINT_URL="), banner
    return SandboxProcess(process, ready.split("=", 1)[1], banner)


def run(
    args: list[str], cwd: Path, env: dict[str, str], timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """``ecs-gitops ARGS`` through the console script, as a shell runs it."""
    return subprocess.run(
        [str(CLI), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def make_repository(folder: Path, files_from: Path | None = None) -> git.Repo:
    """A git repository on branch main at ``folder``, holding a copy of ``files_from`` in one commit."""
    if files_from is not None:
        shutil.copytree(files_from, folder, dirs_exist_ok=True)
    folder.mkdir(parents=True, exist_ok=True)
    repo = git.Repo.init(folder, initial_branch="main")
    with repo.config_writer() as cw:
        cw.set_value("user", "name", "Dev").set_value("user", "email", "dev@example.com")
        cw.set_value("commit", "gpgsign", "false")
    repo.git.add(A=True)
    repo.index.commit("manifests")
    return repo
