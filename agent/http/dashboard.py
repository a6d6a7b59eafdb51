"""The dashboard: a read-only page served by the agent, and the JSON it polls.

``GET /dashboard/`` (``/dashboard`` redirects there) is one HTML page with a script and a stylesheet
of its own (agent/http/web/: no build step, no external URL). The page carries the current state as a
JSON data block, so its first paint has content; the script renders it, then fetches ``state.json``
every 2 s and patches the page in place. The texts per service come from agent/http/cards.py. The
JSON is built from what the agent already holds after each tick, so a page left open costs no AWS or
git call:

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
import json
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from importlib import resources
from typing import Any

import structlog

from agent.engines import windows_of
from agent.http import cards
from agent.http.commits import HISTORY, History, commit_url_template
from agent.plan.model import REGISTER
from agent.plan.model import Change as PlanChange
from agent.plan.services import engine_of, resolve_strategy
from agent.plan.taskdefs import family_revision
from agent.reconcile import PlanResult, TickResult, rollout_record
from agent.rollout import native, windows
from agent.rollout.progressive import IN_PROGRESS, AgentObservation, AgentRecord, Strategy
from agent.status.model import AGGREGATE, service_context

log = structlog.get_logger()

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


INITIAL_STATE = "<!-- initial state -->"  # where the page carries state.json as the server built it


def asset(path: str, state: Callable[[], dict[str, Any]] | None = None) -> tuple[bytes, str] | None:
    """(body, content type) of a dashboard file for a route, None for any other path. The page carries
    ``state()`` inline, so its first paint shows data without waiting for a poll (without ``state``, or
    when building it fails, the page fetches it as it always does)."""
    found = ASSETS.get(path)
    if found is None:
        return None
    name, content_type = found
    body = resources.files("agent.http").joinpath("web", name).read_bytes()
    if name == "dashboard.html":
        body = page(body.decode(), state).encode()
    return body, content_type


def page(template: str, state: Callable[[], dict[str, Any]] | None) -> str:
    """The HTML page with the state as a JSON data block (not a script: the CSP allows no inline script
    and needs none). ``<``, ``>`` and ``&`` are escaped, so no value can close the block."""
    data = "null"
    if state is not None:
        try:
            data = json.dumps(state(), separators=(",", ":"))
        except Exception as e:  # the page still loads and fetches state.json (which says what failed)
            log.error("dashboard.failed", error=repr(e))
    data = data.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    block = f'<script id="initial-state" type="application/json">{data}</script>'
    return template.replace(INITIAL_STATE, block, 1)


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
        # context -> (sha, what that commit changes in the service): kept after the plan is in sync,
        # for as long as the rollout it started is in flight
        self._changes: dict[str, tuple[str, list[str]]] = {}

    def ticked(self, result: TickResult | None, at: datetime) -> None:
        """Feed one tick's statuses (this commit's and other commits') to the history, and remember what
        the tick's plan changes in each service."""
        if result is None:
            return
        self.history.add([*result.statuses.values(), *result.other_statuses.values()], at)
        planned: PlanResult | None = self.agent.reconciler.last
        if planned is not None and result.sha:
            for context, texts in _plan_changes(planned).items():
                if texts:
                    self._changes[context] = (result.sha, texts)

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
                "interval": agent.config.source.interval_seconds,
                "nextTickBy": _iso(
                    cards.next_tick_by(
                        agent.last_tick_at, result.wake_at, agent.config.source.interval_seconds
                    )
                ),
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
        planned_changes = _plan_changes(planned)
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
            target = _desired_label(by_key, family, spec)
            traffic = _traffic(view) if view is not None else None
            live = _live(live_service)
            in_flight = bool(raw and raw.get("result") == IN_PROGRESS)
            pending = status is not None and status.state == "pending"
            rollout = self._rollout(raw, strategy_spec, engine)
            if rollout is not None and not in_flight and pending and result is not None and result.sha:
                rollout["commit"] = self._commit(result.sha)  # held before it started: this commit's
            changes = planned_changes.get(context) or []
            remembered = self._changes.get(context)
            commit = (rollout or {}).get("commit") or {}
            if not changes and in_flight and remembered and remembered[0] == commit.get("sha"):
                changes = remembered[1]
            source = cards.source_revision(engine, raw, target, live, pending)
            weight = cards.production_weight(engine, raw, target, traffic)
            held_by = _held_by(gate)
            description = status.description if status else None
            counting_down = bool(rollout and rollout["bakeEndsAt"])
            out.append(
                {
                    "name": name,
                    "cluster": cluster,
                    "service": service,
                    "context": context,
                    "strategy": str((strategy_spec or {}).get("type") or "rolling"),
                    "strategyName": spec.get("strategy") if isinstance(spec.get("strategy"), str) else None,
                    "engine": engine,
                    "state": status.state if status else None,
                    "description": description,
                    "statusText": cards.status_text(description, held_by if pending else None, counting_down),
                    "desired": target,
                    "headline": cards.status_text(description, None, counting_down),
                    "revision": cards.revision_text(source, target, weight),
                    "changes": changes,
                    "live": cards.live_labels(live, source, target, weight, engine),
                    "rollout": rollout,
                    "traffic": traffic,
                    "windows": [cards.window_view(w, now) for w in found],
                    "heldBy": held_by,
                    "inFlight": pending or in_flight,
                }
            )
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
            phase, ends, weight = None, None, None
            if engine == "ecs" and raw.get("engine") == "ecs":
                with contextlib.suppress(ValueError, KeyError, TypeError):
                    strategy = native.Strategy.from_spec(strategy_spec or {})
                    ends = cards.native_bake_ends_at(raw, strategy.step_bake, strategy.bake)
                    phase, weight = cards.native_phase(raw), raw.get("step_weight")
            out = {
                "result": plain.result,
                "startedAt": plain.started_at,
                "taskDefinition": plain.task_definition,
                "reason": plain.reason,
                "phase": phase,
                "stepWeight": weight,
                "bakeEndsAt": _iso(ends),
            }
            sha = plain.sha
        out["commit"] = self._commit(sha)
        return out


def _plan_changes(planned: PlanResult) -> dict[str, list[str]]:
    """``cluster/service`` -> what the plan changes in it (``image 2.4.1 → 2.4.2``, ``desiredCount 2 →
    4``), for every desired service."""
    by_key: dict[tuple[str, str], PlanChange] = {(c.kind, c.name): c for c in planned.plan.changes}
    out = {}
    for name, manifest in planned.desired.services.items():
        spec = manifest.spec
        context = f"{spec['cluster']}/{spec.get('serviceName', name)}"
        family = planned.desired.service_task_family.get(name)
        service = by_key.get(("Service", context))
        if service is not None and not service.changes_anything:
            service = None
        td = by_key.get(("TaskDefinition", family)) if family else None
        out[context] = cards.change_texts(service, td)
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


def _held_by(gate: windows.Gate | None) -> str | None:
    """What the service's windows hold right now ("frozen by ...", "waiting for ..."), or None."""
    if gate is None:
        return None
    if gate.frozen_by is not None:
        return gate.frozen_text()
    if not gate.traffic_may_move:
        return gate.waiting_text()
    return None
