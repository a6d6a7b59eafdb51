"""The agent as a process: a git source, a state store, a status outbox, and a scheduler calling ticks.

``Agent.tick()`` fetches the branch and reconciles its head (``apply`` reconciles a given ref).
``Agent.run()`` is the daemon: APScheduler 3 calls ``tick`` every ``interval`` (with jitter), at each
``wake_at`` a rollout asks for, at once when a local repository gets a commit (watchfiles), and at once
when a push webhook arrives (``trigger_now``). A lock makes sure two ticks never run at the same time;
one that is asked for meanwhile runs right after. ``run()`` also serves /healthz, /readyz, /metrics, the
webhooks and the dashboard (agent/server.py, agent/dashboard.py); every tick's outcome feeds readiness,
the metrics and the dashboard (``last_result``, the status history).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import git
import structlog
from structlog.contextvars import bound_contextvars

from agent.aws.clients import Aws
from agent.aws.pacing import Pacer
from agent.dashboard import Dashboard
from agent.errors import PermanentError, TransientError
from agent.git.auth import GitAuth
from agent.git.source import GitSource
from agent.git.watching import LocalRepoWatcher
from agent.manifests.tree import Tree
from agent.reconcile import PlanResult, Reconciler, TickResult, rollout_record
from agent.server import AgentServer, Endpoints, Metrics, Readiness, ServiceView
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


class _Reconciler(Reconciler):
    """A Reconciler that keeps the desired state of its last plan, for the metrics' strategy labels."""

    last: PlanResult | None = None

    def plan(self, tree: Tree) -> PlanResult:
        self.last = super().plan(tree)
        return self.last


def strategy_type(result: PlanResult | None, cluster: str, service: str) -> str:
    """The DeploymentStrategy type a service uses (rolling when it names none)."""
    if result is None:
        return "rolling"
    desired = result.desired
    for name, manifest in desired.services.items():
        spec = manifest.spec
        if (spec.get("cluster"), spec.get("serviceName", name)) != (cluster, service):
            continue
        strategy = spec.get("strategy")
        if isinstance(strategy, str):
            found = desired.strategies.get(strategy)
            strategy = found.spec if found is not None else None
        return str((strategy or {}).get("type") or "rolling")
    return "rolling"


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
        self.data_dir = Path(data_dir).resolve()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        src = config.source
        self.source = GitSource(
            src.repo, src.branch, workdir=self.data_dir / "source", auth=GitAuth(token_env=src.token_env)
        )
        self.source.prepare()
        self.aws = aws or Aws(config.aws.region, config.aws.endpoint_url, config.aws.profile)
        if config.store.type != "sqlite":
            # Accepted by the schema for the HA work to come, but not built: never fall back silently.
            raise PermanentError(f"store.type {config.store.type!r} is not available yet; use sqlite")
        self.store = SqliteStore(self.data_dir / config.store.path)
        self.outbox = Outbox(make_publisher(config, self.source), clock=monotonic)
        self.reconciler = _Reconciler(self.aws, config, self.store, self.outbox, clock, pacer)
        self.monotonic = monotonic
        self.metrics = Metrics(self.aws.counter)
        self.readiness = Readiness(src.interval_seconds, clock)
        self.server: AgentServer | None = None
        self.last_result: TickResult | None = None  # the last tick that completed (the dashboard shows it)
        self.last_tick_at: datetime | None = None
        self.dashboard = Dashboard(self)
        self._lock = threading.Lock()
        self._again = threading.Event()
        self._schedule_now: Callable[[], None] | None = None

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

    def trigger_now(self) -> None:
        """Ask for a tick at once (a push webhook): scheduled by ``run()``, else on a thread of its own."""
        schedule = self._schedule_now
        if schedule is not None:
            schedule()
        else:
            threading.Thread(target=self.tick, name="tick", daemon=True).start()

    def _tick_once(self, ref: str | None) -> TickResult | None:
        started = self.monotonic()
        result = self._reconcile(ref)
        self._observe(result, self.monotonic() - started)
        return result

    def _reconcile(self, ref: str | None) -> TickResult | None:
        phase = "fetch"
        try:
            with bound_contextvars(phase=phase):
                fetched = self.source.fetch()
                sha = fetched.sha if ref is None else self._resolve(ref)
                self.source.verify(sha)
                tree = self.source.tree(sha, self.config.source.path)
            phase = "reconcile"
            with bound_contextvars(phase=phase, sha=sha[:12]):
                return self.reconciler.tick(tree, sha)
        except TransientError as e:
            log.warning("tick.transient", phase=phase, error=str(e))
            self.outbox.flush()
            return None
        except PermanentError as e:
            # Nothing to deploy until a human acts (no such branch yet, an unknown ref): say so, keep running.
            log.error("tick.failed", phase=phase, error=str(e))
            return None

    def _observe(self, result: TickResult | None, seconds: float) -> None:
        """Feed one tick's outcome to readiness and the metrics; never lets a metrics bug stop the loop."""
        try:
            self.metrics.tick(result.outcome if result is not None else "error", seconds)
            if result is None:
                return
            now = self.reconciler.clock()
            self.last_result, self.last_tick_at = result, now
            self.dashboard.ticked(result, now)
            self.readiness.ticked(now)
            self.metrics.good_tick(now)
            self.metrics.services(self._service_views(result), now, self._committed_at)
        except Exception as e:  # pragma: no cover - a bug here must not stop deployments
            log.error("metrics.failed", error=repr(e))

    def _service_views(self, result: TickResult) -> list[ServiceView]:
        """Each service with a status on this tick, its strategy type and its rollout record."""
        records = {key: value for key, value in self.store.items("rollout/")}
        views = []
        for context, status in sorted(result.statuses.items()):
            parts = context.split("/")
            if len(parts) != 3:
                continue  # the aggregate
            _, cluster, service = parts
            record = records.get(f"rollout/{cluster}/{service}")
            views.append(
                ServiceView(
                    cluster,
                    service,
                    status.state,
                    strategy_type(self.reconciler.last, cluster, service),
                    rollout_record(record),
                )
            )
        return views

    def _committed_at(self, sha: str) -> datetime | None:
        try:
            return self.source.commit_info(sha).committed_at
        except Exception:  # a commit no longer in the clone (a force-push): no observation
            return None

    def serve(self, port: int | None = None) -> AgentServer:
        """Start the HTTP server (health, readiness, metrics, webhooks, dashboard) on a daemon thread."""
        server_cfg = self.config.server
        secret_env = server_cfg.webhook_secret_env
        endpoints = Endpoints(
            self.readiness,
            self.metrics,
            trigger=self.trigger_now,
            secret=lambda: os.environ.get(secret_env),
            branch=self.config.source.branch,
            secret_env=secret_env,
            dashboard=self.dashboard.state,
        )
        self.server = AgentServer(
            endpoints, server_cfg.host, server_cfg.port if port is None else port
        ).start()
        return self.server

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
        server = self.server
        if server is None:
            try:
                server = self.serve()
            except OSError as e:
                # Deployments go on; the failing health check makes the orchestrator notice and replace us.
                log.error("server.failed", port=self.config.server.port, error=str(e))
        scheduler.start()
        self._schedule_now = now
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
            self._schedule_now = None
            if server is not None:
                server.stop()
            self.server = None
            if watcher is not None:
                watcher.stop()
            scheduler.shutdown(wait=True)
            self.outbox.flush()
            log.info("agent.stopped")
