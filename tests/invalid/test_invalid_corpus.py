"""The invalid-manifest corpus: every folder here is a manifest root with exactly one defect.

``EXPECT`` in each folder names the problem it must produce (``file``, ``pointer``, a ``message``
fragment, and optionally ``config`` for an agent config file in the folder and ``severity: warning``
for roots that are valid but must warn). Defects a git checkout cannot keep well (symlinks, binary,
non-UTF-8, huge files) are built by ``GENERATED`` below instead.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from agent.errors import InvalidInput, Problem
from agent.manifests import load_desired
from agent.manifests.loading import MAX_FILE_BYTES
from agent.manifests.tree import DirTree

CORPUS = Path(__file__).resolve().parent
CASES = sorted(p for p in CORPUS.iterdir() if (p / "EXPECT").is_file())
CLI = Path(sys.executable).with_name("ecs-gitops")
PROBLEM_LINE = re.compile(r"^(warning: )?[^\s:][^:]*(:\d+)?: /\S*: \S.*$")


def read_expect(case: Path) -> dict[str, str]:
    expect: dict[str, str] = {}
    for line in (case / "EXPECT").read_text().splitlines():
        key, _, value = line.partition(":")
        expect[key.strip()] = value.strip()
    return expect


def load_problems(case: Path, config_file: str | None) -> tuple[list[Problem], bool]:
    """(problems, raised): what load_desired reports for a root, errors and warnings alike."""
    config = None
    if config_file:
        from agent.config import load_config

        config = load_config(str(case / config_file))
    try:
        desired = load_desired(DirTree(case), config)
    except InvalidInput as err:
        return err.problems, True
    return desired.warnings, False


def matches(problem: Problem, expect: dict[str, str]) -> bool:
    return (
        problem.file == expect["file"]
        and problem.pointer == expect["pointer"]
        and expect["message"] in problem.message
        and problem.severity == expect.get("severity", "error")
    )


def test_corpus_is_large_enough() -> None:
    """The issue asks for at least 40 invalid roots; warnings do not count."""
    errors = [c for c in CASES if read_expect(c).get("severity", "error") == "error"]
    assert len(errors) + len(GENERATED) >= 45


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_case_reports_its_one_defect(case: Path) -> None:
    """Each root reports the expected problem, and nothing else is wrong with it."""
    expect = read_expect(case)
    problems, raised = load_problems(case, expect.get("config"))
    shown = "\n".join(str(p) for p in problems)
    assert any(matches(p, expect) for p in problems), f"expected {expect}, got:\n{shown}"
    errors = [p for p in problems if p.severity == "error"]
    if expect.get("severity") == "warning":
        assert not raised and not errors, shown
    else:
        assert raised and len(errors) == 1, f"one defect, one error; got:\n{shown}"
    for p in problems:
        assert p.line is None or p.line >= 1


# ------------------------------------------------------------------ defects generated at test time

SERVICE = """\
apiVersion: ecs-gitops/v1
kind: Service
metadata:
  name: web
spec:
  cluster: prod
  launchType: EC2
  desiredCount: 1
  taskDefinition: {td}
"""
TASKDEF = '{"family": "web", "containerDefinitions": [{"name": "app", "image": "nginx:1", "memory": 256}]}\n'


def _valid_root(root: Path, td: str = "../taskdefs/web.json") -> None:
    (root / "services").mkdir(parents=True)
    (root / "taskdefs").mkdir()
    (root / "services" / "web.yaml").write_text(SERVICE.format(td=td))
    (root / "taskdefs" / "web.json").write_text(TASKDEF)


def symlinked_file_outside(root: Path, outside: Path) -> None:
    (outside / "web.json").write_text(TASKDEF)
    (root / "taskdefs" / "web.json").unlink()
    os.symlink(outside / "web.json", root / "taskdefs" / "web.json")


def symlinked_folder_outside(root: Path, outside: Path) -> None:
    (outside / "extra.yaml").write_text("family: x\ncontainerDefinitions: []\n")
    os.symlink(outside, root / "shared")


def taskdef_through_symlinked_folder(root: Path, outside: Path) -> None:
    (outside / "web.json").write_text(TASKDEF)
    shutil.rmtree(root / "taskdefs")
    os.symlink(outside, root / "taskdefs")


def relative_symlink_escaping(root: Path, outside: Path) -> None:
    (outside / "web.json").write_text(TASKDEF)
    (root / "taskdefs" / "web.json").unlink()
    os.symlink(os.path.relpath(outside / "web.json", root / "taskdefs"), root / "taskdefs" / "web.json")


def binary_file(root: Path, outside: Path) -> None:
    (root / "services" / "logo.yaml").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")


def utf16_file(root: Path, outside: Path) -> None:
    (root / "services" / "api.yaml").write_bytes(SERVICE.format(td="x").encode("utf-16"))


def latin1_file(root: Path, outside: Path) -> None:
    text = SERVICE.format(td="../taskdefs/web.json") + "  tags: {owner: José}\n"
    (root / "services" / "web.yaml").write_bytes(text.encode("latin-1"))


def huge_file(root: Path, outside: Path) -> None:
    with (root / "taskdefs" / "big.json").open("w") as f:
        f.write('{"family": "big", "containerDefinitions": [], "padding": "')
        f.write("x" * MAX_FILE_BYTES)
        f.write('"}\n')


GENERATED: dict[str, tuple[Callable[[Path, Path], None], str, str, str]] = {
    # name: (make the defect, file, pointer, message fragment)
    "symlinked-file-outside-root": (
        symlinked_file_outside,
        "taskdefs/web.json",
        "",
        "symlink that leads outside the manifest root",
    ),
    "relative-symlink-outside-root": (
        relative_symlink_escaping,
        "taskdefs/web.json",
        "",
        "symlink that leads outside the manifest root",
    ),
    "symlinked-folder-outside-root": (
        symlinked_folder_outside,
        "shared",
        "",
        "symlink that leads outside the manifest root",
    ),
    "taskdef-path-through-symlink-outside": (
        taskdef_through_symlinked_folder,
        "services/web.yaml",
        "/spec/taskDefinition",
        "leads outside the manifest root (through a symlink)",
    ),
    "binary-file": (binary_file, "services/logo.yaml", "", "binary file (NUL byte at offset 8)"),
    "utf16-file": (utf16_file, "services/api.yaml", "", "binary file (NUL byte"),
    "non-utf8-file": (latin1_file, "services/web.yaml", "", "not UTF-8 text: byte 0xe9 at offset"),
    "huge-file": (huge_file, "taskdefs/big.json", "", f"the limit is {MAX_FILE_BYTES} bytes"),
}


@pytest.fixture
def make_root(tmp_path: Path) -> Callable[[str], Path]:
    def make(name: str) -> Path:
        root, outside = tmp_path / "root", tmp_path / "outside"
        _valid_root(root)
        outside.mkdir()
        GENERATED[name][0](root, outside)
        return root

    return make


@pytest.mark.parametrize("name", sorted(GENERATED))
def test_generated_defect(name: str, make_root: Callable[[str], Path]) -> None:
    """Loader refusals for files a repository cannot hold well: each is an error, never read."""
    _, file, pointer, fragment = GENERATED[name]
    problems, raised = load_problems(make_root(name), None)
    expect = {"file": file, "pointer": pointer, "message": fragment}
    assert raised
    assert any(matches(p, expect) for p in problems), "\n".join(map(str, problems))


def test_the_untouched_base_is_valid(tmp_path: Path) -> None:
    """The base the generated defects start from loads cleanly, so each defect is the only one."""
    _valid_root(tmp_path / "root")
    desired = load_desired(DirTree(tmp_path / "root"))
    assert desired.service_task_family == {"web": "web"}


# -------------------------------------------------------------------------------------- the CLI


def run_cli(case: Path, config: str | None, cwd: Path) -> subprocess.CompletedProcess[str]:
    args = [str(CLI), "validate", str(case)]
    if config:
        args[1:1] = ["--config", str(case / config)]
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_cli_validate_in_process(
    case: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`ecs-gitops validate CASE` exits 1 (0 for warnings) and prints FILE[:LINE]: /pointer: message."""
    from agent.cli import main

    monkeypatch.chdir(tmp_path)  # no ./ecs-gitops.yaml from the repository
    expect = read_expect(case)
    argv = ["validate", str(case)]
    if expect.get("config"):
        argv = ["--config", str(case / expect["config"]), *argv]
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == (0 if expect.get("severity") == "warning" else 1)
    assert "Traceback" not in out + err
    problem_lines = [
        line for line in (out + err).splitlines() if line and not line.startswith(("invalid:", str(case)))
    ]
    assert problem_lines
    for line in problem_lines:
        assert PROBLEM_LINE.match(line), line
    files = [line.removeprefix("warning: ").split(": ", 1)[0].split(":")[0] for line in problem_lines]
    assert expect["file"] in files
    assert any(f": {expect['pointer'] or '/'}: " in line for line in problem_lines)


CLI_SAMPLE = [
    "yaml-alias-bomb",
    "yaml-duplicate-key",
    "json-nesting-too-deep",
    "taskdef-path-leaves-root",
    "depends-on-cycle",
    "cluster-not-in-allow-list",
    "schema-unknown-field",
]


@pytest.mark.skipif(not CLI.exists(), reason="the ecs-gitops console script is not installed")
@pytest.mark.parametrize("name", CLI_SAMPLE)
def test_cli_validate_subprocess(name: str, tmp_path: Path) -> None:
    """The installed command, as a user runs it: exit 1, located problem, no traceback."""
    case = CORPUS / name
    expect = read_expect(case)
    result = run_cli(case, expect.get("config"), tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "Traceback" not in output
    assert f"{expect['file']}" in output and f": {expect['pointer'] or '/'}: " in output
    assert expect["message"] in output


@pytest.mark.skipif(not CLI.exists(), reason="the ecs-gitops console script is not installed")
def test_cli_validate_generated_subprocess(make_root: Callable[[str], Path], tmp_path: Path) -> None:
    """A non-UTF-8 file through the real command: a located message, not a UnicodeDecodeError."""
    result = run_cli(make_root("non-utf8-file"), None, tmp_path)
    assert result.returncode == 1
    assert "Traceback" not in result.stdout + result.stderr
    assert "services/web.yaml:10: /: not UTF-8 text: byte 0xe9" in result.stderr
