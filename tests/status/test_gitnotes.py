"""Git-notes statuses reach the source repository, survive concurrent writers and type remote failures."""

from __future__ import annotations

import argparse
import io
import json
import shutil
import subprocess
from pathlib import Path

import git
import pytest
from structlog.testing import capture_logs

from agent.errors import PermanentError, TransientError
from agent.status.cli import add_status_parser, status_command
from agent.status.gitnotes import NOTES_REF, GitNotesPublisher, merge_notes
from agent.status.model import AGGREGATE, CommitStatus, service_context


def _configure(repo: git.Repo) -> None:
    with repo.config_writer() as cfg:
        cfg.set_value("user", "name", "Test")
        cfg.set_value("user", "email", "test@example.com")


def _source(path: Path) -> str:
    """A non-bare repository with one commit on main; returns the commit's sha."""
    with git.Repo.init(path, initial_branch="main") as repo:
        _configure(repo)
        (path / "service.yaml").write_text("apiVersion: ecs-gitops/v1\n")
        repo.index.add(["service.yaml"])
        return repo.index.commit("first").hexsha


def _bare_origin(work: Path, bare: Path) -> None:
    """A bare repository holding work's main branch."""
    git.Repo.init(bare, bare=True).close()
    _git(work, "push", "--quiet", str(bare), "main:main")


def _clone(url: str, path: Path) -> None:
    with git.Repo.clone_from(url, path) as repo:
        _configure(repo)


def _git(repo_path: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo_path), *args], capture_output=True, text=True, check=True
    ).stdout


def _show(repo_path: Path, sha: str) -> dict:
    """What a user sees: ``git notes --ref ecs-gitops show <sha>`` run in ``repo_path``."""
    return json.loads(_git(repo_path, "notes", "--ref", "ecs-gitops", "show", sha))


def _status(
    sha: str, context: str = AGGREGATE, state: str = "success", text: str = "deployed"
) -> CommitStatus:
    return CommitStatus(sha=sha, context=context, state=state, description=text)


def test_local_non_bare_source_sees_the_note(tmp_path: Path) -> None:
    """A status written through a clone of a local non-bare repository is shown by git notes there."""
    sha = _source(tmp_path / "src")
    _clone(str(tmp_path / "src"), tmp_path / "clone")
    publisher = GitNotesPublisher(str(tmp_path / "clone"))

    publisher.publish(_status(sha, text="web: rolled out v2 " + "x" * 200))

    note = _show(tmp_path / "src", sha)
    entry = note[AGGREGATE]
    assert entry["state"] == "success"
    assert len(entry["description"]) == 140 and entry["description"].endswith("…")
    assert entry["updatedAt"].endswith("Z") and entry["targetUrl"] is None
    # The checked-out branch of the source was not touched.
    assert _git(tmp_path / "src", "rev-parse", "HEAD").strip() == sha


def test_bare_source_by_file_url_sees_the_note(tmp_path: Path) -> None:
    """A status written through a clone of a bare repository reached by file:// URL is shown there."""
    sha = _source(tmp_path / "work")
    _bare_origin(tmp_path / "work", tmp_path / "origin.git")
    _clone(f"file://{tmp_path / 'origin.git'}", tmp_path / "clone")

    GitNotesPublisher(str(tmp_path / "clone")).publish(
        CommitStatus(sha, service_context("prod", "web"), "pending", "rolling out", "https://ci.example/1")
    )

    note = _show(tmp_path / "origin.git", sha)
    assert note == {
        "ecs-gitops/prod/web": {
            "state": "pending",
            "description": "rolling out",
            "updatedAt": note["ecs-gitops/prod/web"]["updatedAt"],
            "targetUrl": "https://ci.example/1",
        }
    }


def test_two_contexts_on_one_commit_are_both_kept(tmp_path: Path) -> None:
    """Writing a second context keeps the first; writing a context again replaces only that context."""
    sha = _source(tmp_path / "src")
    _clone(str(tmp_path / "src"), tmp_path / "clone")
    publisher = GitNotesPublisher(str(tmp_path / "clone"))

    publisher.publish(_status(sha, service_context("prod", "web"), "pending", "rolling out"))
    publisher.publish(_status(sha, AGGREGATE, "pending", "1 service rolling out"))
    publisher.publish(_status(sha, service_context("prod", "web"), "success", "done"))

    note = _show(tmp_path / "src", sha)
    states = {k: v["state"] for k, v in note.items()}
    assert states == {"ecs-gitops/prod/web": "success", AGGREGATE: "pending"}
    assert publisher.read(sha) == note


def test_concurrent_writer_from_a_second_clone(tmp_path: Path) -> None:
    """Two clones writing different contexts on the same commit, interleaved, both survive on the source."""
    sha = _source(tmp_path / "src")
    _clone(str(tmp_path / "src"), tmp_path / "a")
    _clone(str(tmp_path / "src"), tmp_path / "b")
    a = GitNotesPublisher(str(tmp_path / "a"))
    b = GitNotesPublisher(str(tmp_path / "b"))

    a.publish(_status(sha, service_context("prod", "web")))
    b.publish(_status(sha, service_context("prod", "api")))  # b's local notes are behind: it must merge
    a.publish(_status(sha, AGGREGATE))  # and now a is behind b

    assert set(_show(tmp_path / "src", sha)) == {"ecs-gitops/prod/web", "ecs-gitops/prod/api", AGGREGATE}
    assert set(b.read(sha)) == {"ecs-gitops/prod/web", "ecs-gitops/prod/api", AGGREGATE}


def test_rejected_push_is_retried_from_a_fresh_fetch(tmp_path: Path) -> None:
    """When another writer pushes between our fetch and our push, the rejected push is retried and merged."""
    sha = _source(tmp_path / "src")
    _clone(str(tmp_path / "src"), tmp_path / "a")
    _clone(str(tmp_path / "src"), tmp_path / "b")
    a = GitNotesPublisher(str(tmp_path / "a"))
    b = GitNotesPublisher(str(tmp_path / "b"))
    a.publish(_status(sha, "ecs-gitops/prod/web"))

    real_push = b._push
    raced = []

    def push_after_a_race() -> str | None:
        if not raced:
            raced.append(True)
            a.publish(_status(sha, "ecs-gitops/prod/worker"))  # lands between b's fetch and b's push
        return real_push()

    b._push = push_after_a_race  # type: ignore[method-assign]
    with capture_logs() as logs:
        b.publish(_status(sha, "ecs-gitops/prod/api"))

    assert [e["event"] for e in logs] == ["status.gitnotes.push_rejected"]
    assert set(_show(tmp_path / "src", sha)) == {
        "ecs-gitops/prod/web",
        "ecs-gitops/prod/worker",
        "ecs-gitops/prod/api",
    }


def test_remote_that_is_gone_is_transient(tmp_path: Path) -> None:
    """A remote that no longer exists raises TransientError (the outbox retries it later)."""
    sha = _source(tmp_path / "src")
    _clone(str(tmp_path / "src"), tmp_path / "clone")
    shutil.rmtree(tmp_path / "src")
    publisher = GitNotesPublisher(str(tmp_path / "clone"))

    with pytest.raises(TransientError, match="git notes fetch from origin"):
        publisher.publish(_status(sha))


def test_without_push_the_note_stays_local(tmp_path: Path) -> None:
    """With push=False the note is written in the given repository itself and nothing is fetched."""
    sha = _source(tmp_path / "src")
    publisher = GitNotesPublisher(str(tmp_path / "src"), push=False)

    publisher.publish(_status(sha, state="failure", text="web.yaml: /spec/cluster: required"))

    assert _show(tmp_path / "src", sha)[AGGREGATE]["state"] == "failure"
    assert _git(tmp_path / "src", "rev-parse", "--verify", NOTES_REF).strip()


def test_merge_prefers_the_newer_entry_per_context() -> None:
    """Merging notes keeps every context and, per context, the entry with the newer updatedAt."""
    old = {"x": {"state": "pending", "updatedAt": "2024-01-01T00:00:00Z"}}
    new = {"x": {"state": "success", "updatedAt": "2024-01-01T00:05:00Z"}, "y": {"state": "error"}}
    assert merge_notes(new, old) == merge_notes(old, new) == new


def test_status_command_prints_the_notes_of_a_ref(tmp_path: Path) -> None:
    """``ecs-gitops status`` shows what the agent pushed, from the source path or its file:// URL."""
    sha = _source(tmp_path / "work")
    _bare_origin(tmp_path / "work", tmp_path / "origin.git")
    _clone(f"file://{tmp_path / 'origin.git'}", tmp_path / "clone")
    publisher = GitNotesPublisher(str(tmp_path / "clone"))
    publisher.publish(_status(sha, service_context("prod", "web"), "failure", "rolled back: alarm web-5xx"))
    publisher.publish(_status(sha, AGGREGATE, "failure", "1 of 1 services failed"))

    table = io.StringIO()
    assert status_command(f"file://{tmp_path / 'origin.git'}", "main", False, None, out=table) == 0
    lines = table.getvalue().splitlines()
    assert lines[0] == f"commit {sha} (main)"
    assert lines[1].split() == ["CONTEXT", "STATE", "UPDATED", "DESCRIPTION"]
    assert lines[2].startswith("ecs-gitops ") and lines[2].endswith("1 of 1 services failed")
    assert lines[3].startswith("ecs-gitops/prod/web") and "failure" in lines[3]

    # The work repo has no notes yet but its origin does: they are fetched.
    _git(tmp_path / "work", "remote", "add", "origin", str(tmp_path / "origin.git"))
    parser = argparse.ArgumentParser()
    add_status_parser(parser.add_subparsers())
    args = parser.parse_args(["status", "--repo", str(tmp_path / "work"), "--json"])
    out = io.StringIO()
    assert status_command(args.repo, args.ref, args.json, None, out=out) == 0
    document = json.loads(out.getvalue())
    assert document["sha"] == sha and list(document["statuses"]) == [AGGREGATE, "ecs-gitops/prod/web"]
    assert args.func.__name__ == "_run"


def test_status_command_on_an_unknown_ref_is_a_permanent_error(tmp_path: Path) -> None:
    """An unknown revision is reported as an error the CLI prints, not a traceback."""
    _source(tmp_path / "src")
    with pytest.raises(PermanentError, match="unknown revision 'nope'"):
        status_command(str(tmp_path / "src"), "nope", False, None)
