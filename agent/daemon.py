"""The agent as a process: a git source, a state store, a status outbox, and a scheduler calling ticks.

``Agent.tick()`` fetches the branch and reconciles its head (``apply`` reconciles a given ref).
``Agent.run()`` is the daemon: APScheduler 3 calls ``tick`` every ``interval`` (with jitter), at each
``wake_at`` a rollout asks for, and at once when a local repository gets a commit (watchfiles). A lock
makes sure two ticks never run at the same time; one that is asked for meanwhile runs right after.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import git
import structlog

from agent.aws.clients import Aws
from agent.aws.pacing import Pacer
from agent.errors import PermanentError, TransientError
from agent.git.auth import GitAuth
from agent.git.source import GitSource
from agent.git.watching import LocalRepoWatcher
from agent.reconcile import Reconciler, TickResult
from agent.status.model import Publisher
from agent.status.outbox import Outbox
from agent.store.sqlite import SqliteStore

log = structlog.get_logger()


def make_publisher(config: Any, source: GitSource) -> Publisher:
    """The commit-status publisher the config asks for (gitnotes by default, on the source's clone)."""
    from agent.status.github import GitHubPublisher
    from agent.status.gitlab import GitLabPublisher
    from agent.status.gitnotes import GitNotesPublisher
    from agent.status.log import LogPublisher

    status = config.status
    if status.publisher == "github":
        gh = status.github
        return GitHubPublisher(
            gh.repository, token_env=gh.token_env, token_file=gh.token_file, base_url=gh.api_url
        )
    if status.publisher == "gitlab":
        gl = status.gitlab
        return GitLabPublisher(gl.project, token_env=gl.token_env, base_url=gl.api_url)
    if status.publisher == "log":
        return LogPublisher()
    return GitNotesPublisher(str(source.clone_path), remote="origin")


class Agent:
    """One agent: reconciles one branch of one repository into ECS."""

    def __init__(
        self,
        config: Any,
        data_dir: Path,
        aws: Aws | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        monotonic: Callable[[], float] = time.monotonic,
        pacer: Pacer | None = None,
    ) -> None:
        self.config = config
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        src = config.source
        self.source = GitSource(
            src.repo, src.branch, workdir=self.data_dir / "source", auth=GitAuth(token_env=src.token_env)
        )
        self.source.prepare()
        self.aws = aws or Aws(config.aws.region, config.aws.endpoint_url, config.aws.profile)
        self.store = SqliteStore(self.data_dir / config.store.path)
        self.outbox = Outbox(make_publisher(config, self.source), clock=monotonic)
        self.reconciler = Reconciler(self.aws, config, self.store, self.outbox, clock, pacer)
        self._lock = threading.Lock()
        self._again = threading.Event()

    def tick(self, ref: str | None = None) -> TickResult | None:
        """Fetch, then reconcile the branch head (or ``ref``). None when the source could not be read."""
        if not self._lock.acquire(blocking=False):
            self._again.set()  # a tick is running: run once more when it ends
            return None
        try:
            while True:
                self._again.clear()
                result = self._tick_once(ref)
                if not self._again.is_set():
                    return result
        finally:
            self._lock.release()

    def _tick_once(self, ref: str | None) -> TickResult | None:
        try:
            fetched = self.source.fetch()
            sha = fetched.sha if ref is None else self._resolve(ref)
            self.source.verify(sha)
            tree = self.source.tree(sha, self.config.source.path)
            return self.reconciler.tick(tree, sha)
        except TransientError as e:
            log.warning("tick.transient", error=str(e))
            self.outbox.flush()
            return None
        except PermanentError as e:
            # Nothing to deploy until a human acts (no such branch yet, an unknown ref): say so, keep running.
            log.error("tick.failed", error=str(e))
            return None

    def _resolve(self, ref: str) -> str:
        repo = git.Repo(self.source.clone_path)
        try:
            return repo.commit(ref).hexsha
        except (git.BadName, ValueError):
            pass
        try:  # a commit that is not on the tracked branch (a pull request head, say)
            repo.git.fetch("origin", ref)
            return repo.commit("FETCH_HEAD").hexsha
        except (git.GitCommandError, git.BadName, ValueError) as e:
            raise PermanentError(f"{ref!r} is not a commit of {self.source.display_url}") from e
        finally:
            repo.close()

    # -- the daemon ------------------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Tick on schedule until ``stop`` is set."""
        from apscheduler.schedulers.background import BackgroundScheduler
        from apscheduler.triggers.interval import IntervalTrigger

        interval = self.config.source.interval_seconds
        scheduler = BackgroundScheduler(timezone=UTC, job_defaults={"coalesce": True, "max_instances": 1})

        def job() -> None:
            result = self.tick()
            if result is not None and result.wake_at is not None:
                when = max(result.wake_at, datetime.now(UTC) + timedelta(seconds=1))
                scheduler.add_job(job, "date", run_date=when, id="wake", replace_existing=True)

        def now() -> None:
            scheduler.add_job(job, id="now", replace_existing=True)  # no trigger: runs at once

        scheduler.add_job(job, IntervalTrigger(seconds=interval, jitter=max(1, interval // 10)), id="poll")
        scheduler.add_job(self.outbox.flush, "interval", seconds=10, id="statuses")
        scheduler.start()
        now()
        watcher = None
        if self.source.local_path is not None:
            watcher = LocalRepoWatcher(self.source.local_path, self.config.source.branch, now)
            watcher.start()
        log.info(
            "agent.started",
            repo=self.source.display_url,
            branch=self.config.source.branch,
            interval=interval,
            watching=watcher is not None,
        )
        try:
            stop.wait()
        finally:
            if watcher is not None:
                watcher.stop()
            scheduler.shutdown(wait=True)
            self.outbox.flush()
            log.info("agent.stopped")
