"""``ecs-gitops sandbox up``: run the sandbox in the foreground until interrupted.

The first line printed is ``AWS_ENDPOINT_URL=http://127.0.0.1:PORT`` (flushed at once), so scripts
and tests can read the endpoint before anything else. SIGINT and SIGTERM stop it cleanly (exit 0).
Also runnable without the main CLI: ``python -m agent.sandbox.cli up --port 0``.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path
from typing import Any, TextIO

from agent.sandbox.seed import DEFAULT_SEED_PATH, SeedError, load_seed
from agent.sandbox.server import Sandbox, SandboxError
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
) -> int:
    """Start, seed, serve until SIGINT/SIGTERM (or ``stop`` is set); 0 on a clean stop, 1 on error.

    ``seed`` is a seed file; when None, ``manifests-example/sandbox-seed.yaml`` under the current
    directory is used if it exists. ``use_seed=False`` starts an empty sandbox. ``task_seconds`` is
    how long the simulator takes to start (or fail) one task; images matching ``failure_pattern``
    never start.
    """
    if task_seconds <= 0:
        print("error: --task-seconds must be positive", file=sys.stderr)
        return 1
    seed_data: dict[str, Any] | None = None
    seed_path = Path(seed) if seed else DEFAULT_SEED_PATH
    if use_seed and (seed or seed_path.exists()):
        try:
            seed_data = load_seed(seed_path)
        except SeedError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    region = (seed_data or {}).get("region") or DEFAULT_REGION
    sandbox = Sandbox(
        port=port, region=region, task_start_seconds=task_seconds, failure_pattern=failure_pattern
    )
    try:
        endpoint = sandbox.start()
    except SandboxError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    stop = stop or threading.Event()
    previous = _install_signal_handlers(stop)
    try:
        print(f"AWS_ENDPOINT_URL={endpoint}", file=out, flush=True)
        if seed_data is not None:
            result = sandbox.seed(seed_data)
            print(f"seeded from {seed_path}: {result.summary()}", file=out)
        else:
            print("no seed file: the sandbox starts empty", file=out)
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
        type=int,
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
    up.set_defaults(func=_run_up)
    return up


def _run_up(args: argparse.Namespace) -> int:
    return sandbox_up(
        args.port,
        args.seed,
        use_seed=not args.no_seed,
        task_seconds=args.task_seconds,
        failure_pattern=args.failure_pattern,
    )


def add_sandbox_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``sandbox up [--port N] [--seed FILE] [--task-seconds S] [--failure-pattern GLOB]``;
    ``args.func(args)`` returns the exit code."""
    parser = subparsers.add_parser(
        "sandbox",
        help="a local ECS to rehearse rollouts on",
        description="A local ECS (moto plus ECS behaviour) on 127.0.0.1.",
    )
    commands = parser.add_subparsers(dest="sandbox_command", required=True, metavar="COMMAND")
    _add_up_parser(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ecs-gitops sandbox")
    commands = parser.add_subparsers(dest="sandbox_command", required=True, metavar="COMMAND")
    _add_up_parser(commands)
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
