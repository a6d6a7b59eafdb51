"""The agent's Prometheus metrics (``GET /metrics``), in a registry of each agent's own.

Each value is set where its event happens: ticks after each tick; rollouts started when this process
first sees a rollout in progress, ended when one it saw in progress succeeds or fails; the traffic weight
from the listener weights the agent engine observed (or just wrote) on each tick; the status outbox at
scrape time; and the standard ``process_*`` and ``python_*`` collectors.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from agent.aws.clients import CallCounter
from agent.rollout.decisions import SUCCESS, RolloutRecord
from agent.store import RECOVERED


@dataclass(frozen=True)
class ServiceView:
    """One service after a tick, as the metrics see it."""

    cluster: str
    service: str
    state: str  # the service's commit-status state on this tick
    strategy: str  # the DeploymentStrategy type: rolling, blueGreen, linear, canary
    record: RolloutRecord | None


class _AwsCalls:
    """``ecs_gitops_aws_calls_total``, read from the agent's CallCounter at scrape time."""

    def __init__(self, counter: CallCounter) -> None:
        self.counter = counter

    def describe(self) -> Iterable[Any]:
        return [CounterMetricFamily("ecs_gitops_aws_calls", "", labels=["service", "operation"])]

    def collect(self) -> Iterator[Any]:
        family = CounterMetricFamily(
            "ecs_gitops_aws_calls",
            "AWS API calls the agent made, by service and operation (a retried call counts once).",
            labels=["service", "operation"],
        )
        for key, n in sorted(self.counter.counts.copy().items()):
            service, _, operation = key.partition(".")
            family.add_metric([service, operation], n)
        yield family


class _Outbox:
    """``ecs_gitops_status_outbox_pending``, ``..._undelivered_seconds`` and
    ``ecs_gitops_status_publish_failures_total{provider,reason}``, read from the outbox at scrape time."""

    def __init__(self, outbox: Any) -> None:
        self.outbox = outbox

    def describe(self) -> Iterable[Any]:
        return list(self.collect())

    def collect(self) -> Iterator[Any]:
        pending = GaugeMetricFamily(
            "ecs_gitops_status_outbox_pending",
            "Commit statuses waiting to be written (the Git host down or refusing the token); 0 when all "
            "were delivered.",
        )
        pending.add_metric([], len(self.outbox.pending()))
        yield pending
        waiting = GaugeMetricFamily(
            "ecs_gitops_status_undelivered_seconds",
            "Seconds since the oldest waiting commit status first failed to be written; 0 when none did.",
        )
        waiting.add_metric([], self.outbox.undelivered_for() or 0.0)
        yield waiting
        failures = CounterMetricFamily(
            "ecs_gitops_status_publish_failures",
            "Commit-status writes that failed (each is retried), by provider and reason: auth, forbidden, "
            "not_found, invalid, rate_limited, http_5xx, unreachable, token, ...",
            labels=["provider", "reason"],
        )
        for (provider, reason), n in sorted(dict(self.outbox.failures).items()):
            failures.add_metric([provider, reason], n)
        yield failures


class _StoreRecoveries:
    """``ecs_gitops_store_recoveries_total{kind}``: damaged state the store repaired (a SQLite file that is
    not a database moved aside, a row that is not JSON dropped), read from agent.store.RECOVERED."""

    def describe(self) -> Iterable[Any]:
        return list(self.collect())

    def collect(self) -> Iterator[Any]:
        family = CounterMetricFamily(
            "ecs_gitops_store_recoveries",
            "Damage the state store repaired by kind: sqlite_file (moved aside, started afresh), sqlite_row, "
            "dynamodb_row (dropped).",
            labels=["kind"],
        )
        for kind, n in sorted(RECOVERED.items()):
            family.add_metric([kind], n)
        yield family


def live_weight(view: Any) -> int | None:
    """The production weight on the target group of the task set running the revision Git asks for
    (0 when none does), from an agent-engine observation; None when the rule has no weights."""
    production = view.traffic.production
    if not production:
        return None
    for ts in view.task_sets:
        if ts.target_group and view.target is not None and ts.task_definition == view.target:
            return int(production.get(ts.target_group, 0))
    return 0


class Metrics:
    """The agent's Prometheus metrics, in a registry of its own (several agents may share a process)."""

    def __init__(self, counter: CallCounter | None = None, outbox: Any = None) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        for standard in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
            r.register(standard)
        self.tick_duration = Histogram(
            "ecs_gitops_tick_duration_seconds",
            "How long one tick took: fetch, load, observe, plan, execute, report.",
            buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
            registry=r,
        )
        self.ticks = Counter(
            "ecs_gitops_ticks",
            "Ticks by result: unchanged, applied, rolling, failed, drifted, invalid, or error (git/AWS "
            "unreachable).",
            ["result"],
            registry=r,
        )
        self.rollouts = Counter(
            "ecs_gitops_rollouts",
            "Rollouts by result (started, succeeded, failed) and strategy type.",
            ["result", "strategy"],
            registry=r,
        )
        self.traffic_weight = Gauge(
            "ecs_gitops_traffic_weight_percent",
            "Percent of a service's production traffic on the revision Git asks for: the live listener "
            "weight for the agent engine, each tick; for the rolling and ecs engines 0 until it has "
            "rolled out, then 100.",
            ["cluster", "service"],
            registry=r,
        )
        self.commit_to_deployed = Histogram(
            "ecs_gitops_commit_to_deployed_seconds",
            "From a commit's time to the end of its successful rollout, per service.",
            buckets=(10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400),
            registry=r,
        )
        self.drifted_services = Gauge(
            "ecs_gitops_drifted_services",
            "Services found drifted on the last tick: changed in ECS since their content rolled out, while "
            "Git did not change (corrected when selfHeal is on, else only reported).",
            registry=r,
        )
        self.tick_overruns = Counter(
            "ecs_gitops_tick_overrun",
            "Ticks that took longer than the poll interval (the next one starts after a short pause, so "
            "the agent polls as often as it can; /readyz says so too).",
            registry=r,
        )
        self.last_good_tick = Gauge(
            "ecs_gitops_last_good_tick_timestamp_seconds",
            "Unix time of the last tick that completed (what /readyz looks at).",
            registry=r,
        )
        r.register(_StoreRecoveries())
        if counter is not None:
            r.register(_AwsCalls(counter))
        if outbox is not None:
            r.register(_Outbox(outbox))
        self._last: datetime | None = None  # the previous services() call
        self._seen: dict[tuple[str, str], tuple[str, str]] = {}  # (cluster, service) -> (fingerprint, result)

    def tick(self, result: str, seconds: float) -> None:
        self.ticks.labels(result=result).inc()
        self.tick_duration.observe(max(0.0, seconds))

    def good_tick(self, at: datetime) -> None:
        self.last_good_tick.set(at.timestamp())

    def services(
        self,
        views: Iterable[ServiceView],
        now: datetime,
        committed_at: Callable[[str], datetime | None],
        traffic: Mapping[str, Any] | None = None,
    ) -> None:
        """Update the per-service gauges, and count rollouts that started or ended on this tick.

        ``traffic`` holds the agent engine's observation per ``cluster/service`` (its live listener
        weights). A rollout started when its record, in progress, started after the previous call (at a
        process's first call: every rollout in progress, as a new agent counts the ends it sees); it ended
        when a record this process saw in progress turns succeeded or failed.
        """
        since, self._last = self._last, now
        for v in views:
            observed = (traffic or {}).get(f"{v.cluster}/{v.service}")
            weight = live_weight(observed) if observed is not None else None
            if weight is None:
                weight = 100 if v.state == SUCCESS else 0
            self.traffic_weight.labels(cluster=v.cluster, service=v.service).set(weight)
            rec = v.record
            if rec is None:
                continue
            key = (v.cluster, v.service)
            before = self._seen.get(key)
            self._seen[key] = (rec.fingerprint, rec.result)
            new = before != (rec.fingerprint, "in_progress")
            if rec.result == "in_progress" and new and _after(rec.started_at, since):
                self.rollouts.labels(result="started", strategy=v.strategy).inc()
            if rec.result in ("succeeded", "failed") and before == (rec.fingerprint, "in_progress"):
                self.rollouts.labels(result=rec.result, strategy=v.strategy).inc()
                when = committed_at(rec.sha) if rec.result == "succeeded" else None
                if when is not None:
                    self.commit_to_deployed.observe(max(0.0, (now - when).total_seconds()))

    def render(self) -> bytes:
        return generate_latest(self.registry)


def _after(iso: str, since: datetime | None) -> bool:
    if since is None:
        return True
    try:
        return datetime.fromisoformat(iso) >= since
    except (TypeError, ValueError):
        return False
