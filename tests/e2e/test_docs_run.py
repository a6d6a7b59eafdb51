"""The docs run as written: every ``$ command`` shown with its output in README.md's quick start and in
docs/cli.md is executed, in order, by one shell in a temporary copy of the files it needs, against a
sandbox started with the doc's own ``ecs-gitops sandbox up`` line; the lines the doc shows must be the
lines printed, shas and times aside. A block preceded by ``<!-- not run by tests/e2e/test_docs_run.py:
REASON -->`` is left out (the reason says what it would need).
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from e2e_support import CLI, REPO_ROOT, base_env, closed_port, free_port, needs_cli

pytestmark = [needs_cli, pytest.mark.slow]

SKIP = "<!-- not run by tests/e2e/test_docs_run.py:"
SANDBOX_UP = "ecs-gitops sandbox up"
DOC_PORTS = ("4577", "4591")  # the sandbox's port in the docs' examples
DOWN_PORT = "4599"  # the docs' endpoint that does not answer
HOOK_PORT = "8099"
MARK = "@@ecs-gitops-doc-runner@@"


@dataclass
class Command:
    line: int
    text: str
    expected: list[str] = field(default_factory=list)


def commands(path: Path, section: str | None = None) -> list[Command]:
    """The ``$ `` commands of the ```text blocks of ``path`` (of one ``## `` section of it), each with the
    lines the doc shows after it."""
    found: list[Command] = []
    lines = path.read_text().splitlines()
    inside, skipped, in_section = False, False, section is None
    for number, line in enumerate(lines, 1):
        if line.startswith("## ") and section is not None:
            in_section = line == section
        if not in_section:
            continue
        if not inside and line == "```text":
            inside, skipped = True, number > 1 and lines[number - 2].startswith(SKIP)
            current = None
            continue
        if inside and line == "```":
            inside = False
            continue
        if inside and not skipped:
            if line.startswith("$ "):
                current = Command(number, line[2:])
                found.append(current)
            elif current is not None:
                current.expected.append(line)
    return found


def _masked(line: str) -> str:
    line = re.sub(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z?", "<time>", line)
    return re.sub(r"\b[0-9a-f]{7,64}\b", "<hex>", line).rstrip()


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """What the docs' commands read, copied: manifests-example, tests/invalid, the schemas."""
    for rel in ("manifests-example", "tests/invalid", "schemas"):
        shutil.copytree(REPO_ROOT / rel, tmp_path / rel)
    return tmp_path


def _run_doc(doc: Path, section: str | None, workspace: Path) -> None:
    cmds = commands(doc, section)
    assert cmds, f"no commands found in {doc}"
    port, hook_port, down = str(free_port()), str(free_port()), str(closed_port())

    def local(text: str) -> str:
        for doc_port in DOC_PORTS:
            text = text.replace(f"127.0.0.1:{doc_port}", f"127.0.0.1:{port}")
            text = text.replace(f"--port {doc_port}", f"--port {port}")
        return text.replace(f"127.0.0.1:{DOWN_PORT}", f"127.0.0.1:{down}").replace(
            f"127.0.0.1:{HOOK_PORT}", f"127.0.0.1:{hook_port}"
        )

    seed = (REPO_ROOT / "manifests-example" / "sandbox-seed.yaml").read_text()
    (workspace / "sandbox-seed.yaml").write_text(seed.replace(f"port: {HOOK_PORT}", f"port: {hook_port}"))
    ups = [c for c in cmds if c.text.startswith(SANDBOX_UP)]
    up = ups[0] if ups else Command(0, f"{SANDBOX_UP} --port 4577 --seed sandbox-seed.yaml")
    env = base_env(COLUMNS="80", AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing")
    args = shlex.split(local(up.text))[1:]
    sandbox = subprocess.Popen(
        [str(CLI), *args], cwd=workspace, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    problems: list[str] = []
    try:
        assert sandbox.stdout is not None
        banner = [sandbox.stdout.readline().rstrip("\n") for _ in range(max(1, len(up.expected)))]
        if up.expected:
            problems += _compare(doc, up, [local(e) for e in up.expected], banner)
        script = ["exec 2>&1"]  # what a terminal shows: both streams, in order
        shown = [c for c in cmds if c is not up]
        for i, c in enumerate(shown):
            script.append(f"{local(c.text)}\n__rc=$?; echo '{MARK} {i}'; (exit $__rc)")
        done = subprocess.run(
            ["bash", "-c", "\n".join(script)],
            cwd=workspace,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=600,
            check=False,
        )
        outputs = _split(done.stdout, len(shown))
        for c, printed in zip(shown, outputs, strict=True):
            problems += _compare(doc, c, [local(e) for e in c.expected], printed)
    finally:
        sandbox.terminate()
        sandbox.wait(timeout=30)
        if sandbox.stdout is not None:
            sandbox.stdout.close()
    assert not problems, "the docs drifted from the code:\n" + "\n".join(problems)


def _split(output: str, n: int) -> list[list[str]]:
    outputs: list[list[str]] = [[] for _ in range(n)]
    current: list[str] = []
    for line in output.splitlines():
        if line.startswith(MARK):
            outputs[int(line.split()[1])] = current
            current = []
        else:
            current.append(line)
    return outputs


def _compare(doc: Path, command: Command, expected: list[str], printed: list[str]) -> list[str]:
    want = [_masked(e) for e in expected]
    got = [_masked(p) for p in printed]
    if want == got:
        return []
    return [
        f"{doc.relative_to(REPO_ROOT)}:{command.line}: $ {command.text}\n  shown:   {want}\n  printed: {got}"
    ]


def test_the_readme_quick_start_runs_as_shown(workspace: Path) -> None:
    _run_doc(REPO_ROOT / "README.md", "## Quick start with your own manifests", workspace)


def test_docs_cli_md_runs_as_shown(workspace: Path) -> None:
    _run_doc(REPO_ROOT / "docs" / "cli.md", None, workspace)


def test_the_runner_finds_the_commands() -> None:
    """Enough of docs/cli.md is run for the test to mean something, and skipped blocks say why."""
    cli = commands(REPO_ROOT / "docs" / "cli.md")
    assert len(cli) >= 15 and any(c.text.startswith(SANDBOX_UP) for c in cli)
    assert len(commands(REPO_ROOT / "README.md", "## Quick start with your own manifests")) == 3
