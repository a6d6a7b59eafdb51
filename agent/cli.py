"""Command line: ``ecs-gitops validate | plan | apply | run | status | iam-policy | sandbox up``.

Exit codes follow ``terraform plan -detailed-exitcode``: 0 no changes (or valid), 2 changes, 1 error;
``apply`` and ``plan --publish`` exit 3 when all went well but some commit statuses could not be written
(they stay in the state store and the next apply or run sends them).
Errors print as ``FILE[:LINE]: /json/pointer: message`` — never as a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from agent.errors import AgentError, InvalidInput, PermanentError, TransientError

EXIT_OK, EXIT_ERROR, EXIT_CHANGES, EXIT_UNDELIVERED = 0, 1, 2, 3
SANDBOX_POLL_SECONDS = 1  # run's poll interval against a sandbox whose clock runs faster than real time
DEFAULT_CONFIG_FILES = ("ecs-gitops.yaml", "ecs-gitops.yml")
SANDBOX_EXTRA = "ecs-gitops sandbox needs the sandbox extra: pip install 'ecs-gitops[sandbox]'"


def _config(args: argparse.Namespace) -> Any:
    from agent.config import load_config

    path = args.config or os.environ.get("ECS_GITOPS_CONFIG")
    if path is None:
        path = next((f for f in DEFAULT_CONFIG_FILES if Path(f).is_file()), None)
    return load_config(path)


def _tree(repo: str | None, ref: str | None, path: str | None, config: Any) -> Any:
    """The manifest tree (agent/git/trees.py states the rule: an explicit --repo stands alone)."""
    from agent.git.trees import manifest_tree

    return manifest_tree(repo, ref, path, getattr(config, "source", None))


def _print_problems(problems: Any, out: Any) -> None:
    for p in problems:
        prefix = "warning: " if p.severity == "warning" else ""
        print(f"{prefix}{p}", file=out)


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


def _state(args: argparse.Namespace, config: Any) -> Any:
    """The agent's state store when ``--data-dir`` holds one (the plan then marks drift), else None."""
    if not args.data_dir:
        return None
    path = Path(args.data_dir) / config.store.path
    if not path.is_file():
        print(f"warning: no agent state at {path}: drift cannot be told from changes", file=sys.stderr)
        return None
    from agent.store.sqlite import SqliteStore

    return SqliteStore(path)


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
    import time

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


AWS_SETTINGS = (  # (option, environment variables, config field): the flag wins, then the environment
    ("endpoint_url", ("AWS_ENDPOINT_URL",), "endpointUrl"),
    ("region", ("AWS_REGION", "AWS_DEFAULT_REGION"), "region"),
    ("profile", ("AWS_PROFILE",), "profile"),
)


def aws_settings(args: argparse.Namespace, config: Any) -> dict[str, tuple[str | None, str]]:
    """Each AWS setting and where it came from: ``--flag`` > environment > config file > default."""
    aws_cfg = getattr(config, "aws", None)
    out: dict[str, tuple[str | None, str]] = {}
    for name, variables, field in AWS_SETTINGS:
        flag = getattr(args, name, None)
        env = next(((v, os.environ[v]) for v in variables if os.environ.get(v)), None)
        if flag:
            out[name] = (flag, "--" + name.replace("_", "-"))
        elif env is not None:
            out[name] = (env[1], env[0])
        elif getattr(aws_cfg, name, None):
            out[name] = (getattr(aws_cfg, name), f"aws.{field} in {getattr(config, 'source_file', None)}")
        else:
            out[name] = (None, "default")
    return out


def _aws(args: argparse.Namespace, config: Any, max_attempts: int = 8) -> Any:
    from botocore.exceptions import ProfileNotFound

    from agent.aws.clients import Aws

    settings = aws_settings(args, config)
    profile, origin = settings["profile"]
    try:
        return Aws(
            region=settings["region"][0],
            endpoint_url=settings["endpoint_url"][0],
            profile=profile,
            max_attempts=max_attempts,
        )
    except ProfileNotFound:
        raise PermanentError(f"no AWS profile named {profile!r} (set by {origin})") from None


def _unreachable(args: argparse.Namespace, error: TransientError) -> str:
    """A transient error, naming the endpoint used and where that endpoint was set."""
    try:
        url, origin = aws_settings(args, _config(args))["endpoint_url"]
    except AgentError:
        return str(error)
    if url is None or "cannot reach AWS" not in str(error):
        return str(error)
    return f"cannot reach AWS at {url} (set by {origin}): is it running?"


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
    import time

    if args.ref:  # an unknown ref is the user's to fix: say so before anything runs
        agent.source.fetch()
        agent._resolve(args.ref)
    failures: list[BaseException] = []
    agent.source.fetch = _recording(agent.source.fetch, failures)
    agent.reconciler.tick = _recording(agent.reconciler.tick, failures)
    result = agent.tick(ref=args.ref)
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
        time.sleep(min(30.0, max(0.5, (result.wake_at - clock()).total_seconds() / speed)))
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


def _aws_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--endpoint-url", help="AWS endpoint for every service (default: AWS_ENDPOINT_URL)")
    p.add_argument("--region", help="AWS region (default: the usual AWS sources)")
    p.add_argument("--profile", help="AWS profile")


class SandboxMissing(Exception):
    """The sandbox's dependencies (moto) are not installed."""


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose arguments may come from a ``load`` function called on its first parse, so
    a command can live in a module that is imported only when that command runs."""

    load: Callable[[argparse.ArgumentParser], None] | None = None

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        if self.load is not None:
            load, self.load = self.load, None
            load(self)
        return super().parse_known_args(args, namespace)

    def error(self, message: str) -> NoReturn:
        """A usage error: one line and exit 1 (argparse's 2 would read as "changes" to a plan script)."""
        self.exit(EXIT_ERROR, f"error: {message} (see {self.prog} --help)\n")


def _sandbox_commands(parser: argparse.ArgumentParser) -> None:
    """``sandbox up | alarm | lambda | hook`` from agent.sandbox.cli, imported by name (it loads moto)."""
    try:
        sandbox_cli = importlib.import_module("agent.sandbox.cli")
    except ModuleNotFoundError as e:
        name = e.name or ""
        if name.partition(".")[0] == "agent" and not name.startswith("agent.sandbox"):
            raise  # a bug of ours, not a missing extra
        # moto is not installed, or (in the image) the sandbox package itself is left out
        raise SandboxMissing(SANDBOX_EXTRA) from e
    sandbox_cli.add_commands(parser)


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


def add_iam_policy_parser(sub: Any) -> None:
    i = sub.add_parser("iam-policy", help="print the least-privilege IAM policy the manifests need (JSON)")
    i.add_argument("--repo", help="git repository path or URL (default: the config's source)")
    i.add_argument("--ref", help="commit, branch or tag to read (default: the config's branch)")
    i.add_argument("--path", help="manifest folder inside the repository")
    i.add_argument("--account-id", help="the agent's own account (default: the one the manifests' ARNs name)")
    i.add_argument(
        "--accounts",
        action="store_true",
        help='also the policy of the role assumed in each other account: {"agent": ..., "accounts": {...}}',
    )
    i.set_defaults(func=cmd_iam_policy)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="ecs-gitops", description="GitOps for Amazon ECS: validate and plan manifests kept in Git."
    )
    parser.add_argument("--config", help="agent config file (default: ./ecs-gitops.yaml if present)")
    # --config is accepted after the command too (`ecs-gitops run --config FILE`).
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", default=argparse.SUPPRESS, help="agent config file")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)
    add_parser = sub.add_parser
    sub.add_parser = lambda *a, **kw: add_parser(*a, parents=[common, *kw.pop("parents", [])], **kw)  # type: ignore[method-assign]

    v = sub.add_parser("validate", help="check manifests; exit 0 when valid, 1 otherwise")
    v.add_argument("path", nargs="?", help="manifest folder or git repository (default: config / .)")
    v.add_argument("--ref", help="validate the files at this git commit, without checking it out")
    v.set_defaults(func=cmd_validate)

    p = sub.add_parser("plan", help="show what would change in ECS; exit 0 none, 2 changes, 1 error")
    p.add_argument("--repo", help="git repository path or URL, or a plain folder (default: .)")
    p.add_argument("--ref", help="plan the files at this commit, without checking it out")
    p.add_argument("--path", help="manifest folder inside the repository")
    p.add_argument("--json", action="store_true", help="print the plan as JSON (docs/plan-json.md)")
    p.add_argument(
        "--publish",
        action="store_true",
        help="write the plan as the commit status ecs-gitops/plan on --ref (and, with status.planComments, "
        "as a comment on its pull request); nothing is applied",
    )
    p.add_argument("--pr", type=int, help="with --publish: the pull/merge request to comment on")
    p.add_argument(
        "--data-dir",
        help="the agent's state and clone: its rollout records tell drift from changes (default for "
        "--publish: $ECS_GITOPS_DATA_DIR or .ecs-gitops)",
    )
    _aws_options(p)
    p.set_defaults(func=cmd_plan)

    a = sub.add_parser(
        "apply", help="reconcile one commit now; exit 0 deployed or rolling, 1 failed, invalid or untrusted"
    )
    a.add_argument("--repo", help="git repository path or URL (default: the config's source)")
    a.add_argument("--branch", help="branch the agent tracks (default: the config's, else main)")
    a.add_argument("--ref", help="commit to apply (default: the branch head)")
    a.add_argument("--path", help="manifest folder inside the repository")
    a.add_argument("--wait", action="store_true", help="follow the rollout until it succeeds or fails")
    a.add_argument("--data-dir", help="state and git clone (default: $ECS_GITOPS_DATA_DIR or .ecs-gitops)")
    _aws_options(a)
    a.set_defaults(func=cmd_apply)

    r = sub.add_parser("run", help="the agent: watch the branch and reconcile every commit")
    r.add_argument("--repo", help="git repository path or URL (default: the config's source)")
    r.add_argument("--branch", help="branch to watch (default: the config's, else main)")
    r.add_argument("--path", help="manifest folder inside the repository")
    r.add_argument("--data-dir", help="state and git clone (default: $ECS_GITOPS_DATA_DIR or .ecs-gitops)")
    r.add_argument(
        "--once", action="store_true", help="one tick on the branch head, print it, exit (like apply)"
    )
    _aws_options(r)
    r.set_defaults(func=cmd_run)

    s = sub.add_parser(
        "sandbox",
        help="a local ECS to rehearse rollouts on",
        description="A local ECS (moto plus ECS behaviour) on 127.0.0.1.",
    )
    s.load = _sandbox_commands  # agent.sandbox (and moto) only when the command is sandbox

    from agent.status.cli import add_status_parser

    add_status_parser(sub)
    add_iam_policy_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SandboxMissing as e:
        print(e, file=sys.stderr)
        return EXIT_ERROR
    try:
        return int(args.func(args))
    except InvalidInput as e:
        _print_problems(e.problems, sys.stderr)
        n = sum(1 for p in e.problems if p.severity == "error")
        print(f"invalid: {n} problem(s)", file=sys.stderr)
        return EXIT_ERROR
    except TransientError as e:
        print(f"error: {_unreachable(args, e)} (temporary; try again)", file=sys.stderr)
        return EXIT_ERROR
    except (PermanentError, AgentError) as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130
    except OSError as e:  # a data directory that is a file, a folder that cannot be written
        where = f"{e.filename}: " if e.filename else ""
        print(f"error: {where}{e.strerror or e}", file=sys.stderr)
        return EXIT_ERROR
    except Exception as e:  # a bug: still one line (ECS_GITOPS_DEBUG=1 shows the traceback)
        if os.environ.get("ECS_GITOPS_DEBUG"):
            raise
        detail = " ".join(str(e).split())
        print(
            f"error: {type(e).__name__}: {detail} (an ecs-gitops bug: please report it with the output of "
            "ECS_GITOPS_DEBUG=1)",
            file=sys.stderr,
        )
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
