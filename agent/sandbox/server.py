"""The sandbox server: moto's server app, wrapped by the ECS overlay, on 127.0.0.1 in a thread.

moto keeps its state in process-global backends, so a process can run only one Sandbox at a time;
``start()`` resets moto and the overlay, so every Sandbox starts empty, and a second concurrent
``start()`` raises :class:`SandboxError`. (Do not mix a running Sandbox with ``moto.mock_aws`` in the
same process either: both use the same global backends.)

ECS behaviour moto lacks (deployments that complete or fail, task sets, events) comes from the
:class:`~agent.sandbox.simulator.Simulator` at ``Sandbox.simulator``, driven by its clock: real time by
default, or a manual :class:`~agent.sandbox.simulator.SandboxClock` that tests advance. Over HTTP:
``POST /_sandbox/clock/advance``, ``GET /_sandbox/clock``, ``GET /_sandbox/state``, ``POST
/_sandbox/config``, and ``POST /_sandbox/hooks`` (what a Lambda lifecycle hook of a native deployment
answers, per stage).

CloudWatch alarms are moto's: :meth:`Sandbox.set_alarm` (or ``ecs-gitops sandbox alarm NAME ALARM``)
sets one with SetAlarmState, as an alarm that fires would. Lambda Invoke is answered by the sandbox
(:mod:`agent.sandbox.lambdas`): :meth:`Sandbox.set_lambda_result` or ``POST /_sandbox/lambda/{name}``.
HTTP lifecycle hooks of agent-engine strategies are answered by a
:class:`~agent.sandbox.hooks.HookReceiver` on the port the seed's ``hooks`` names
(:meth:`Sandbox.serve_hooks`); ``POST /_sandbox/http-hooks {"stage", "status", "reason"}`` sets what a
stage answers, ``GET /_sandbox/http-hooks`` lists the calls received.
"""

from __future__ import annotations

import contextlib
import io
import re
import socket
import threading
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import BaseWSGIServer, make_server

from agent.sandbox.faults import Faults
from agent.sandbox.hooks import STATES as HOOK_STATES
from agent.sandbox.hooks import HookReceiver
from agent.sandbox.lambdas import LambdaFunctions
from agent.sandbox.overlay import EcsOverlay
from agent.sandbox.overlay.task_definitions import ECHO_ECS, ECHO_MODES
from agent.sandbox.seed import SeedResult, apply_seed, load_seed
from agent.sandbox.simulator import (
    DEFAULT_FAILURE_PATTERN,
    DEFAULT_TASK_START_SECONDS,
    SandboxClock,
    Simulator,
)
from agent.sandbox.sts import external_id_filter

ALARM_STATES = ("OK", "ALARM", "INSUFFICIENT_DATA")
HTTP_HOOKS_PATH = re.compile(r"^/_sandbox/http-hooks/?$")
KEEP_ALIVE_BODY_LIMIT = 16 * 1024 * 1024  # a larger request body is left to werkzeug, which closes
DUMMY_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}

_running_lock = threading.Lock()
_running: Sandbox | None = None


class SandboxError(RuntimeError):
    """The sandbox cannot start or is used in a way it does not support."""


class _QuietRequestHandler(MotoRequestHandler):
    """moto's request handler without werkzeug's one log line per request, keeping connections open.

    AWS endpoints keep HTTP/1.1 connections open between calls, and SDKs count on it: "To avoid the cost
    of establishing a new connection, the AWS SDK for JavaScript reuses TCP connections by default"
    (https://docs.aws.amazon.com/sdk-for-javascript/v3/developer-guide/node-reusing-connections.html);
    botocore's urllib3 pool does the same. werkzeug's server closes every connection
    after one answer: after the app has answered, it discards whatever the client has sent since ("If
    we supported keep-alive connections, this naive approach would break by reading the next request
    line"). So this handler reads a request's whole body (``Content-Length`` bytes, at most
    :data:`KEEP_ALIVE_BODY_LIMIT`) from the socket before werkzeug runs, hands werkzeug that body
    alone to read, and keeps the connection open. Requests it cannot read that way (chunked, larger,
    ``Expect: 100-continue``, or a client that asked to close) get werkzeug's own handling, and the
    connection closes as before. :meth:`Sandbox.stop` shuts the open connections down, so no thread
    answers after the sandbox has stopped.
    """

    disable_nagle_algorithm = True  # headers and body are two writes; without it each answer waits ~40 ms
    _kept = False

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass

    def handle(self) -> None:
        connections: _Connections = self.server.connections  # type: ignore[attr-defined]  # set by start()
        connections.opened(self.connection)
        try:
            super().handle()
        finally:
            connections.closed(self.connection)

    def run_wsgi(self) -> None:
        body = self._whole_body()
        if body is None:
            return super().run_wsgi()
        socket_file, self.rfile = self.rfile, io.BytesIO(body)
        self._kept = True
        try:
            super().run_wsgi()
        finally:
            self.rfile, self._kept = socket_file, False

    def send_header(self, keyword: str, value: str) -> None:
        if self._kept and keyword.lower() == "connection" and value.lower() == "close":
            return  # werkzeug's "always close": the body was read whole, so the next request can follow
        super().send_header(keyword, value)

    def _whole_body(self) -> bytes | None:
        headers = self.headers
        chunked = "chunked" in headers.get("Transfer-Encoding", "")
        if self.close_connection or chunked or headers.get("Expect"):
            return None
        length = headers.get("Content-Length") or "0"
        if not length.isdigit() or int(length) > KEEP_ALIVE_BODY_LIMIT:
            return None
        return self.rfile.read(int(length))


class _Connections:
    """The sockets a sandbox server has open, so that stopping the sandbox can close them all."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self.accepted = 0

    def opened(self, sock: socket.socket) -> None:
        with self._lock:
            self._open.add(sock)
            self.accepted += 1

    def closed(self, sock: socket.socket) -> None:
        with self._lock:
            self._open.discard(sock)

    def shut_all(self) -> None:
        with self._lock:
            open_now, self._open = self._open, set()
        for sock in open_now:
            with contextlib.suppress(OSError):  # the client closed it already
                sock.shutdown(socket.SHUT_RDWR)


class _Dispatcher(DomainDispatcherApplication):
    """moto's host-to-backend dispatcher, its answer for each host remembered.

    For every request moto lists its package folder (``os.listdir`` and an ``isdir`` for each of about
    180 entries) and then tries its URL patterns in turn, to find the backend a host names; the answer
    for a host cannot change while the process runs. Same answers; an ECS call costs the sandbox about
    a quarter less time. (moto calls this under its own lock.)"""

    def __init__(self, create_app: Any) -> None:
        super().__init__(create_app)
        self._backends: dict[str, Any] = {}

    def get_backend_for_host(self, host: str | None) -> Any:
        if host is None:
            return None
        if host not in self._backends:
            found = super().get_backend_for_host(host)
            if found is None:
                return None  # moto's own notice for an unknown host is printed each time, as before
            self._backends[host] = found
        return self._backends[host]


def _listening_socket(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        sock.listen(128)
    except BaseException:
        sock.close()
        raise
    return sock


def _reset_moto() -> None:
    from moto.moto_api._internal.models import moto_api_backend

    moto_api_backend.reset()


class Sandbox:
    """A local ECS (and EC2, ELBv2, IAM, Auto Scaling, CloudWatch) endpoint on 127.0.0.1.

    >>> with Sandbox() as sandbox:          # doctest: +SKIP
    ...     sandbox.seed("manifests-example/sandbox-seed.yaml")
    ...     sandbox.client("ecs").list_clusters()
    """

    def __init__(
        self,
        port: int = 0,
        region: str = "eu-west-1",
        clock: SandboxClock | None = None,
        *,
        task_start_seconds: float = DEFAULT_TASK_START_SECONDS,
        failure_pattern: str = DEFAULT_FAILURE_PATTERN,
        echo: str = ECHO_ECS,
    ) -> None:
        if echo not in ECHO_MODES:
            raise SandboxError(f"echo must be one of {', '.join(ECHO_MODES)}, not {echo!r}")
        self.port = port
        self.region = region
        # "ecs": task definitions are described with the defaults ECS adds; "verbatim": as registered.
        self.echo = echo
        self.simulator = Simulator(
            clock, task_start_seconds=task_start_seconds, failure_pattern=failure_pattern
        )
        self.overlay: EcsOverlay | None = None
        self.faults = Faults()
        self.lambdas = LambdaFunctions()
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self._endpoint: str | None = None
        self.hooks: HookReceiver | None = None

    @property
    def endpoint(self) -> str:
        if self._endpoint is None:
            raise SandboxError("the sandbox is not running: call start() first")
        return self._endpoint

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def connections_accepted(self) -> int:
        """How many TCP connections the server has accepted since it started (a client that keeps its
        connections open, as AWS SDKs do, opens one per thread)."""
        return self._server.connections.accepted if self._server is not None else 0  # type: ignore[attr-defined]

    def start(self) -> str:
        """Reset moto, start serving, and return the endpoint URL (with the real port when 0 was asked)."""
        global _running
        with _running_lock:
            if _running is not None:
                raise SandboxError(
                    f"a Sandbox is already running in this process at {_running._endpoint}; moto keeps one "
                    "global state per process, so stop it before starting another"
                )
            _running = self
        try:
            _reset_moto()
            self.simulator.reset()
            self.overlay = EcsOverlay(_Dispatcher(create_backend_app))
            self.overlay.echo = self.echo
            self.simulator.install(self.overlay)
            self.overlay.filters.append(external_id_filter)
            self.faults = Faults()
            self.faults.install(self.overlay)
            self.lambdas = LambdaFunctions()
            self.lambdas.install(self.overlay)
            self.overlay.control_routes.extend(
                [
                    ("GET", HTTP_HOOKS_PATH, lambda _m, _b: self._hook_calls()),
                    ("POST", HTTP_HOOKS_PATH, lambda _m, body: self._set_hook(body)),
                ]
            )
            # Bind here: werkzeug prints and calls sys.exit(1) when it cannot bind by itself.
            with _listening_socket(self.port) as sock:
                self._server = make_server(
                    "127.0.0.1",
                    self.port,
                    self.overlay,
                    threaded=True,
                    request_handler=_QuietRequestHandler,
                    fd=sock.fileno(),  # werkzeug duplicates the descriptor
                )
            self._server.connections = _Connections()  # type: ignore[attr-defined]
        except BaseException as exc:
            self._release()
            if isinstance(exc, OSError):
                raise SandboxError(f"cannot listen on 127.0.0.1:{self.port}: {exc.strerror or exc}") from exc
            raise
        self._endpoint = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            name=f"ecs-gitops-sandbox-{self._server.server_address[1]}",
            daemon=True,
        )
        self._thread.start()
        return self._endpoint

    def serve_hooks(self, port: int) -> str:
        """Answer HTTP lifecycle hooks at ``http://127.0.0.1:PORT/hooks/<name>`` (SUCCEEDED until told
        otherwise) until :meth:`stop`; returns the URL of ``/hooks/``."""
        if self.hooks is None:
            try:
                self.hooks = HookReceiver(port).start()
            except OSError as exc:
                raise SandboxError(f"cannot serve hooks on 127.0.0.1:{port}: {exc.strerror or exc}") from exc
        return f"http://127.0.0.1:{self.hooks.port}/hooks/"

    def _receiver(self) -> HookReceiver:
        if self.hooks is None:
            raise ValueError("this sandbox serves no HTTP hooks (its seed has no hooks: {port: N})")
        return self.hooks

    def _set_hook(self, body: dict[str, Any]) -> dict[str, Any]:
        stage, status = body.get("stage"), body.get("status", "SUCCEEDED")
        if not isinstance(stage, str) or status not in HOOK_STATES:
            raise ValueError(
                f'expected {{"stage": NAME, "status": {" | ".join(HOOK_STATES)}, "reason": TEXT}}'
            )
        reason = str(body.get("reason") or "")
        self._receiver().answer(stage, status, reason)
        return {"stage": stage, "answer": {"status": status, **({"reason": reason} if reason else {})}}

    def _hook_calls(self) -> dict[str, Any]:
        calls = self._receiver().calls()
        return {
            "calls": [
                {"name": c.name, "stage": c.stage, "httpStatus": c.http_status, "answer": c.answer}
                for c in calls
            ]
        }

    def stop(self) -> None:
        """Stop serving and free the port; safe to call twice."""
        hooks, self.hooks = self.hooks, None
        if hooks is not None:
            hooks.stop()
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is not None:
            server.shutdown()
            server.server_close()
            server.connections.shut_all()  # type: ignore[attr-defined]
        if thread is not None:
            thread.join(timeout=10)
        self._endpoint = None
        self._release()

    def reset(self) -> None:
        """Forget every resource (moto and overlay) without restarting the server."""
        if not self.running or self.overlay is None:
            raise SandboxError("the sandbox is not running: call start() first")
        with self.overlay.lock:
            _reset_moto()
            self.overlay.reset()
            self.simulator.reset()
            self.faults.clear()
            self.lambdas.clear()

    def client(
        self, service_name: str, region: str | None = None, account: str | None = None, **config: Any
    ) -> Any:
        """A boto3 client for ``service_name`` on this sandbox, with dummy credentials; ``config`` is
        botocore Config options (``retries`` replaces the default of 3 standard attempts).

        With ``account`` (12 digits), the client acts in that account: its credentials come from an STS
        AssumeRole of ``arn:aws:iam::<account>:role/sandbox``, as an agent reaches another account.
        """
        credentials = DUMMY_CREDENTIALS if account is None else self.account_credentials(account)
        return self._client(service_name, region or self.region, credentials, **config)

    def _client(self, service_name: str, region: str, credentials: dict[str, str], **config: Any) -> Any:
        session = boto3.session.Session(region_name=region, **credentials)
        return session.client(
            service_name,
            endpoint_url=self.endpoint,
            config=Config(**{"retries": {"mode": "standard", "max_attempts": 3}, **config}),
        )

    def account_credentials(self, account: str) -> dict[str, str]:
        """Credentials for ``account``: moto keeps one state per account and maps these keys to it."""
        out = self.client("sts").assume_role(
            RoleArn=f"arn:aws:iam::{account}:role/sandbox", RoleSessionName="sandbox"
        )["Credentials"]
        return {
            "aws_access_key_id": out["AccessKeyId"],
            "aws_secret_access_key": out["SecretAccessKey"],
            "aws_session_token": out["SessionToken"],
        }

    def set_alarm(self, name: str, state: str, reason: str = "set by the sandbox") -> None:
        """Put CloudWatch alarm ``name`` in ``state`` (ALARM, OK or INSUFFICIENT_DATA) with SetAlarmState.

        The alarm must exist (the seed's ``alarms``, or PutMetricAlarm); an unknown name raises
        :class:`SandboxError`."""
        if state not in ALARM_STATES:
            raise SandboxError(f"alarm state must be one of {', '.join(ALARM_STATES)}, not {state!r}")
        cloudwatch = self.client("cloudwatch")
        if not cloudwatch.describe_alarms(AlarmNames=[name])["MetricAlarms"]:
            raise SandboxError(f"no CloudWatch alarm named {name!r} in {self.region}")
        cloudwatch.set_alarm_state(AlarmName=name, StateValue=state, StateReason=reason)

    def set_lambda_result(
        self,
        function: str,
        status: str | None = None,
        reason: str = "",
        *,
        payload: Any = None,
        function_error: str | None = None,
    ) -> None:
        """What Lambda ``function`` (name or ARN) answers to Invoke from now on: a hook answer
        ``{"status", "reason"}``, a raw JSON ``payload``, or a ``function_error`` (``reason`` is then the
        error message). See :mod:`agent.sandbox.lambdas`."""
        body: dict[str, Any]
        if function_error is not None:
            body = {"functionError": function_error, "errorMessage": reason or "the function raised an error"}
        elif payload is not None:
            body = {"payload": payload}
        else:
            body = {"status": status, **({"reason": reason} if reason else {})}
        try:
            self.lambdas.set(function, body)
        except ValueError as exc:
            raise SandboxError(str(exc)) from exc

    def lambda_calls(self, function: str) -> list[dict[str, Any]]:
        """Every Invoke of ``function`` so far: ``{"payload", "invocationType", "at"}`` (sandbox time)."""
        return list(self.lambdas.describe(function)["calls"])

    def seed(self, path_or_dict: str | Path | dict[str, Any], account: str | None = None) -> SeedResult:
        """Create the resources of a seed file (or an already loaded seed dict); idempotent.

        ``account`` seeds another account than the default one (123456789012), see :meth:`client`.
        """
        seed = path_or_dict if isinstance(path_or_dict, dict) else load_seed(path_or_dict)
        region = seed.get("region") or self.region
        credentials = DUMMY_CREDENTIALS if account is None else self.account_credentials(account)
        return apply_seed(seed, lambda name: self._client(name, region, credentials))

    def _release(self) -> None:
        global _running
        with _running_lock:
            if _running is self:
                _running = None

    def __enter__(self) -> Sandbox:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
