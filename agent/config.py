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
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from agent.errors import InvalidInput, Problem
from agent.manifests.schemas import schema as _schema
from agent.manifests.schemas import validate

API_VERSION = "ecs-gitops/v1"
KIND = "AgentConfig"
ENV_PREFIX = "ECS_GITOPS_"
ENV_FILE = "environment"  # the Problem.file for problems not tied to a file or a single variable

_DURATION = re.compile(r"^(?=\d)(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


def parse_duration(text: str) -> int:
    """Seconds in a manifest duration such as ``90s``, ``5m`` or ``1h30m``."""
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"not a duration: {text!r}")
    hours, minutes, seconds = (int(g or 0) for g in match.groups())
    return hours * 3600 + minutes * 60 + seconds


@dataclass(frozen=True)
class SourceConfig:
    """The manifest repository and how often to poll it."""

    repo: str = "."
    branch: str = "main"
    path: str = ""
    interval: str = "60s"
    token_env: str = "ECS_GITOPS_GIT_TOKEN"

    @property
    def interval_seconds(self) -> int:
        return parse_duration(self.interval)


@dataclass(frozen=True)
class AwsConfig:
    """How to reach AWS; ``None`` means the usual AWS sources decide."""

    region: str | None = None
    endpoint_url: str | None = None
    profile: str | None = None


@dataclass(frozen=True)
class ClustersConfig:
    """The clusters manifests may name; ``allow=None`` means any."""

    allow: tuple[str, ...] | None = None

    def allows(self, cluster: str) -> bool:
        return self.allow is None or cluster in self.allow


@dataclass(frozen=True)
class GithubConfig:
    api_url: str = "https://api.github.com"
    token_env: str = "GITHUB_TOKEN"
    token_file: str | None = None
    repository: str | None = None


@dataclass(frozen=True)
class GitlabConfig:
    api_url: str = "https://gitlab.com/api/v4"
    token_env: str = "GITLAB_TOKEN"
    project: str | None = None


@dataclass(frozen=True)
class StatusConfig:
    """Where commit statuses go: gitnotes, github, gitlab or log."""

    publisher: str = "gitnotes"
    github: GithubConfig = field(default_factory=GithubConfig)
    gitlab: GitlabConfig = field(default_factory=GitlabConfig)


@dataclass(frozen=True)
class StoreConfig:
    """The state store: a SQLite file or a DynamoDB table."""

    type: str = "sqlite"
    path: str = "ecs-gitops-state.db"
    table: str = "ecs-gitops"


@dataclass(frozen=True)
class ServerConfig:
    """The HTTP server (agent/server.py); the webhook secret itself is read from ``webhook_secret_env``."""

    port: int = 8080
    host: str = "127.0.0.1"
    webhook_secret_env: str = "ECS_GITOPS_WEBHOOK_SECRET"


@dataclass(frozen=True)
class HooksConfig:
    """Lifecycle hooks of agent-engine rollouts (agent/hooks.py): the HMAC key that signs each HTTP hook
    call is read from the environment variable ``secret_env``."""

    secret_env: str = "ECS_GITOPS_HOOK_SECRET"


@dataclass(frozen=True)
class LogConfig:
    """Logging (agent/logs.py): ``auto`` is JSON unless standard error is a terminal."""

    level: str = "info"
    format: str = "auto"


@dataclass(frozen=True)
class RateLimit:
    """A token bucket: ``burst`` calls at once, then ``per_second``."""

    burst: float
    per_second: float


@dataclass(frozen=True)
class PacingConfig:
    """How fast the agent calls ECS (defaults: ECS's published limits) and how many services roll out at
    once; the buckets are shared by all of them."""

    concurrency: int = 8
    register_task_definition: RateLimit = field(default_factory=lambda: RateLimit(20, 1))
    create_service: RateLimit = field(default_factory=lambda: RateLimit(50, 5))
    update_service: RateLimit = field(default_factory=lambda: RateLimit(50, 5))
    describe_services: RateLimit = field(default_factory=lambda: RateLimit(100, 20))


@dataclass(frozen=True)
class AgentConfig:
    """Everything the agent is told, validated. ``source_file`` and ``warnings`` are not compared."""

    source: SourceConfig = field(default_factory=SourceConfig)
    aws: AwsConfig = field(default_factory=AwsConfig)
    clusters: ClustersConfig = field(default_factory=ClustersConfig)
    status: StatusConfig = field(default_factory=StatusConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    server: ServerConfig = field(default_factory=ServerConfig)
    hooks: HooksConfig = field(default_factory=HooksConfig)
    log: LogConfig = field(default_factory=LogConfig)
    pacing: PacingConfig = field(default_factory=PacingConfig)
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
    data: Any = {"apiVersion": API_VERSION, "kind": KIND} if path is None else _read(path)
    origins: dict[str, str] = {}
    warnings: list[str] = []
    if isinstance(data, dict):
        _apply_env(data, env, origins, warnings)
    problems = [
        Problem(file=_origin(pointer, origins, file_label), pointer=pointer, message=message)
        for pointer, message in validate(KIND, data)
    ]
    if problems:
        raise InvalidInput(problems)
    return _build(_with_defaults(_schema(KIND), data), path, tuple(warnings))


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


def _read(path: str) -> Any:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput([Problem(path, "", f"cannot read the config file: {exc}")]) from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        reason = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise InvalidInput([Problem(path, "", f"not valid YAML or JSON: {reason}", line=line)]) from exc
    return {} if data is None else data


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
    if "array" in types:
        return [item.strip() for item in value.split(",") if item.strip()]
    if "integer" in types:
        try:
            return int(value)
        except ValueError:
            return value  # the schema reports it, pointing at the variable
    if "number" in types:
        try:
            return float(value)
        except ValueError:
            return value
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


def _section(cls: type, values: dict[str, Any], **nested: Any) -> Any:
    kwargs = {_snake(k): v for k, v in values.items() if k not in nested}
    return cls(**kwargs, **nested)


def _build(data: dict[str, Any], source_file: str | None, warnings: tuple[str, ...]) -> AgentConfig:
    status = data["status"]
    allow = data["clusters"]["allow"]
    return AgentConfig(
        source=_section(SourceConfig, data["source"]),
        aws=_section(AwsConfig, data["aws"]),
        clusters=ClustersConfig(allow=None if allow is None else tuple(allow)),
        status=_section(
            StatusConfig,
            status,
            github=_section(GithubConfig, status["github"]),
            gitlab=_section(GitlabConfig, status["gitlab"]),
        ),
        store=_section(StoreConfig, data["store"]),
        server=_section(ServerConfig, data["server"]),
        hooks=_section(HooksConfig, data["hooks"]),
        log=_section(LogConfig, data["log"]),
        pacing=_pacing(data["pacing"]),
        source_file=source_file,
        warnings=warnings,
    )


def _pacing(values: dict[str, Any]) -> PacingConfig:
    buckets = {
        _snake(k): RateLimit(float(v["burst"]), float(v["perSecond"]))
        for k, v in values.items()
        if isinstance(v, dict)
    }
    return PacingConfig(concurrency=int(values["concurrency"]), **buckets)
