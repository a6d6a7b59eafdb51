"""Where commits come from: one branch of a git remote, mirrored into a local bare clone.

``GitSource`` owns that clone. ``fetch`` brings the tracked branch and every notes ref (so the git-notes
status publisher, which writes in the same clone, sees statuses written elsewhere) and says whether the
head moved and whether history was rewritten. Manifests are read at a sha through
``agent.manifests.tree.GitTree`` over the clone, from blobs: the clone is bare, nothing is checked out.

Errors say what the loop does next: a remote that is down, slow or refuses our credentials is a
``TransientError`` (retry); a branch that does not exist is a ``PermanentError`` (a human must act).
Every git process runs with a timeout, never prompts, and no message carries a token.
"""

from __future__ import annotations

import configparser
import os
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple
from urllib.parse import unquote, urlsplit

import git
import structlog

from agent.errors import PermanentError, TransientError
from agent.git.auth import GitAuth, redact_url, ssh_command

if TYPE_CHECKING:
    from agent.manifests.tree import GitTree

log = structlog.get_logger(__name__)

NOTES_REFSPEC = "+refs/notes/*:refs/notes/*"
PLANNED_PREFIX = "refs/ecs-gitops/planned/"  # where source.planRefs heads are mirrored in the clone
_BRANCH_RE = re.compile(r"[A-Za-z0-9._/+-]+")
_SCP_LIKE = re.compile(r"^(?:[^@/]+@)?[^/:]+:(?!//)")
_MISSING_REF = re.compile(r"couldn't find remote ref", re.IGNORECASE)
_AUTH_FAILED = re.compile(
    r"authentication failed|could not read (username|password)|terminal prompts disabled|"
    r"permission denied \(|host key verification failed|requested url returned error: 40[13]",
    re.IGNORECASE,
)

#: Called as ``verifier(clone_path, sha)`` before a commit is deployed; raises ``PermanentError`` when the
#: commit is not signed by a trusted key: ``agent.git.verifying.CommitVerifier`` (config ``verify``).
Verifier = Callable[[Path, str], None]


@dataclass(frozen=True)
class FetchResult:
    """What one fetch found: the branch head now, the head before, and how it moved."""

    sha: str
    previous: str | None
    changed: bool
    forced: bool  # the new head does not descend from the previous one (a force-push)


class CommitInfo(NamedTuple):
    """What a timeline shows about a commit."""

    author: str
    summary: str
    committed_at: datetime


def is_local(url: str) -> bool:
    """True for a filesystem path (not ``scheme://`` and not scp-like ``[user@]host:path``)."""
    if "://" in url:
        return False
    return not (_SCP_LIKE.match(url) and not Path(url).exists())


def local_path(url: str) -> Path | None:
    """The directory of a local source (a path or a ``file://`` URL), else None."""
    if url.startswith("file://"):
        return Path(unquote(urlsplit(url).path))
    if is_local(url):
        return Path(url).expanduser().resolve()
    return None


class GitSource:
    """One branch of a remote, fetched into a bare clone at ``workdir`` (created on the first fetch).

    ``url`` is a local path (a work tree or a bare repository), ``file://``, ``ssh://``, scp-like
    ``git@host:path`` or ``https://``. Credentials come from ``auth``, never from the URL.
    ``verifier`` is the signed-commit hook; ``timeout`` bounds each network git process (seconds) and
    ``local_timeout`` each local one.

    Only the tracked branch (``+refs/heads/<branch>:refs/heads/<branch>``) and notes
    (``+refs/notes/*:refs/notes/*``) are fetched. ``lock`` serialises git writes in the clone: a status
    publisher writing notes there should hold it too.
    """

    def __init__(
        self,
        url: str,
        branch: str = "main",
        *,
        workdir: Path,
        auth: GitAuth | None = None,
        verifier: Verifier | None = None,
        timeout: float = 120.0,
        local_timeout: float = 30.0,
    ) -> None:
        branch = branch.removeprefix("refs/heads/")
        if (
            not _BRANCH_RE.fullmatch(branch)
            or ".." in branch
            or branch.startswith(("-", "/", "."))
            or branch.endswith(("/", ".lock"))
        ):
            raise PermanentError(f"invalid branch name {branch!r}")
        if redact_url(url) != url:
            raise PermanentError(
                "the git URL carries credentials: give them through auth (token_env / token_file) instead"
            )
        path = local_path(url)
        self.url = str(path) if path is not None and not url.startswith("file://") else url
        self.branch = branch
        self.workdir = Path(workdir).expanduser().resolve()  # git runs elsewhere: never relative
        self.auth = auth
        self.verifier = verifier
        self.timeout = timeout
        self.local_timeout = local_timeout
        self.lock = threading.RLock()
        self._repo: git.Repo | None = None
        self._configured = False  # the clone's config was checked (and set) by this process
        self._trees = threading.local()  # each thread's repository object for trees (_tree_repo)

    # ------------------------------------------------------------------ properties

    @property
    def clone_path(self) -> Path:
        """The bare clone (status publishers write notes here and push them to ``origin``)."""
        return self.workdir

    @property
    def display_url(self) -> str:
        """The URL without credentials, for messages and logs."""
        return redact_url(self.url)

    @property
    def local_path(self) -> Path | None:
        """The source repository's directory when it is local (for ``LocalRepoWatcher``), else None."""
        return local_path(self.url)

    @property
    def branch_ref(self) -> str:
        return f"refs/heads/{self.branch}"

    # ------------------------------------------------------------------ public API

    def fetch(self) -> FetchResult:
        """Fetch the branch and notes; report the new head and how it moved since the last fetch."""
        with self.lock:
            repo = self._ensure_clone()
            previous = self._ref_sha(repo)
            self._run_remote(
                repo,
                "fetch",
                "--quiet",
                "--no-tags",
                "--no-write-fetch-head",
                "--no-recurse-submodules",
                "origin",
                f"+{self.branch_ref}:{self.branch_ref}",
                NOTES_REFSPEC,
            )
            sha = self._ref_sha(repo)
            if sha is None:  # git said it succeeded; be loud rather than deploy nothing
                raise TransientError(f"fetch from {self.display_url} left no {self.branch_ref}")
            changed = sha != previous
            forced = previous is not None and changed and not self._is_ancestor(repo, previous, sha)
        where = {"url": self.display_url, "branch": self.branch}
        if forced:
            log.warning("git.force_push", old=previous, new=sha, **where)
        if changed:
            log.info("git.fetched", sha=sha, previous=previous, **where)
        else:
            log.debug("git.unchanged", sha=sha, **where)
        return FetchResult(sha=sha, previous=previous, changed=changed, forced=forced)

    def fetch_refs(self, patterns: Sequence[str]) -> dict[str, str]:
        """Fetch the refs matching ``patterns`` (``refs/pull/*/head``: at most one ``*``); ref -> sha.

        Proposed commits (pull-request heads) are planned, never deployed: they are mirrored under
        ``refs/ecs-gitops/planned/`` in the clone, not into the tracked branch, and pruned there once the
        remote drops them (a merged or closed pull request).
        """
        if not patterns:
            return {}
        with self.lock:
            repo = self._ensure_clone()
            specs = [f"+{p}:{PLANNED_PREFIX}{p.removeprefix('refs/')}" for p in patterns]
            try:
                self._run_remote(
                    repo,
                    "fetch",
                    "--quiet",
                    "--no-tags",
                    "--no-write-fetch-head",
                    "--no-recurse-submodules",
                    "--prune",
                    "origin",
                    *specs,
                )
            except PermanentError as e:  # a pattern without "*" names one ref, which must exist
                exact = ", ".join(p for p in patterns if "*" not in p)
                raise PermanentError(
                    f"fetching {exact or 'the plan refs'} from {self.display_url}: {e}"
                ) from e
            listed = self._run_local(
                repo, "for-each-ref", "--format=%(objectname) %(refname)", PLANNED_PREFIX
            )
        refs = {}
        for line in listed.splitlines():
            sha, _, name = line.strip().partition(" ")
            if name.startswith(PLANNED_PREFIX):
                refs["refs/" + name.removeprefix(PLANNED_PREFIX)] = sha
        return refs

    def head(self) -> str | None:
        """The branch head as of the last fetch (kept in the clone, so it survives a restart)."""
        if not self._is_clone(self.workdir):
            return None
        with self.lock:
            return self._ref_sha(self._open())

    def tree(self, sha: str, subdir: str = "") -> GitTree:
        """The manifests at ``sha`` (optionally under ``subdir``), read from the clone's blobs. Problems
        about the whole root name it by repository-relative folder and sha (``deploy@1a2b3c4d5e6f``,
        ``.@...`` for the root), never by the clone's path: statuses may be public."""
        from agent.manifests.tree import GitTree

        self._require_clone()
        label = f"{subdir.strip('/') or '.'}@{sha[:12]}"
        return GitTree(self._tree_repo(), ref=sha, subdir=subdir, label=label)

    def _tree_repo(self) -> git.Repo:
        """A repository object for this thread's trees, opened once: the tick's thread and the previews'
        each read blobs through their own (a gitpython Repo and its ``git cat-file`` processes serve one
        thread at a time), instead of a new one, with two new processes, per tick."""
        repo: git.Repo | None = getattr(self._trees, "repo", None)
        if repo is None:
            repo = self._trees.repo = git.Repo(self.workdir)
        return repo

    def commit_info(self, sha: str) -> CommitInfo:
        """Author name, summary line and commit time of ``sha``."""
        self._require_clone()
        with self.lock:
            commit = self._open().commit(sha)
            summary = commit.summary
            return CommitInfo(
                author=commit.author.name or commit.author.email or "",
                summary=summary if isinstance(summary, str) else summary.decode("utf-8", "replace"),
                committed_at=commit.committed_datetime.astimezone(UTC),
            )

    def verify(self, sha: str) -> None:
        """Refuse an untrusted commit (``PermanentError``) before it is deployed; no-op without a verifier."""
        if self.verifier is not None:
            self._require_clone()
            self.verifier(self.clone_path, sha)

    def close(self) -> None:
        """Stop the git helper processes gitpython keeps for the clone (this thread's for trees too)."""
        if self._repo is not None:
            self._repo.close()
            self._repo = None
        trees = getattr(self._trees, "repo", None)
        if trees is not None:
            trees.close()
            self._trees.repo = None

    def __enter__(self) -> GitSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"GitSource({self.display_url!r}, branch={self.branch!r}, workdir={str(self.workdir)!r})"

    # ------------------------------------------------------------------ clone

    @staticmethod
    def _is_clone(path: Path) -> bool:
        return (path / "HEAD").is_file() and (path / "objects").is_dir() and (path / "refs").is_dir()

    def _require_clone(self) -> None:
        if not self._is_clone(self.workdir):
            raise PermanentError(f"no clone at {self.workdir}: fetch first")

    def _open(self) -> git.Repo:
        if self._repo is None:
            self._repo = git.Repo(self.workdir)
        return self._repo

    def prepare(self) -> None:
        """Create the (empty) bare clone now, without talking to the remote, so that status publishers
        can open it before the first fetch."""
        self._ensure_clone()

    def _ensure_clone(self) -> git.Repo:
        """Create (or adopt) the bare clone and point its ``origin`` at ``url``; idempotent."""
        if not self._is_clone(self.workdir):
            if self.workdir.exists() and any(self.workdir.iterdir()):
                raise PermanentError(f"workdir {self.workdir} is not empty and is not a git repository")
            self.workdir.mkdir(parents=True, exist_ok=True)
            self._run_local(None, "init", "--quiet", "--bare", str(self.workdir))
            self._configured = False  # a new clone: its config is set below
        repo = self._open()
        if self._configured:
            return repo  # checked below on the first call: nothing else writes the clone's config
        if not repo.bare:
            raise PermanentError(f"workdir {self.workdir} is a repository with a work tree, not a bare clone")
        wanted = {
            ('remote "origin"', "url"): [self.url],
            ('remote "origin"', "fetch"): [f"+{self.branch_ref}:{self.branch_ref}", NOTES_REFSPEC],
            ("core", "logAllRefUpdates"): ["true"],  # a reflog of every head we fetched: an audit trail
            ("gc", "autoDetach"): ["false"],  # no background gc outliving the fetch
            ("maintenance", "autoDetach"): ["false"],
        }
        reader = repo.config_reader("repository")
        stale = [key for key, values in wanted.items() if _values(reader, *key) != values]
        if stale:
            with repo.config_writer("repository") as writer:
                for section, option in stale:
                    first, *rest = wanted[section, option]
                    writer.set_value(section, option, first)
                    for value in rest:
                        writer.add_value(section, option, value)
        head_file = self.workdir / "HEAD"
        if head_file.read_text(encoding="utf-8").strip() != f"ref: {self.branch_ref}":
            self._run_local(repo, "symbolic-ref", "HEAD", self.branch_ref)
        self._configured = True
        return repo

    def _ref_sha(self, repo: git.Repo) -> str | None:
        try:
            return git.SymbolicReference.dereference_recursive(repo, self.branch_ref)
        except ValueError:
            return None

    def _is_ancestor(self, repo: git.Repo, old: str, new: str) -> bool:
        """True when ``new`` descends from ``old``; False too when ``old`` is gone (cannot prove it)."""
        try:
            self._run_local(repo, "merge-base", "--is-ancestor", old, new)
        except git.GitCommandError as e:
            if e.status != 1:
                log.warning("git.ancestry_unknown", old=old, new=new, error=_last_line(e.stderr))
            return False
        return True

    # ------------------------------------------------------------------ running git

    def _env(self) -> dict[str, str]:
        """Never prompt; ssh in batch mode with a connect timeout; credentials from ``auth``."""
        env = {"GIT_TERMINAL_PROMPT": "0", "GCM_INTERACTIVE": "never"}
        if not (os.environ.get("GIT_SSH_COMMAND") or os.environ.get("GIT_SSH")):
            env["GIT_SSH_COMMAND"] = ssh_command()
        if self.auth is not None:
            env.update(self.auth.git_env(self.url))
        return env

    def _redact(self, text: str) -> str:
        for secret in self.auth.secrets() if self.auth else []:
            text = text.replace(secret, "***")
        return redact_url(text)

    def _run_local(self, repo: git.Repo | None, command: str, *args: str) -> str:
        runner = repo.git if repo is not None else git.Git(str(self.workdir))
        method = getattr(runner, command.replace("-", "_"))
        return str(method(*args, kill_after_timeout=self.local_timeout, env={"GIT_TERMINAL_PROMPT": "0"}))

    def _run_remote(self, repo: git.Repo, command: str, *args: str) -> str:
        """Run a git command that talks to ``origin``; translate failures into typed, redacted errors."""
        env = self._env()
        started = time.monotonic()
        try:
            return str(getattr(repo.git, command)(*args, kill_after_timeout=self.timeout, env=env))
        except git.GitCommandNotFound as e:
            raise PermanentError("the git executable was not found") from e
        except git.GitCommandError as e:
            stderr = self._redact(_text(e.stderr))
            where = f"{self.display_url} ({self.branch})"
            # GitPython's kill on timeout may leave stderr empty (its message races the kill): the clock
            # and the kill signal in the exit status say it just as well.
            killed = time.monotonic() - started >= self.timeout or e.status in (-9, 137)
            if killed or "did not complete in" in stderr or "timed out" in stderr.lower():
                raise TransientError(
                    f"git {command} from {where} timed out after {self.timeout:g}s"
                ) from None
            if "dubious ownership" in stderr:
                raise PermanentError(
                    f"git refuses {self.display_url}: owned by another user (add it to safe.directory)"
                ) from None
            if _MISSING_REF.search(stderr):
                raise PermanentError(f"branch {self.branch!r} does not exist in {self.display_url}") from None
            if _AUTH_FAILED.search(stderr):
                raise TransientError(
                    f"git {command} from {where}: authentication failed: {_summary(stderr)}"
                ) from None
            raise TransientError(f"git {command} from {where} failed: {_summary(stderr)}") from None


def _values(reader: git.GitConfigParser, section: str, option: str) -> list[str]:
    try:
        return [str(v) for v in reader.get_values(section, option)]
    except (configparser.NoSectionError, configparser.NoOptionError, KeyError):
        return []


def _text(value: str | bytes | None) -> str:
    """git's stderr from a ``GitCommandError`` (which wraps it as ``\n  stderr: '...'``)."""
    if value is None:
        return ""
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
    stripped = text.strip()
    if stripped.startswith("stderr: '") and stripped.endswith("'"):
        return stripped[len("stderr: '") : -1]
    return text


def _last_line(value: str | bytes | None) -> str:
    lines = [line.strip() for line in _text(value).splitlines() if line.strip()]
    return lines[-1] if lines else ""


def _summary(stderr: str) -> str:
    """git's stderr on one line, capped (``--quiet`` keeps it to what went wrong)."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    text = "; ".join(lines) or "unknown error"
    return text if len(text) <= 500 else text[:497] + "..."
