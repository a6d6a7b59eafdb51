"""The commands: validate, plan (and ``plan --publish``), apply, run and iam-policy. Each returns its exit
code; errors are raised as agent.errors and printed as one line by ``agent.cli.main``."""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agent.cli.settings import (
    EXIT_CHANGES,
    EXIT_ERROR,
    EXIT_OK,
    EXIT_UNDELIVERED,
    _aws,
    _config,
    _print_problems,
    _state,
    _tree,
    _unreachable,
)
from agent.errors import PermanentError, TransientError

SANDBOX_POLL_SECONDS = 1  # run's poll interval against a sandbox whose clock runs faster than real time


def cmd_validate(args: argparse.Namespace) -> int:
    from agent.manifests import load_desired

    config = _config(args)
    # An explicit PATH is the manifest root itself; without one, the config's source applies.
    tree = _tree(args.path, args.ref, "", config) if args.path else _tree(None, args.ref, None, config)
    desired = load_desired(tree, config)
    _print_problems(getattr(desired, "warnings", ()), sys.stderr)
    n = sum(
        len(desired.by_kind(k))
        for k in ("Service", "DeploymentStrategy", "Window", "CapacityProvider", "Cluster")
    )
    print(f"{tree.describe()}: valid ({n} manifests, {len(desired.task_definitions)} task definitions)")
    return EXIT_OK


def cmd_plan(args: argparse.Namespace) -> int:
    from agent.plan.render import render_json, render_text
    from agent.reconcile import Reconciler

    if args.publish:
        return _publish_plan(args)
    config = _config(args)
    tree = _tree(args.repo, args.ref, args.path, config)
    # An interactive command: a few attempts, so an endpoint that is down is said in seconds.
    result = Reconciler(_aws(args, config, max_attempts=2), config, store=_state(args, config)).plan(tree)
    if args.json:
        print(render_json(result.plan))
    else:
        text = render_text(result.plan, color=sys.stdout.isatty() and not os.environ.get("NO_COLOR"))
        print(text.rstrip("\n"))  # the summary is the last line: `plan | tail -1` shows it
    for error in result.errors:  # an account that could not be read; the others are planned above
        print(f"error: account {error}", file=sys.stderr)
    if result.errors:
        return EXIT_ERROR
    return EXIT_CHANGES if result.plan.has_changes else EXIT_OK


def _publish_plan(args: argparse.Namespace) -> int:
    """``plan --publish --ref REV``: plan a proposed commit, print it, publish ``ecs-gitops/plan``."""
    if not args.ref:
        print(
            "error: --publish needs --ref (the commit, branch or refs/pull/N/head to plan)", file=sys.stderr
        )
        return EXIT_ERROR
    agent = _agent(args)
    try:
        return _publish(agent, args)
    finally:
        agent.close()  # the leader lease of a shared store: the daemon's replicas need not wait for it


def _publish(agent: Any, args: argparse.Namespace) -> int:

    from agent.status.comments import request_number

    preview = agent.plan_ref(args.ref, args.pr)
    if args.json and preview.plan is not None:
        from agent.plan.render import render_json

        sys.stdout.write(render_json(preview.plan))
    else:
        sys.stdout.write(preview.text)
    status = preview.status
    print(f"{status.context} on {preview.sha[:12]}: {status.state} ({status.description})")
    if preview.comment:
        number = args.pr if args.pr is not None else request_number(args.ref)
        print(f"plan comment {preview.comment} on request {number}")
    for _ in range(5):  # give a status write that failed a few more chances
        if not agent.outbox.pending():
            break
        time.sleep(2)
        agent.outbox.flush()
    undelivered = _undelivered(agent)
    if preview.plan is None or preview.status.state == "error":  # not planned, or some accounts not
        return EXIT_ERROR
    if undelivered:
        return EXIT_UNDELIVERED
    return EXIT_CHANGES if preview.plan.has_changes else EXIT_OK


def _undelivered(agent: Any) -> int:
    """Say on stdout how many statuses could not be written, and why; return how many."""
    waiting = agent.outbox.pending()
    if waiting:
        reasons = ", ".join(sorted({reason for _, reason in agent.outbox.failures})) or "not tried yet"
        print(
            f"not delivered: {len(waiting)} commit status(es) ({reasons}); kept in the state store, the next "
            "apply or run sends them"
        )
    return len(waiting)


def _agent(args: argparse.Namespace) -> Any:
    """An Agent from the config, with --repo/--branch/--path overriding the config's source."""
    from dataclasses import replace

    from agent.daemon import Agent
    from agent.logs import configure_logging

    config = _config(args)
    configure_logging(config)  # run and apply: JSON lines in containers, readable on a terminal
    repo = getattr(args, "repo", None)
    if repo is not None:
        from agent.git.trees import check_repository

        check_repository(repo)
        if getattr(args, "path", None) is None:
            args.path = ""  # an explicit --repo stands alone: --path is its only subfolder (as for plan)
    overrides = {
        k: v
        for k, v in (
            ("repo", getattr(args, "repo", None)),
            ("branch", getattr(args, "branch", None)),
            ("path", getattr(args, "path", None)),
        )
        if v is not None
    }
    if overrides:
        config = replace(config, source=replace(config.source, **overrides))
    data_dir = Path(args.data_dir or os.environ.get("ECS_GITOPS_DATA_DIR") or ".ecs-gitops")
    aws = _aws(args, config)
    from agent.aws.clock import endpoint_clock

    clock = endpoint_clock(aws.endpoint_url)  # a sandbox whose clock runs fast: bakes follow it
    if clock is None:
        return Agent(config, data_dir, aws)
    # The scheduler waits in real seconds: poll often, so each poll is a few simulated seconds at most.
    if config.source.interval_seconds > SANDBOX_POLL_SECONDS:
        config = replace(config, source=replace(config.source, interval=f"{SANDBOX_POLL_SECONDS}s"))
    print(
        f"following the clock of the sandbox at {aws.endpoint_url} ({clock.speed:g}x); polling every "
        f"{config.source.interval}",
        file=sys.stderr,
    )
    return Agent(config, data_dir, aws, clock=clock)


def _print_statuses(result: Any, out: Any = sys.stdout) -> None:
    for ctx, st in sorted(result.statuses.items()):
        print(f"  {st.state:<8} {ctx:<36} {st.description}", file=out, flush=True)


def cmd_apply(args: argparse.Namespace) -> int:
    """One reconcile of a commit (for CI and scripts); with --wait, follow it until it settles."""
    agent = _agent(args)
    try:
        return _apply(agent, args)
    finally:
        agent.close()


def _recording(call: Callable[..., Any], failures: list[BaseException]) -> Callable[..., Any]:
    """``call``, keeping what it raised: the daemon logs a failed tick and goes on, a one-shot command
    says why it did not finish."""

    def recorded(*a: Any, **kw: Any) -> Any:
        try:
            return call(*a, **kw)
        except Exception as e:
            failures.append(e)
            raise

    return recorded


def _apply(agent: Any, args: argparse.Namespace) -> int:
    """One tick (and, with ``--wait``, the ticks until the rollout settles), its statuses printed; the exit
    code says whether it deployed, failed, or left statuses undelivered."""
    if args.ref:  # an unknown ref is the user's to fix: say so before anything runs
        agent.source.fetch()
        agent._resolve(args.ref)
    agent.heap_frozen = True  # a process of a few ticks: freezing its heap costs a full collection (~0.1 s)
    failures: list[BaseException] = []
    agent.source.fetch = _recording(agent.source.fetch, failures)
    agent.reconciler.tick = _recording(agent.reconciler.tick, failures)
    result = agent.tick(ref=args.ref)
    soon = 0.5  # --wait looks again this soon, then twice as late each time, until the rollout's own wake
    while True:
        leader = (agent.lease.holder() or {}).get("owner", agent.lease.owner)
        if result is None and not agent.leading and leader != agent.lease.owner:
            print(f"error: {leader} holds the leader lease: this apply changed nothing", file=sys.stderr)
            return EXIT_ERROR
        if result is None and failures and isinstance(failures[-1], PermanentError):
            print(f"error: {failures[-1]}", file=sys.stderr)
            return EXIT_ERROR
        if result is None:
            why = (
                _unreachable(args, failures[-1])
                if failures and isinstance(failures[-1], TransientError)
                else ""
            )
            print(
                f"error: the tick did not finish: {why or 'a temporary error (git or AWS, see the log)'}; "
                "try again",
                file=sys.stderr,
            )
            return EXIT_ERROR
        print(f"{result.sha[:12]}: {result.outcome}", flush=True)
        if result.outcome == "invalid":
            _print_problems(result.problems, sys.stderr)
        _print_statuses(result)
        if not args.wait or result.wake_at is None:
            break
        clock = agent.reconciler.clock
        speed = getattr(clock, "speed", None) or 1.0  # a sandbox's clock may run faster than real time
        until_wake = (result.wake_at - clock()).total_seconds() / speed
        time.sleep(min(30.0, max(0.5, min(until_wake, soon))))  # a deployment may be done in a second
        soon *= 2
        result = agent.tick(ref=args.ref)
    for _ in range(5):  # give status writes that failed a few more chances
        if not agent.outbox.pending():
            break
        time.sleep(2)
        agent.outbox.flush()
    undelivered = _undelivered(agent)
    if result.outcome in ("invalid", "untrusted", "failed"):
        return EXIT_ERROR
    return EXIT_UNDELIVERED if undelivered else EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    """The daemon: reconcile the configured branch until SIGTERM or SIGINT."""
    import signal
    import threading

    agent = _agent(args)
    if args.once:  # one tick of the loop below, then exit like apply
        args.ref, args.wait = None, False
        try:
            return _apply(agent, args)
        finally:
            agent.close()
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    agent.run(stop)
    return EXIT_OK


def cmd_iam_policy(args: argparse.Namespace) -> int:
    """Print the least-privilege IAM policy for the manifests and the agent config (agent/aws/policy.py)."""
    import json

    from agent.aws.policy import account_policies, agent_policy
    from agent.manifests import load_desired

    config = _config(args)
    desired = load_desired(_tree(args.repo, args.ref, args.path, config), config)
    policy: Any = agent_policy(desired, config, args.account_id)
    if args.accounts:
        policy = {"agent": policy, "accounts": account_policies(desired, config, args.account_id)}
    print(json.dumps(policy, indent=2))
    return EXIT_OK
