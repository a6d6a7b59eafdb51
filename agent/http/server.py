"""The agent's HTTP side: ``/healthz``, ``/readyz``, ``/metrics`` and the push webhooks.

* ``GET /healthz``: 200 while the process serves requests (the container HEALTHCHECK and the ECS
  health check use it; restarting cannot fix anything else).
* ``GET /readyz``: 503 until the first tick has completed, then 200 while ticks keep completing, 503
  once the last good tick is older than three poll intervals (git or AWS unreachable, the loop stuck);
  the JSON body says which and since when, and ``degraded`` says how long commit statuses have been
  waiting to be written (a Git host down or refusing the token: the rollouts go on, so still 200).
* ``GET|HEAD /healthz``: 200 while the process serves requests.
* ``GET /metrics``: Prometheus text format (prometheus-client), from a registry of this agent's own
  (agent/http/metrics.py).
* ``POST /webhook/github`` (``X-Hub-Signature-256``, HMAC-SHA256 of the body) and ``POST
  /webhook/gitlab`` (``X-Gitlab-Token``) ask for a tick at once when the tracked branch got a push.
  Both compare in constant time, answer 401 to a missing or wrong signature, 403 while no secret is
  configured, and 413 to a body over 1 MiB (before reading it). A delivery ID seen before (a replay, a
  redelivery) asks for nothing; an ask interrupts a tick that is only reading, and asks that arrive while
  a tick acts coalesce into one more tick (agent/reconcile/scheduling.py). With ``server.webhookPort``
  set they are served on that port alone (every other path 404 there), so they can be exposed without
  the rest.
* ``GET /dashboard/`` (with its ``dashboard.js`` and ``dashboard.css``) and ``GET /dashboard/state.json``:
  the read-only dashboard (agent/http/dashboard.py), on an agent that has one.

The server is the standard library's ``HTTPServer`` on a daemon thread: a few routes, no templates, no
sessions, so a web framework would add a dependency and nothing else. Requests run on a bounded pool of
worker threads (agent/http/pool.py): a connection waits without a thread until its request arrives, and
past the pool and its queue a connection gets 503 at once, so held connections never grow the threads
and a health check still answers. The handlers only read state the agent updates after each tick, and a
webhook only schedules a tick, never runs one on the request.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

import structlog
from prometheus_client import CONTENT_TYPE_LATEST

from agent.http.dashboard import HEADERS as DASHBOARD_HEADERS
from agent.http.dashboard import STATE_PATH, asset
from agent.http.metrics import Metrics
from agent.http.pool import PooledHTTPServer

log = structlog.get_logger()

MAX_BODY = 1024 * 1024  # webhook payloads larger than this are refused (413) without being read
STALE_INTERVALS = 3  # /readyz turns 503 when the last good tick is older than this many poll intervals


# -- readiness ---------------------------------------------------------------------------------------


class Readiness:
    """Whether ticks keep completing: the last good tick against the agent's clock and poll interval.

    Not ready until the first tick has completed (a load balancer or a rollout of the agent itself must
    not count it in before it has reconciled once). A replica standing by (another one holds the leader
    lease, docs/ha.md) is ready as long as it keeps checking the lease: it is healthy and takes over when
    needed, so an orchestrator must not replace it. ``undelivered`` (the outbox's ``undelivered_for``)
    adds "degraded: statuses undelivered for N s" to the body while statuses wait.

    Ticks that outlast the poll interval (overruns) are said in the body; the limit is then three times
    the last tick's duration rather than three intervals, so a slow but working agent is not replaced
    (restarting it would not make it faster), while one whose tick never ends still is.
    """

    def __init__(
        self,
        interval_seconds: float,
        clock: Callable[[], datetime],
        undelivered: Callable[[], float | None] | None = None,
    ) -> None:
        self.interval = float(interval_seconds)
        self.clock = clock
        self.undelivered = undelivered
        self.started_at = clock()
        self.last_good: datetime | None = None
        self.role = "leader"
        self.leader: dict[str, Any] | None = None
        self.overruns = 0  # ticks that outlasted the poll interval
        self.last_tick_seconds: float | None = None

    def took(self, seconds: float) -> bool:
        """Record a tick's duration; True when it outlasted the poll interval (an overrun)."""
        self.last_tick_seconds = seconds
        if seconds > self.interval:
            self.overruns += 1
            return True
        return False

    def ticked(self, at: datetime) -> None:
        self.last_good = at
        self.role, self.leader = "leader", None

    def standing_by(self, at: datetime, leader: dict[str, Any] | None) -> None:
        """This replica checked the lease at ``at`` and another one (``leader``) holds it."""
        self.last_good = at
        self.role, self.leader = "standby", leader

    def check(self) -> tuple[bool, dict[str, Any]]:
        """(ready, the JSON body explaining it)."""
        now = self.clock()
        last = self.last_tick_seconds or 0.0
        limit = STALE_INTERVALS * max(self.interval, last)
        since = self.last_good or self.started_at
        age = max(0.0, (now - since).total_seconds())
        ready = self.last_good is not None and age <= limit
        if self.last_good is None:
            reason = f"no tick has completed since the start {age:.0f}s ago"
        elif self.role == "standby":
            owner = (self.leader or {}).get("owner", "another replica")
            reason = f"standing by: {owner} holds the leader lease; checked {age:.0f}s ago"
        else:
            reason = f"the last good tick was {age:.0f}s ago"
        if self.last_good is not None and last > self.interval:
            reason += (
                f" ({'within' if ready else 'over'} {limit:.0f}s, {STALE_INTERVALS} times the last tick); "
                f"ticks outlast the {self.interval:.0f}s poll interval: the last took {last:.0f}s, "
                f"{self.overruns} overran"
            )
        elif self.last_good is not None:
            reason += f" ({'within' if ready else 'over'} {limit:.0f}s, {STALE_INTERVALS} poll intervals)"
        waiting = self.undelivered() if self.undelivered is not None and self.role == "leader" else None
        degraded = None if waiting is None else f"degraded: statuses undelivered for {waiting:.0f} s"
        if degraded:
            reason += f"; {degraded}"
        body = {
            "ready": ready,
            "reason": reason,
            "lastGoodTick": self.last_good.isoformat() if self.last_good else None,
            "secondsSinceLastGoodTick": round(age, 3),
            "limitSeconds": limit,
            "role": self.role,
            "degraded": degraded,
            "statusesUndeliveredSeconds": None if waiting is None else round(waiting, 3),
            "tickOverruns": self.overruns,
            "lastTickSeconds": None if self.last_tick_seconds is None else round(self.last_tick_seconds, 3),
            "ticksOutlastInterval": last > self.interval,
        }
        if self.role == "standby":
            body["leader"] = self.leader
        return ready, body


# -- webhooks ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()

    @classmethod
    def json(cls, status: int, data: dict[str, Any], headers: tuple[tuple[str, str], ...] = ()) -> Response:
        return cls(status, (json.dumps(data, sort_keys=True) + "\n").encode(), headers=headers)


def github_signature(secret: str, body: bytes) -> str:
    """The ``X-Hub-Signature-256`` value GitHub sends for ``body`` signed with ``secret``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _pushed_ref(body: bytes, content_type: str) -> str | None:
    """The ``ref`` of a push payload (JSON, or GitHub's form-encoded ``payload=``), None if unreadable."""
    try:
        form = parse_qs(body.decode()) if content_type.startswith("application/x-www-form-urlencoded") else {}
        data = json.loads(form["payload"][0] if "payload" in form else body or b"{}")
    except (ValueError, UnicodeDecodeError):
        return None
    ref = data.get("ref") if isinstance(data, dict) else None
    return ref if isinstance(ref, str) else None


class Deliveries:
    """The delivery IDs of the last ``size`` authenticated webhooks (``X-GitHub-Delivery``,
    ``X-Gitlab-Event-UUID``): a replayed or redelivered webhook asks for no second tick. Bounded memory:
    the oldest ID goes when a new one comes, and an ID is at most ``MAX_ID`` characters."""

    MAX_ID = 128

    def __init__(self, size: int = 1024) -> None:
        self.size = size
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()

    def first(self, delivery: str | None) -> bool:
        """True the first time ``delivery`` is seen (and for a webhook without an ID), False after."""
        if not delivery:
            return True
        delivery = delivery[: self.MAX_ID]
        with self._lock:
            if delivery in self._seen:
                self._seen.move_to_end(delivery)
                return False
            self._seen[delivery] = None
            while len(self._seen) > self.size:
                self._seen.popitem(last=False)
            return True

    def __len__(self) -> int:
        return len(self._seen)


DELIVERY_HEADERS = {"github": "X-GitHub-Delivery", "gitlab": "X-Gitlab-Event-UUID"}


class Endpoints:
    """What each route answers, independent of the HTTP plumbing."""

    def __init__(
        self,
        readiness: Readiness,
        metrics: Metrics,
        trigger: Callable[[], None],
        secret: Callable[[], str | None],
        branch: str,
        secret_env: str = "ECS_GITOPS_WEBHOOK_SECRET",
        dashboard: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        self.dashboard = dashboard  # state.json's content; None: no dashboard routes
        self.readiness = readiness
        self.metrics = metrics
        self.trigger = trigger
        self.secret = secret
        self.branch = branch
        self.secret_env = secret_env
        self.deliveries = Deliveries()

    def get(self, path: str) -> Response:
        if path == "/healthz":
            return Response.json(200, {"status": "ok"})
        if path == "/readyz":
            ready, body = self.readiness.check()
            return Response.json(200 if ready else 503, body)
        if path == "/metrics":
            return Response(200, self.metrics.render(), CONTENT_TYPE_LATEST)
        if self.dashboard is not None:
            if path == "/dashboard":  # the page's relative links need the trailing slash
                return Response(308, b"", "text/plain", (("Location", "dashboard/"),))
            if path == STATE_PATH:
                try:
                    return Response.json(200, self.dashboard(), DASHBOARD_HEADERS)
                except Exception as e:  # a bug in the page's data must not look like the agent is down
                    log.error("dashboard.failed", error=repr(e))
                    return Response.json(500, {"error": "the dashboard state failed; see the agent's log"})
            found = asset(path, self.dashboard)
            if found is not None:
                return Response(200, found[0], found[1], DASHBOARD_HEADERS)
        return Response.json(404, {"error": f"no such page: {path}"})

    def webhook(self, provider: str, headers: Any, body: bytes) -> Response:
        secret = self.secret()
        if not secret:
            return Response.json(403, {"error": f"webhooks are off: set {self.secret_env}"})
        if provider == "github":
            given = headers.get("X-Hub-Signature-256") or ""
            if not hmac.compare_digest(given.encode(), github_signature(secret, body).encode()):
                return Response.json(401, {"error": "missing or wrong X-Hub-Signature-256"})
            event = headers.get("X-GitHub-Event") or ""
            is_push = event == "push"
        else:
            given = headers.get("X-Gitlab-Token") or ""
            if not hmac.compare_digest(given.encode(), secret.encode()):
                return Response.json(401, {"error": "missing or wrong X-Gitlab-Token"})
            event = headers.get("X-Gitlab-Event") or ""
            is_push = event == "Push Hook"
        delivery = headers.get(DELIVERY_HEADERS[provider])
        if not self.deliveries.first(delivery):
            log.info("webhook.replayed", provider=provider, delivery=delivery[: Deliveries.MAX_ID])
            return Response.json(200, {"triggered": False, "reason": "this delivery was received already"})
        if not is_push:
            return Response.json(200, {"triggered": False, "reason": f"{event or 'unnamed'} event ignored"})
        ref = _pushed_ref(body, headers.get("Content-Type") or "")
        if ref is not None and ref != f"refs/heads/{self.branch}":
            return Response.json(200, {"triggered": False, "reason": f"{ref} is not the tracked branch"})
        self.trigger()
        log.info("webhook.tick", provider=provider, ref=ref)
        return Response.json(200, {"triggered": True})


# -- the HTTP server ---------------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    server_version = "ecs-gitops"
    timeout = 10  # seconds a client may take to send its request (no slow-loris holding a thread)
    endpoints: Endpoints  # set on the subclass AgentServer makes
    pages = True  # GET routes served here (a webhook-only listener serves none)
    webhooks = True  # POST /webhook/* served here (not on the main port when webhooks have their own)

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        missing = Response.json(404, {"error": f"no such page: {path}"})
        self._send(self.endpoints.get(path) if self.pages else missing)

    def do_HEAD(self) -> None:
        """GET's status and headers without the body (health checks that use HEAD)."""
        self._send(self.endpoints.get(urlsplit(self.path).path), body=False)

    def do_POST(self) -> None:
        path = urlsplit(self.path).path
        routes = {"/webhook/github": "github", "/webhook/gitlab": "gitlab"} if self.webhooks else {}
        provider = routes.get(path)
        length = self.headers.get("Content-Length") or ""
        size = int(length) if length.isdigit() else None
        if provider is None:
            self._drain(size)
            status = 405 if path in ("/healthz", "/readyz", "/metrics") else 404
            self._send(Response.json(status, {"error": f"cannot POST {path}"}))
        elif size is None:
            self._send(Response.json(411, {"error": "Content-Length required"}))
        elif size > MAX_BODY:
            self._drain(size)
            self._send(Response.json(413, {"error": f"the body is over {MAX_BODY} bytes"}))
        else:
            body = self.rfile.read(size)
            self._send(self.endpoints.webhook(provider, self.headers, body))

    def _drain(self, size: int | None, limit: int = 8 * MAX_BODY) -> None:
        """Read and drop a body we refuse, so the client reads our answer instead of a reset connection."""
        left = min(size or 0, limit)
        while left > 0:
            chunk = self.rfile.read(min(left, 65536))
            if not chunk:
                break
            left -= len(chunk)

    def _send(self, response: Response, body: bool = True) -> None:
        try:
            self.send_response(response.status)
            self.send_header("Content-Type", response.content_type)
            self.send_header("Content-Length", str(len(response.body)))
            for name, value in response.headers:
                self.send_header(name, value)
            self.end_headers()
            if body:
                self.wfile.write(response.body)
        except (BrokenPipeError, ConnectionResetError):  # the client left: nothing to answer, no traceback
            log.debug("http.client_gone", client=self.client_address[0])

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("http.request", client=self.client_address[0], request=format % args)


class AgentServer:
    """The HTTP server on a daemon thread, its requests on ``workers`` threads; ``port=0`` picks a free port
    (see ``.port``). With ``webhook_port``, the webhooks are served on a second listener
    (``.webhook_port``), and only there."""

    def __init__(
        self,
        endpoints: Endpoints,
        host: str = "0.0.0.0",
        port: int = 8080,
        webhook_port: int | None = None,
        pages: bool = True,
        workers: int = 8,
    ) -> None:
        own = webhook_port is not None
        handler = type("Handler", (_Handler,), {"endpoints": endpoints, "pages": pages, "webhooks": not own})
        self._httpd = PooledHTTPServer((host, port), handler, workers=workers)
        self._thread: threading.Thread | None = None
        self._hooks = AgentServer(endpoints, host, webhook_port, pages=False) if own else None

    @property
    def webhook_port(self) -> int:
        """Where the webhooks are served: their own listener's port, else ``port``."""
        return self._hooks.port if self._hooks is not None else self.port

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        host = self._httpd.server_address[0]
        return f"http://{'127.0.0.1' if host in ('0.0.0.0', '') else host}:{self.port}"

    def start(self) -> AgentServer:
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="http", daemon=True)
        self._thread.start()
        log.info("server.started", url=self.url)
        if self._hooks is not None:
            self._hooks.start()
        return self

    def stop(self) -> None:
        if self._hooks is not None:
            self._hooks.stop()
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(timeout=10)
            self._thread = None
        self._httpd.server_close()

    def __enter__(self) -> AgentServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
