"""Commit statuses as git notes: the default publisher, needing no Git-host API and no token.

Every commit gets one JSON object under ``refs/notes/ecs-gitops``, keyed by context::

    {"ecs-gitops": {"state": "success", "description": "...", "updatedAt": "...", "targetUrl": null}, ...}

The agent writes the note in its own clone and pushes the notes ref to the source repository, so
``git notes --ref ecs-gitops show <sha>`` there prints it — whether the source is a local path or a URL.
(``git log --notes=ecs-gitops`` shows them under each commit.)
Pushing ``refs/notes/*`` into a non-bare repository is allowed: git protects only the checked-out branch.

Another writer (a second replica, a human) may push notes at the same time. Each write therefore
fetches the remote notes into ``refs/notes/ecs-gitops-remote``, rebuilds the local notes on top of
them, merging the JSON per commit (per context, the newer ``updatedAt`` wins, and the status being
written always wins), and pushes without force; a rejected push is retried from a fresh fetch.
"""

from __future__ import annotations

import json
import threading
from typing import Any

import git
import structlog

from agent.errors import PermanentError, TransientError
from agent.status.model import CommitStatus

log = structlog.get_logger("ecs_gitops.status")

NOTES_REF = "refs/notes/ecs-gitops"
REMOTE_NOTES_REF = "refs/notes/ecs-gitops-remote"
# Identity of the notes commits: the agent writes them, whatever the clone's config says.
IDENTITY = {
    "GIT_AUTHOR_NAME": "ecs-gitops",
    "GIT_AUTHOR_EMAIL": "ecs-gitops@localhost",
    "GIT_COMMITTER_NAME": "ecs-gitops",
    "GIT_COMMITTER_EMAIL": "ecs-gitops@localhost",
}
_RETRYABLE_PUSH = (
    "rejected",
    "fetch first",
    "non-fast-forward",
    "cannot lock ref",
    "failed to update ref",
    "incorrect old value",
    "stale info",
)
_NEEDS_A_HUMAN = ("authentication failed", "permission denied", "access denied", "returned error: 403")


class GitNotesPublisher:
    """Statuses as notes in the clone at ``clone_path``, pushed to ``remote`` (a name, path or URL)."""

    name = "gitnotes"

    def __init__(
        self,
        clone_path: str,
        remote: str = "origin",
        push: bool = True,
        *,
        attempts: int = 5,
        timeout: float = 30.0,
    ) -> None:
        try:
            self.repo = git.Repo(clone_path)
        except (git.NoSuchPathError, git.InvalidGitRepositoryError) as e:
            raise PermanentError(f"{clone_path}: not a git repository") from e
        self.remote = remote
        self.push = push
        self.attempts = attempts
        self.timeout = timeout
        self._git = self.repo.git
        self._git.update_environment(LC_ALL="C", LANGUAGE="C", GIT_TERMINAL_PROMPT="0", **IDENTITY)
        self._lock = threading.Lock()

    def close(self) -> None:
        self.repo.close()

    def __repr__(self) -> str:
        return f"GitNotesPublisher({self.repo.git_dir!r}, remote={self.remote!r}, push={self.push})"

    # -- the Publisher port ------------------------------------------------------------------------

    def publish(self, status: CommitStatus) -> None:
        status = status.stamped()
        with self._lock:
            if not self.push:
                note = {**self._note(NOTES_REF, status.sha), status.context: status.as_entry()}
                self._write(status.sha, note)
                return
            for attempt in range(1, self.attempts + 1):
                remote_tip = self._fetch()
                self._rebase_on(remote_tip, status)
                reason = self._push()
                if reason is None:
                    return
                log.info("status.gitnotes.push_rejected", attempt=attempt, reason=reason, sha=status.sha)
            raise TransientError(
                f"git notes push to {self.remote} rejected {self.attempts} times (concurrent writers)"
            )

    def read(self, sha: str) -> dict[str, dict]:
        with self._lock:
            remote: dict[str, Any] = {}
            if self.push:
                try:
                    if self._fetch() is not None:
                        remote = self._note(REMOTE_NOTES_REF, sha)
                except TransientError as e:
                    log.warning("status.gitnotes.fetch_failed", remote=self.remote, error=str(e))
            return merge_notes(remote, self._note(NOTES_REF, sha))

    # -- steps -------------------------------------------------------------------------------------

    def _fetch(self) -> str | None:
        """Copy the remote notes to REMOTE_NOTES_REF; return their tip, or None when there are none."""
        try:
            self._git.fetch(
                "--no-tags",
                "--quiet",
                self.remote,
                f"+{NOTES_REF}:{REMOTE_NOTES_REF}",
                kill_after_timeout=self.timeout,
            )
        except git.GitCommandError as e:
            stderr = _stderr(e)
            if "couldn't find remote ref" in stderr.lower():
                if self._tip(REMOTE_NOTES_REF):
                    self._git.update_ref("-d", REMOTE_NOTES_REF)
                return None
            raise _unreachable("fetch from", self.remote, stderr) from None
        return self._tip(REMOTE_NOTES_REF)

    def _rebase_on(self, remote_tip: str | None, status: CommitStatus) -> None:
        """Make the local notes = the remote notes + every local difference (merged) + ``status``."""
        local_tip = self._tip(NOTES_REF)
        if remote_tip is None or (local_tip and self._is_ancestor(remote_tip, local_tip)):
            # Nobody else wrote since our last push: write on top of what we have.
            note = {**self._note(NOTES_REF, status.sha), status.context: status.as_entry()}
            self._write(status.sha, note)
            return
        local = self._list(NOTES_REF) if local_tip else {}
        remote = self._list(REMOTE_NOTES_REF)
        changed = {sha for sha, blob in local.items() if remote.get(sha) != blob}
        self._git.update_ref(NOTES_REF, remote_tip)
        for sha in sorted(changed | {status.sha}):
            theirs = self._blob_json(remote[sha]) if sha in remote else {}
            ours = self._blob_json(local[sha]) if sha in local else {}
            note = merge_notes(theirs, ours)
            if sha == status.sha:
                note[status.context] = status.as_entry()
            if note != theirs:
                self._write(sha, note)

    def _push(self) -> str | None:
        """Push the notes without force; None when done, the reason when rejected (retry)."""
        try:
            self._git.push(
                "--quiet",
                "--porcelain",
                self.remote,
                f"{NOTES_REF}:{NOTES_REF}",
                kill_after_timeout=self.timeout,
            )
        except git.GitCommandError as e:
            text = f"{_stderr(e)}\n{e.stdout or ''}"
            if any(marker in text.lower() for marker in _RETRYABLE_PUSH):
                return text.strip().splitlines()[-1] if text.strip() else "rejected"
            raise _unreachable("push to", self.remote, text) from None
        return None

    # -- plumbing ----------------------------------------------------------------------------------

    def _write(self, sha: str, note: dict[str, Any]) -> None:
        text = json.dumps(note, indent=2, sort_keys=True, ensure_ascii=False)
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate (bytes that were not UTF-8): the note stays UTF-8
            text = json.dumps(note, indent=2, sort_keys=True, ensure_ascii=True)
        try:
            self._git.notes("--ref", NOTES_REF, "add", "-f", "-m", text, sha)
        except git.GitCommandError as e:
            raise PermanentError(f"cannot write a note on {sha}: {_stderr(e).strip()}") from None

    def _note(self, ref: str, sha: str) -> dict[str, Any]:
        try:
            text = self._git.notes("--ref", ref, "show", sha)
        except git.GitCommandError:
            return {}  # no note (or no notes ref yet)
        return _parse(text, sha)

    def _blob_json(self, blob: str) -> dict[str, Any]:
        return _parse(self._git.cat_file("blob", blob), blob)

    def _list(self, ref: str) -> dict[str, str]:
        """annotated commit sha -> note blob sha."""
        out: dict[str, str] = {}
        for line in self._git.notes("--ref", ref, "list").splitlines():
            blob, _, sha = line.partition(" ")
            if sha:
                out[sha] = blob
        return out

    def _tip(self, ref: str) -> str | None:
        try:
            return self._git.rev_parse("--verify", "--quiet", ref) or None
        except git.GitCommandError:
            return None

    def _is_ancestor(self, older: str, newer: str) -> bool:
        try:
            self._git.merge_base("--is-ancestor", older, newer)
        except git.GitCommandError:
            return False
        return True


def merge_notes(*notes: dict[str, Any]) -> dict[str, Any]:
    """Merge notes of one commit per context: the newer ``updatedAt`` wins, a tie goes to the later note.

    >>> a = {"x": {"state": "pending", "updatedAt": "2024-01-01T00:00:00Z"}}
    >>> b = {"x": {"state": "success", "updatedAt": "2024-01-01T00:05:00Z"}, "y": {"state": "error"}}
    >>> sorted((k, v["state"]) for k, v in merge_notes(b, a).items())
    [('x', 'success'), ('y', 'error')]
    """
    out: dict[str, Any] = {}
    for note in notes:
        for context, entry in note.items():
            if not isinstance(entry, dict):
                continue
            current = out.get(context)
            if current is None or (entry.get("updatedAt") or "") >= (current.get("updatedAt") or ""):
                out[context] = dict(entry)
    return out


def _parse(text: str, where: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError:
        log.warning("status.gitnotes.unreadable_note", object=where)
        return {}
    return value if isinstance(value, dict) else {}


def _stderr(e: git.GitCommandError) -> str:
    return str(e.stderr or "")


def _unreachable(what: str, remote: str, stderr: str) -> Exception:
    lines = [line.strip() for line in stderr.strip().splitlines() if line.strip()]
    detail = lines[-1] if lines else "no answer"
    detail = detail.removeprefix("stderr: ").strip("'")
    message = f"git notes {what} {remote}: {detail}"
    if any(marker in stderr.lower() for marker in _NEEDS_A_HUMAN):
        return PermanentError(message)
    return TransientError(message)
