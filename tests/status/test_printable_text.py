"""Text the agent writes stays well-formed whatever the repository holds: a file name that is not UTF-8
never puts invalid UTF-8 into a git note or a status, keys with whitespace or invisible characters keep
``FILE:LINE: /pointer: message`` one unambiguous line, and statuses name paths relative to the repository,
never the agent's own data folder."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from agent.errors import InvalidInput, Problem
from agent.git.source import GitSource
from agent.manifests import load_desired
from agent.manifests.tree import DirTree, GitTree
from agent.status.gitnotes import GitNotesPublisher
from agent.status.model import AGGREGATE, CommitStatus

PROBLEM_FORM = re.compile(r"^[^\s:][^:]*(:\d+)?: /\S*: \S.*$")
WHO = {
    "GIT_AUTHOR_NAME": "Dev",
    "GIT_AUTHOR_EMAIL": "dev@example.com",
    "GIT_COMMITTER_NAME": "Dev",
    "GIT_COMMITTER_EMAIL": "dev@example.com",
}


def _git(repo: Path, *args: str) -> bytes:
    done = subprocess.run(
        ["git", *args], cwd=repo, env={**os.environ, **WHO}, capture_output=True, timeout=60, check=True
    )
    return done.stdout


def _repo(tmp_path: Path, files: dict[bytes, bytes]) -> tuple[Path, str]:
    repo = tmp_path / "repo"
    _git(tmp_path, "init", "-q", "-b", "main", str(repo))
    for name, data in files.items():
        path = os.path.join(os.fsencode(repo), name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "--allow-empty", "-m", "manifests")
    return repo, _git(repo, "rev-parse", "HEAD").decode().strip()


def _problems(tree: object) -> list[Problem]:
    with pytest.raises(InvalidInput) as caught:
        load_desired(tree)  # type: ignore[arg-type]
    return caught.value.problems


def test_a_file_name_that_is_not_utf8_never_puts_invalid_utf8_in_a_note(tmp_path: Path) -> None:
    """A broken file named with byte 0xff: its problem shows the byte escaped, and the invalid status
    written as a git note is valid UTF-8 JSON."""
    repo, sha = _repo(tmp_path, {b"services/bad\xff.yaml": b"a: [\n"})
    [problem] = _problems(GitTree(repo, sha))
    assert problem.file == "services/bad\\xff.yaml"
    assert PROBLEM_FORM.match(str(problem)), str(problem)

    publisher = GitNotesPublisher(str(repo), push=False)
    publisher.publish(CommitStatus(sha, AGGREGATE, "failure", f"invalid: {problem}"))
    publisher.publish(CommitStatus(sha, "ecs-gitops/prod/raw", "failure", "raw bad\udcfe name"))
    raw = _git(repo, "notes", "--ref", "ecs-gitops", "show", sha)
    note = json.loads(raw.decode("utf-8"))  # strict: raises on invalid UTF-8
    assert note[AGGREGATE]["description"].startswith("invalid: services/bad\\xff.yaml:2: /: not valid YAML")
    assert note["ecs-gitops/prod/raw"]["description"] == "raw bad\\xfe name"
    publisher.close()


@pytest.mark.parametrize("key", [" lead", "a b", "tab\tbed", "\ufeffbom", "em\u2003space", "zero\u200bwidth"])
def test_keys_with_whitespace_or_invisible_characters_keep_the_problem_format(
    tmp_path: Path, key: str
) -> None:
    """An unknown key holding whitespace, U+FEFF or a zero-width space is reported at a pointer that
    shows those characters escaped, so each problem is still FILE:LINE: /pointer: message."""
    (tmp_path / "web.yaml").write_text(
        "apiVersion: ecs-gitops/v1\nkind: Service\nmetadata: {name: web}\nspec:\n  cluster: prod\n"
        f"  launchType: EC2\n  taskDefinition: {{family: web, containerDefinitions: [{{name: app, "
        f"image: 'nginx:1', memory: 64}}]}}\n  {json.dumps(key)}: 1\n",
        encoding="utf-8",
    )
    problems = _problems(DirTree(tmp_path))
    for problem in problems:
        assert PROBLEM_FORM.match(str(problem)), str(problem)
    [unknown] = [p for p in problems if p.pointer.startswith("/spec/")]
    assert unknown.line == 8
    assert "\\u" in unknown.pointer or "\\t" in unknown.pointer


def test_problems_about_the_whole_root_name_it_relative_to_the_repository(tmp_path: Path) -> None:
    """The agent's clone lives in its data folder; a commit without manifests under source.path is
    reported as ``deploy@<sha>``, never by the clone's path."""
    repo, sha = _repo(tmp_path, {b"README.md": b"nothing here\n", b"deploy/notes.txt": b"x\n"})
    data_dir = tmp_path / "agent-data"
    source = GitSource(str(repo), "main", workdir=data_dir / "source")
    assert source.fetch().sha == sha
    problems = _problems(source.tree(sha, "deploy"))
    assert [str(p) for p in problems] == [
        f"deploy@{sha[:12]}: /: no manifests or task definitions found here"
    ]
    assert not any(str(data_dir) in str(p) for p in problems)
    root = _problems(source.tree(sha, ""))
    assert [p.file for p in root] == [f".@{sha[:12]}"]
    source.close()
