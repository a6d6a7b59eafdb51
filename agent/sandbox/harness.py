"""Fakes and fixtures for tests, ours and other projects': the agent's plan/apply path on a sandbox,
a fake clock, the agent engine's traffic invariant, and file helpers."""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from agent.aws.clients import Aws
from agent.aws.executing import Applied, Executor
from agent.aws.pacing import Pacer
from agent.manifests.tree import DirTree
from agent.reconcile import PlanResult, Reconciler

REPO_ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = REPO_ROOT / "manifests-example"
CORPUS = REPO_ROOT.parent / "shared" / "corpus" / "taskdefs"
# A Tuesday, 12:00 in Berlin, in June: no window of manifests-example is open (weekday-nights opens at
# 22:00, year-end-freeze on 20 December), so a test whose clock starts here gets the same story on any
# date. (The demo starts its sandbox clock here too.)
CALM_START = datetime(2026, 6, 2, 10, 0, tzinfo=UTC)


def copy_example(dest: Path) -> None:
    """manifests-example copied into ``dest``, its services no longer in ``year-end-freeze``: for tests
    that deploy it on the real clock (a daemon's scheduler), which would otherwise stall from 20 December
    to 3 January. The freeze itself is tested on pinned clocks."""
    shutil.copytree(EXAMPLE, dest, dirs_exist_ok=True)
    for service in (dest / "services").glob("*.yaml"):
        lines = []
        for line in service.read_text().splitlines(keepends=True):
            found = re.fullmatch(r"(\s*windows: )\[(.*)\]\n", line)
            if found:
                kept = [w.strip() for w in found[2].split(",") if w.strip() != "year-end-freeze"]
                line = f"{found[1]}[{', '.join(kept)}]\n" if kept else ""
            lines.append(line)
        service.write_text("".join(lines))


class FakeClock:
    """Time that moves only when told: ``now()`` for datetimes, ``monotonic()`` and ``sleep()`` for pacing."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
        self._mono = 1000.0

    def now(self) -> datetime:
        return self._now

    def monotonic(self) -> float:
        return self._mono

    def advance(self, seconds: float) -> None:
        self._now += timedelta(seconds=seconds)
        self._mono += seconds

    sleep = advance


class Harness:
    """The agent's plan/apply path on one sandbox, sharing one AWS call counter."""

    def __init__(self, sandbox: Any) -> None:
        self.sandbox = sandbox
        self.aws = Aws(region=sandbox.region, endpoint_url=sandbox.endpoint)
        self.reconciler = Reconciler(self.aws)

    def plan(self, root: Path) -> PlanResult:
        return self.reconciler.plan(DirTree(root))

    def apply(self, root: Path) -> PlanResult:
        """Plan ``root`` and execute every change (pacing lifted: the sandbox has no API limits)."""
        result = self.plan(root)
        self.execute(result)
        return result

    def execute(self, result: PlanResult) -> Applied:
        return Executor(self.aws, Pacer(limits={})).execute(result.plan)


def write(root: Path, rel: str, content: Any) -> Path:
    """Write ``content`` (text, or JSON for anything else) at ``root/rel``, creating folders."""
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content if isinstance(content, str) else json.dumps(content, indent=2))
    return path


# -- fault injection (issue 6) ----------------------------------------------------------------------------
# Faults come from outside the agent, as in production: AWS answers through botocore's own hooks, a git
# remote through wrapper programs git itself runs, a Git-host API through a local HTTP server.

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
    message = "injected by agent.testing.AwsFaults"
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
# agent.testing.GitRemoteFaults: git {program} for the remote, unless a fault is set in {mode}
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


class FakeGitHost:
    """GitHub's commit-status API on 127.0.0.1 (``POST /repos/{o}/{r}/statuses/{sha}``, ``GET
    /repos/{o}/{r}/commits/{sha}/statuses``) that can be told to fail: ``mode`` ``ok``, ``5xx`` (503 to
    every request) or ``hang`` (reads the request, then answers nothing until the mode changes, and then
    a 503 without applying it: the client's timeout fires first). ``statuses[sha][context]`` is the
    latest accepted status; ``requests`` counts every request. Use as a context manager; point
    ``GitHubPublisher(base_url=host.url)`` at it.
    """

    def __init__(self) -> None:
        import threading

        self.mode = "ok"
        self.statuses: dict[str, dict[str, dict[str, Any]]] = {}
        self.history: list[dict[str, Any]] = []
        self.requests = 0
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._server: Any = None
        self.url = ""

    def set_mode(self, mode: str) -> None:
        if mode not in ("ok", "5xx", "hang"):
            raise ValueError(f"mode must be ok, 5xx or hang, not {mode!r}")
        with self._changed:
            self.mode = mode
            self._changed.notify_all()

    def __enter__(self) -> FakeGitHost:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        host = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
                host._serve(self, "POST", body)

            def do_GET(self) -> None:
                host._serve(self, "GET", None)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, name="fake-git-host", daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.set_mode("ok")  # let hanging requests go
        self._server.shutdown()
        self._server.server_close()

    def _serve(self, handler: Any, method: str, body: Any) -> None:
        import re

        with self._changed:
            self.requests += 1
            mode = self.mode
            while self.mode == "hang":
                self._changed.wait(timeout=60)
        if mode in ("5xx", "hang"):  # a hung request is never applied, even once the host is back
            return self._reply(handler, 503, {"message": "Service Unavailable (FakeGitHost)"})
        post = re.fullmatch(r"/repos/[^/]+/[^/]+/statuses/([0-9a-f]{40})", handler.path)
        get = re.fullmatch(r"/repos/[^/]+/[^/]+/commits/([0-9a-f]{40})/statuses(\?.*)?", handler.path)
        if method == "POST" and post and isinstance(body, dict) and body.get("state") and body.get("context"):
            entry = {k: body.get(k) for k in ("state", "description", "context", "target_url")}
            with self._lock:
                self.statuses.setdefault(post.group(1), {})[body["context"]] = entry
                self.history.append({"sha": post.group(1), **entry})
            return self._reply(handler, 201, {"id": len(self.history), **entry})
        if method == "GET" and get:
            with self._lock:
                found = list(reversed(self.statuses.get(get.group(1), {}).values()))
            return self._reply(handler, 200, found)
        return self._reply(handler, 404, {"message": "Not Found"})

    @staticmethod
    def _reply(handler: Any, status: int, payload: Any) -> None:
        data = json.dumps(payload).encode()
        try:
            handler.send_response(status)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(data)))
            handler.end_headers()
            handler.wfile.write(data)
        except OSError:
            pass  # the client gave up (its timeout fired while the request hung)


# -- a Git host with pull requests (issue 9) ---------------------------------------------------------
# FakeGitHost above fails on demand (statuses only); FakeGitHub also keeps pull-request comments.


class FakeGitHub:
    """GitHub's commit-status and issue-comment endpoints on 127.0.0.1, keeping what they are sent.

    Enough of the REST API for the agent's publishers: ``POST /repos/{o}/{r}/statuses/{sha}``,
    ``GET /repos/{o}/{r}/commits/{sha}/statuses``, ``GET|POST /repos/{o}/{r}/issues/{n}/comments``
    (paginated by ``per_page``/``page``) and ``PATCH /repos/{o}/{r}/issues/comments/{id}``. Requests
    without ``Authorization: Bearer <token>`` get 401, unknown paths 404. ``statuses[sha][context]`` is
    the latest status, ``comments[number]`` the comments of an issue, ``requests`` every (method, path).
    Use as a context manager; ``url`` is the API base to configure.
    """

    def __init__(self, token: str = "ghp_fake-token", repository: str = "acme/deployments") -> None:
        import threading
        from http.server import ThreadingHTTPServer

        self.token = token
        self.repository = repository
        self.statuses: dict[str, dict[str, dict[str, Any]]] = {}
        self.comments: dict[int, list[dict[str, Any]]] = {}
        self.requests: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self._next_id = 1000
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-github", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> FakeGitHub:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def answer(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        """(HTTP status, JSON body) for one request; the state changes as GitHub's would."""
        import re
        from urllib.parse import parse_qs, urlsplit

        parts = urlsplit(path)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        prefix = f"/repos/{self.repository}"
        route = parts.path.removeprefix(prefix) if parts.path.startswith(prefix + "/") else None
        with self._lock:
            self.requests.append((method, parts.path))
            if route is None:
                return 404, {"message": "Not Found"}
            if method == "POST" and (m := re.fullmatch(r"/statuses/([0-9a-f]{40})", route)):
                entry = {k: body.get(k) for k in ("state", "description", "context", "target_url")}
                self.statuses.setdefault(m.group(1), {})[body.get("context") or "default"] = entry
                return 201, {"id": 1, **entry}
            if method == "GET" and (m := re.fullmatch(r"/commits/([0-9a-f]{40})/statuses", route)):
                return 200, list(self.statuses.get(m.group(1), {}).values())[::-1]
            if m := re.fullmatch(r"/issues/(\d+)/comments", route):
                comments = self.comments.setdefault(int(m.group(1)), [])
                if method == "GET":
                    size, page = int(query.get("per_page", 30)), int(query.get("page", 1))
                    return 200, comments[(page - 1) * size : page * size]
                if method == "POST" and isinstance(body.get("body"), str):
                    self._next_id += 1
                    comments.append({"id": self._next_id, "body": body["body"]})
                    return 201, comments[-1]
                return 422, {"message": "Validation Failed"}
            if method == "PATCH" and (m := re.fullmatch(r"/issues/comments/(\d+)", route)):
                for comment in (c for cs in self.comments.values() for c in cs):
                    if comment["id"] == int(m.group(1)) and isinstance(body.get("body"), str):
                        comment["body"] = body["body"]
                        return 200, comment
                return 404, {"message": "Not Found"}
        return 404, {"message": "Not Found"}

    def _handler(self) -> type:
        from http.server import BaseHTTPRequestHandler

        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length)) if length else {}
                if self.headers.get("Authorization") != f"Bearer {fake.token}":
                    status, answer = 401, {"message": "Bad credentials"}
                else:
                    status, answer = fake.answer(self.command, self.path, body)
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PATCH = _serve

            def log_message(self, *args: Any) -> None:  # quiet: tests read ``requests``
                pass

        return Handler
# -- the agent engine's traffic invariant ------------------------------------------------------------


class TrafficInvariantError(AssertionError):
    """Listener weights that do not sum to 100, or traffic sent to a target group with no stable task set."""


@dataclass(frozen=True)
class TrafficSnapshot:
    """What :func:`check_traffic` read: rule weights (target-group ARN -> weight) and the task sets."""

    production: dict[str, int]
    test: dict[str, int] | None
    task_sets: tuple[dict[str, Any], ...]  # DescribeServices' taskSets, as ECS returns them

    def weight(self, target_group: str, rule: str = "production") -> int:
        """The weight ``target_group`` (ARN, or a name such as ``web-blue``) gets on the rule."""
        weights = self.production if rule == "production" else (self.test or {})
        return sum(w for arn, w in weights.items() if target_group in (arn, target_group_name(arn)))

    def registered(self, target_group: str) -> list[dict[str, Any]]:
        """The task sets registered to ``target_group`` (ARN or name)."""
        return [
            ts
            for ts in self.task_sets
            if any(
                target_group in (lb.get("targetGroupArn"), target_group_name(lb.get("targetGroupArn", "")))
                for lb in ts.get("loadBalancers") or []
            )
        ]


def target_group_name(arn: str) -> str:
    """``web-blue`` from ``arn:aws:elasticloadbalancing:...:targetgroup/web-blue/0123abcd``."""
    return arn.split(":targetgroup/", 1)[-1].split("/", 1)[0] if ":targetgroup/" in arn else arn


def rule_weights(rule: dict[str, Any]) -> dict[str, int]:
    """A listener rule's forward weights (target-group ARN -> weight), as ELB routes them.

    A plain forward (``TargetGroupArn``, which AWS also echoes as a one-group ForwardConfig) sends the
    group everything: 100. Otherwise the ForwardConfig's weights, as written."""
    forwards = [a for a in rule.get("Actions") or [] if a.get("Type") == "forward"]
    if len(forwards) != 1:
        raise TrafficInvariantError(f"rule {rule.get('RuleArn')} has {len(forwards)} forward actions, not 1")
    action = forwards[0]
    if action.get("TargetGroupArn"):
        return {action["TargetGroupArn"]: 100}
    groups = (action.get("ForwardConfig") or {}).get("TargetGroups") or []
    return {g["TargetGroupArn"]: int(g.get("Weight", 1)) for g in groups}


def check_traffic(
    clients: Any, cluster: str, service: str, rule_arn: str, test_rule_arn: str | None = None
) -> TrafficSnapshot:
    """Assert the agent engine's invariant over HTTP; return what was read.

    ``clients`` is anything with ``client(name)`` (a :class:`~agent.sandbox.server.Sandbox`, an
    :class:`~agent.aws.clients.Aws`). Reads the production rule (and the test rule) with one
    DescribeRules and the service's task sets with one DescribeServices, then checks:

    * each rule's weights sum to 100;
    * every target group with production weight > 0 has a task set registered to it that is
      STEADY_STATE and runs its computedDesiredCount (never traffic to nothing, or to tasks still
      starting);
    * on the test rule, a target group with weight > 0 that has task sets registered has a stable one
      (a test rule may point at an empty group before the first rollout: no user is behind it).

    Raises :class:`TrafficInvariantError` (an AssertionError) naming the rule and the target group.
    """
    arns = [rule_arn] + ([test_rule_arn] if test_rule_arn else [])
    rules = {r["RuleArn"]: r for r in clients.client("elbv2").describe_rules(RuleArns=arns)["Rules"]}
    for arn in arns:
        if arn not in rules:
            raise TrafficInvariantError(f"listener rule {arn} not found")
    described = clients.client("ecs").describe_services(cluster=cluster, services=[service])["services"]
    if not described:
        raise TrafficInvariantError(f"service {cluster}/{service} not found")
    task_sets = tuple(ts for ts in described[0].get("taskSets") or [] if ts.get("status") != "DRAINING")
    snapshot = TrafficSnapshot(
        production=rule_weights(rules[rule_arn]),
        test=rule_weights(rules[test_rule_arn]) if test_rule_arn else None,
        task_sets=task_sets,
    )
    for which, weights in (("production", snapshot.production), ("test", snapshot.test)):
        if weights is None:
            continue
        total = sum(weights.values())
        if total != 100:
            raise TrafficInvariantError(
                f"{service}: {which} rule weights sum to {total}, not 100: {_named(weights)}"
            )
        for group, weight in weights.items():
            if weight <= 0:
                continue
            registered = snapshot.registered(group)
            if which == "test" and not registered:
                continue
            if not any(_stable(ts) for ts in registered):
                states = [
                    f"{ts.get('externalId', ts['id'])[:12]} {ts['status']} {ts.get('stabilityStatus')} "
                    f"{ts.get('runningCount')}/{ts.get('computedDesiredCount')}"
                    for ts in registered
                ] or ["no task set"]
                raise TrafficInvariantError(
                    f"{service}: {which} rule sends {weight} % to {target_group_name(group)}, which has "
                    f"no stable task set ({'; '.join(states)}); weights {_named(weights)}"
                )
    return snapshot


def _stable(task_set: dict[str, Any]) -> bool:
    return task_set.get("stabilityStatus") == "STEADY_STATE" and int(task_set.get("runningCount", 0)) >= int(
        task_set.get("computedDesiredCount", 0)
    )


def _named(weights: dict[str, int]) -> str:
    return ", ".join(f"{target_group_name(arn)}={w}" for arn, w in weights.items())
