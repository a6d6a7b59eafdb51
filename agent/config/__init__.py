"""The agent's own settings: a YAML or JSON file, then ``ECS_GITOPS_<SECTION>_<FIELD>`` overrides.

Precedence is schema default < file < environment, so a container image can ship a config file and a
deployment can still change one field (``ECS_GITOPS_AWS_REGION=eu-west-1``). The merged result is
validated against ``schemas/agent-config.schema.json`` before anything uses it, and every problem is
reported at once. Defaults live in the schema (so editors show them); the dataclasses mirror them and
a unit test keeps the two equal.

Environment names come from the schema's property paths: camelCase becomes UPPER_SNAKE and the parts
are joined by ``_`` (``status.github.apiUrl`` -> ``ECS_GITOPS_STATUS_GITHUB_API_URL``). List values
are comma-separated (``ECS_GITOPS_CLUSTERS_ALLOW=prod,staging``); an empty value counts as unset.
"""

from __future__ import annotations

import copy
import difflib
import json
import math
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from agent.config.sections import (
    MAX_INTERVAL,
    AccountConfig,
    AwsConfig,
    ClustersConfig,
    GithubConfig,
    GitlabConfig,
    HooksConfig,
    LimitsConfig,
    LogConfig,
    PacingConfig,
    PruneLimit,
    RateLimit,
    ServerConfig,
    SourceConfig,
    StatusConfig,
    StoreConfig,
    SyncConfig,
    VerifyConfig,
    parse_duration,
)
from agent.errors import InvalidInput, Problem
from agent.manifests.model import Source
from agent.manifests.schemas import schema as _schema
from agent.manifests.schemas import validate

__all__ = [
    "API_VERSION",
    "ENV_PREFIX",
    "KIND",
    "MAX_INTERVAL",
    "AccountConfig",
    "AgentConfig",
    "AwsConfig",
    "ClustersConfig",
    "GithubConfig",
    "GitlabConfig",
    "HooksConfig",
    "LimitsConfig",
    "LogConfig",
    "PacingConfig",
    "PruneLimit",
    "RateLimit",
    "ServerConfig",
    "SourceConfig",
    "StatusConfig",
    "StoreConfig",
    "SyncConfig",
    "VerifyConfig",
    "env_settings",
    "load_config",
    "parse_duration",
]

API_VERSION = "ecs-gitops/v1"
KIND = "AgentConfig"
ENV_PREFIX = "ECS_GITOPS_"
ENV_FILE = "environment"  # the Problem.file for problems not tied to a file or a single variable



@dataclass(frozen=True)
class AgentConfig:
    """Everything the agent is told, validated. ``source_file`` and ``warnings`` are not compared."""

    source: SourceConfig = field(default_factory=SourceConfig)
    aws: AwsConfig = field(default_factory=AwsConfig)
    clusters: ClustersConfig = field(default_factory=ClustersConfig)
    accounts: tuple[AccountConfig, ...] = ()
    sync: SyncConfig = field(default_factory=SyncConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    status: StatusConfig = field(default_factory=StatusConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    server: ServerConfig = field(default_factory=ServerConfig)
    hooks: HooksConfig = field(default_factory=HooksConfig)
    log: LogConfig = field(default_factory=LogConfig)
    pacing: PacingConfig = field(default_factory=PacingConfig)
    verify: VerifyConfig | None = None
    source_file: str | None = field(default=None, compare=False)
    warnings: tuple[str, ...] = field(default=(), compare=False)

    @classmethod
    def default(cls) -> AgentConfig:
        """The configuration when no file is given and no variable is set (the schema's defaults)."""
        return _build(_with_defaults(_schema(KIND), {"apiVersion": API_VERSION, "kind": KIND}), None, ())


def load_config(path: str | None, env: Mapping[str, str] = os.environ) -> AgentConfig:
    """Read ``path`` (or start from defaults when None), apply ``ECS_GITOPS_*`` from ``env``, validate.

    Raises ``InvalidInput`` listing every problem, each located by file (or variable) and JSON pointer.
    """
    file_label = path if path is not None else ENV_FILE
    data: Any = {"apiVersion": API_VERSION, "kind": KIND}
    source: Source | None = None
    if path is not None:
        data, source = _read(path)
    origins: dict[str, str] = {}
    warnings: list[str] = []
    if isinstance(data, dict):
        _apply_env(data, env, origins, warnings)
    found = validate(KIND, data)
    if not found and isinstance(data, dict):
        found = _account_problems(data.get("accounts") or [])

    def located(pointer: str, message: str) -> Problem:
        """A problem at ``pointer``: in the variable that set it, else at its line of the file."""
        where = _origin(pointer, origins, file_label)
        line = source.line_of(pointer) if source is not None and where == file_label else None
        return Problem(file=where, pointer=pointer, message=message, line=line)

    problems = [located(pointer, message) for pointer, message in found]
    if problems:
        raise InvalidInput(problems)
    config = _build(_with_defaults(_schema(KIND), data), path, tuple(warnings))
    if config.source.interval_seconds > MAX_INTERVAL:
        message = f"must be at most 24h (got {config.source.interval}); the agent polls at least daily"
        raise InvalidInput([located("/source/interval", message)])
    if config.verify is not None and not Path(config.verify.allowed_signers).is_file():
        message = f"no such file: {config.verify.allowed_signers}"
        raise InvalidInput([located("/verify/allowedSigners", message)])
    return config


def env_settings() -> dict[str, tuple[tuple[str, ...], dict[str, Any]]]:
    """Every ``ECS_GITOPS_*`` variable name -> (property path, leaf schema), from the config schema."""
    return dict(_leaves(_schema(KIND), ()))


def _leaves(node: dict[str, Any], path: tuple[str, ...]) -> Iterator[tuple[str, tuple[Any, ...]]]:
    for name, prop in node.get("properties", {}).items():
        if not path and name in ("apiVersion", "kind"):
            continue
        if "properties" in prop:
            yield from _leaves(prop, (*path, name))
        else:
            full = (*path, name)
            yield ENV_PREFIX + "_".join(_upper_snake(p) for p in full), (full, prop)


def _upper_snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).upper()


def _snake(name: str) -> str:
    return _upper_snake(name).lower()


def _read(path: str) -> tuple[Any, Source | None]:
    """The one document of the config file and the line of each of its nodes, read as safely as a
    manifest (agent.manifests.loading: size and encoding limits, no alias bombs, duplicate keys or
    YAML-only types, finite numbers)."""
    from agent.manifests.loading import parse_bytes

    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise InvalidInput([Problem(path, "", f"cannot read the config file: {reason}")]) from exc
    documents, problems = parse_bytes(raw, path)
    problems = [
        replace(p, message=p.message.replace("not valid YAML", "not valid YAML or JSON")) for p in problems
    ]
    if not problems and len(documents) > 1:
        line = documents[1].source.line
        problems = [Problem(path, "", "holds several YAML documents; the config is one document", line)]
    if problems:
        raise InvalidInput(problems)
    return (documents[0].data, documents[0].source) if documents else ({}, None)


def _apply_env(
    data: dict[str, Any], env: Mapping[str, str], origins: dict[str, str], warnings: list[str]
) -> None:
    settings = env_settings()
    sections = {_upper_snake(path[0]) for path, _ in settings.values()}
    for name in sorted(env):
        if not name.startswith(ENV_PREFIX):
            continue
        value = env[name]
        if name not in settings:
            section = name[len(ENV_PREFIX) :].split("_", 1)[0]
            # ECS_GITOPS_GIT_TOKEN and the like hold secrets named by a tokenEnv setting, not settings.
            if section in sections and value and not name.endswith("_TOKEN"):
                close = difflib.get_close_matches(name, list(settings), n=1)
                hint = f" (did you mean {close[0]}?)" if close else ""
                warnings.append(f"{name} is not a setting and is ignored{hint}")
            continue
        if value == "":
            continue
        path, leaf = settings[name]
        node: Any = data
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                break  # the file has a non-mapping here; the schema says so
        else:
            node[path[-1]] = _convert(value, leaf)
            origins["".join("/" + p for p in path)] = name


def _convert(value: str, leaf: dict[str, Any]) -> Any:
    types = leaf.get("type", "string")
    types = [types] if isinstance(types, str) else types
    if "array" in types and str((leaf.get("items") or {}).get("$ref", "")).startswith("#/$defs/"):
        # a list of objects (accounts): JSON
        try:
            return json.loads(value)
        except ValueError:
            return value  # the schema reports it, pointing at the variable
    if "array" in types:
        return [item.strip() for item in value.split(",") if item.strip()]
    if "integer" in types:
        try:
            return int(value)
        except ValueError:
            return value  # the schema reports it, pointing at the variable
    if "number" in types:
        try:
            number = float(value)
        except ValueError:
            return value
        return number if math.isfinite(number) else value  # "nan", "inf": the schema reports the text
    if "boolean" in types:
        lowered = value.strip().lower()
        if lowered in ("true", "1", "yes", "on"):
            return True
        if lowered in ("false", "0", "no", "off"):
            return False
    return value


def _origin(pointer: str, origins: dict[str, str], file_label: str) -> str:
    for set_at, variable in origins.items():
        if pointer == set_at or pointer.startswith(set_at + "/"):
            return variable
    return file_label


def _with_defaults(node: dict[str, Any], data: Any) -> Any:
    """``data`` with every absent property that has a schema ``default`` filled in, recursively."""
    if not isinstance(data, dict):
        return data
    out = dict(data)
    for name, prop in node.get("properties", {}).items():
        if name not in out and "default" in prop:
            out[name] = copy.deepcopy(prop["default"])
        if "properties" in prop and isinstance(out.get(name), dict):
            out[name] = _with_defaults(prop, out[name])
    return out


def _account_problems(accounts: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """What the schema cannot say about ``accounts``: unique names, each cluster in one account, and an
    accountId that agrees with its roleArn."""
    problems: list[tuple[str, str]] = []
    names: dict[str, int] = {}
    clusters: dict[str, str] = {}
    for i, account in enumerate(accounts):
        name = account["name"]
        if name in names:
            problems.append((f"/accounts/{i}/name", f'"{name}" already names /accounts/{names[name]}'))
        names.setdefault(name, i)
        for j, cluster in enumerate(account["clusters"]):
            if cluster in clusters and clusters[cluster] != name:
                message = f'cluster "{cluster}" is already in account "{clusters[cluster]}"'
                problems.append((f"/accounts/{i}/clusters/{j}", message))
            clusters.setdefault(cluster, name)
        role, account_id = account.get("roleArn"), account.get("accountId")
        if role and account_id and role.split(":")[4] != account_id:
            problems.append(
                (f"/accounts/{i}/accountId", f"{account_id} is not the account of roleArn {role}")
            )
        if account.get("externalId") and not role:
            message = "needs roleArn: the role whose trust policy asks for it"
            problems.append((f"/accounts/{i}/externalId", message))
    return problems


def _section(cls: type, values: dict[str, Any], **nested: Any) -> Any:
    kwargs = {_snake(k): v for k, v in values.items() if _snake(k) not in nested}
    return cls(**kwargs, **nested)


def _build(data: dict[str, Any], source_file: str | None, warnings: tuple[str, ...]) -> AgentConfig:
    status = data["status"]
    allow = data["clusters"]["allow"]
    source = dict(data["source"])
    source["planRefs"] = tuple(source.get("planRefs") or ())
    return AgentConfig(
        source=_section(SourceConfig, source),
        aws=_section(AwsConfig, data["aws"]),
        clusters=ClustersConfig(allow=None if allow is None else tuple(allow)),
        accounts=tuple(
            AccountConfig(
                name=a["name"],
                clusters=tuple(a["clusters"]),
                account_id=a.get("accountId"),
                region=a.get("region"),
                role_arn=a.get("roleArn"),
                external_id=a.get("externalId"),
            )
            for a in data["accounts"]
        ),
        sync=_section(SyncConfig, data["sync"], prune_limit=_section(PruneLimit, data["sync"]["pruneLimit"])),
        limits=_section(LimitsConfig, data["limits"]),
        status=_section(
            StatusConfig,
            status,
            github=_section(GithubConfig, status["github"]),
            gitlab=_section(GitlabConfig, _gitlab(status["gitlab"])),
        ),
        store=_section(StoreConfig, data["store"]),
        server=_section(ServerConfig, data["server"]),
        hooks=_section(HooksConfig, data["hooks"]),
        log=_section(LogConfig, data["log"]),
        pacing=_pacing(data["pacing"]),
        verify=_verify(data.get("verify"), source_file),
        source_file=source_file,
        warnings=warnings,
    )


def _gitlab(values: dict[str, Any]) -> dict[str, Any]:
    """The GitLab settings, ``project`` as text: a numeric ID (``1234``) works as well as a path."""
    project = values.get("project")
    return {**values, "project": None if project is None else str(project)}


def _verify(values: dict[str, Any] | None, source_file: str | None) -> VerifyConfig | None:
    """The signed-commit settings, ``allowedSigners`` taken relative to the config file's folder."""
    if values is None:
        return None
    base = Path(source_file).parent if source_file else Path.cwd()
    signers = (base / Path(values["allowedSigners"]).expanduser()).resolve()
    return VerifyConfig(values["mode"], str(signers), values["scope"], bool(values["allowRewind"]))


def _pacing(values: dict[str, Any]) -> PacingConfig:
    buckets = {
        _snake(k): RateLimit(float(v["burst"]), float(v["perSecond"]))
        for k, v in values.items()
        if isinstance(v, dict)
    }
    return PacingConfig(concurrency=int(values["concurrency"]), **buckets)
