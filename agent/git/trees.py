"""Where a command finds the manifests: a folder, or a commit of a git repository read without checkout.

One rule for every command (``validate``, ``plan``, ``apply``, ``run``): without ``--repo`` the agent
config's source applies (its repository, its branch when a commit is read, its subfolder ``path``); an
explicit ``--repo`` stands alone, with ``--path`` as its only subfolder (default: its root). A folder
inside a repository read at a ``--ref`` means that folder's files at the commit. Git's own errors (an
unknown ref, a folder that is not a repository) become one-line ``PermanentError``s.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import git

from agent.errors import PermanentError
from agent.manifests.tree import DirTree, GitTree


def is_url(repo: str) -> bool:
    return "://" in repo or repo.startswith("git@")


def manifest_tree(repo: str | None, ref: str | None, path: str | None, source: Any) -> Any:
    """The manifest tree for ``--repo``/``--ref``/``--path`` (None when not given) and the config's
    ``source``: a :class:`DirTree`, or a :class:`GitTree` when a ref is read or ``repo`` is a URL."""
    if repo is None:
        repo = getattr(source, "repo", None) or "."
        path = path if path is not None else (getattr(source, "path", None) or "")
    if ref or is_url(repo):
        return git_tree(repo, ref or getattr(source, "branch", None) or "HEAD", path or "")
    return DirTree(Path(repo) / (path or ""))


def git_tree(repo: str, ref: str, path: str) -> GitTree:
    """The files under ``path`` at commit ``ref`` of ``repo``: a URL, a repository, or a folder inside one
    (``path`` is then taken under that folder)."""
    if not is_url(repo):
        folder = Path(repo)
        if not folder.is_dir():
            raise PermanentError(f"{repo}: no such folder")
        try:
            found = git.Repo(folder, search_parent_directories=True)
        except git.InvalidGitRepositoryError:
            raise PermanentError(
                f"{repo} is not in a git repository, so --ref has no commit to read (leave --ref out to "
                "read the folder as it is)"
            ) from None
        if found.working_tree_dir is not None:
            inside = folder.resolve().relative_to(Path(found.working_tree_dir).resolve()).as_posix()
            path = "/".join(p for p in (inside if inside != "." else "", path.strip("/")) if p)
            repo = str(found.working_tree_dir)
    try:
        return GitTree(repo, ref, path)
    except (git.BadName, git.BadObject, ValueError) as e:
        raise PermanentError(f"--ref {ref}: no such commit, branch or tag in {repo}") from e
    except git.GitCommandError as e:
        detail = " ".join(str(e.stderr or e).split())
        raise PermanentError(f"cannot read {repo}: {detail}") from e


def check_repository(repo: str) -> None:
    """A local ``--repo`` of ``apply`` must be a git repository: apply and run deploy commits."""
    if is_url(repo) or repo.startswith("file://"):
        return
    if not Path(repo).is_dir():
        raise PermanentError(f"--repo {repo}: no such folder")
    try:
        git.Repo(repo)
    except git.InvalidGitRepositoryError:
        try:
            top = git.Repo(repo, search_parent_directories=True).working_tree_dir
        except git.InvalidGitRepositoryError:
            top = None
        inside = f" (it is a folder of the repository {top}: give --repo {top} --path FOLDER)" if top else ""
        raise PermanentError(
            f"--repo {repo} is not a git repository: apply deploys commits{inside}; plan reads a plain folder"
        ) from None
