"""``ecs-gitops status [--repo R] [--ref REV] [--json]``: the statuses the agent wrote on one commit.

They are read from where the agent config (``--config``, ``ECS_GITOPS_CONFIG`` or ./ecs-gitops.yaml)
publishes them: GitHub's combined status, GitLab's commit statuses, or, by default, git notes in the
repository itself (after fetching the notes from its ``origin``, when it has one).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from typing import Any, TextIO

import git

from agent.errors import PermanentError
from agent.status.gitnotes import GitNotesPublisher
from agent.status.model import AGGREGATE, Publisher


def add_status_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``status`` on the CLI's subparsers; the command runs ``status_command``."""
    p = subparsers.add_parser("status", help="show the commit statuses ecs-gitops wrote on a commit")
    p.add_argument("--repo", default=".", help="git repository path or URL (default: .)")
    p.add_argument("--ref", default="HEAD", help="commit, branch or tag (default: HEAD)")
    p.add_argument("--json", action="store_true", help="print the statuses as JSON")
    p.set_defaults(func=_run)
    return p


def _run(args: argparse.Namespace) -> int:
    return status_command(args.repo, args.ref, args.json, configured_publisher(getattr(args, "config", None)))


def configured_publisher(path: str | None) -> Publisher | None:
    """The publisher of the agent config at ``path`` (else ``ECS_GITOPS_CONFIG``, else ./ecs-gitops.yaml
    when present) when it writes to a Git host's API; None for git notes (read from the clone)."""
    from agent.config import load_config
    from agent.status.factory import make_publisher

    path = path or os.environ.get("ECS_GITOPS_CONFIG")
    if path is None:
        path = next((f for f in ("ecs-gitops.yaml", "ecs-gitops.yml") if os.path.isfile(f)), None)
    if path is None:
        return None
    config = load_config(path)
    if config.status.publisher in ("github", "gitlab"):
        return make_publisher(config)
    return None


def status_command(
    repo: str, ref: str | None, json_out: bool, publisher: Publisher | None, out: TextIO | None = None
) -> int:
    """Print the statuses of ``ref`` (default HEAD) in ``repo`` as a table or JSON; 0 when read."""
    out = out or sys.stdout
    is_url = "://" in repo or repo.startswith("git@")
    scratch = tempfile.mkdtemp(prefix="ecs-gitops-status-") if is_url else None
    try:
        if scratch is not None:
            try:
                git.Repo.clone_from(repo, scratch, bare=True, env={"GIT_TERMINAL_PROMPT": "0"}).close()
            except git.GitCommandError as e:
                raise PermanentError(f"{repo}: cannot clone: {str(e.stderr).strip()}") from None
        path = scratch or repo
        sha = _resolve(path, ref or "HEAD")
        if publisher is None:
            publisher = _default_publisher(path)
        statuses = publisher.read(sha)
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
    if json_out:
        document = {"sha": sha, "ref": ref or "HEAD", "statuses": _ordered(statuses)}
        print(json.dumps(document, indent=2), file=out)
    else:
        print(render_table(sha, ref or "HEAD", statuses), file=out)
    return 0


def render_table(sha: str, ref: str, statuses: dict[str, dict]) -> str:
    """A small aligned table: context, state, updated, description (aggregate first)."""
    head = f"commit {sha}" + (f" ({ref})" if ref and ref != sha else "")
    if not statuses:
        return f"{head}\nno ecs-gitops statuses on this commit"
    rows = [("CONTEXT", "STATE", "UPDATED", "DESCRIPTION")]
    for context, entry in _ordered(statuses).items():
        rows.append(
            (
                context,
                str(entry.get("state") or "?"),
                str(entry.get("updatedAt") or "-"),
                str(entry.get("description") or ""),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = ["  ".join([*(cell.ljust(widths[i]) for i, cell in enumerate(row[:3])), row[3]]) for row in rows]
    return "\n".join([head, *(line.rstrip() for line in lines)])


def _ordered(statuses: dict[str, dict]) -> dict[str, dict]:
    return dict(sorted(statuses.items(), key=lambda kv: (kv[0] != AGGREGATE, kv[0])))


def _resolve(path: str, ref: str) -> str:
    try:
        with git.Repo(path) as repo:
            return repo.commit(ref).hexsha
    except (git.NoSuchPathError, git.InvalidGitRepositoryError):
        raise PermanentError(f"{path}: not a git repository") from None
    except (git.BadName, ValueError, git.GitCommandError):
        raise PermanentError(f"{path}: unknown revision {ref!r}") from None


def _default_publisher(path: str) -> GitNotesPublisher:
    with git.Repo(path) as repo:
        has_origin = any(r.name == "origin" for r in repo.remotes)
    return GitNotesPublisher(path, remote="origin", push=has_origin)
