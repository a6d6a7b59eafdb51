"""A change trigger for a local source repository: a new commit on the branch calls back within a second.

Only for a source given as a local path (or ``file://``): a URL is polled or triggered by a webhook.
The watcher looks at the repository's git directory and reacts only to what moves the branch — its
loose ref, ``packed-refs``, ``HEAD`` and the branch's reflog. Object writes, the index, lock files and
``refs/notes`` (our own status writes) are ignored, so publishing a status never triggers a tick.
The callback only has to start a fetch; the fetch decides whether anything changed.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path

import structlog
from watchfiles import Change, watch

log = structlog.get_logger(__name__)


def git_dir_of(repo_path: Path) -> Path:
    """The directory holding refs: ``<repo>/.git`` for a work tree (or what a ``.git`` file points to,
    then its common dir for a linked work tree), the repository itself when bare."""
    repo_path = Path(repo_path).resolve()
    dot_git = repo_path / ".git"
    if dot_git.is_dir():
        return dot_git
    if dot_git.is_file():  # "gitdir: <path>" (linked work tree or submodule)
        target = dot_git.read_text(encoding="utf-8").strip().removeprefix("gitdir:").strip()
        git_dir = (repo_path / target).resolve()
        common = git_dir / "commondir"
        if common.is_file():
            return (git_dir / common.read_text(encoding="utf-8").strip()).resolve()
        return git_dir
    return repo_path


class LocalRepoWatcher:
    """Calls ``on_change`` (from a daemon thread) soon after the branch moves in a local repository.

    Bursts of file events are grouped (``debounce_ms`` at most, ``step_ms`` of quiet), so one commit
    is one call. ``start`` returns once the watch is in place; ``stop`` ends it and joins the thread.
    An exception from ``on_change`` is logged and watching goes on.
    """

    def __init__(
        self,
        repo_path: Path,
        branch: str,
        on_change: Callable[[], None],
        *,
        debounce_ms: int = 400,
        step_ms: int = 50,
    ) -> None:
        self.repo_path = Path(repo_path)
        self.branch = branch.removeprefix("refs/heads/")
        self.on_change = on_change
        self.debounce_ms = debounce_ms
        self.step_ms = step_ms
        self.git_dir = git_dir_of(self.repo_path)
        self._relevant = {
            f"refs/heads/{self.branch}",
            f"logs/refs/heads/{self.branch}",
            "packed-refs",
            "HEAD",
        }
        self._prefix = str(self.git_dir) + os.sep
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None

    def is_relevant(self, change: Change, path: str) -> bool:
        """True for a file event that can mean the branch moved (the ``watch_filter`` of watchfiles)."""
        if not path.startswith(self._prefix):
            return False
        return path[len(self._prefix) :].replace(os.sep, "/") in self._relevant

    def start(self, ready_timeout: float = 5.0) -> None:
        """Start watching in a daemon thread; return once file events are being collected."""
        if self._thread is not None and self._thread.is_alive():
            return
        if not self.git_dir.is_dir():
            raise FileNotFoundError(f"no git directory at {self.repo_path}")
        self._stop.clear()
        self._ready.clear()
        self._thread = threading.Thread(target=self._run, name=f"git-watch-{self.branch}", daemon=True)
        self._thread.start()
        if not self._ready.wait(ready_timeout):
            log.warning("git.watch_not_ready", path=str(self.git_dir), timeout=ready_timeout)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop watching and join the thread (for at most ``timeout`` seconds)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("git.watch_stop_timeout", path=str(self.git_dir), timeout=timeout)
            self._thread = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def __enter__(self) -> LocalRepoWatcher:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        log.debug("git.watch_started", path=str(self.git_dir), branch=self.branch)
        try:
            for changes in watch(
                self.git_dir,
                watch_filter=self.is_relevant,
                debounce=self.debounce_ms,
                step=self.step_ms,
                stop_event=self._stop,
                rust_timeout=200,  # also how often an idle watch yields, which is how we know it is live
                yield_on_timeout=True,
                raise_interrupt=False,
            ):
                self._ready.set()
                if not changes or self._stop.is_set():
                    continue
                log.debug("git.watch_changed", paths=sorted(p for _, p in changes))
                try:
                    self.on_change()
                except Exception as e:  # the watcher must outlive a failing callback
                    log.error("git.watch_callback_failed", error=f"{type(e).__name__}: {e}")
        except Exception as e:  # the repository went away, inotify limits, ...
            log.error("git.watch_failed", path=str(self.git_dir), error=f"{type(e).__name__}: {e}")
        finally:
            self._ready.set()
            log.debug("git.watch_stopped", path=str(self.git_dir))
