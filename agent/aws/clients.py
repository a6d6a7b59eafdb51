"""One place that makes AWS clients (botocore's): endpoint, region, profile, retries, call accounting.

``AWS_ENDPOINT_URL`` (and the per-service ``AWS_ENDPOINT_URL_<SERVICE>``) is honoured by botocore
itself; ``--endpoint-url`` overrides it for every client. Against a loopback endpoint (the sandbox)
with no credentials configured, dummy credentials are used, so nothing local needs a real AWS account.
``Aws.assume_role`` and ``Aws.in_region`` make the Aws of another account or region (the agent config's
``accounts``) on the same endpoint and call counter.
"""

from __future__ import annotations

import base64
import os
import threading
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlparse

import botocore.config
import botocore.credentials
import botocore.session
import botocore.utils

from agent.aws.parsing import ParserFactory

DEFAULT_REGION = "eu-west-1"
ASSUMED_SESSION_SECONDS = 3600  # AssumeRole's default; every role allows it, even when chained
_LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}
_ONCE = botocore.config.Config(retries={"mode": "standard", "total_max_attempts": 1})


def parse_timestamp(value: Any) -> datetime:
    """A response timestamp as an aware datetime: the epoch seconds of the JSON protocols (ECS, ELB,
    CloudWatch...) in UTC at once, anything else by botocore's own parser. botocore's default builds a
    local-time zone object for every value, a fifth of the CPU of reading 1,000 services."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            return datetime.fromtimestamp(value, UTC)
        except (OSError, OverflowError, ValueError):
            pass
    return botocore.utils.parse_timestamp(value)


# Every ``service.Operation`` any Aws client of this process has called: the IAM coverage test
# (tests/test_iam_policy.py) checks manifests-example/agent/iam-policy.json against it.
OPERATIONS_CALLED: set[str] = set()


def _record(model: Any, **_: Any) -> None:
    OPERATIONS_CALLED.add(f"{model.service_model.service_name}.{model.name}")


def is_loopback(url: str | None) -> bool:
    """True for an endpoint on this machine (the sandbox)."""
    return bool(url) and (urlparse(url).hostname or "") in _LOOPBACK


@dataclass
class CallCounter:
    """Counts AWS API calls by ``service.Operation`` through botocore's ``before-call`` event.

    Counts what the agent asks for, once per call (retries of the same call are not counted again).
    """

    counts: Counter[str] = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __call__(self, model: Any, **_: Any) -> None:
        key = f"{model.service_model.service_name}.{model.name}"
        with self._lock:
            self.counts[key] += 1

    def total(self, prefix: str = "") -> int:
        return sum(n for k, n in self.counts.items() if k.startswith(prefix))

    def mutating(self) -> dict[str, int]:
        """Calls whose operation is not a read (Describe/List/Get)."""
        reads = ("Describe", "List", "Get")
        return {k: n for k, n in self.counts.items() if not k.split(".", 1)[1].startswith(reads)}

    def reset(self) -> None:
        with self._lock:
            self.counts.clear()


class Aws:
    """A factory of botocore clients that share one session, endpoint, retry policy and call counter."""

    def __init__(
        self,
        region: str | None = None,
        endpoint_url: str | None = None,
        profile: str | None = None,
        max_attempts: int = 8,
        counter: CallCounter | None = None,
        credentials: botocore.credentials.Credentials | None = None,
    ) -> None:
        self.counter = counter or CallCounter()
        self.max_attempts = max_attempts
        core = botocore.session.Session(profile=profile)
        if credentials is not None:  # e.g. an assumed role's, refreshed by botocore (see assume_role)
            core.register_component(
                "credential_provider", botocore.credentials.CredentialResolver([_Given(credentials)])
            )
        # botocore applies AWS_ENDPOINT_URL when it makes a client but does not report it here: read it too,
        # so the loopback (sandbox) check below sees it.
        self.endpoint_url = (
            endpoint_url or os.environ.get("AWS_ENDPOINT_URL") or core.get_config_variable("endpoint_url")
        )
        self.region = region or core.get_config_variable("region") or DEFAULT_REGION
        if is_loopback(self.endpoint_url) and core.get_credentials() is None:
            core.set_credentials("sandbox", "sandbox")
        # json-protocol responses (ECS...): converters compiled once per shape (agent/aws/parsing.py).
        parsers = ParserFactory()
        # blob_parser given (botocore's own default decodes base64 the same way): a parser then holds no bound
        # method of itself, so the one botocore makes per response is freed at once, not left in a cycle.
        parsers.set_parser_defaults(timestamp_parser=parse_timestamp, blob_parser=base64.b64decode)
        core.register_component("response_parser_factory", parsers)
        self.parsers = parsers  # the Observer has it forget the answers no longer asked for
        # Clients come from botocore's session directly: boto3's Session adds nothing the agent uses (its
        # resources and S3 transfer methods) and importing it costs a new process about 0.1 s.
        self._core = core
        self._config = botocore.config.Config(
            retries={"mode": "adaptive", "max_attempts": max_attempts},
            connect_timeout=5,
            read_timeout=30,
            max_pool_connections=32,
        )
        self._clients: dict[str, Any] = {}
        self._handlers: list[tuple[str, Any]] = []
        self._lock = threading.Lock()

    def register(self, event: str, handler: Any) -> None:
        """Register a botocore event handler on every client, those made and those to come (the tests'
        fault injection, agent/sandbox/client_faults.py, hooks ``before-send`` this way)."""
        with self._lock:
            self._handlers.append((event, handler))
            for client in self._clients.values():
                client.meta.events.register(event, handler)

    def client(self, service: str, *, retried: bool = True) -> Any:
        """The (cached, thread-safe) client for ``service``. ``retried=False``: one that sends each request
        once, for a call that must not be repeated blindly when its answer is lost (the caller decides)."""
        key = service if retried else f"{service}#once"
        with self._lock:
            if key not in self._clients:
                config = self._config if retried else self._config.merge(_ONCE)
                kwargs: dict[str, Any] = {"config": config, "region_name": self.region}
                if self.endpoint_url:
                    kwargs["endpoint_url"] = self.endpoint_url
                client = self._core.create_client(service, **kwargs)
                client.meta.events.register("before-call.*.*", self.counter)
                client.meta.events.register("before-call.*.*", _record)
                for event, handler in self._handlers:
                    client.meta.events.register(event, handler)
                self._clients[key] = client
            return self._clients[key]

    def in_region(self, region: str) -> Aws:
        """This Aws's credentials, endpoint and call counter in ``region`` (itself when it is the same)."""
        if region == self.region:
            return self
        return Aws(
            region=region,
            endpoint_url=self.endpoint_url,
            max_attempts=self.max_attempts,
            counter=self.counter,
            credentials=self._core.get_credentials(),
        )

    def assume_role(
        self,
        role_arn: str,
        *,
        region: str | None = None,
        external_id: str | None = None,
        session_name: str = "ecs-gitops",
        time_fetcher: Any = None,
    ) -> Aws:
        """An Aws acting as ``role_arn`` in ``region``: STS AssumeRole with this Aws's credentials.

        botocore's own refreshable credentials do the work: the role is assumed on the first call, and
        again when the session has less than 15 minutes left (``time_fetcher`` is their clock; tests move
        it). The STS calls go through this Aws's endpoint, retries and call counter.
        """
        extra: dict[str, Any] = {"RoleSessionName": session_name, "DurationSeconds": ASSUMED_SESSION_SECONDS}
        if external_id:
            extra["ExternalId"] = external_id
        fetcher = botocore.credentials.AssumeRoleCredentialFetcher(
            client_creator=lambda service, **keys: self._sts(region or self.region, **keys),
            source_credentials=self._core.get_credentials(),
            role_arn=role_arn,
            extra_args=extra,
            cache=_NoCache(),  # the refreshable credentials hold the session; a cache would hide expiry
        )
        kwargs: dict[str, Any] = {"time_fetcher": time_fetcher} if time_fetcher is not None else {}
        credentials = botocore.credentials.DeferredRefreshableCredentials(
            refresh_using=fetcher.fetch_credentials, method="assume-role", **kwargs
        )
        return Aws(
            region=region or self.region,
            endpoint_url=self.endpoint_url,
            max_attempts=self.max_attempts,
            counter=self.counter,
            credentials=credentials,
        )

    def _sts(self, region: str, **credentials: Any) -> Any:
        """An STS client with the given keys (for AssumeRoleCredentialFetcher), counted like the others."""
        kwargs: dict[str, Any] = {"config": self._config, "region_name": region, **credentials}
        if self.endpoint_url:
            kwargs["endpoint_url"] = self.endpoint_url
        client = self._core.create_client("sts", **kwargs)
        client.meta.events.register("before-call.*.*", self.counter)
        client.meta.events.register("before-call.*.*", _record)
        return client


class _Given(botocore.credentials.CredentialProvider):
    """A credential provider that hands botocore credentials made elsewhere (an assumed role's)."""

    METHOD = "ecs-gitops"

    def __init__(self, credentials: botocore.credentials.Credentials) -> None:
        super().__init__()
        self._credentials = credentials

    def load(self) -> botocore.credentials.Credentials:
        return self._credentials


class _NoCache(dict[str, Any]):
    """A cache for AssumeRoleCredentialFetcher that keeps nothing: every refresh calls AssumeRole."""

    def __contains__(self, key: object) -> bool:
        return False

    def __setitem__(self, key: str, value: Any) -> None:
        pass
