"""Command line: ``ecs-gitops validate | plan | apply | run | status | iam-policy | sandbox up``.

Exit codes follow ``terraform plan -detailed-exitcode``: 0 no changes (or valid), 2 changes, 1 error;
``apply`` and ``plan --publish`` exit 3 when all went well but some commit statuses could not be written
(they stay in the state store and the next apply or run sends them).
Errors print as ``FILE[:LINE]: /json/pointer: message`` — never as a traceback.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from agent.cli.commands import (
    SANDBOX_POLL_SECONDS,
    _apply,
    cmd_apply,
    cmd_iam_policy,
    cmd_plan,
    cmd_run,
    cmd_validate,
)
from agent.cli.settings import (
    EXIT_CHANGES,
    EXIT_ERROR,
    EXIT_OK,
    EXIT_UNDELIVERED,
    _print_problems,
    _unreachable,
    aws_settings,
)
from agent.errors import AgentError, InvalidInput, PermanentError, TransientError

__all__ = [
    "EXIT_CHANGES",
    "EXIT_ERROR",
    "EXIT_OK",
    "EXIT_UNDELIVERED",
    "SANDBOX_POLL_SECONDS",
    "_apply",
    "aws_settings",
    "build_parser",
    "cmd_apply",
    "cmd_plan",
    "cmd_run",
    "cmd_validate",
    "main",
]

SANDBOX_EXTRA = "ecs-gitops sandbox needs the sandbox extra: pip install 'ecs-gitops[sandbox]'"


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


def entry() -> NoReturn:
    """The ``ecs-gitops`` console script (and ``python -m agent.cli``): :func:`main`, then exit.

    The heap is frozen (``gc.freeze``) on the way out. Otherwise the interpreter's last collections walk
    every object again only to free memory the OS takes back at exit anyway: about 0.12 s of an ``apply``
    of 50 services. atexit handlers and ``weakref.finalize`` callbacks still run; an object kept alive
    only by a reference cycle is not finalized, which Python never promised at exit (the data model's
    ``__del__`` note), and the agent's state is safe against a kill at any moment, so against this too."""
    code = main()
    gc.freeze()
    sys.exit(code)
