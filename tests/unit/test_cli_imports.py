"""The agent's commands load no sandbox: moto and agent.sandbox are imported only by ``ecs-gitops sandbox``,
and without moto that command says which extra to install.

Each check runs in a fresh interpreter, so modules other tests imported do not count.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]

LOADED = """
import sys
from agent.cli import main
try:
    code = main({argv!r})
except SystemExit as e:
    code = e.code
print(code)
print(" ".join(sorted(m for m in sys.modules if m.split(".")[0] == "moto" or m.startswith("agent.sandbox"))))
"""


def _run(argv: list[str], prelude: str = "") -> tuple[str, str]:
    """(the exit code, the moto and agent.sandbox modules loaded) of ``main(argv)``, and its stderr."""
    proc = subprocess.run(
        [sys.executable, "-c", prelude + LOADED.format(argv=argv)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    code, loaded = proc.stdout.splitlines()[-2:]
    return f"{code} {loaded}".strip(), proc.stderr


@pytest.mark.parametrize(
    ("argv", "code"),
    [(["--help"], "0"), (["validate", "manifests-example"], "0"), (["status", "--help"], "0")],
)
def test_commands_other_than_sandbox_import_no_sandbox_and_no_moto(argv: list[str], code: str) -> None:
    """--help, validate and status load neither moto nor agent.sandbox."""
    assert _run(argv)[0] == code


def test_the_sandbox_command_imports_the_sandbox() -> None:
    """ecs-gitops sandbox loads its module (and moto) by name."""
    result, _ = _run(["sandbox", "--help"])
    assert result.startswith("0 ")
    assert "agent.sandbox.cli" in result.split() and "moto" in result.split()


def test_without_moto_the_sandbox_command_names_the_extra() -> None:
    """moto missing (``None`` in sys.modules makes its import fail as an absent package does)."""
    for argv in (["sandbox", "up"], ["sandbox", "--help"]):
        result, stderr = _run(argv, prelude="import sys\nsys.modules['moto'] = None\n")
        assert result.split()[0] == "1"
        assert stderr == "ecs-gitops sandbox needs the sandbox extra: pip install 'ecs-gitops[sandbox]'\n"


def test_without_the_sandbox_package_the_sandbox_command_names_the_extra() -> None:
    """The image leaves agent/sandbox out: the command says which extra to install, with no traceback."""
    prelude = "import sys\nsys.modules['agent.sandbox'] = None\n"
    result, stderr = _run(["sandbox", "up"], prelude=prelude)
    assert result.split()[0] == "1"
    assert stderr == "ecs-gitops sandbox needs the sandbox extra: pip install 'ecs-gitops[sandbox]'\n"


def test_a_plain_install_pulls_in_no_sandbox() -> None:
    """``pip install ecs-gitops`` (no extras) brings no moto: it is only in the ``sandbox`` extra."""
    import tomllib

    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    assert not [d for d in project["dependencies"] if d.lower().startswith("moto")]
    assert any(d.startswith("moto") for d in project["optional-dependencies"]["sandbox"])
    lock = (REPO_ROOT / "requirements.lock").read_text().lower()
    assert "moto" not in lock


EXITING = """
import atexit, gc, sys
atexit.register(lambda: print("frozen:", gc.get_freeze_count() > 0, file=sys.stderr))
sys.argv = ["ecs-gitops", *{argv!r}]
from agent.cli import entry
entry()
"""


@pytest.mark.parametrize(
    ("argv", "code"), [(["validate", "manifests-example"], 0), (["validate", "nosuch"], 1)]
)
def test_the_console_script_exits_with_the_commands_code_its_heap_frozen(argv: list[str], code: int) -> None:
    """``ecs-gitops`` (agent.cli:entry) exits with main's code, output flushed, the heap frozen for exit."""
    import tomllib

    scripts = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts == {"ecs-gitops": "agent.cli:entry"}
    proc = subprocess.run(
        [sys.executable, "-c", EXITING.format(argv=argv)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == code
    assert proc.stderr.endswith("frozen: True\n")
    assert ("valid" in proc.stdout) if code == 0 else ("nosuch" in proc.stderr)
