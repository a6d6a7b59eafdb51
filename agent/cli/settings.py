"""Where a command's inputs come from: the agent config file, the manifest tree, the state store, and the
AWS settings (``--flag`` > environment > config file > default), each naming its origin in errors."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from agent.errors import AgentError, PermanentError, TransientError

EXIT_OK, EXIT_ERROR, EXIT_CHANGES, EXIT_UNDELIVERED = 0, 1, 2, 3
DEFAULT_CONFIG_FILES = ("ecs-gitops.yaml", "ecs-gitops.yml")


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


def _print_problems(problems: Any, out: Any) -> None:
    for p in problems:
        prefix = "warning: " if p.severity == "warning" else ""
        print(f"{prefix}{p}", file=out)
