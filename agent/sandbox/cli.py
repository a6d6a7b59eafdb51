"""``ecs-gitops sandbox up | alarm | lambda | hook``: run the sandbox, and steer a running one.

``up`` runs it in the foreground until interrupted. The first line printed is the ready line
``AWS_ENDPOINT_URL=http://127.0.0.1:PORT`` (flushed at once), printed once the seed is in place, so a
script that waits for it can plan at once. SIGINT and SIGTERM stop it cleanly (exit 0). ``--clock-speed``
runs the sandbox's clock faster than real time (an agent pointed at the sandbox follows that clock), and
``--clock-start`` sets where it starts. A seed's ``hooks: {port: N}`` serves the HTTP lifecycle hooks the
strategies call on that port.

``hook STAGE SUCCEEDED|FAILED|IN_PROGRESS`` sets what those hooks answer for a stage.

``alarm NAME ALARM|OK`` sets a CloudWatch alarm of a running sandbox (SetAlarmState, as an alarm that
fires would), and ``lambda NAME SUCCEEDED|FAILED|IN_PROGRESS`` sets what a Lambda hook answers: the
way to rehearse an alarm or a failed hook during a rollout. Both find the sandbox at ``--endpoint``,
else ``AWS_ENDPOINT_URL``, else ``http://127.0.0.1:4566``.

Also runnable without the main CLI: ``python -m agent.sandbox.cli up --port 0``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from agent.sandbox.hooks import STATES as HTTP_HOOK_STATES
from agent.sandbox.lambdas import HOOK_STATES
from agent.sandbox.overlay.task_definitions import ECHO_ECS, ECHO_MODES
from agent.sandbox.seed import DEFAULT_SEED_PATH, SeedError, load_seed
from agent.sandbox.server import ALARM_STATES, DUMMY_CREDENTIALS, Sandbox, SandboxError
from agent.sandbox.simulation.clock import SandboxClock
from agent.sandbox.simulator import DEFAULT_FAILURE_PATTERN, DEFAULT_TASK_START_SECONDS

DEFAULT_PORT = 4566
DEFAULT_REGION = "eu-west-1"


def sandbox_up(
    port: int = DEFAULT_PORT,
    seed: str | None = None,
    out: TextIO = sys.stdout,
    *,
    use_seed: bool = True,
    stop: threading.Event | None = None,
    task_seconds: float = DEFAULT_TASK_START_SECONDS,
    failure_pattern: str = DEFAULT_FAILURE_PATTERN,
    clock_speed: float = 1.0,
    clock_start: datetime | None = None,
    echo: str = ECHO_ECS,
) -> int:
    """Start, seed, serve until SIGINT/SIGTERM (or ``stop`` is set); 0 on a clean stop, 1 on error.

    ``seed`` is a seed file; when None, ``manifests-example/sandbox-seed.yaml`` under the current
    directory is used if it exists. ``use_seed=False`` starts an empty sandbox. ``task_seconds`` is
    how long the simulator takes to start (or fail) one task; images matching ``failure_pattern``
    never start. ``clock_speed`` and ``clock_start``: the sandbox's clock (real time from now, by default).
    ``echo`` "verbatim" describes task definitions as registered instead of with the defaults ECS adds.
    """
    if task_seconds <= 0:
        print("error: --task-seconds must be positive", file=sys.stderr)
        return 1
    if clock_speed <= 0:
        print("error: --clock-speed must be positive", file=sys.stderr)
        return 1
    seed_data: dict[str, Any] | None = None
    seed_path = Path(seed) if seed else DEFAULT_SEED_PATH
    if use_seed and (seed or seed_path.exists()):
        try:
            seed_data = load_seed(seed_path)
        except SeedError as exc:  # one line per problem, like a manifest's
            for problem in exc.problems:
                print(f"error: {exc.source}: invalid sandbox seed: {problem}", file=sys.stderr)
            return 1
    region = (seed_data or {}).get("region") or DEFAULT_REGION
    sandbox = Sandbox(
        port=port,
        region=region,
        clock=SandboxClock(speed=clock_speed, start=clock_start),
        task_start_seconds=task_seconds,
        failure_pattern=failure_pattern,
        echo=echo,
    )
    try:
        endpoint = sandbox.start()
    except SandboxError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    stop = stop or threading.Event()
    previous = _install_signal_handlers(stop)
    try:
        lines = ["no seed file: the sandbox starts empty"]
        if seed_data is not None:  # seeded before the ready line: a plan right after it finds everything
            result = sandbox.seed(seed_data)
            lines = [f"seeded from {seed_path}: {result.summary()}"]
            if seed_data.get("hooks"):
                try:
                    hooks = sandbox.serve_hooks(int(seed_data["hooks"]["port"]))
                except SandboxError as exc:  # the rest of the sandbox still serves; the hooks will not answer
                    lines.append(f"warning: {exc}: hook calls will get no answer")
                else:
                    lines.append(
                        f"hooks: POST {hooks}<name> answers SUCCEEDED; "
                        "`ecs-gitops sandbox hook STAGE FAILED` makes a stage fail"
                    )
        print(f"AWS_ENDPOINT_URL={endpoint}", file=out, flush=True)
        for line in lines:
            print(line, file=out)
        print(
            f"export AWS_ENDPOINT_URL={endpoint} AWS_REGION={region} "
            "AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing",
            file=out,
        )
        print(
            f"simulator: one task starts every {task_seconds:g} s; images matching {failure_pattern!r} "
            f'never start; POST {endpoint}/_sandbox/clock/advance {{"seconds": N}} skips ahead',
            file=out,
        )
        if clock_speed != 1 or clock_start is not None:
            print(
                f"clock: {sandbox.simulator.clock.now():%Y-%m-%d %H:%M:%S} UTC, running {clock_speed:g}x "
                "(an agent on this endpoint follows it)",
                file=out,
            )
        print("sandbox running; press Ctrl-C to stop", file=out, flush=True)
        while not stop.wait(0.5):
            pass
        print("sandbox stopped", file=out, flush=True)
        return 0
    except Exception as exc:  # a failed seed must still stop the server and say why
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        _restore_signal_handlers(previous)
        sandbox.stop()


def _install_signal_handlers(stop: threading.Event) -> dict[int, Any]:
    if threading.current_thread() is not threading.main_thread():
        return {}
    previous = {}
    for signum in (signal.SIGINT, signal.SIGTERM):
        previous[signum] = signal.signal(signum, lambda *_: stop.set())
    return previous


def _restore_signal_handlers(previous: dict[int, Any]) -> None:
    for signum, handler in previous.items():
        signal.signal(signum, handler)


def _add_up_parser(subparsers: Any) -> argparse.ArgumentParser:
    up = subparsers.add_parser("up", help="run the sandbox in the foreground until interrupted")
    up.add_argument(
        "--port",
        type=_port,
        default=DEFAULT_PORT,
        help=f"port on 127.0.0.1 (default {DEFAULT_PORT}; 0 picks a free one)",
    )
    group = up.add_mutually_exclusive_group()
    group.add_argument(
        "--seed", metavar="FILE", help=f"seed file (default: {DEFAULT_SEED_PATH} when it exists)"
    )
    group.add_argument("--no-seed", action="store_true", help="start empty")
    up.add_argument(
        "--task-seconds",
        type=float,
        default=DEFAULT_TASK_START_SECONDS,
        metavar="S",
        help=f"simulated seconds to start (or fail) one task (default {DEFAULT_TASK_START_SECONDS:g})",
    )
    up.add_argument(
        "--failure-pattern",
        default=DEFAULT_FAILURE_PATTERN,
        metavar="GLOB",
        help=f"images matching this fnmatch pattern never start (default {DEFAULT_FAILURE_PATTERN!r})",
    )
    up.add_argument(
        "--clock-speed",
        type=float,
        default=1.0,
        metavar="X",
        help="run the sandbox's clock X times faster than real time (default 1); an agent on this "
        "endpoint follows it, so a 10-minute bake takes 30 s at 20",
    )
    up.add_argument(
        "--clock-start",
        type=_timestamp,
        metavar="ISO",
        help="the sandbox's time at start, e.g. 2026-06-02T10:00:00Z (default: now)",
    )
    up.add_argument(
        "--echo",
        choices=ECHO_MODES,
        default=ECHO_ECS,
        help="how task definitions are described: 'ecs' adds the defaults ECS adds (default), 'verbatim' "
        "gives them back as registered",
    )
    up.set_defaults(func=_run_up)
    return up


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"not a port (0 to 65535): {text!r}")
    return port


def _timestamp(text: str) -> datetime:
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {text!r}") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _run_up(args: argparse.Namespace) -> int:
    return sandbox_up(
        args.port,
        args.seed,
        use_seed=not args.no_seed,
        task_seconds=args.task_seconds,
        failure_pattern=args.failure_pattern,
        clock_speed=args.clock_speed,
        clock_start=args.clock_start,
        echo=args.echo,
    )


def _endpoint(given: str | None) -> str:
    return (given or os.environ.get("AWS_ENDPOINT_URL") or f"http://127.0.0.1:{DEFAULT_PORT}").rstrip("/")


def sandbox_alarm(
    name: str,
    state: str,
    endpoint: str | None = None,
    region: str | None = None,
    out: TextIO | None = None,
) -> int:
    """Set CloudWatch alarm ``name`` of the sandbox at ``endpoint`` to ``state``; 0 done, 1 error."""
    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError

    url = _endpoint(endpoint)
    region = region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or DEFAULT_REGION
    session = boto3.session.Session(region_name=region, **DUMMY_CREDENTIALS)
    cloudwatch = session.client(
        "cloudwatch", endpoint_url=url, config=Config(retries={"total_max_attempts": 1}, connect_timeout=5)
    )
    try:
        found = cloudwatch.describe_alarms(AlarmNames=[name])["MetricAlarms"]
        if not found:
            print(f"error: no CloudWatch alarm named {name!r} in {region} at {url}", file=sys.stderr)
            return 1
        before = found[0]["StateValue"]
        cloudwatch.set_alarm_state(
            AlarmName=name, StateValue=state, StateReason=f"set by ecs-gitops sandbox alarm ({state})"
        )
    except (BotoCoreError, ClientError) as exc:
        print(f"error: cannot set alarm {name!r} at {url}: {exc}", file=sys.stderr)
        return 1
    print(f"alarm {name}: {before} -> {state}", file=out or sys.stdout)
    return 0


def _control(url: str, path: str, body: dict[str, Any]) -> dict[str, Any] | None:
    """POST ``body`` to a control endpoint of the sandbox at ``url``; None (said on stderr) on failure."""
    request = urllib.request.Request(
        f"{url}{path}",
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return dict(json.loads(response.read()))
    except urllib.error.HTTPError as exc:
        text = exc.read().decode(errors="replace")
        with contextlib.suppress(ValueError, AttributeError):  # the sandbox's {"error": ...}, else as is
            text = json.loads(text).get("error", text)
        print(f"error: the sandbox at {url} refused: {text}", file=sys.stderr)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        print(f"error: no sandbox at {url}: {getattr(exc, 'reason', exc)}", file=sys.stderr)
    return None


def sandbox_lambda(
    name: str, status: str, reason: str = "", endpoint: str | None = None, out: TextIO | None = None
) -> int:
    """Set what Lambda function ``name`` answers to Invoke in the sandbox at ``endpoint``; 0 done, 1 error."""
    body = {"status": status, **({"reason": reason} if reason else {})}
    reply = _control(_endpoint(endpoint), f"/_sandbox/lambda/{urllib.parse.quote(name, safe='')}", body)
    if reply is None:
        return 1
    payload = json.dumps(reply["result"]["payload"])
    print(f"lambda {reply['function']}: Invoke answers {payload}", file=out or sys.stdout)
    return 0


def sandbox_hook(
    stage: str, status: str, reason: str = "", endpoint: str | None = None, out: TextIO | None = None
) -> int:
    """Set what the sandbox's HTTP hooks answer for ``stage``; 0 done, 1 error."""
    body = {"stage": stage, "status": status, **({"reason": reason} if reason else {})}
    reply = _control(_endpoint(endpoint), "/_sandbox/http-hooks", body)
    if reply is None:
        return 1
    print(f"hook {stage}: answers {json.dumps(reply['answer'])}", file=out or sys.stdout)
    return 0


def _add_hook_parser(subparsers: Any) -> None:
    hook = subparsers.add_parser(
        "hook", help="set what the sandbox's HTTP lifecycle hooks answer for a stage"
    )
    hook.add_argument("stage", metavar="STAGE", help="the stage, e.g. postTestTraffic")
    hook.add_argument("status", metavar="STATUS", choices=HTTP_HOOK_STATES, help=" | ".join(HTTP_HOOK_STATES))
    hook.add_argument("--reason", default="", help="reason returned with the status")
    hook.add_argument(
        "--endpoint", metavar="URL", help="sandbox URL (default: AWS_ENDPOINT_URL, else port 4566)"
    )
    hook.set_defaults(func=lambda a: sandbox_hook(a.stage, a.status, a.reason, a.endpoint))


def _add_alarm_parser(subparsers: Any) -> None:
    alarm = subparsers.add_parser(
        "alarm", help="set a CloudWatch alarm of a running sandbox (e.g. to ALARM during a bake)"
    )
    alarm.add_argument("name", metavar="NAME", help="alarm name")
    alarm.add_argument("state", metavar="STATE", choices=ALARM_STATES, help=" | ".join(ALARM_STATES))
    alarm.add_argument(
        "--endpoint", metavar="URL", help="sandbox URL (default: AWS_ENDPOINT_URL, else port 4566)"
    )
    alarm.add_argument("--region", help=f"region (default: AWS_REGION, else {DEFAULT_REGION})")
    alarm.set_defaults(func=lambda a: sandbox_alarm(a.name, a.state, a.endpoint, a.region))


def _add_lambda_parser(subparsers: Any) -> None:
    fn = subparsers.add_parser("lambda", help="set what a Lambda hook answers in a running sandbox")
    fn.add_argument("name", metavar="FUNCTION", help="function name or ARN")
    fn.add_argument("status", metavar="STATUS", choices=HOOK_STATES, help=" | ".join(HOOK_STATES))
    fn.add_argument("--reason", default="", help="reason returned with the status")
    fn.add_argument(
        "--endpoint", metavar="URL", help="sandbox URL (default: AWS_ENDPOINT_URL, else port 4566)"
    )
    fn.set_defaults(func=lambda a: sandbox_lambda(a.name, a.status, a.reason, a.endpoint))


def add_commands(parser: argparse.ArgumentParser) -> None:
    """Add ``up | alarm | lambda | hook`` to ``parser`` (the main CLI's ``sandbox``, or this module's own)."""
    commands = parser.add_subparsers(dest="sandbox_command", required=True, metavar="COMMAND")
    _add_up_parser(commands)
    _add_alarm_parser(commands)
    _add_lambda_parser(commands)
    _add_hook_parser(commands)


def add_sandbox_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``sandbox up | alarm | lambda | hook``; ``args.func(args)`` returns the exit code."""
    parser = subparsers.add_parser(
        "sandbox",
        help="a local ECS to rehearse rollouts on",
        description="A local ECS (moto plus ECS behaviour) on 127.0.0.1.",
    )
    add_commands(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ecs-gitops sandbox")
    add_commands(parser)
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
