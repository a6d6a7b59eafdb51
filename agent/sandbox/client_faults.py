"""Faults injected on the agent's side of its connections, as production brings them: AWS answers
through botocore's own hooks (``AwsFaults``), a git remote through wrapper programs git itself runs
(``GitRemoteFaults``). Faults inside the sandbox's AWS server are agent/sandbox/faults.py's; a Git host
that fails is agent/sandbox/git_hosts.py's ``FakeGitHost``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from agent.aws.clients import Aws

AWS_FAULT_KINDS = ("throttle", "5xx", "timeout")


class _Body:
    """The ``raw`` of a botocore AWSResponse made up by a hook: ``stream()`` yields the body once."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def stream(self, **_: Any) -> Any:
        yield self.data


class AwsFaults:
    """Make a share of an ``Aws``'s requests fail before they are sent: ``ThrottlingException`` (400),
    5xx and read timeouts, chosen by a seeded random generator (the same seed gives the same sequence of
    faults for the same sequence of requests).

    Installed as a botocore ``before-send`` handler (``Aws.register``), so every attempt is a real botocore
    attempt: the client's retry policy (standard or adaptive) sees the fault and retries as it would
    against AWS. A faulted request never reaches the server, so nothing is applied twice.

    >>> faults = AwsFaults(rate=0.2, seed=7).install(aws)     # doctest: +SKIP
    >>> faults.injected, faults.retries                       # doctest: +SKIP
    (Counter({'throttle': 21, '5xx': 19}), 40)
    """

    def __init__(
        self,
        rate: float = 0.2,
        seed: int = 0,
        kinds: tuple[str, ...] = ("throttle", "5xx"),
        services: tuple[str, ...] | None = None,
    ) -> None:
        import random
        import threading
        from collections import Counter

        if not 0.0 <= rate <= 1.0:
            raise ValueError("rate must be between 0 and 1")
        unknown = set(kinds) - set(AWS_FAULT_KINDS)
        if unknown or not kinds:
            raise ValueError(f"kinds must be some of {AWS_FAULT_KINDS}, not {kinds}")
        self.rate = rate
        self.kinds = kinds
        self.services = services  # botocore service ids ("ecs", "dynamodb"...); None: every service
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self.enabled = True
        self.attempts = 0  # requests seen (every attempt, retries included)
        self.injected: Counter[str] = Counter()
        self.retries = 0  # attempts botocore made again, over the calls that succeeded
        self.failed_calls = 0  # calls that failed after every attempt

    def install(self, aws: Aws) -> AwsFaults:
        aws.register("before-send.*.*", self._before_send)
        aws.register("after-call.*.*", self._after_call)
        aws.register("after-call-error.*.*", self._after_error)
        return self

    def _before_send(self, request: Any, event_name: str, **_: Any) -> Any:
        service = event_name.split(".")[1]
        with self._lock:
            self.attempts += 1
            if not self.enabled or (self.services is not None and service not in self.services):
                return None
            if self._rng.random() >= self.rate:
                return None
            kind = self._rng.choice(self.kinds)
            self.injected[kind] += 1
        if kind == "timeout":
            from botocore.exceptions import ReadTimeoutError

            raise ReadTimeoutError(endpoint_url=request.url)
        return _fault_response(request, service, kind)

    def _after_call(self, parsed: Any = None, **_: Any) -> None:
        attempts = int(((parsed or {}).get("ResponseMetadata") or {}).get("RetryAttempts", 0))
        with self._lock:
            self.retries += attempts

    def _after_error(self, **_: Any) -> None:
        with self._lock:
            self.failed_calls += 1

    def summary(self) -> dict[str, Any]:
        with self._lock:
            return {
                "attempts": self.attempts,
                "injected": dict(self.injected),
                "retries": self.retries,
                "failed_calls": self.failed_calls,
            }


def _fault_response(request: Any, service: str, kind: str) -> Any:
    """An error answer in the request's protocol (JSON, EC2 or query XML) as AWS gives it: throttling is
    ThrottlingException 400 (JSON), Throttling 400 (query), RequestLimitExceeded 503 (EC2); 5xx is a 500
    InternalFailure. Other protocols get a bare 503, which botocore retries the same way."""
    from botocore.awsrequest import AWSResponse, HeadersDict

    sent = _bytes(request.body)
    is_json = "X-Amz-Target" in request.headers
    is_query = not is_json and b"Action=" in sent
    message = "injected by agent.sandbox.client_faults.AwsFaults"
    status, code = (500, "InternalFailure") if kind != "throttle" else (400, "Throttling")
    headers = HeadersDict()
    if is_json:
        code = "ThrottlingException" if kind == "throttle" else code
        headers["x-amzn-ErrorType"] = code
        headers["Content-Type"] = "application/x-amz-json-1.1"
        body = json.dumps({"__type": code, "message": message}).encode()
    elif is_query and service == "ec2":
        status, code = (503, "RequestLimitExceeded") if kind == "throttle" else (status, code)
        body = (
            f"<Response><Errors><Error><Code>{code}</Code><Message>{message}</Message></Error></Errors>"
            "<RequestID>injected</RequestID></Response>"
        ).encode()
    elif is_query:
        body = (
            f"<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message>"
            "</Error><RequestId>injected</RequestId></ErrorResponse>"
        ).encode()
    else:
        status, body = 503, b""
    headers["Content-Length"] = str(len(body))
    return AWSResponse(request.url, status, headers, _Body(body))


def _bytes(body: Any) -> bytes:
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode()
    return b""


_GIT_WRAPPER = """#!/bin/sh
# agent.sandbox.client_faults.GitRemoteFaults: git {program} for the remote, unless a fault is set in {mode}
echo "$$" >> '{hits}'
mode=$(cat '{mode}' 2>/dev/null)
case "$mode" in
  down)
    echo "fatal: unable to access the remote: Connection refused (GitRemoteFaults)" >&2
    exit 128 ;;
  slow\\ *)
    sleep "${{mode#slow }}" ;;
  hold)
    : > '{held}'."$$"
    n=0
    while [ "$(cat '{mode}' 2>/dev/null)" = hold ] && [ "$n" -lt 2400 ]; do sleep 0.05; n=$((n + 1)); done
    rm -f '{held}'."$$"
    echo "fatal: the remote end hung up (held by GitRemoteFaults, then dropped)" >&2
    exit 128 ;;
esac
exec git {program} "$@"
"""


class GitRemoteFaults:
    """A git remote that is down, slow, or holds requests, for the git processes of one clone.

    git runs ``remote.<name>.uploadpack`` (fetch) and ``remote.<name>.receivepack`` (push) for every
    transport, ``file://`` and local paths included; these are wrappers that read a mode file at each
    connection: ``ok``, ``down`` (fails at once, as a refused connection does), ``slow <seconds>`` (answers
    that much later; a git timeout shorter than that fires) or ``hold`` (waits until the mode changes, then
    drops the connection: a test SIGKILLs the agent while it is held, a crash exactly inside that call).
    Fetch and push have a mode each. ``install`` writes the wrappers into a clone's config; ``env()`` gives
    the same as ``GIT_CONFIG_*`` variables for a subprocess whose clone does not exist yet.
    """

    PROGRAMS = {"fetch": "upload-pack", "push": "receive-pack"}

    def __init__(self, directory: Path) -> None:
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.wrappers: dict[str, Path] = {}
        for what, program in self.PROGRAMS.items():
            wrapper = self.dir / f"git-{program}"
            wrapper.write_text(
                _GIT_WRAPPER.format(
                    program=program,
                    mode=self.dir / f"{what}.mode",
                    hits=self.dir / f"{what}.hits",
                    held=self.dir / f"{what}.held",
                )
            )
            wrapper.chmod(0o755)
            self.wrappers[what] = wrapper
        self.clear()

    def install(self, clone: Path, remote: str = "origin") -> GitRemoteFaults:
        import git

        repo = git.Repo(clone)
        try:
            with repo.config_writer("repository") as cw:
                cw.set_value(f'remote "{remote}"', "uploadpack", str(self.wrappers["fetch"]))
                cw.set_value(f'remote "{remote}"', "receivepack", str(self.wrappers["push"]))
        finally:
            repo.close()
        return self

    def env(self, remote: str = "origin") -> dict[str, str]:
        return {
            "GIT_CONFIG_COUNT": "2",
            "GIT_CONFIG_KEY_0": f"remote.{remote}.uploadpack",
            "GIT_CONFIG_VALUE_0": str(self.wrappers["fetch"]),
            "GIT_CONFIG_KEY_1": f"remote.{remote}.receivepack",
            "GIT_CONFIG_VALUE_1": str(self.wrappers["push"]),
        }

    def set(self, mode: str, fetch: bool = True, push: bool = True) -> None:
        """Set ``mode`` (ok, down, hold, or "slow <seconds>") for fetches and/or pushes."""
        if mode not in ("ok", "down", "hold") and not mode.startswith("slow "):
            raise ValueError(f"mode must be ok, down, hold or 'slow <seconds>', not {mode!r}")
        for what, chosen in (("fetch", fetch), ("push", push)):
            if chosen:
                (self.dir / f"{what}.mode").write_text(mode)

    def down(self, fetch: bool = True, push: bool = True) -> None:
        self.set("down", fetch, push)

    def slow(self, seconds: float, fetch: bool = True, push: bool = True) -> None:
        self.set(f"slow {seconds:g}", fetch, push)

    def hold(self, fetch: bool = False, push: bool = True) -> None:
        self.set("hold", fetch, push)

    def clear(self) -> None:
        """Back to a working remote; held connections are dropped."""
        self.set("ok")

    def held(self, what: str = "push") -> int:
        """Connections waiting in ``hold`` now."""
        return len(list(self.dir.glob(f"{what}.held.*")))

    def hits(self, what: str = "push") -> int:
        """Connections made so far (fetches or pushes)."""
        path = self.dir / f"{what}.hits"
        return len(path.read_text().splitlines()) if path.exists() else 0
