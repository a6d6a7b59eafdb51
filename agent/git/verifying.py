"""Signed commits: deploy a commit only when a trusted key signed it (``verify`` in the agent config).

``CommitVerifier`` is the ``Verifier`` hook of ``GitSource``: called with the clone and the sha about to
be deployed, it returns when the commit carries a good signature by a key of ``allowedSigners`` and
raises ``UntrustedCommit`` (a ``PermanentError``: a human must sign or push again) otherwise. git itself
checks the signature (``git show -s --format=%G?``), in one of two modes:

* ``ssh``: ``gpg.ssh.allowedSignersFile`` is the configured file, so only a key listed there (for the
  commit's date, with git's ``valid-after``/``valid-before`` options) gives ``G``;
* ``gpg``: the configured public keys are imported into a keyring of the agent's own (a ``GNUPGHOME``
  beside the clone, ``gnupg-verify``, re-imported when the file changes), so the keys in the file are the
  only ones gpg knows; a good signature by one of them (``G``, or ``U`` since the agent assigns no owner
  trust) passes. In ssh mode gpg is never run.

The signature must also be of the configured kind (an SSH signature in ssh mode, OpenPGP in gpg mode),
and git runs without the user's global or system config, so no ``allowedSignersFile`` or keyring of the
machine's can widen what is trusted.

The head last accepted is kept in the clone as the ref ``refs/ecs-gitops/accepted`` (so it survives a
restart). Against it:

* ``allowRewind`` false (the default) refuses a head that is an ancestor of it: a force-push back to
  older, once-signed code is a rollback attack; a rollback is a new commit (``git revert``);
* ``scope: range`` checks every commit reachable from the new head and not from it (``accepted..head``,
  merged branches included), so a signed head on top of an unsigned commit is refused; ``scope: head``
  (the default) checks the head only. The first head the agent sees is checked alone.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from agent.errors import PermanentError, TransientError

log = structlog.get_logger(__name__)

MODES = ("ssh", "gpg")
SCOPES = ("head", "range")
ACCEPTED_REF = "refs/ecs-gitops/accepted"
UNTRUSTED = "commit not signed by a trusted key"
_ARMOR = {"ssh": "-----BEGIN SSH SIGNATURE-----", "gpg": "-----BEGIN PGP SIGNATURE-----"}
_PASSING = {"ssh": {"G"}, "gpg": {"G", "U"}}
_WHY = {
    "B": "the signature is bad (the commit was changed after signing)",
    "U": "signed by a key allowedSigners does not list",
    "X": "the signature has expired",
    "Y": "signed by a key that has expired",
    "R": "signed by a key that was revoked",
    "E": "signed by a key allowedSigners does not list",
    "N": "not signed",
}


class UntrustedCommit(PermanentError):
    """A commit that must not be deployed: unsigned, badly signed, or signed by an untrusted key."""

    def __init__(self, sha: str, reason: str) -> None:
        super().__init__(f"{UNTRUSTED}: {reason}")
        self.sha = sha
        self.reason = reason


@dataclass(frozen=True)
class Signature:
    """What git reports about a commit's signature: the ``%G?`` letter, the key and the signer."""

    status: str
    key: str
    signer: str
    kind: str | None  # "ssh", "gpg", or None when the commit has no signature header


class CommitVerifier:
    """Checks that a commit is signed by a trusted key; see the module docstring for the two modes."""

    def __init__(
        self,
        mode: str,
        allowed_signers: Path | str,
        timeout: float = 30.0,
        *,
        scope: str = "head",
        allow_rewind: bool = False,
    ) -> None:
        if mode not in MODES:
            raise PermanentError(f"verify.mode must be one of {', '.join(MODES)}, not {mode!r}")
        if scope not in SCOPES:
            raise PermanentError(f"verify.scope must be one of {', '.join(SCOPES)}, not {scope!r}")
        self.mode = mode
        self.scope = scope
        self.allow_rewind = allow_rewind
        self.allowed_signers = Path(allowed_signers)
        self.timeout = timeout
        self._lock = threading.Lock()
        self._gnupg_home: Path | None = None
        self._imported: tuple[float, int] | None = None
        self._verified: dict[str, tuple[float, int]] = {}  # sha -> stat of the file it was trusted by

    def __repr__(self) -> str:
        return f"CommitVerifier({self.mode!r}, {str(self.allowed_signers)!r})"

    def __call__(self, clone_path: Path, sha: str) -> None:
        """Return when ``sha`` may be deployed: signed by a trusted key (with ``scope: range`` every commit
        since the head last accepted too) and, unless ``allow_rewind``, not older than that head. Raise
        ``UntrustedCommit`` otherwise; on success ``sha`` becomes the head last accepted."""
        clone = Path(clone_path)
        with self._lock:
            stamp = self._stamp()
            last = self.accepted(clone)
            if (
                last is not None
                and last != sha
                and not self.allow_rewind
                and self._is_ancestor(clone, sha, last)
            ):
                raise UntrustedCommit(
                    sha,
                    f"a rewind: it is older than {last[:12]}, the head last deployed (verify.allowRewind is "
                    "false); roll back with a new commit (git revert)",
                )
            if self._verified.get(sha) != stamp:
                commits = [sha]
                if self.scope == "range" and last is not None and last != sha:
                    commits = self._git(clone, "rev-list", "--reverse", f"{last}..{sha}").split() or [sha]
                for commit in commits:
                    signature = self._check(clone, commit, sha)
                self._verified[sha] = stamp
                log.info("commit.verified", sha=sha[:12], key=signature.key, signer=signature.signer,
                         commits=len(commits))  # fmt: skip
            if last != sha:
                self._git(clone, "update-ref", ACCEPTED_REF, sha)

    def accepted(self, clone_path: Path) -> str | None:
        """The head last accepted in this clone, or None before the first."""
        found = self._run(Path(clone_path), "rev-parse", "--verify", "--quiet", f"{ACCEPTED_REF}^{{commit}}")
        return found.stdout.strip() or None if found.returncode == 0 else None

    def _check(self, clone: Path, commit: str, head: str) -> Signature:
        """The signature of ``commit`` when it is good and trusted; ``UntrustedCommit`` (of ``head``) not."""
        signature = self.signature(clone, commit)
        where = "" if commit == head else f" (commit {commit[:12]}, below the head; verify.scope is range)"
        if signature.kind is not None and signature.kind != self.mode:
            other = {"ssh": "an SSH", "gpg": "an OpenPGP"}.get(signature.kind, "an X.509 or unknown")
            raise UntrustedCommit(head, f"{other} signature, and verify.mode is {self.mode}{where}")
        if signature.status not in _PASSING[self.mode]:
            reason = _WHY.get(signature.status, f"git reports signature status {signature.status!r}")
            if signature.key:
                reason += f" (key {signature.key})"
            raise UntrustedCommit(head, reason + where)
        return signature

    def _is_ancestor(self, clone: Path, older: str, newer: str) -> bool:
        return self._run(clone, "merge-base", "--is-ancestor", older, newer).returncode == 0

    def signature(self, clone_path: Path, sha: str) -> Signature:
        """Ask git what it thinks of the signature of ``sha`` under this verifier's trust settings."""
        header = self._git(clone_path, "cat-file", "commit", sha)
        kind = next((k for k, armor in _ARMOR.items() if f"gpgsig {armor}" in header), None)
        if kind is None and "\ngpgsig " in header.split("\n\n", 1)[0]:
            kind = "other"  # an X.509 (gpgsm) signature: neither mode trusts it
        line = self._git(clone_path, "show", "-s", "--format=%G?%x1f%GK%x1f%GS", sha).rstrip("\n")
        status, key, signer = [*line.split("\x1f"), "", "", ""][:3]
        return Signature(status or "N", key, signer, kind)

    def close(self) -> None:
        """Remove the private keyring (gpg mode); the next check imports the keys again."""
        if self._gnupg_home is not None:
            shutil.rmtree(self._gnupg_home, ignore_errors=True)
            self._gnupg_home = None
            self._imported = None

    # -- running git ------------------------------------------------------------------------------------

    def _stamp(self) -> tuple[float, int]:
        try:
            st = self.allowed_signers.stat()
        except OSError as e:
            raise PermanentError(f"verify.allowedSigners {self.allowed_signers}: {e.strerror}") from None
        return st.st_mtime, st.st_size

    def _env(self, clone_path: Path) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("GIT_CONFIG", "GNUPGHOME")) and k not in ("GIT_DIR", "GIT_WORK_TREE")
        }
        env.update(GIT_CONFIG_GLOBAL=os.devnull, GIT_CONFIG_NOSYSTEM="1", GIT_TERMINAL_PROMPT="0")
        if self.mode == "gpg":
            env["GNUPGHOME"] = str(self._keyring(clone_path))
        return env

    def _config(self) -> list[str]:
        if self.mode == "ssh":  # and no OpenPGP or X.509 check at all: their programs are "false"
            return [
                "-c", "gpg.format=ssh", "-c", f"gpg.ssh.allowedSignersFile={self.allowed_signers}",
                "-c", "gpg.openpgp.program=false", "-c", "gpg.x509.program=false",
            ]  # fmt: skip
        return ["-c", "gpg.format=openpgp", "-c", "gpg.openpgp.program=gpg", "-c", "gpg.x509.program=false"]

    def _run(self, clone_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
        command = ["git", "-C", str(clone_path), *self._config(), *args]
        env = self._env(clone_path)
        try:
            return subprocess.run(
                command, capture_output=True, text=True, timeout=self.timeout, env=env, check=False
            )
        except subprocess.TimeoutExpired:
            raise TransientError(f"git {args[0]} did not finish in {self.timeout:g}s") from None
        except FileNotFoundError:
            raise PermanentError("the git executable was not found") from None

    def _git(self, clone_path: Path, *args: str) -> str:
        done = self._run(clone_path, *args)
        if done.returncode != 0:
            detail = (done.stderr.strip().splitlines() or ["failed"])[-1]
            raise PermanentError(f"cannot read commit {args[-1]}: {detail}")
        return done.stdout

    def _keyring(self, clone_path: Path) -> Path:
        """The GNUPGHOME of gpg mode, beside the clone, holding exactly the allowed keys."""
        home = self._gnupg_home or Path(clone_path).resolve().parent / "gnupg-verify"
        self._gnupg_home = home
        if self._imported != self._stamp() or not home.is_dir():
            shutil.rmtree(home, ignore_errors=True)  # a key removed from the file must be forgotten
            home.mkdir(mode=0o700, parents=True)
            self._gpg("--import", str(self.allowed_signers))
            self._imported = self._stamp()
        return home

    def _gpg(self, *args: str) -> Any:
        try:
            done = subprocess.run(
                ["gpg", "--homedir", str(self._gnupg_home), "--batch", "--quiet", "--no-autostart", *args],
                capture_output=True,
                text=True,
                timeout=self.timeout,
                check=False,
            )
        except FileNotFoundError:
            raise PermanentError("verify.mode gpg needs the gpg executable, which was not found") from None
        except subprocess.TimeoutExpired:
            raise TransientError(f"gpg {args[0]} did not finish in {self.timeout:g}s") from None
        if done.returncode != 0:
            detail = (done.stderr.strip().splitlines() or ["failed"])[-1]
            where = f"verify.allowedSigners {self.allowed_signers}"
            raise PermanentError(f"{where}: gpg cannot import it: {detail}")
        return done


def verifier_from(config: Any) -> CommitVerifier | None:
    """The verifier the agent config asks for (``verify``), or None when commits are not verified."""
    verify = getattr(config, "verify", None)
    if verify is None:
        return None
    return CommitVerifier(
        verify.mode,
        verify.allowed_signers,
        scope=getattr(verify, "scope", "head"),
        allow_rewind=bool(getattr(verify, "allow_rewind", False)),
    )
