"""Task definitions in canonical form: normalisation, the content hash, the RegisterTaskDefinition request.

Both sides of a comparison go through ``normalise_task_definition``: the user's file (RegisterTaskDefinition
input, or pasted ``describe-task-definition`` output) and what ECS (or moto) describes. ECS fills defaults
and reorders things, so a file that has been registered must normalise to exactly what describing the new
revision normalises to; otherwise a plan that has been applied would never be empty.

Decisions worth knowing (each one is applied to both sides, so it only has to be consistent):

* read-only fields and ``tags`` are dropped (tags are metadata of a revision, not its content);
* ``None``, ``[]`` and ``{}`` are dropped everywhere, bottom-up (ECS echoes ``environment: []`` etc.);
* task ``cpu``/``memory`` become unit strings: ``"0.25 vCPU"`` -> ``"256"``, ``"1 GB"`` -> ``"1024"``,
  ``512`` -> ``"512"`` (ECS stores the converted value);
* ``networkMode`` absent means ``awsvpc`` when Fargate is required (the only mode Fargate accepts) and
  ``bridge`` otherwise, except for Windows task definitions, where it stays absent;
* ``runtimePlatform`` ``{LINUX, X86_64}`` is the default platform and is dropped;
* containers are sorted by name; ``essential`` defaults to true; ``cpu: 0`` is dropped;
  ``false`` for ``privileged``, ``readonlyRootFilesystem``, ``interactive``, ``pseudoTerminal``,
  ``disableNetworking`` and ``readOnly`` of mount points is dropped (the default);
* port mappings get ``protocol: tcp``; ``hostPort`` = ``containerPort`` in ``awsvpc``/``host`` mode,
  ``hostPort: 0`` (dynamic) is dropped in ``bridge`` mode; port mappings are sorted;
* ``environment``, ``secrets``, ulimits, system controls, container ``dependsOn``, volumes,
  resource requirements and proxy properties are sorted; ``environmentFiles`` keep their order
  (later files win in ECS, so the order is meaning);
* ``healthCheck`` gets ECS's defaults (interval 30, timeout 5, retries 3; ``startPeriod: 0`` dropped);
* option maps (``logConfiguration.options``, ``firelensConfiguration.options``, ``dockerLabels``)
  have string values; EFS volumes get ``rootDirectory: "/"``;
* every other documented default in ``agent/plan/defaults.py`` (EFS ``transitEncryption`` and
  ``authorizationConfig.iam`` DISABLED, docker volume driver ``local`` / scope ``task`` /
  ``autoprovision: false``, ``initProcessEnabled: false``, ``configuredAtLaunch: false``, Fargate's
  20 GiB of ephemeral storage, ...) is dropped when written; a ``restartPolicy`` that is not enabled is
  dropped whole.

``minimal_task_definition`` goes the other way: what a user would write for a described task definition.
"""

from __future__ import annotations

import copy
import hashlib
import json
import threading
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from agent.manifests.fields import READ_ONLY_FIELDS, cpu_units, memory_mib
from agent.plan.defaults import DEFAULTS, drop_rows, holders, same, split
from agent.plan.diff import diff
from agent.plan.model import ABSENT

HASH_TAG = "ecs-gitops:content-hash"


_FALSE_BY_DEFAULT = (
    "privileged",
    "readonlyRootFilesystem",
    "interactive",
    "pseudoTerminal",
    "disableNetworking",
)
_DEFAULT_PLATFORM = {"cpuArchitecture": "X86_64", "operatingSystemFamily": "LINUX"}
_HEALTH_CHECK_DEFAULTS = {"interval": 30, "timeout": 5, "retries": 3}


def unwrap(body: Mapping[str, Any]) -> dict[str, Any]:
    """The task definition itself, out of a ``{"taskDefinition": {...}, "tags": [...]}`` wrapper if any."""
    inner = body.get("taskDefinition")
    if isinstance(inner, Mapping) and "containerDefinitions" not in body:
        return dict(inner)
    return dict(body)


def prune(value: Any) -> Any:
    """Drop ``None``, empty lists and empty dicts, bottom-up (a dict emptied by pruning goes too)."""
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            item = prune(item)
            if item is None or item == [] or item == {}:
                continue
            out[key] = item
        return out
    if isinstance(value, list):
        items = [prune(item) for item in value]
        return [item for item in items if item is not None and item != [] and item != {}]
    return value


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def _sorted_by(items: Any, key: str) -> Any:
    if not isinstance(items, list):
        return items
    return sorted(
        items,
        key=lambda item: (str(item.get(key, "")) if isinstance(item, Mapping) else "", _canonical(item)),
    )


def _sorted_canonically(items: Any) -> Any:
    if not isinstance(items, list):
        return items
    return sorted(items, key=_canonical)


def _string_values(options: Any) -> Any:
    if not isinstance(options, Mapping):
        return options
    out = {}
    for key, item in options.items():
        if isinstance(item, bool):
            out[key] = "true" if item else "false"
        elif item is None:
            continue
        else:
            out[key] = str(item)
    return out


def _network_mode(td: Mapping[str, Any]) -> str | None:
    mode = td.get("networkMode")
    if mode:
        return str(mode)
    platform = td.get("runtimePlatform") or {}
    if str(platform.get("operatingSystemFamily", "LINUX")).upper().startswith("WINDOWS"):
        return None
    if "FARGATE" in (td.get("requiresCompatibilities") or []):
        return "awsvpc"
    return "bridge"


def _port_mapping(pm: Any, network_mode: str | None) -> Any:
    if not isinstance(pm, Mapping):
        return pm
    pm = dict(pm)
    pm.setdefault("protocol", "tcp")
    if network_mode in ("awsvpc", "host"):
        if pm.get("hostPort") is None and pm.get("containerPort") is not None:
            pm["hostPort"] = pm["containerPort"]
    elif pm.get("hostPort") == 0:
        del pm["hostPort"]
    return pm


def _container(cd: Any, network_mode: str | None) -> Any:
    if not isinstance(cd, Mapping):
        return cd
    cd = dict(cd)
    if cd.get("essential") is None:
        cd["essential"] = True
    if cd.get("cpu") == 0:
        del cd["cpu"]
    for flag in _FALSE_BY_DEFAULT:
        if cd.get(flag) is False:
            del cd[flag]
    if isinstance(cd.get("portMappings"), list):
        cd["portMappings"] = _sorted_canonically(
            [_port_mapping(pm, network_mode) for pm in cd["portMappings"]]
        )
    for field in ("environment", "secrets", "ulimits"):
        cd[field] = _sorted_by(cd.get(field), "name")
    cd["systemControls"] = _sorted_by(cd.get("systemControls"), "namespace")
    cd["dependsOn"] = _sorted_by(cd.get("dependsOn"), "containerName")
    cd["resourceRequirements"] = _sorted_by(cd.get("resourceRequirements"), "type")
    for field in ("mountPoints", "volumesFrom"):
        items = cd.get(field)
        if isinstance(items, list):
            cleaned = []
            for item in items:
                if isinstance(item, Mapping) and item.get("readOnly") is False:
                    item = {k: v for k, v in item.items() if k != "readOnly"}
                cleaned.append(item)
            cd[field] = _sorted_canonically(cleaned)
    log = cd.get("logConfiguration")
    if isinstance(log, Mapping):
        log = dict(log)
        log["options"] = _string_values(log.get("options"))
        log["secretOptions"] = _sorted_by(log.get("secretOptions"), "name")
        cd["logConfiguration"] = log
    restart = cd.get("restartPolicy")
    if isinstance(restart, Mapping):
        if restart.get("enabled") is False:
            del cd["restartPolicy"]
        elif isinstance(restart.get("ignoredExitCodes"), list):
            cd["restartPolicy"] = {
                **restart,
                "ignoredExitCodes": _sorted_canonically(restart["ignoredExitCodes"]),
            }
    firelens = cd.get("firelensConfiguration")
    if isinstance(firelens, Mapping):
        cd["firelensConfiguration"] = {**firelens, "options": _string_values(firelens.get("options"))}
    cd["dockerLabels"] = _string_values(cd.get("dockerLabels"))
    health = cd.get("healthCheck")
    if isinstance(health, Mapping):
        health = {**_HEALTH_CHECK_DEFAULTS, **{k: v for k, v in health.items() if v is not None}}
        if health.get("startPeriod") == 0:
            del health["startPeriod"]
        cd["healthCheck"] = health
    return cd


def _volume(volume: Any) -> Any:
    if not isinstance(volume, Mapping):
        return volume
    volume = dict(volume)
    efs = volume.get("efsVolumeConfiguration")
    if isinstance(efs, Mapping):
        volume["efsVolumeConfiguration"] = {"rootDirectory": "/", **efs}
    return volume


def normalise_task_definition(body: Mapping[str, Any]) -> dict[str, Any]:
    """The canonical RegisterTaskDefinition form of a task definition (either side); idempotent."""
    td = copy.deepcopy(unwrap(body))
    for field in (*READ_ONLY_FIELDS, "tags"):
        td.pop(field, None)
    td = prune(td)
    if "cpu" in td:
        td["cpu"] = cpu_units(td["cpu"])
    if "memory" in td:
        td["memory"] = memory_mib(td["memory"])
    if isinstance(td.get("requiresCompatibilities"), list):
        td["requiresCompatibilities"] = sorted(set(td["requiresCompatibilities"]))
    platform = td.get("runtimePlatform")
    if isinstance(platform, Mapping):
        platform = {**_DEFAULT_PLATFORM, **platform}
        td["runtimePlatform"] = None if platform == _DEFAULT_PLATFORM else platform
    network_mode = _network_mode(td)
    td["networkMode"] = network_mode
    if td.get("enableFaultInjection") is False:
        del td["enableFaultInjection"]
    if isinstance(td.get("containerDefinitions"), list):
        containers = [_container(cd, network_mode) for cd in td["containerDefinitions"]]
        td["containerDefinitions"] = _sorted_by(containers, "name")
    if isinstance(td.get("volumes"), list):
        td["volumes"] = _sorted_by([_volume(v) for v in td["volumes"]], "name")
    td["placementConstraints"] = _sorted_canonically(td.get("placementConstraints"))
    td["inferenceAccelerators"] = _sorted_by(td.get("inferenceAccelerators"), "deviceName")
    proxy = td.get("proxyConfiguration")
    if isinstance(proxy, Mapping):
        td["proxyConfiguration"] = {**proxy, "properties": _sorted_by(proxy.get("properties"), "name")}
    _drop_defaults(td, drop_rows())
    return prune(td)


def _drop_defaults(td: dict[str, Any], rows: Any) -> None:
    for row in rows:
        parts = split(row.path)
        for holder in holders(td, parts):
            if parts[-1] in holder and same(holder[parts[-1]], row.value):
                del holder[parts[-1]]


def minimal_task_definition(body: Mapping[str, Any]) -> dict[str, Any]:
    """What a user would write for a described task definition: no read-only fields, tags, nulls or
    empty values, and no field that only repeats a documented default (``agent/plan/defaults.py``).

    ``normalise_task_definition`` of the result equals that of ``body``: planning one against the
    other is "no change".
    """
    td = copy.deepcopy(unwrap(body))
    for field in (*READ_ONLY_FIELDS, "tags"):
        td.pop(field, None)
    td = prune(td)
    mode = _network_mode(td)
    if td.get("networkMode") and _network_mode({k: v for k, v in td.items() if k != "networkMode"}) == mode:
        del td["networkMode"]
    for cd in td.get("containerDefinitions") or []:
        if not isinstance(cd, dict):
            continue
        if cd.get("cpu") == 0:
            del cd["cpu"]
        for pm in cd.get("portMappings") or []:
            if not isinstance(pm, dict) or "hostPort" not in pm:
                continue
            if (mode in ("awsvpc", "host") and pm["hostPort"] == pm.get("containerPort")) or (
                mode not in ("awsvpc", "host") and pm["hostPort"] == 0
            ):
                del pm["hostPort"]
        restart = cd.get("restartPolicy")
        if isinstance(restart, dict) and restart.get("enabled") is False:
            del cd["restartPolicy"]
    _drop_defaults(td, DEFAULTS)
    return prune(td)


def canonical_json(body: Mapping[str, Any]) -> str:
    """The normalised task definition as compact JSON with sorted keys (what the hash is taken of)."""
    return _canonical(normalise_task_definition(body))


def content_hash(body: Mapping[str, Any]) -> str:
    """First 16 hex characters of the SHA-256 of the canonical JSON: stable across key order, env order
    and unit spelling, different for any change ECS would register as different."""
    return hashlib.sha256(canonical_json(body).encode("utf-8")).hexdigest()[:16]


# The content hash of the bodies hashed last, by the digest of their JSON as written (a new commit loads
# every file again, as new objects: an unchanged body is then one JSON encoding, not a normalisation).
_HASHED: OrderedDict[bytes, str] = OrderedDict()
_HASHED_LOCK = threading.Lock()  # the pull-request plans run on a thread of their own
HASHED_KEPT = 4096


def file_hash(tdf: Any) -> str:
    """``content_hash`` of a loaded task-definition file (``TaskDefinitionFile``), worked out once per
    file object: a Desired reused from tick to tick hashes nothing again, and the hash lives exactly as
    long as the file it belongs to. The file is frozen and its body never changed in place. Another file
    object with the same body (the next commit's load of an unchanged file) finds it in ``_HASHED``."""
    found = tdf.__dict__.get("_content_hash")
    if found is None:
        text = json.dumps(tdf.body, sort_keys=True, separators=(",", ":"), default=repr)
        key = hashlib.blake2b(text.encode(), digest_size=16).digest()
        with _HASHED_LOCK:
            found = _HASHED.get(key)
        if found is None:
            found = content_hash(tdf.body)
            with _HASHED_LOCK:
                _HASHED[key] = found
                while len(_HASHED) > HASHED_KEPT:
                    _HASHED.popitem(last=False)
        object.__setattr__(tdf, "_content_hash", found)
    return str(found)


def register_request(body: Mapping[str, Any], digest: str | None = None) -> dict[str, Any]:
    """RegisterTaskDefinition parameters: the user's body without read-only fields, user tags kept
    (including those of a describe-output wrapper) and the content-hash tag set (``digest``, when the
    caller already has ``content_hash(body)``)."""
    td = copy.deepcopy(unwrap(body))
    for field in READ_ONLY_FIELDS:
        td.pop(field, None)
    tags = list(td.pop("tags", None) or [])
    wrapper_tags = body.get("tags") if "containerDefinitions" not in body else None
    if isinstance(wrapper_tags, list):
        tags.extend(copy.deepcopy(wrapper_tags))
    by_key: dict[str, dict[str, Any]] = {}
    for tag in tags:
        if isinstance(tag, Mapping) and tag.get("key") and not str(tag["key"]).startswith("aws:"):
            by_key[str(tag["key"])] = {"key": str(tag["key"]), "value": str(tag.get("value", ""))}
    by_key[HASH_TAG] = {"key": HASH_TAG, "value": digest or content_hash(body)}
    td["tags"] = list(by_key.values())
    return td


def echoed_fields(request: Mapping[str, Any], answer: Mapping[str, Any]) -> tuple[str, ...]:
    """The fields RegisterTaskDefinition's ``answer`` (the revision as ECS stored it) holds that its
    ``request`` did not ask for, both normalised: what ECS added or changed that the normaliser does not
    explain. JSON pointers such as ``/containerDefinitions/web/stopTimeout``; () when the two agree."""
    asked, stored = normalise_task_definition(request), normalise_task_definition(answer)
    return tuple(f.path for f in diff(asked, stored) if f.new is not ABSENT)


def family_revision(reference: str) -> str:
    """``family:revision`` of a task-definition ARN (or of ``family:revision`` itself)."""
    if reference.startswith("arn:") and ":task-definition/" in reference:
        return reference.rsplit(":task-definition/", 1)[1]
    return reference
