"""The dashboard: a read-only page served by the agent, and the JSON it polls.

``GET /dashboard/`` (``/dashboard`` redirects there) is one static HTML page with a script and a
stylesheet of its own (agent/http/web/: no build step, no external URL). The script fetches
``state.json`` every 2 s and patches the page in place. The JSON is built from what the agent already
holds after each tick, so a page left open costs no AWS or git call:

* the last tick (``Agent.last_result``): each service's commit status, whose description already says
  the phase ("canary 10 % baking, 4m left");
* the last plan (``Reconciler.last``): desired services, their strategies and windows, the revision
  Git asks for (the TaskDefinition change) against the revisions ECS runs (deployments or task sets);
* the state store's rollout records (``rollout/<cluster>/<service>``): when the rollout started, the
  bake it is in and since when, hence when the bake ends;
* the agent engine's last observation per service (``AgentEngine.last_views``): the production and
  test listener weights as the tick left them, and the task sets behind each target group;
* the windows, evaluated at request time on the agent's clock (open, next opening, what holds a
  rollout: the gate's own "waiting for ..." / "frozen by ..." texts);
* recent history: the last status changes the agent wrote, newest first, each with a link to its
  commit (GitHub or GitLab, derived from the status publisher's settings or the repository URL).

Nothing secret goes out: no environment values, no task-definition bodies, the repository URL without
credentials. The page writes every value with ``textContent`` (never ``innerHTML``) and links only
``http(s)`` URLs.
"""

from __future__ import annotations

import contextlib
import re
import threading
from collections import OrderedDict, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib import resources
from typing import Any
from urllib.parse import urlsplit

from agent.engines import windows_of
from agent.plan.model import REGISTER
from agent.plan.services import engine_of, resolve_strategy
from agent.plan.taskdefs import family_revision
from agent.reconcile import PlanResult, TickResult, rollout_record
from agent.rollout import windows
from agent.rollout.progressive import IN_PROGRESS, AgentObservation, AgentRecord, Strategy
from agent.status.model import AGGREGATE, service_context

HISTORY = 50  # status changes kept for the page (this process's, newest first)
REFRESH_SECONDS = 2  # how often the page polls state.json (the script's own constant says the same)

# Route -> (file in agent/http/web, content type). Served only by an agent that has a dashboard.
ASSETS = {
    "/dashboard/": ("dashboard.html", "text/html; charset=utf-8"),
    "/dashboard/dashboard.js": ("dashboard.js", "text/javascript; charset=utf-8"),
    "/dashboard/dashboard.css": ("dashboard.css", "text/css; charset=utf-8"),
}
STATE_PATH = "/dashboard/state.json"
# The page loads nothing but its own script, stylesheet and state.json, and may not be framed.
HEADERS = (
    (
        "Content-Security-Policy",
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    ),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("Cache-Control", "no-store"),
)


def asset(path: str) -> tuple[bytes, str] | None:
    """(body, content type) of a dashboard file for a route, None for any other path."""
    found = ASSETS.get(path)
    if found is None:
        return None
    name, content_type = found
    return resources.files("agent.http").joinpath("web", name).read_bytes(), content_type


# -- commit links ------------------------------------------------------------------------------------


def commit_url_template(config: Any, repo_url: str) -> str | None:
    """``https://host/OWNER/REPO/commit/{sha}`` (GitHub) or ``.../-/commit/{sha}`` (GitLab), or None.

    From the status publisher's settings when it is GitHub or GitLab (``status.github.repository`` on
    ``api_url``'s host; ``status.gitlab.project`` when it is a path, not a numeric ID), else from an
    https or scp-style repository URL on github.com or a host named gitlab.
    """
    status = getattr(config, "status", None)
    publisher = getattr(status, "publisher", None)
    if publisher == "github" and status.github.repository:
        return f"{_web_base(status.github.api_url, 'github')}/{status.github.repository}/commit/{{sha}}"
    if publisher == "gitlab" and status.gitlab.project and not str(status.gitlab.project).isdigit():
        return f"{_web_base(status.gitlab.api_url, 'gitlab')}/{status.gitlab.project}/-/commit/{{sha}}"
    match = re.match(r"^(?:https://(?:[^@/]+@)?|git@)([^/:]+)[/:]([^/]+/[^/]+?)(?:\.git)?/?$", repo_url)
    if match is None:
        return None
    host, path = match.groups()
    if host == "github.com":
        return f"https://github.com/{path}/commit/{{sha}}"
    if "gitlab" in host:
        return f"https://{host}/{path}/-/commit/{{sha}}"
    return None


def _web_base(api_url: str, kind: str) -> str:
    """The web host of an API URL: api.github.com -> github.com; https://ghe/api/v3 -> https://ghe."""
    parts = urlsplit(api_url)
    host = parts.netloc.rsplit("@", 1)[-1]
    if kind == "github" and host == "api.github.com":
        host = "github.com"
    return f"{parts.scheme or 'https'}://{host}"


# -- small readers ------------------------------------------------------------------------------------


def target_group_name(arn: str) -> str:
    """``web-blue`` from ``arn:aws:elasticloadbalancing:...:targetgroup/web-blue/0123abcd``."""
    return arn.split(":targetgroup/", 1)[1].split("/", 1)[0] if ":targetgroup/" in arn else arn


def _iso(when: datetime | None) -> str | None:
    return when.astimezone(UTC).isoformat() if when is not None else None


def _parse(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def bake_ends_at(record: AgentRecord, strategy: Strategy) -> datetime | None:
    """When the bake an in-flight agent-engine rollout is in ends, from its record (None: not baking).

    A traffic step bakes ``step_bakes[i]`` after ``steps[i]`` (the largest step at or below the weight,
    as the engine counts); the final bake (``step_phase`` final) lasts ``strategy.bake``.
    """
    since = _parse(record.step_since)
    if record.result != IN_PROGRESS or since is None:
        return None
    if record.step_phase == "final":
        return since + strategy.bake
    if record.step_phase == "step" and record.step_weight is not None:
        index = max((i for i, s in enumerate(strategy.steps) if s <= record.step_weight), default=-1)
        if 0 <= index < len(strategy.step_bakes):
            return since + strategy.step_bakes[index]
    return None


# -- history ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Change:
    """One status the agent wrote: ``context`` of commit ``sha`` became ``state`` at ``at``."""

    at: datetime
    sha: str
    context: str
    state: str
    description: str


class History:
    """The last ``size`` status changes this process made, fed after each tick (thread-safe).

    A tick reports every service's status, changed or not; only changes are kept. The last value seen
    per (commit, context) is remembered for the ``20 * size`` most recently reported pairs.
    """

    def __init__(self, size: int = HISTORY) -> None:
        self.size = size
        self._changes: deque[Change] = deque(maxlen=size)
        self._last: OrderedDict[tuple[str, str], tuple[str, str]] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, statuses: Iterable[Any], at: datetime) -> None:
        """Record each status (sha, context, state, description) that differs from the last one seen."""
        with self._lock:
            for status in statuses:
                key = (status.sha, status.context)
                value = (status.state, status.description)
                if self._last.get(key) != value:
                    self._changes.append(
                        Change(at, status.sha, status.context, status.state, status.description)
                    )
                self._last[key] = value
                self._last.move_to_end(key)
            while len(self._last) > 20 * self.size:
                self._last.popitem(last=False)

    def newest_first(self) -> list[Change]:
        with self._lock:
            return list(reversed(self._changes))


# -- the dashboard ------------------------------------------------------------------------------------


class Dashboard:
    """What the page shows, read from one agent's memory and state store (never from AWS).

    ``agent`` is an :class:`agent.daemon.Agent` (or anything with its attributes: ``config``, ``source``,
    ``store``, ``reconciler`` with ``last``, ``engine.last_views`` and ``clock``, ``last_result``,
    ``last_tick_at`` and ``readiness``).
    """

    def __init__(self, agent: Any, history: int = HISTORY) -> None:
        self.agent = agent
        self.history = History(history)
        self._summaries: dict[str, str] = {}
        self._commit_url = commit_url_template(agent.config, agent.source.display_url)

    def ticked(self, result: TickResult | None, at: datetime) -> None:
        """Feed one tick's statuses (this commit's and other commits') to the history."""
        if result is None:
            return
        self.history.add([*result.statuses.values(), *result.other_statuses.values()], at)

    # -- state.json ------------------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        agent = self.agent
        now: datetime = agent.reconciler.clock()
        result: TickResult | None = agent.last_result
        planned: PlanResult | None = agent.reconciler.last
        ready, readiness = agent.readiness.check()
        services = self._services(planned, result, now) if planned is not None else []
        last_tick = None
        if result is not None:
            aggregate = result.statuses.get(AGGREGATE)
            last_tick = {
                "at": _iso(agent.last_tick_at),
                "commit": self._commit(result.sha),
                "outcome": result.outcome,
                "state": aggregate.state if aggregate else None,
                "description": aggregate.description if aggregate else None,
                "wakeAt": _iso(result.wake_at),
            }
        return {
            "now": _iso(now),
            "refreshSeconds": REFRESH_SECONDS,
            "agent": {
                "repository": agent.source.display_url,
                "branch": agent.config.source.branch,
                "ready": ready,
                "readiness": readiness["reason"],
            },
            "lastTick": last_tick,
            "services": services,
            "history": [
                {
                    "at": _iso(c.at),
                    "commit": self._commit(c.sha),
                    "context": c.context,
                    "state": c.state,
                    "description": c.description,
                }
                for c in self.history.newest_first()
            ],
        }

    def _commit(self, sha: str | None) -> dict[str, Any] | None:
        if not sha:
            return None
        return {
            "sha": sha,
            "short": sha[:12],
            "url": self._commit_url.format(sha=sha) if self._commit_url else None,
            "summary": self._summary(sha),
        }

    def _summary(self, sha: str) -> str:
        """The commit's subject line (cached: commits do not change), "" when the clone lacks it."""
        if sha not in self._summaries:
            try:
                self._summaries[sha] = self.agent.source.commit_info(sha).summary
            except Exception:  # a commit no longer in the clone, or no clone yet: show the sha alone
                return ""
        return self._summaries[sha]

    def _services(
        self, planned: PlanResult, result: TickResult | None, now: datetime
    ) -> list[dict[str, Any]]:
        desired, observed = planned.desired, planned.observed
        by_key = {(c.kind, c.name): c for c in planned.plan.changes}
        views: Mapping[str, AgentObservation] = dict(self.agent.reconciler.engine.last_views)
        statuses = result.statuses if result is not None else {}
        store = self.agent.store
        out = []
        for name, manifest in desired.services.items():
            spec = manifest.spec
            cluster, service = spec["cluster"], spec.get("serviceName", name)
            context = f"{cluster}/{service}"
            try:
                strategy_spec = resolve_strategy(spec.get("strategy"), desired.strategies)
            except KeyError:
                strategy_spec = None
            engine = engine_of(strategy_spec)
            family = desired.service_task_family.get(name)
            status = statuses.get(service_context(cluster, service))
            live_service = observed.services.get((cluster, service))
            raw = store.get(f"rollout/{context}") if store is not None else None
            view = views.get(context) if engine == "agent" else None
            found = windows_of(manifest, desired)
            gate = windows.gate(found, now) if found else None
            entry: dict[str, Any] = {
                "name": name,
                "cluster": cluster,
                "service": service,
                "context": context,
                "strategy": str((strategy_spec or {}).get("type") or "rolling"),
                "strategyName": spec.get("strategy") if isinstance(spec.get("strategy"), str) else None,
                "engine": engine,
                "state": status.state if status else None,
                "description": status.description if status else None,
                "desired": _desired_label(by_key, family, spec),
                "live": _live(live_service),
                "rollout": None,
                "traffic": _traffic(view) if view is not None else None,
                "windows": [_window(w, now) for w in found],
                "heldBy": _held_by(gate),
            }
            entry["rollout"] = self._rollout(raw, strategy_spec, engine)
            entry["inFlight"] = bool(
                (status is not None and status.state == "pending")
                or (entry["rollout"] and entry["rollout"]["result"] == IN_PROGRESS)
            )
            out.append(entry)
        return sorted(out, key=lambda e: e["context"])

    def _rollout(
        self, raw: dict[str, Any] | None, strategy_spec: dict[str, Any] | None, engine: str
    ) -> dict[str, Any] | None:
        """The stored rollout record as the page shows it: commit, result, start, bake and its end."""
        if not raw:
            return None
        out: dict[str, Any]
        if engine == "agent" and raw.get("engine") == "agent":
            record = AgentRecord.from_json(raw)
            assert record is not None
            ends = None
            with contextlib.suppress(ValueError, KeyError):  # a strategy the engine cannot run: no countdown
                ends = bake_ends_at(record, Strategy.from_spec(strategy_spec or {}))
            out = {
                "result": record.result,
                "startedAt": record.started_at,
                "taskDefinition": family_revision(record.task_definition) if record.task_definition else None,
                "reason": record.reason,
                "phase": record.step_phase,
                "stepWeight": record.step_weight,
                "bakeEndsAt": _iso(ends),
            }
            sha = record.sha
        else:
            plain = rollout_record(raw)
            assert plain is not None
            out = {
                "result": plain.result,
                "startedAt": plain.started_at,
                "taskDefinition": plain.task_definition,
                "reason": plain.reason,
                "phase": None,
                "stepWeight": None,
                "bakeEndsAt": None,
            }
            sha = plain.sha
        out["commit"] = self._commit(sha)
        return out


def _desired_label(by_key: Mapping[tuple[str, str], Any], family: str | None, spec: Mapping[str, Any]) -> str:
    """The revision Git asks for: ``web:5``, ``web:(new)`` before it is registered, or the named one."""
    change = by_key.get(("TaskDefinition", family)) if family else None
    if change is not None:
        if change.action == REGISTER:
            return f"{family}:(new)"
        arn = change.request.get("taskDefinitionArn")
        if arn:
            return family_revision(arn)
    named = spec.get("taskDefinition")
    return family_revision(named) if isinstance(named, str) and ":" in named else (family or "?")


def _live(service: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """What ECS runs: each deployment (ECS controller) or task set (EXTERNAL), primary first."""
    if not service:
        return []
    external = (service.get("deploymentController") or {}).get("type") == "EXTERNAL"
    items = service.get("taskSets") if external else service.get("deployments")
    out = [
        {
            "revision": family_revision(str(item.get("taskDefinition", ""))),
            "status": str(item.get("status", "")),
            "running": int(item.get("runningCount", 0)),
            "desired": int(item.get("computedDesiredCount" if external else "desiredCount", 0)),
        }
        for item in items or ()
    ]
    return sorted(out, key=lambda d: d["status"] != "PRIMARY")


def _traffic(view: AgentObservation) -> dict[str, Any]:
    """The split on the production (and test) rule, each target group with the revision behind it."""
    behind: dict[str, tuple[str, str]] = {}
    for ts in sorted(view.task_sets, key=lambda t: t.status == "DRAINING"):
        if ts.target_group and ts.target_group not in behind:
            behind[ts.target_group] = (family_revision(ts.task_definition), ts.status)

    def split(weights: Mapping[str, int] | None) -> list[dict[str, Any]] | None:
        if weights is None:
            return None
        groups = list(view.wiring.target_groups) + sorted(set(weights) - set(view.wiring.target_groups))
        return [
            {
                "targetGroup": target_group_name(arn),
                "revision": behind.get(arn, ("(no task set)", ""))[0],
                "taskSet": behind.get(arn, ("", ""))[1],
                "weight": int(weights.get(arn, 0)),
            }
            for arn in groups
        ]

    return {
        "production": split(view.traffic.production),
        "test": split(view.traffic.test),
        "taskSets": [
            {
                "revision": family_revision(ts.task_definition),
                "status": ts.status,
                "targetGroup": target_group_name(ts.target_group or ""),
                "running": ts.running,
                "desired": ts.desired,
                "stable": ts.stable,
            }
            for ts in view.task_sets
        ],
    }


def _window(window: windows.Window, now: datetime) -> dict[str, Any]:
    interval = window.occurrence_at(now)
    return {
        "name": window.name,
        "type": window.type,
        "timezone": window.timezone,
        "overrun": window.overrun,
        "open": interval is not None,
        "closesAt": _iso(interval[1]) if interval else None,
        "nextOpening": _iso(window.next_opening(now)),
        "duration": int(window.duration / timedelta(seconds=1)),
    }


def _held_by(gate: windows.Gate | None) -> str | None:
    """What the service's windows hold right now ("frozen by ...", "waiting for ..."), or None."""
    if gate is None:
        return None
    if gate.frozen_by is not None:
        return gate.frozen_text()
    if not gate.traffic_may_move:
        return gate.waiting_text()
    return None
