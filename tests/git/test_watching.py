"""LocalRepoWatcher on real repositories: a branch commit calls back within a second, noise does not."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import git
import pytest
from structlog.testing import capture_logs
from watchfiles import Change

from agent.git.watching import LocalRepoWatcher, git_dir_of

QUIET = 1.5  # longer than the promised one second: how long a non-event is given to show up


def init_repo(path: Path, bare: bool = False) -> git.Repo:
    repo = git.Repo.init(path, bare=bare, initial_branch="main")
    with repo.config_writer() as config:
        config.set_value("user", "name", "Test Author")
        config.set_value("user", "email", "author@example.com")
        config.set_value("commit", "gpgsign", "false")
    return repo


def commit(repo: git.Repo, name: str, content: str) -> str:
    (Path(repo.working_tree_dir) / name).write_text(content)
    repo.index.add([name])
    return repo.index.commit(f"write {name}").hexsha


class Calls:
    """An on_change callback that counts calls and lets a test wait for the next one."""

    def __init__(self) -> None:
        self.count = 0
        self.event = threading.Event()

    def __call__(self) -> None:
        self.count += 1
        self.event.set()

    def wait(self, timeout: float) -> bool:
        fired = self.event.wait(timeout)
        self.event.clear()
        return fired


@pytest.fixture
def work(tmp_path: Path) -> git.Repo:
    repo = init_repo(tmp_path / "work")
    commit(repo, "web.yaml", "image: web:v1\n")
    return repo


def test_commit_calls_back_within_a_second(work):
    """A new commit on the watched branch of a local work tree triggers on_change in under a second."""
    calls = Calls()
    with LocalRepoWatcher(Path(work.working_tree_dir), "main", calls):
        commit(work, "web.yaml", "image: web:v2\n")
        started = time.monotonic()
        assert calls.wait(timeout=5)
        assert time.monotonic() - started < 1.0


def test_push_to_a_bare_repository_calls_back(work, tmp_path):
    """A push that moves the branch in a local bare repository triggers on_change."""
    bare = tmp_path / "remote.git"
    init_repo(bare, bare=True)
    work.create_remote("origin", str(bare))
    work.git.push("origin", "main")
    calls = Calls()
    with LocalRepoWatcher(bare, "main", calls):
        commit(work, "web.yaml", "image: web:v2\n")
        work.git.push("origin", "main")
        assert calls.wait(timeout=5)


def test_notes_and_other_branches_do_not_call_back(work):
    """A notes write (our own statuses) or a commit on another branch is ignored; a commit on main is not."""
    sha = work.head.commit.hexsha
    work.git.branch("other")
    calls = Calls()
    with LocalRepoWatcher(Path(work.working_tree_dir), "main", calls):
        work.git.notes("--ref", "ecs-gitops", "add", "-m", '{"state": "success"}', sha)
        work.git.notes("--ref", "ecs-gitops", "add", "-f", "-m", '{"state": "failure"}', sha)
        other_tree = work.head.commit.tree.hexsha
        other_commit = work.git.commit_tree(other_tree, "-p", sha, "-m", "on other")
        work.git.update_ref("refs/heads/other", other_commit)
        assert not calls.wait(timeout=QUIET)
        commit(work, "web.yaml", "image: web:v2\n")  # the watcher was alive all along
        assert calls.wait(timeout=5)
    assert calls.count == 1


def test_only_branch_files_are_relevant(tmp_path):
    """The filter keeps the branch ref, its reflog, packed-refs and HEAD, and drops objects and notes."""
    repo = init_repo(tmp_path / "work")
    watcher = LocalRepoWatcher(tmp_path / "work", "feature/x", lambda: None)
    git_dir = Path(repo.git_dir).resolve()
    assert git_dir_of(tmp_path / "work") == git_dir

    def relevant(rel: str) -> bool:
        return watcher.is_relevant(Change.modified, str(git_dir / rel))

    for rel in ["refs/heads/feature/x", "logs/refs/heads/feature/x", "packed-refs", "HEAD"]:
        assert relevant(rel), rel
    for rel in [
        "objects/ab/cdef",
        "refs/notes/ecs-gitops",
        "logs/refs/notes/ecs-gitops",
        "index",
        "refs/heads/feature/x.lock",
        "refs/heads/main",
        "logs/HEAD",
        "FETCH_HEAD",
    ]:
        assert not relevant(rel), rel
    assert not watcher.is_relevant(Change.added, str(tmp_path / "elsewhere" / "HEAD"))


def test_stop_joins_the_thread_and_silences_the_callback(work):
    """After stop() the thread is gone and a new commit no longer calls back."""
    calls = Calls()
    watcher = LocalRepoWatcher(Path(work.working_tree_dir), "main", calls)
    watcher.start()
    assert watcher.running
    watcher.stop(timeout=5)
    assert not watcher.running
    commit(work, "web.yaml", "image: web:v2\n")
    assert not calls.wait(timeout=QUIET)


def test_failing_callback_is_logged_and_watching_goes_on(work):
    """A failing on_change is logged as git.watch_callback_failed and later commits still call back."""
    calls = Calls()

    def flaky() -> None:
        calls()
        if calls.count == 1:
            raise RuntimeError("tick failed")

    with capture_logs() as logs, LocalRepoWatcher(Path(work.working_tree_dir), "main", flaky):
        commit(work, "web.yaml", "image: web:v2\n")
        assert calls.wait(timeout=5)
        commit(work, "web.yaml", "image: web:v3\n")
        assert calls.wait(timeout=5)
    assert any(e["event"] == "git.watch_callback_failed" and "tick failed" in e["error"] for e in logs)


def test_missing_repository_is_refused(tmp_path):
    """start() on a path without a git directory raises instead of watching nothing."""
    with pytest.raises(FileNotFoundError):
        LocalRepoWatcher(tmp_path / "nope", "main", lambda: None).start()
