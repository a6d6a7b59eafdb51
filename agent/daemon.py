"""The agent as a process: a git source, a state store, a status outbox, and a loop calling ticks.

``Agent.tick()`` fetches the branch and reconciles its head (``apply`` reconciles a given ref).
``Agent.plan_proposals()`` plans the heads of ``source.planRefs`` (pull requests), never applying them
(agent/reconcile/previews.py). ``Agent.run()`` is the daemon: a tick loop (agent/reconcile/scheduling.py)
calls ``tick`` every ``interval`` (with jitter), at each ``wake_at`` a rollout asks for, and soon after a
local repository gets a commit (watchfiles) or a push webhook arrives (``trigger_now``). Ticks never overlap
and never run back to back: the loop pauses after each one, with the tick lock free, and asks made meanwhile
coalesce into one follow-up tick. An ask that arrives while the tick is still only reading (before its first
AWS write) interrupts it instead, and the next tick starts at once; a commit that changes a few services is
acted on first for those services (agent/reconcile/focusing.py). A tick that outlasts the interval counts as
an overrun (the ``ecs_gitops_tick_overrun_total`` metric, a ``tick.overrun`` log line, the /readyz body).
Pull-request plans run on a thread of their own, after each tick, with a reconciler of their own: they never
hold the tick lock, so a huge proposal never delays a deployment. ``run()`` also serves /healthz, /readyz,
/metrics, the webhooks and the dashboard (agent/http/); every tick's outcome feeds readiness, the metrics
and the dashboard (``last_result``, the status history).

Several replicas may share one DynamoDB store (docs/ha.md): each tick first takes or renews the leader
lease, and a replica that does not hold it stands by (ready, not acting). ``run()`` also renews the lease
every third of its TTL (APScheduler, also flushing statuses, so both go on during a long tick) and ticks
at once when it takes the lease over. A Git remote that cannot be reached does not stop a rollout: the
tick reconciles the last commit fetched.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import git
import structlog
from structlog.contextvars import bound_contextvars

from agent.aws.clients import Aws
from agent.aws.pacing import Pacer
from agent.errors import AgentError, PermanentError, TransientError
from agent.git.auth import GitAuth
from agent.git.source import GitSource
from agent.git.verifying import UntrustedCommit, verifier_from
from agent.heap import freeze_heap
from agent.http.dashboard import Dashboard
from agent.http.metrics import Metrics, ServiceView
from agent.http.server import AgentServer, Endpoints, Readiness
from agent.manifests.tree import Tree
from agent.reconcile import PlanResult, Reconciler, TickResult, rollout_record
from agent.reconcile.previews import Preview, Previewer
from agent.reconcile.scheduling import TickLoop, Worker, poll_jitter
from agent.status import factory as status_factory
from agent.status.comments import make_comments
from agent.status.model import Publisher
from agent.status.outbox import Outbox
from agent.store import LeaseLost, SoleLease, open_store

log = structlog.get_logger()


def _never() -> bool:
    return False


def make_publisher(config: Any, source: GitSource) -> Publisher:
    """The commit-status publisher the config asks for (gitnotes by default, on the source's clone)."""
    return status_factory.make_publisher(config, source.clone_path)


class _Reconciler(Reconciler):
    """A Reconciler that keeps the desired state of its last plan, for the metrics' strategy labels."""

    last: PlanResult | None = None

    def plan(self, tree: Tree) -> PlanResult:
        self.last = super().plan(tree)
        return self.last


def strategy_types(result: PlanResult | None) -> dict[tuple[str, str], str]:
    """(cluster, service) -> the DeploymentStrategy type it uses (rolling when it names none), built once
    per tick: one pass over the services."""
    if result is None:
        return {}
    desired = result.desired
    out: dict[tuple[str, str], str] = {}
    for name, manifest in desired.services.items():
        spec = manifest.spec
        strategy = spec.get("strategy")
        if isinstance(strategy, str):
            found = desired.strategies.get(strategy)
            strategy = found.spec if found is not None else None
        key = (spec.get("cluster"), spec.get("serviceName", name))
        out.setdefault(key, str((strategy or {}).get("type") or "rolling"))
    return out


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
            src.repo,
            src.branch,
            workdir=self.data_dir / "source",
            auth=GitAuth(token_env=src.token_env),
            verifier=verifier_from(config),  # None unless the config asks for signed commits
        )
        self.source.prepare()
        self.aws = aws or Aws(config.aws.region, config.aws.endpoint_url, config.aws.profile)
        self.store, self.lease = open_store(config.store, self.data_dir, self.aws, clock)
        self.outbox = Outbox(
            make_publisher(config, self.source),
            clock=monotonic,
            store=self.store,
            target_url=config.status.target_url,
        )
        self.reconciler = _Reconciler(self.aws, config, self.store, self.outbox, clock, pacer)
        # Proposals are planned apart from the ticks, so with a reconciler of their own (its caches are
        # not shared with the tick's thread; the pacer is: they spend one budget of AWS calls).
        self.planner = Reconciler(self.aws, config, self.store, self.outbox, clock, self.reconciler.pacer)
        self.previewer = Previewer(
            self.planner.plan,
            self.source,
            self.outbox,
            self.store,
            make_comments(config),
            src.path,
            clock,
        )
        self.monotonic = monotonic
        self.metrics = Metrics(self.aws.counter, self.outbox)
        self.readiness = Readiness(src.interval_seconds, clock, self.outbox.undelivered_for)
        self.server: AgentServer | None = None
        self.last_result: TickResult | None = None  # the last tick that completed (the dashboard shows it)
        self.last_tick_at: datetime | None = None
        self.dashboard = Dashboard(self)
        self._lock = threading.Lock()  # held while a tick runs
        self._again = threading.Event()  # a tick was asked for while one ran (no loop running)
        self._plan_lock = threading.Lock()  # held while proposals are planned
        self._loop: TickLoop | None = None  # run()'s tick loop, while it runs
        self.leading = False  # holds the leader lease (always, with SQLite), as of the last check
        self._restored = False  # the outbox has taken over the statuses kept in the store
        self._source_down = False  # the last tick could not fetch and reconciled the last commit fetched
        self._lead_lock = threading.Lock()
        self.heap_frozen = False  # freeze_heap() runs after the first tick that finishes (True: never)

    def tick(
        self, ref: str | None = None, interrupted: Callable[[], bool] | None = None
    ) -> TickResult | None:
        """Fetch, then reconcile the branch head (or ``ref``). None when the tick did not finish (Git or AWS
        unreachable, see the log), this replica stands by (``leading`` is False), or a tick was running:
        then one more tick is queued (run()'s loop runs it; without the loop, the running call does, after
        releasing the lock), never dropped. Raises ``Interrupted`` when ``interrupted()`` turned true
        before the tick's first AWS write (run()'s loop passes it: a newer event asks for a tick)."""
        while True:
            if not self._lock.acquire(blocking=False):
                loop = self._loop
                if loop is not None:
                    loop.ask()
                    return None
                self._again.set()
                if not self._lock.acquire(blocking=False):
                    return None  # the running call sees the flag once it has released the lock
            try:
                self._again.clear()
                self.reconciler.interrupted = interrupted or _never
                result = self._tick_once(ref)
            finally:
                self.reconciler.interrupted = _never
                self._lock.release()
            if self._loop is not None or not self._again.is_set():
                return result

    def close(self) -> None:
        """Give the leader lease up (a one-shot ``apply`` that ends): the next replica need not wait."""
        if self.leading:
            self.lease.release()
            self.leading = False

    def plan_proposals(self) -> list[Preview]:
        """Plan the new heads of ``source.planRefs``; publish ``ecs-gitops/plan`` on each. Never raises for
        git or AWS trouble (the next call tries again); skipped while another call plans them, and on a
        replica that does not hold the leader lease (the leader plans them; its writes are the only ones let
        through). Never takes the tick lock: ticks go on meanwhile."""
        if not self.config.source.plan_refs or not self._plan_lock.acquire(blocking=False):
            return []
        try:
            if not self.leading:
                return []
            with bound_contextvars(phase="plan-proposals"):
                return self.previewer.run(self.config.source.plan_refs)
        except LeaseLost as e:
            self._step_down(str(e))
            return []
        except (TransientError, PermanentError) as e:
            log.warning("plan.proposals_failed", error=str(e))
            return []
        finally:
            self._plan_lock.release()

    def plan_ref(self, ref: str, number: int | None = None) -> Preview:
        """Plan one ref or commit (``plan --publish``): publish ``ecs-gitops/plan``, comment on ``number``
        (default: the pull request ``ref`` names). Raises what stops it (an unknown ref, git or AWS down,
        another replica holding the leader lease: the status and the record go through the shared store)."""
        with self._plan_lock:
            if not self._lead():
                holder = (self.lease.holder() or {}).get("owner", "another replica")
                raise PermanentError(f"{holder} holds the leader lease: plan --publish writes nothing")
            self.source.fetch()
            sha = self._resolve(ref)
            return self.previewer.preview(ref, sha, number)

    def trigger_now(self) -> None:
        """Ask for a tick soon (a push webhook): run()'s loop runs it at once, or when the tick in progress
        has stopped reading (interrupted) or has ended and paused (asks coalesce); without the loop, on a
        thread of its own."""
        loop = self._loop
        if loop is not None:
            loop.ask()
        else:
            threading.Thread(target=self.tick, name="tick", daemon=True).start()

    def _tick_once(self, ref: str | None) -> TickResult | None:
        if not self._lead():
            return None
        started = self.monotonic()
        result = self._reconcile(ref)
        seconds = self.monotonic() - started
        self._observe(result, seconds)
        self._took(seconds)
        if result is not None and not self.heap_frozen:
            self.heap_frozen = True
            freeze_heap()
        return result

    def _took(self, seconds: float) -> None:
        """Count a tick that outlasted the poll interval: the metric, a log line, the /readyz body."""
        if self.readiness.took(seconds):
            self.metrics.tick_overruns.inc()
            log.warning(
                "tick.overrun",
                seconds=round(seconds, 1),
                interval=self.readiness.interval,
                overruns=self.readiness.overruns,
            )

    # -- leadership ------------------------------------------------------------------------------------

    def _lead(self) -> bool:
        """Take or renew the leader lease. True: act. False: stand by (ready, but no tick) or the store
        cannot be reached (no tick, so readiness fades if that lasts)."""
        with self._lead_lock:
            try:
                leading = self.lease.acquire()
            except AgentError as e:
                log.warning("lease.unavailable", owner=self.lease.owner, error=str(e))
                return False
            if not leading:
                if self.leading:
                    self._step_down("another replica holds the lease")
                self.readiness.standing_by(self.reconciler.clock(), self.lease.holder())
                log.debug("lease.standby", owner=self.lease.owner, leader=self.lease.holder())
                return False
            self.leading = True
            if not self._restored:
                try:  # what a previous process or leader could not send yet
                    self.outbox.restore()
                    self._restored = True
                except AgentError as e:
                    log.warning("status.restore_failed", error=str(e))
            return True

    def _step_down(self, reason: str) -> None:
        """This replica lost the lease: stop sending statuses (the new leader sends them from the store)."""
        if self.leading:
            log.warning("lease.standing_down", owner=self.lease.owner, reason=reason)
        self.leading = False
        self._restored = False
        self.outbox.clear()

    def _heartbeat(self) -> None:
        """Renew the lease between ticks (a poll interval may be longer than the TTL); tick at once on
        taking it over."""
        was_leading = self.leading
        if self._lead() and not was_leading:
            self.trigger_now()

    def _flush_statuses(self) -> None:
        if self.leading:
            self.outbox.flush()

    # -- one tick --------------------------------------------------------------------------------------

    def _fetch(self, ref: str | None) -> str:
        """The sha to reconcile: the fetched branch head (or ``ref``). When the remote cannot be reached,
        the head fetched last: the desired state is still that commit, and a rollout must go on."""
        self._source_down = False
        try:
            fetched = self.source.fetch()
        except TransientError as e:
            last = self.source.head() if ref is None else None
            if last is None:
                raise
            log.warning("git.unreachable", error=str(e), reconciling=last[:12])
            self._source_down = True
            return last
        return fetched.sha if ref is None else self._resolve(ref)

    def _reconcile(self, ref: str | None) -> TickResult | None:
        phase = "fetch"
        try:
            with bound_contextvars(phase=phase):
                sha = self._fetch(ref)
                try:
                    self.source.verify(sha)
                except UntrustedCommit as e:  # reported on the commit; nothing is read or changed
                    log.error("commit.untrusted", sha=sha[:12], reason=e.reason)
                    return self.reconciler.untrusted(sha, str(e))
                tree = self.source.tree(sha, self.config.source.path)
                self.reconciler.checkpoint()
            phase = "reconcile"
            with bound_contextvars(phase=phase, sha=sha[:12]):
                return self.reconciler.tick(tree, sha)
        except LeaseLost as e:
            self._step_down(str(e))
            return None
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
            failed = result is None or self._source_down
            self.metrics.tick("error" if failed or result is None else result.outcome, seconds)
            if result is None:
                return
            now = self.reconciler.clock()
            if not failed:  # a tick on the last commit fetched keeps rollouts going, but Git is down
                self.readiness.ticked(now)
                self.metrics.good_tick(now)
            self.last_result, self.last_tick_at = result, now
            self.dashboard.ticked(result, now)
            self.metrics.drifted_services.set(len(result.drifted))
            self.metrics.services(
                self._service_views(result), now, self._committed_at, self.reconciler.engine.last_views
            )
        except Exception as e:  # pragma: no cover - a bug here must not stop deployments
            log.error("metrics.failed", error=repr(e))

    def _service_views(self, result: TickResult) -> list[ServiceView]:
        """Each service with a status on this tick, its strategy type and its rollout record."""
        records = {key: value for key, value in self.store.items("rollout/")}
        types = strategy_types(self.reconciler.last)
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
                    types.get((cluster, service), "rolling"),
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
            endpoints, server_cfg.host, server_cfg.port if port is None else port, server_cfg.webhook_port
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
        """Tick on schedule until ``stop`` is set; a stop waits for at most the tick in progress."""
        from apscheduler.schedulers.background import BackgroundScheduler

        interval = self.config.source.interval_seconds
        scheduler = BackgroundScheduler(timezone=UTC, job_defaults={"coalesce": True, "max_instances": 1})
        scheduler.add_job(self._flush_statuses, "interval", seconds=10, id="statuses")
        if not isinstance(self.lease, SoleLease):
            renew = max(1.0, self.config.store.lease_ttl_seconds / 3)
            scheduler.add_job(self._heartbeat, "interval", seconds=renew, id="lease")
        server = self.server
        if server is None:
            try:
                server = self.serve()
            except OSError as e:
                # Deployments go on; the failing health check makes the orchestrator notice and replace us.
                log.error("server.failed", port=self.config.server.port, error=str(e))
        status_factory.check_publisher(self.outbox.publisher)
        previews = Worker(self.plan_proposals, name="plan-proposals").start()

        def tick() -> float | None:
            result = self.tick(interrupted=loop.interrupting)
            if self.config.source.plan_refs:
                previews.ask()
            if result is None or result.wake_at is None:
                return None
            return max(1.0, (result.wake_at - datetime.now(UTC)).total_seconds())

        loop = TickLoop(tick, interval, jitter=poll_jitter(interval))
        self._loop = loop
        scheduler.start()
        loop.start()
        watcher = None
        if self.source.local_path is not None:
            from agent.git.watching import LocalRepoWatcher  # watchfiles and anyio: only the daemon watches

            watcher = LocalRepoWatcher(self.source.local_path, self.config.source.branch, loop.ask)
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
            log.info("agent.stopping", ticking=loop.running)
            if watcher is not None:
                watcher.stop()
            loop.stop()  # after the tick in progress
            self._loop = None
            if not previews.stop(timeout=max(5.0, self.readiness.last_tick_seconds or 0.0)):
                log.warning("plan.proposals_abandoned", reason="still planning at shutdown")
            if server is not None:
                server.stop()
            self.server = None
            scheduler.shutdown(wait=True)
            self._flush_statuses()
            self.close()  # another replica takes over now, not after the TTL
            log.info("agent.stopped")
