"""The sections of the agent's settings, one frozen dataclass each (``AgentConfig`` in agent.config holds
them), and the duration syntax they share. Defaults mirror the schema's (a unit test keeps the two equal)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# ASCII digits only, like the schema's pattern (Python's \d also matches other scripts' digits).
_DURATION = re.compile(r"^(?=[0-9])(?:([0-9]+)h)?(?:([0-9]+)m)?(?:([0-9]+)s)?$")
MAX_INTERVAL = 24 * 3600  # a poll interval past a day is a typo (and a huge one overflows the scheduler)


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
    plan_refs: tuple[str, ...] = ()  # ref patterns (refs/pull/*/head) planned, never applied

    @property
    def interval_seconds(self) -> int:
        return parse_duration(self.interval)


@dataclass(frozen=True)
class VerifyConfig:
    """Signed commits (agent/git/verifying.py): ``mode`` ssh or gpg, ``allowed_signers`` the trusted keys'
    file (absolute), ``scope`` head or range, ``allow_rewind`` (a head older than the last accepted)."""

    mode: str
    allowed_signers: str
    scope: str = "head"
    allow_rewind: bool = False


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
class AccountConfig:
    """One account and region, its clusters, and the role the agent assumes there (agent/aws/accounts.py)."""

    name: str
    clusters: tuple[str, ...]
    account_id: str | None = None
    region: str | None = None
    role_arn: str | None = None
    external_id: str | None = None

    @property
    def account(self) -> str | None:
        """The account id: ``accountId``, else the one in ``roleArn``."""
        if self.account_id:
            return self.account_id
        return self.role_arn.split(":")[4] if self.role_arn else None


@dataclass(frozen=True)
class PruneLimit:
    """One commit may delete ``services`` services and ``percent`` % (rounded up) of those it manages."""

    services: int = 5
    percent: float = 10


@dataclass(frozen=True)
class SyncConfig:
    """Beyond applying Git: correct drift (``self_heal``), delete services gone from Git (``prune``), at
    most ``prune_limit`` of them per commit."""

    self_heal: bool = False
    prune: bool = False
    prune_limit: PruneLimit = field(default_factory=PruneLimit)


@dataclass(frozen=True)
class LimitsConfig:
    """How much one commit may ask the loader to read (agent/manifests/limits.py)."""

    max_files: int = 2000
    max_bytes: int = 8 * 1024 * 1024
    max_documents: int = 10_000


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
    token_file: str | None = None
    auth_type: str = "private"  # private (PRIVATE-TOKEN), bearer (OAuth), job (JOB-TOKEN)
    project: str | None = None


@dataclass(frozen=True)
class StatusConfig:
    """Where commit statuses go: gitnotes, github, gitlab or log."""

    publisher: str = "gitnotes"
    plan_comments: bool = False  # plans of planRefs heads as a PR/MR comment (github, gitlab)
    target_url: str | None = None  # every status's link: a template with {sha}, {context}, {service}
    github: GithubConfig = field(default_factory=GithubConfig)
    gitlab: GitlabConfig = field(default_factory=GitlabConfig)


@dataclass(frozen=True)
class StoreConfig:
    """The state store: a SQLite file or a DynamoDB table."""

    type: str = "sqlite"
    path: str = "ecs-gitops-state.db"
    table: str = "ecs-gitops"
    lease_ttl: str = "30s"
    owner: str | None = None  # None: host:pid (agent/store/__init__.py)

    @property
    def lease_ttl_seconds(self) -> int:
        return parse_duration(self.lease_ttl)


@dataclass(frozen=True)
class ServerConfig:
    """The HTTP server (agent/http/server.py); the webhook secret is read from ``webhook_secret_env``."""

    port: int = 8080
    host: str = "127.0.0.1"
    webhook_port: int | None = None  # a listener of its own for the webhooks; None: on ``port``
    webhook_secret_env: str = "ECS_GITOPS_WEBHOOK_SECRET"


@dataclass(frozen=True)
class HooksConfig:
    """Lifecycle hooks of task-set rollouts (agent/engines/hooks.py): the HMAC key that signs each HTTP hook
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
    describe_task_definition: RateLimit = field(default_factory=lambda: RateLimit(50, 20))
