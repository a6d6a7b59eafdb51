"""Validation after parsing: JSON Schema per document, then the semantic checks a schema cannot express.

Everything is collected, nothing stops at the first problem. Semantic checks run only on documents
that passed their schema (so the checks can trust shapes and a broken document gives one clear error,
not a cascade), but every document with a name still counts for references and uniqueness, so a typo
in one strategy does not also make every service using it "unresolved".

Each problem points at the place the user has to edit: a missing ``networkConfiguration`` at the
Service, missing Fargate ``cpu`` at the task definition (the file, or ``/spec/taskDefinition/cpu``).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from agent.errors import Problem
from agent.manifests import ecs_rules
from agent.manifests.loading import (
    READ_ONLY_TASK_DEFINITION_FIELDS,
    Classified,
    Document,
    resolve_reference,
)
from agent.manifests.model import KINDS, Desired, Manifest, Source, TaskDefinitionFile
from agent.manifests.tree import Tree, is_candidate
from agent.plan.ordering import explicit_wave
from agent.plan.services import REQUEST_FIELDS

# What an ignoreDrift pointer may start with: the service's fields as the planner compares them.
SERVICE_FIELDS = tuple(f for f in REQUEST_FIELDS if f not in ("serviceName", "schedulingStrategy"))

FARGATE_PROVIDERS = ("FARGATE", "FARGATE_SPOT")
ECS_MAX_BAKE = timedelta(minutes=1440)
ECS_MAX_HOOK_TIMEOUT = timedelta(minutes=20160)  # DeploymentLifecycleHookTimeoutConfiguration
TRAFFIC_SHIFTING = ("blueGreen", "canary", "linear")

# ASCII digits only, like the schema's pattern (Python's \d also matches other scripts' digits).
_DURATION = re.compile(r"^(?=[0-9])(?:([0-9]+)h)?(?:([0-9]+)m)?(?:([0-9]+)s)?$")
MAX_DURATION = timedelta(days=366)  # longer is a typo; much longer would overflow date arithmetic
_CREDENTIAL_NAME = re.compile(
    r"PASSWORD|PASSWD|PASSPHRASE|SECRET|TOKEN|API_?KEY|PRIVATE_?KEY|ACCESS_?KEY|CREDENTIAL|AUTH_?KEY",
    re.IGNORECASE,
)
_CREDENTIAL_VALUES = (
    (re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"), "an AWS access key id"),
    (re.compile(r"-----BEGIN [A-Z ]*(?:PRIVATE KEY|CERTIFICATE)"), "a PEM key"),
    (re.compile(r"://[^/\s:@]+:[^/\s@]+@"), "a URL with a password"),
    (
        re.compile(r"^(?:gh[pousr]_[A-Za-z0-9]{30,}|xox[abpr]-[A-Za-z0-9-]{10,}|sk_live_[A-Za-z0-9]{16,})$"),
        "a token",
    ),
    (re.compile(r"^[0-9a-fA-F]{32,}$"), "a long hex string"),
    (re.compile(r"^(?=.*[0-9])(?=.*[a-z])(?=.*[A-Z])[A-Za-z0-9+/_-]{40,}={0,2}$"), "a long base64 string"),
)


def parse_duration(text: Any) -> timedelta | None:
    """``90s``, ``5m``, ``1h30m``, ``2h`` -> timedelta; None when it is not such a duration."""
    if not isinstance(text, str):
        return None
    m = _DURATION.match(text)
    if not m:
        return None
    h, mi, s = (int(g) if g else 0 for g in m.groups())
    seconds = h * 3600 + mi * 60 + s
    return timedelta(seconds=min(seconds, int(MAX_DURATION.total_seconds()) + 1))  # no OverflowError


def allowed_clusters(config: Any) -> tuple[str, ...] | None:
    """The agent config's cluster allow-list (``clusters.allow``), None when any cluster is allowed."""
    clusters = getattr(config, "clusters", None)
    allow = getattr(clusters, "allow", None)
    if allow is None:
        return None
    return tuple(str(a) for a in allow)


@dataclass
class _Entry:
    """A manifest document as loaded: the typed view and whether it passed its schema."""

    manifest: Manifest
    doc: Document
    valid: bool


@dataclass
class _Context:
    tree: Tree
    config: Any
    problems: list[Problem] = field(default_factory=list)
    entries: list[_Entry] = field(default_factory=list)
    names: dict[str, dict[str, Manifest]] = field(default_factory=lambda: {k: {} for k in KINDS})
    # Task definitions found in files, by the file's root-relative path.
    td_by_file: dict[str, list[TaskDefinitionFile]] = field(default_factory=dict)
    broken_files: set[str] = field(default_factory=set)
    loaded_files: set[str] = field(default_factory=set)
    # family -> the task definition that manages it
    families: dict[str, TaskDefinitionFile] = field(default_factory=dict)
    service_td: dict[str, TaskDefinitionFile] = field(default_factory=dict)

    def add(self, source: Source, pointer: str, message: str, severity: str = "error") -> None:
        self.problems.append(Problem(source.file, pointer, message, source.line_of(pointer), severity))


def _where(source: Source) -> str:
    return source.file if source.line is None else f"{source.file}:{source.line}"


# Where a task definition holds environment entries: their values may be secrets, so a message about
# one never quotes it (the plan masks them too, agent/plan/render.py).
_ENVIRONMENT = re.compile(r"/containerDefinitions/[^/]+/environment(/|$)")
_QUOTED_VALUE = re.compile(r" \(got .*\)$")


def _schema_problems(ctx: _Context, kind: str, instance: Any, source: Source, prefix: str = "") -> bool:
    from agent.manifests import schemas

    found = schemas.validate(kind, instance)
    for pointer, message in found:
        if _ENVIRONMENT.search(prefix + pointer):
            message = _QUOTED_VALUE.sub(" (not shown: environment values may be secret)", message)
        ctx.add(source, prefix + pointer, message)
    return not found


# ------------------------------------------------------------------------------------ schema & names


def _validate_documents(ctx: _Context, classified: Classified) -> None:
    for doc in classified.manifests:
        data, src = doc.data, doc.source
        kind = data.get("kind")
        metadata = data.get("metadata") if isinstance(data.get("metadata"), dict) else {}
        name = metadata.get("name")
        if kind not in KINDS:
            if kind is None:
                ctx.add(src, "/kind", f"kind is required: one of {', '.join(KINDS)}")
            else:
                ctx.add(src, "/kind", f"unknown kind {kind!r}; expected one of {', '.join(KINDS)}")
            continue
        valid = _schema_problems(ctx, kind, data, src)
        if not isinstance(name, str) or not name:
            continue
        spec = data.get("spec") if isinstance(data.get("spec"), dict) else {}
        manifest = Manifest(kind, name, spec, src, metadata)
        ctx.entries.append(_Entry(manifest, doc, valid))


def _check_unique_names(ctx: _Context) -> None:
    for entry in sorted(ctx.entries, key=lambda e: (e.manifest.source.file, e.manifest.source.doc)):
        m = entry.manifest
        seen = ctx.names[m.kind]
        if m.name in seen:
            other = seen[m.name].source
            ctx.add(m.source, "/metadata/name", f'another {m.kind} is named "{m.name}" ({_where(other)})')
            continue
        seen[m.name] = m


# ------------------------------------------------------------------------------------ task definitions


def _register_family(ctx: _Context, td: TaskDefinitionFile) -> None:
    family = td.body.get("family")
    if not isinstance(family, str) or not family:
        return
    other = ctx.families.get(family)
    if other is None:
        ctx.families[family] = td
        return
    if other.source == td.source and other.pointer == td.pointer:
        return
    line = other.source.line_of(f"{other.pointer}/family")
    where = other.source.file if line is None else f"{other.source.file}:{line}"
    if other.pointer.startswith("/spec"):
        where += f" at {other.pointer}"
    ctx.add(
        td.source,
        f"{td.pointer}/family",
        f'task-definition family "{family}" is already managed by {where}; '
        "a family must be defined in exactly one place",
    )


def _resolve_task_definitions(ctx: _Context) -> None:
    """Every service's task definition (file or inline), and one owner per family."""
    for tds in ctx.td_by_file.values():
        for td in tds:
            _register_family(ctx, td)
    for entry in _valid(ctx, "Service"):
        m = entry.manifest
        ref = m.spec.get("taskDefinition")
        pointer = "/spec/taskDefinition"
        if isinstance(ref, dict):
            body = {k: v for k, v in ref.items() if k not in READ_ONLY_TASK_DEFINITION_FIELDS}
            td = TaskDefinitionFile(body, m.source, pointer)
            _register_family(ctx, td)
            ctx.service_td[m.name] = td
            continue
        if not isinstance(ref, str):
            continue
        real, why = resolve_reference(ctx.tree, m.source.file, ref)
        if real is None:
            ctx.add(m.source, pointer, why or "cannot be resolved")
            continue
        if real in ctx.broken_files:
            continue  # the file's own problems are reported already
        if real not in ctx.loaded_files or not is_candidate(real):
            ctx.add(
                m.source,
                pointer,
                f'"{ref}" is not read as a manifest file (only .yaml, .yml and .json outside hidden folders)',
            )
            continue
        found = ctx.td_by_file.get(real, [])
        if not found:
            ctx.add(m.source, pointer, f'"{ref}" ({real}) holds no task definition (no containerDefinitions)')
        elif len(found) > 1:
            ctx.add(
                m.source,
                pointer,
                f'"{ref}" ({real}) holds {len(found)} task definitions; '
                "a referenced file must hold exactly one",
            )
        else:
            ctx.service_td[m.name] = found[0]


# ---------------------------------------------------------------------------------------- strategies


TEST_TRAFFIC_STAGES = ("testTraffic", "postTestTraffic")


def _strategy_of(ctx: _Context, service: Manifest) -> tuple[dict[str, Any], str, Source] | None:
    """(strategy spec, its name for messages, where it is) for a service; the default is rolling."""
    ref = service.spec.get("strategy")
    if isinstance(ref, dict):
        return ref, "inline strategy", service.source
    if isinstance(ref, str):
        target = ctx.names["DeploymentStrategy"].get(ref)
        if target is None:
            return None
        return target.spec, f'strategy "{ref}"', target.source
    return {"type": "rolling", "engine": "ecs"}, "default rolling strategy", service.source


def _check_strategy(ctx: _Context, spec: dict[str, Any], source: Source, base: str) -> None:
    """Strategy rules ECS (or the agent) would reject, at ``base`` (``/spec`` or ``/spec/strategy``)."""
    stype = spec.get("type")
    engine = spec.get("engine", "ecs")
    if stype == "rolling" and engine == "agent":
        ctx.add(
            source, f"{base}/engine", "a rolling strategy always runs on engine ecs; remove engine: agent"
        )
    rollback = spec.get("rollbackOn") or {}
    if rollback.get("circuitBreaker") and stype != "rolling":
        ctx.add(
            source,
            f"{base}/rollbackOn/circuitBreaker",
            f"the ECS deployment circuit breaker only works with type rolling, not {stype}; use alarms",
        )
    stages: set[Any] = set()
    for i, hook in enumerate(_items(spec.get("hooks"))):
        hp = f"{base}/hooks/{i}"
        if stype == "rolling" and isinstance(hook, dict):
            ctx.add(
                source,
                f"{hp}/stage",
                "a rolling strategy runs no lifecycle hooks; use type blueGreen, linear or canary",
            )
            continue
        stage = hook.get("stage") if isinstance(hook, dict) else None
        if engine == "agent" and stage is not None:
            if stage in stages:
                ctx.add(
                    source,
                    f"{hp}/stage",
                    f"a second {stage} hook; engine agent runs one hook per stage (combine them in one "
                    "endpoint or function)",
                )
            stages.add(stage)
        if isinstance(hook, dict) and "url" in hook and engine == "ecs":
            ctx.add(
                source,
                f"{hp}/url",
                "url hooks need engine: agent; native ECS lifecycle hooks can only invoke Lambda functions",
            )
        if isinstance(hook, dict) and "lambda" in hook and engine == "ecs" and spec.get("hookRole") is None:
            ctx.add(
                source,
                f"{hp}/lambda",
                "lambda hooks on engine ecs need hookRole: the IAM role ECS assumes to invoke the function "
                f"(set {base}/hookRole)",
            )
        if isinstance(hook, dict) and "timeout" in hook:
            d = _check_duration(ctx, source, f"{hp}/timeout", hook["timeout"], nonzero=True)
            if d is not None and engine == "ecs" and d > ECS_MAX_HOOK_TIMEOUT:
                ctx.add(
                    source,
                    f"{hp}/timeout",
                    f"{hook['timeout']} is longer than ECS allows a lifecycle hook to wait: 20160 minutes "
                    "(14 days) on engine ecs",
                )
    if engine == "ecs":
        for key, field_name in (("canary", "percent"), ("linear", "stepPercent")):
            value = (spec.get(key) or {}).get(field_name) if isinstance(spec.get(key), dict) else None
            if isinstance(value, int | float) and abs(value * 10 - round(value * 10)) > 1e-6:
                ctx.add(
                    source,
                    f"{base}/{key}/{field_name}",
                    f"{value} is not a multiple of 0.1; ECS takes {key} percentages in tenths on engine ecs",
                )
    bakes = [("/bake", spec.get("bake"))]
    if isinstance(spec.get("canary"), dict):
        bakes.append(("/canary/bake", spec["canary"].get("bake")))
    if isinstance(spec.get("linear"), dict):
        bakes.append(("/linear/stepBake", spec["linear"].get("stepBake")))
    for sub, value in bakes:
        if value is None:
            continue
        d = _check_duration(ctx, source, base + sub, value)
        if d is not None and engine == "ecs" and d > ECS_MAX_BAKE:
            ctx.add(
                source,
                base + sub,
                f"{value} is {int(d.total_seconds() // 60)} minutes; ECS allows at most 1440 minutes (24h) "
                "on engine ecs",
            )


def _check_duration(
    ctx: _Context, source: Source, pointer: str, value: Any, nonzero: bool = False
) -> timedelta | None:
    d = parse_duration(value)
    if d is None:
        ctx.add(source, pointer, f"{value!r} is not a duration such as 90s, 5m, 1h30m or 2h")
        return None
    if nonzero and d <= timedelta(0):
        ctx.add(source, pointer, f"{value} is zero; it must be longer than that")
    if d > MAX_DURATION:
        ctx.add(source, pointer, f"{value} is longer than a year (8784h); durations may be at most that")
        return None
    return d


# -------------------------------------------------------------------------------------------- windows


def _check_window(ctx: _Context, m: Manifest) -> None:
    from croniter import croniter

    spec, src = m.spec, m.source
    schedule = spec.get("schedule")
    if isinstance(schedule, str):
        fields = schedule.split()
        ok = len(fields) == 5
        if ok:
            try:
                ok = bool(croniter.is_valid(schedule))
            except Exception:  # croniter raises odd types for odd input
                ok = False
        if not ok:
            ctx.add(
                src,
                "/spec/schedule",
                f'"{schedule}" is not a valid five-field cron expression (minute hour day month weekday)',
            )
        elif not _fires(croniter, schedule):
            message = f'"{schedule}" never fires (no such date), so the window never opens'
            ctx.add(src, "/spec/schedule", message)
    tz = spec.get("timezone", "UTC")
    if isinstance(tz, str):
        try:
            ZoneInfo(tz)
        except Exception:  # ZoneInfoNotFoundError, ValueError for path-like keys
            ctx.add(src, "/spec/timezone", f'"{tz}" is not an IANA time zone (e.g. Europe/Berlin, UTC)')
    if "duration" in spec:
        _check_duration(ctx, src, "/spec/duration", spec["duration"], nonzero=True)


def _fires(croniter: Any, schedule: str) -> bool:
    """A valid cron expression can still name a date that never comes (``0 0 30 2 *``)."""
    try:
        croniter(schedule, datetime(2000, 1, 1)).get_next(datetime)
    except Exception:  # CroniterBadDateError
        return False
    return True


# ------------------------------------------------------------------------------------------- services


def _provider_known(ctx: _Context, name: Any) -> bool:
    return name in FARGATE_PROVIDERS or name in ctx.names["CapacityProvider"]


def _unknown_provider(name: Any) -> str:
    return (
        f'no CapacityProvider named "{name}" (use FARGATE, FARGATE_SPOT or a CapacityProvider '
        "manifest's name)"
    )


def _check_service(ctx: _Context, m: Manifest) -> None:
    spec, src = m.spec, m.source
    names = ctx.names
    # strategy
    strategy_ref = spec.get("strategy")
    if isinstance(strategy_ref, str) and strategy_ref not in names["DeploymentStrategy"]:
        ctx.add(src, "/spec/strategy", f'no DeploymentStrategy named "{strategy_ref}"')
    elif isinstance(strategy_ref, dict):
        _check_strategy(ctx, strategy_ref, src, "/spec/strategy")
    # windows
    for i, w in enumerate(_items(spec.get("windows"))):
        if w not in names["Window"]:
            ctx.add(src, f"/spec/windows/{i}", f'no Window named "{w}"')
    # dependsOn
    for i, d in enumerate(_items(spec.get("dependsOn"))):
        if d == m.name:
            ctx.add(src, f"/spec/dependsOn/{i}", "a service cannot depend on itself")
        elif d not in names["Service"]:
            ctx.add(src, f"/spec/dependsOn/{i}", f'no Service named "{d}"')
        elif explicit_wave(names["Service"][d]) > explicit_wave(m):
            ctx.add(
                src,
                f"/spec/dependsOn/{i}",
                f'"{d}" is in a later wave ({explicit_wave(names["Service"][d])}) than this service '
                f"({explicit_wave(m)}), so it cannot roll out first",
            )
    _check_ignore_drift(ctx, m)
    # capacity providers
    cluster = names["Cluster"].get(spec.get("cluster"))
    cluster_cps = cluster.spec.get("capacityProviders") if cluster else None
    cps = spec.get("capacityProviderStrategy") or []
    for i, item in enumerate(cps):
        name = item.get("capacityProvider") if isinstance(item, dict) else None
        pointer = f"/spec/capacityProviderStrategy/{i}/capacityProvider"
        if not _provider_known(ctx, name):
            ctx.add(src, pointer, _unknown_provider(name))
        elif isinstance(cluster_cps, list) and name not in cluster_cps and cluster is not None:
            ctx.add(
                src,
                pointer,
                f'cluster "{cluster.name}" ({_where(cluster.source)}) does not list capacity provider '
                f'"{name}" in its capacityProviders; ECS would reject the service',
            )
    _check_service_strategy(ctx, m)
    _check_service_task_definition(ctx, m, cluster)


def _check_service_strategy(ctx: _Context, m: Manifest) -> None:
    """Strategy/service combinations ECS (or the agent engine) cannot run."""
    spec, src = m.spec, m.source
    found = _strategy_of(ctx, m)
    if found is None:
        return
    strategy, label, _ = found
    stype, engine = strategy.get("type"), strategy.get("engine", "ecs")
    if spec.get("launchType") == "EXTERNAL" and engine == "agent":
        ctx.add(
            src,
            "/spec/launchType",
            f"{label} runs on engine agent (task sets), which cannot manage launchType EXTERNAL "
            "(ECS Anywhere); use engine ecs",
        )
        return  # the agent engine cannot run this service at all: its other needs are moot
    if stype not in TRAFFIC_SHIFTING:
        return
    lbs = spec.get("loadBalancers") or []
    if not lbs:
        how = "a load balancer" if engine == "ecs" else "listener-rule weights between two target groups"
        ctx.add(
            src,
            "/spec/loadBalancers",
            f"{label} is {stype} on engine {engine}, which shifts traffic through {how}; this service has "
            "none",
        )
        return
    first = lbs[0] if isinstance(lbs[0], dict) else {}
    test_hooks = sorted(
        {
            str(h.get("stage"))
            for h in _items(strategy.get("hooks"))
            if isinstance(h, dict) and h.get("stage") in TEST_TRAFFIC_STAGES
        }
    )
    if engine == "agent" and test_hooks and "testListenerRule" not in first:
        ctx.add(
            src,
            "/spec/loadBalancers/0/testListenerRule",
            f"{label} has {' and '.join(test_hooks)} hooks, which engine agent runs while a test listener "
            "rule sends traffic to the new revision; add testListenerRule or remove those hooks",
        )
    needed = ["alternateTargetGroup", "productionListenerRule"] + (["role"] if engine == "ecs" else [])
    for i, lb in enumerate(lbs):
        if not isinstance(lb, dict):
            continue
        missing = [f for f in needed if f not in lb]
        if missing:
            ctx.add(
                src,
                f"/spec/loadBalancers/{i}/{missing[0]}",
                f"{label} is {stype} on engine {engine}, which needs {', '.join(needed)} on every load "
                f"balancer; missing: {', '.join(missing)}",
            )


def _uses_fargate(ctx: _Context, spec: dict[str, Any], cluster: Manifest | None) -> bool:
    if spec.get("launchType") == "FARGATE":
        return True
    cps = spec.get("capacityProviderStrategy")
    if cps is None and spec.get("launchType") is None and cluster is not None:
        cps = cluster.spec.get("defaultCapacityProviderStrategy")
    return any(isinstance(i, dict) and i.get("capacityProvider") in FARGATE_PROVIDERS for i in _items(cps))


def _check_service_task_definition(ctx: _Context, m: Manifest, cluster: Manifest | None) -> None:
    td = ctx.service_td.get(m.name)
    if td is None:
        return
    spec, src = m.spec, m.source
    body = td.body
    where = "its task definition" if td.source == src else f"task definition {td.source.file}"
    if body.get("networkMode") == "awsvpc" and "networkConfiguration" not in spec:
        ctx.add(
            src,
            "/spec/networkConfiguration",
            f"{where} uses networkMode awsvpc, so ECS requires networkConfiguration.awsvpcConfiguration "
            "(subnets, securityGroups)",
        )
    if not _uses_fargate(ctx, spec, cluster):
        return
    who = f'service "{m.name}" ({src.file}) runs on Fargate'
    for key in ("cpu", "memory"):
        if body.get(key) in (None, ""):
            ctx.add(td.source, f"{td.pointer}/{key}", f"task-level {key} is required: {who}")
    compat = body.get("requiresCompatibilities")
    if not isinstance(compat, list) or "FARGATE" not in compat:
        ctx.add(
            td.source,
            f"{td.pointer}/requiresCompatibilities",
            f"must include FARGATE: {who}",
        )
    if body.get("networkMode") != "awsvpc":
        ctx.add(
            td.source,
            f"{td.pointer}/networkMode",
            f"must be awsvpc (not {body.get('networkMode') or 'unset'}): {who}",
        )


def _check_ignore_drift(ctx: _Context, m: Manifest) -> None:
    """ignoreDrift pointers must start at a field of the service as the plan shows it (CreateService)."""
    for i, pointer in enumerate(_items(m.spec.get("ignoreDrift"))):
        if not isinstance(pointer, str) or not pointer.startswith("/"):
            continue  # the schema reports it
        top = pointer.split("/")[1].replace("~1", "/").replace("~0", "~")
        if top in SERVICE_FIELDS:
            continue
        close = difflib.get_close_matches(top, SERVICE_FIELDS, n=1)
        hint = f' (did you mean "/{close[0]}"?)' if close else ""
        ctx.add(
            m.source,
            f"/spec/ignoreDrift/{i}",
            f'"{pointer}" does not point into a service field{hint}: paths are those of the plan, '
            "e.g. /desiredCount, /tags/owner, /networkConfiguration/awsvpcConfiguration/securityGroups",
        )


def _check_cycles(ctx: _Context) -> None:
    """dependsOn must be acyclic; each cycle is reported once, at its alphabetically first service."""
    graph: dict[str, list[str]] = {}
    for e in _valid(ctx, "Service"):
        deps = e.manifest.spec.get("dependsOn") or []
        graph[e.manifest.name] = [d for d in deps if isinstance(d, str) and d != e.manifest.name]
    reported: set[tuple[str, ...]] = set()
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for nxt in graph.get(node, []):
            if nxt not in graph:
                continue
            if state.get(nxt) == 1:
                cycle = path[path.index(nxt) :]
                start = cycle.index(min(cycle))
                canon = tuple(cycle[start:] + cycle[:start])
                if canon not in reported:
                    reported.add(canon)
                    first = ctx.names["Service"][canon[0]]
                    target = canon[1] if len(canon) > 1 else canon[0]
                    deps = first.spec.get("dependsOn") or []
                    index = deps.index(target) if target in deps else 0
                    ctx.add(
                        first.source,
                        f"/spec/dependsOn/{index}",
                        "dependsOn forms a cycle: " + " -> ".join([*canon, canon[0]]),
                    )
            elif state.get(nxt) is None:
                visit(nxt)
        path.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)


# ---------------------------------------------------------------------------- clusters and providers


def _check_cluster(ctx: _Context, m: Manifest) -> None:
    spec, src = m.spec, m.source
    listed = spec.get("capacityProviders")
    for i, name in enumerate(_items(listed)):
        if not _provider_known(ctx, name):
            ctx.add(src, f"/spec/capacityProviders/{i}", _unknown_provider(name))
    for i, item in enumerate(_items(spec.get("defaultCapacityProviderStrategy"))):
        name = item.get("capacityProvider") if isinstance(item, dict) else None
        pointer = f"/spec/defaultCapacityProviderStrategy/{i}/capacityProvider"
        if not _provider_known(ctx, name):
            ctx.add(src, pointer, _unknown_provider(name))
        elif isinstance(listed, list) and name not in listed:
            ctx.add(src, pointer, f'"{name}" must also be listed in capacityProviders')


def _check_capacity_provider(ctx: _Context, m: Manifest) -> None:
    if re.match(r"(?i)^(aws|ecs|fargate)", m.name):
        ctx.add(
            m.source, "/metadata/name", f'"{m.name}": ECS reserves names starting with aws, ecs or fargate'
        )


def _cluster_name(ctx: _Context, ref: str) -> str:
    target = ctx.names["Cluster"].get(ref)
    if target is not None:
        return str(target.spec.get("clusterName") or target.name)
    return ref


def account_clusters(config: Any) -> tuple[str, ...] | None:
    """Every cluster the agent config's ``accounts`` list, None when it lists no account."""
    accounts = getattr(config, "accounts", None) or ()
    if not accounts:
        return None
    return tuple(str(c) for a in accounts for c in a.clusters)


def _check_allow_list(ctx: _Context) -> None:
    """Clusters must be in ``clusters.allow`` (when set) and in one of the ``accounts`` (when listed)."""
    rules: list[tuple[set[str], str]] = []
    allow = allowed_clusters(ctx.config)
    if allow is not None:
        rules.append((set(allow), f"is not in the agent config's allow-list ({', '.join(allow) or 'empty'})"))
    listed = account_clusters(ctx.config)
    if listed is not None:
        rules.append(
            (set(listed), f"is in no account of the agent config (accounts[].clusters: {', '.join(listed)})")
        )
    if not rules:
        return
    for e in ctx.entries:
        m = e.manifest
        if not e.valid:
            continue
        if m.kind == "Cluster":
            name, pointer = _cluster_name(ctx, m.name), "/metadata/name"
            if "clusterName" in m.spec:
                pointer = "/spec/clusterName"
        elif m.kind in ("Service", "CapacityProvider") and isinstance(m.spec.get("cluster"), str):
            name, pointer = _cluster_name(ctx, m.spec["cluster"]), "/spec/cluster"
        else:
            continue
        for allowed, why in rules:
            if name not in allowed:
                ctx.add(m.source, pointer, f'cluster "{name}" {why}')


# ------------------------------------------------------------------------------------------- secrets


def _check_secrets(ctx: _Context, tds: Iterable[TaskDefinitionFile]) -> None:
    for td in tds:
        containers = td.body.get("containerDefinitions")
        if not isinstance(containers, list):
            continue
        for ci, c in enumerate(containers):
            env = c.get("environment") if isinstance(c, dict) else None
            for ei, item in enumerate(env if isinstance(env, list) else []):
                if not isinstance(item, dict):
                    continue
                name, value = str(item.get("name", "")), item.get("value")
                value = value if isinstance(value, str) else ""
                pointer = f"{td.pointer}/containerDefinitions/{ci}/environment/{ei}"
                reason = None
                if value and not value.startswith("arn:") and _CREDENTIAL_NAME.search(name):
                    reason = f'"{name}" looks like a credential'
                else:
                    for rx, what in _CREDENTIAL_VALUES:
                        if rx.search(value):
                            reason = f'the value of "{name}" looks like {what}'
                            break
                if reason:
                    ctx.add(
                        td.source,
                        pointer,
                        f"{reason}; put it in Secrets Manager or SSM and use secrets[].valueFrom instead "
                        "of environment",
                        severity="warning",
                    )


# ------------------------------------------------------------------------------------------- driver


def _valid(ctx: _Context, kind: str) -> list[_Entry]:
    """Schema-valid documents of one kind that own their name (duplicates are not checked twice)."""
    return [
        e
        for e in ctx.entries
        if e.valid and e.manifest.kind == kind and ctx.names[kind].get(e.manifest.name) is e.manifest
    ]


def _items(value: Any) -> list[Any]:
    """``value`` when it is a list, else nothing to iterate (the schema has already reported it)."""
    return value if isinstance(value, list) else []


def _guard(ctx: _Context, source: Source | None, what: str, fn: Callable[[], None]) -> None:
    """Run one check; a bug in it becomes a problem for that document, never a traceback."""
    try:
        fn()
    except Exception as err:
        file = source.file if source else "(manifests)"
        line = source.line if source else None
        ctx.problems.append(
            Problem(file, "", f"internal error while checking {what}: {type(err).__name__}: {err}", line)
        )


def check(
    classified: Classified,
    tree: Tree,
    config: Any = None,
    loaded_files: Iterable[str] = (),
    broken_files: Iterable[str] = (),
) -> tuple[Desired, list[Problem]]:
    """Validate classified documents; return what they ask for and every problem found.

    ``loaded_files`` are the paths that were read as manifest files, ``broken_files`` those that could
    not be read or parsed (references to them are not reported a second time).
    """
    ctx = _Context(tree, config)
    ctx.loaded_files = set(loaded_files)
    ctx.broken_files = set(broken_files)
    _guard(ctx, None, "schemas", lambda: _validate_documents(ctx, classified))
    for td in classified.task_definitions:
        ctx.td_by_file.setdefault(td.source.file, []).append(td)
        _guard(
            ctx,
            td.source,
            "the task definition",
            lambda td=td: _schema_problems(ctx, "TaskDefinition", td.body, td.source, td.pointer),
        )
    _guard(ctx, None, "names", lambda: _check_unique_names(ctx))
    _guard(ctx, None, "task definitions", lambda: _resolve_task_definitions(ctx))
    per_kind: dict[str, Callable[[_Context, Manifest], None]] = {
        "Service": _check_service,
        "Window": _check_window,
        "Cluster": _check_cluster,
        "CapacityProvider": _check_capacity_provider,
        "DeploymentStrategy": lambda c, m: _check_strategy(c, m.spec, m.source, "/spec"),
    }
    for kind, fn in per_kind.items():
        for e in _valid(ctx, kind):
            _guard(
                ctx, e.manifest.source, f"{kind} {e.manifest.name}", lambda fn=fn, e=e: fn(ctx, e.manifest)
            )
    _guard(ctx, None, "dependsOn", lambda: _check_cycles(ctx))
    _guard(ctx, None, "the cluster allow-list", lambda: _check_allow_list(ctx))
    all_tds = [
        *classified.task_definitions,
        *(td for td in ctx.service_td.values() if td.pointer.startswith("/spec")),
    ]
    _guard(ctx, None, "secrets", lambda: _check_secrets(ctx, all_tds))
    _guard(ctx, None, "ECS rules", lambda: ctx.problems.extend(ecs_rules.located(all_tds)))

    desired = Desired(revision=tree.revision)
    for kind in KINDS:
        desired.by_kind(kind).update(ctx.names[kind])
    for family, td in ctx.families.items():
        desired.task_definitions[family] = td
    for name, td in ctx.service_td.items():
        family = td.body.get("family")
        if isinstance(family, str) and family:
            desired.service_task_family[name] = family
    return desired, ctx.problems
