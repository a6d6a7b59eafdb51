"""Signed commits (``verify`` in the agent config): real commits signed with keys made by ssh-keygen (and
gpg, in a GNUPGHOME of the test's own), checked by ``CommitVerifier``; and the agent on the sandbox,
which deploys a trusted commit and refuses an unsigned one with a failure status and no AWS change."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from gitops_story import Story

from agent.config import VerifyConfig, load_config
from agent.errors import InvalidInput, PermanentError
from agent.git.verifying import UNTRUSTED, CommitVerifier, UntrustedCommit, verifier_from

WHO = {
    "GIT_AUTHOR_NAME": "Dev",
    "GIT_AUTHOR_EMAIL": "dev@example.com",
    "GIT_COMMITTER_NAME": "Dev",
    "GIT_COMMITTER_EMAIL": "dev@example.com",
}


def _run(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        list(args), cwd=cwd, env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, f"{args}: {done.stderr}"
    return done.stdout


def ssh_key(where: Path, name: str) -> Path:
    """A new ed25519 key pair made by ssh-keygen, without a passphrase; returns the private key."""
    key = where / name
    _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(key))
    return key


def allowed_signers(path: Path, *keys: Path) -> Path:
    """An allowed-signers file (git's gpg.ssh.allowedSignersFile format) trusting ``keys``."""
    path.write_text("".join(f"dev@example.com {key.with_suffix('.pub').read_text()}" for key in keys))
    return path


def commit(repo: Path, message: str, sign: tuple[str, str] | None = None, env: dict | None = None) -> str:
    """Commit everything in ``repo``; ``sign`` is (gpg.format, user.signingkey) or None for unsigned."""
    _run("git", "add", "-A", cwd=repo)
    flags = ["-c", f"gpg.format={sign[0]}", "-c", f"user.signingKey={sign[1]}"] if sign else []
    _run(
        "git",
        *flags,
        "commit",
        "-q",
        "--allow-empty",
        *(["-S"] if sign else []),
        "-m",
        message,
        cwd=repo,
        env={**WHO, **(env or {})},
    )
    return _run("git", "rev-parse", "HEAD", cwd=repo).strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = tmp_path / "repo"
    _run("git", "init", "-q", "-b", "main", str(path))
    return path


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, Path]:
    """(trusted, other): two ssh keys; only the first is in the allowed-signers file."""
    return ssh_key(tmp_path, "trusted"), ssh_key(tmp_path, "other")


def _refusal(verifier: CommitVerifier, repo: Path, sha: str) -> str:
    with pytest.raises(UntrustedCommit) as caught:
        verifier(repo, sha)
    assert str(caught.value).startswith(UNTRUSTED + ": ")
    return caught.value.reason


def test_ssh_mode_trusts_only_listed_keys(repo: Path, keys: tuple[Path, Path], tmp_path: Path) -> None:
    """A commit signed by a listed key passes; unsigned, or signed by another key, is refused and says why."""
    trusted, other = keys
    verifier = CommitVerifier("ssh", allowed_signers(tmp_path / "allowed", trusted))
    good = commit(repo, "signed", ("ssh", str(trusted)))
    verifier(repo, good)
    assert "by a key allowedSigners does not list (key SHA256:" in _refusal(
        verifier, repo, commit(repo, "other key", ("ssh", str(other)))
    )
    assert _refusal(verifier, repo, commit(repo, "unsigned")) == "not signed"


def test_ssh_mode_refuses_a_signature_moved_to_other_content(
    repo: Path, keys: tuple[Path, Path], tmp_path: Path
) -> None:
    """A trusted signature copied onto a commit whose message was changed is a bad signature."""
    trusted, _ = keys
    verifier = CommitVerifier("ssh", allowed_signers(tmp_path / "allowed", trusted))
    good = commit(repo, "deploy v1", ("ssh", str(trusted)))
    raw = _run("git", "cat-file", "commit", good, cwd=repo).replace("deploy v1", "deploy evil")
    forged = subprocess.run(
        ["git", "hash-object", "-t", "commit", "-w", "--stdin"],
        cwd=repo,
        input=raw,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert forged != good
    assert _refusal(verifier, repo, forged).startswith("the signature is bad")


def test_ssh_mode_follows_changes_to_the_allowed_signers_file(
    repo: Path, keys: tuple[Path, Path], tmp_path: Path
) -> None:
    """Adding a key to the file trusts its commits from the next check on; removing it stops trusting."""
    trusted, other = keys
    signers = allowed_signers(tmp_path / "allowed", trusted)
    verifier = CommitVerifier("ssh", signers)
    sha = commit(repo, "by other", ("ssh", str(other)))
    _refusal(verifier, repo, sha)
    allowed_signers(signers, trusted, other)
    verifier(repo, sha)
    signers.write_text(f"dev@example.com {trusted.with_suffix('.pub').read_text()}\n# other removed\n")
    _refusal(verifier, repo, sha)


def test_the_machines_git_config_cannot_widen_trust(
    repo: Path, keys: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A global git config that trusts another allowed-signers file is ignored: only the agent's counts."""
    trusted, other = keys
    everyone = allowed_signers(tmp_path / "everyone", trusted, other)
    global_config = tmp_path / "gitconfig"
    global_config.write_text(f'[gpg "ssh"]\n\tallowedSignersFile = {everyone}\n')
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(global_config))
    verifier = CommitVerifier("ssh", allowed_signers(tmp_path / "allowed", trusted))
    _refusal(verifier, repo, commit(repo, "by other", ("ssh", str(other))))


@dataclass
class Gpg:
    """A gpg signing identity in a GNUPGHOME of the test's own."""

    home: Path
    fingerprint: str

    @property
    def env(self) -> dict[str, str]:
        return {"GNUPGHOME": str(self.home)}

    def export(self, path: Path) -> Path:
        path.write_text(_run("gpg", "--batch", "--armor", "--export", self.fingerprint, env=self.env))
        return path


def _gpg_identity(home: Path, name: str) -> Gpg:
    home.mkdir(mode=0o700)
    env = {"GNUPGHOME": str(home)}
    _run(
        "gpg",
        "--batch",
        "--quiet",
        "--passphrase",
        "",
        "--quick-gen-key",
        f"{name} <{name}@example.com>",
        "ed25519",
        "sign",
        "never",
        env=env,
    )
    listing = _run("gpg", "--batch", "--with-colons", "--list-keys", env=env)
    fingerprint = next(line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:"))
    return Gpg(home, fingerprint)


@pytest.fixture
def gpg_keys(tmp_path: Path) -> Iterator[tuple[Gpg, Gpg]]:
    """(trusted, other) gpg identities; skipped, saying why, where gpg cannot make keys headless."""
    if shutil.which("gpg") is None:
        pytest.skip("gpg is not installed")
    made: list[Gpg] = []
    try:
        for name in ("trusted", "other"):
            made.append(_gpg_identity(Path(tmp_path / f"gnupg-{name}"), name))
        yield made[0], made[1]
    finally:
        for identity in made:  # the gpg-agent each home started for signing
            subprocess.run(
                ["gpgconf", "--homedir", str(identity.home), "--kill", "all"],
                check=False,
                capture_output=True,
                timeout=30,
            )


def test_gpg_mode_trusts_only_the_exported_keys(
    repo: Path, gpg_keys: tuple[Gpg, Gpg], keys: tuple[Path, Path], tmp_path: Path
) -> None:
    """gpg mode: signed by a key of the exported file passes; another gpg key, an ssh signature (even by
    a key git could check) and no signature are refused."""
    trusted, other = gpg_keys
    verifier = CommitVerifier("gpg", trusted.export(tmp_path / "trusted.asc"))
    try:
        good = commit(repo, "gpg signed", ("openpgp", trusted.fingerprint), env=trusted.env)
        verifier(repo, good)
        bad = commit(repo, "gpg other", ("openpgp", other.fingerprint), env=other.env)
        assert _refusal(verifier, repo, bad).startswith("signed by a key allowedSigners does not list")
        ssh_signed = commit(repo, "ssh signed", ("ssh", str(keys[0])))
        assert _refusal(verifier, repo, ssh_signed) == "an SSH signature, and verify.mode is gpg"
        assert _refusal(verifier, repo, commit(repo, "unsigned")) == "not signed"
        # and the other way round: ssh mode does not trust an OpenPGP signature
        ssh_verifier = CommitVerifier("ssh", allowed_signers(tmp_path / "allowed", keys[0]))
        assert _refusal(ssh_verifier, repo, good) == "an OpenPGP signature, and verify.mode is ssh"
    finally:
        verifier.close()


def test_gpg_mode_with_a_file_that_holds_no_key(repo: Path, tmp_path: Path) -> None:
    """A gpg allowedSigners file gpg cannot import is a permanent error naming the file."""
    junk = tmp_path / "keys.asc"
    junk.write_text("not a key\n")
    verifier = CommitVerifier("gpg", junk)
    sha = commit(repo, "unsigned")
    with pytest.raises(PermanentError, match=r"verify.allowedSigners .*keys.asc: gpg cannot import it"):
        verifier(repo, sha)
    verifier.close()


# -- rewinds and ranges -------------------------------------------------------------------------------------


def test_a_rewind_to_an_older_signed_commit_is_refused_unless_allowed(
    repo: Path, keys: tuple[Path, Path], tmp_path: Path
) -> None:
    """The head last accepted is kept in the clone: a head that is its ancestor (a force-push back to
    older signed code) is refused, by this verifier and by a new one (a restart); allowRewind accepts it.
    Moving forward again, or staying on the same head, is not a rewind."""
    trusted, _ = keys
    signers = allowed_signers(tmp_path / "allowed", trusted)
    verifier = CommitVerifier("ssh", signers)
    old = commit(repo, "v1", ("ssh", str(trusted)))
    verifier(repo, old)
    new = commit(repo, "v2", ("ssh", str(trusted)))
    verifier(repo, new)
    verifier(repo, new)
    assert verifier.accepted(repo) == new
    reason = _refusal(verifier, repo, old)
    assert reason == (
        f"a rewind: it is older than {new[:12]}, the head last deployed (verify.allowRewind is false); "
        "roll back with a new commit (git revert)"
    )
    _refusal(CommitVerifier("ssh", signers), repo, old)
    rewinding = CommitVerifier("ssh", signers, allow_rewind=True)
    rewinding(repo, old)
    assert rewinding.accepted(repo) == old
    verifier(repo, new)  # forward again


def test_range_scope_refuses_a_signed_head_on_an_unsigned_commit(
    repo: Path, keys: tuple[Path, Path], tmp_path: Path
) -> None:
    """With scope range every commit since the head last accepted must be signed by a trusted key: a
    signed head on top of an unsigned commit, or of a commit another key signed, is refused naming that
    commit; scope head checks the head alone. A commit merged in from a branch counts too."""
    trusted, other = keys
    signers = allowed_signers(tmp_path / "allowed", trusted)
    ranged = CommitVerifier("ssh", signers, scope="range")
    base = commit(repo, "base", ("ssh", str(trusted)))
    ranged(repo, base)
    unsigned = commit(repo, "sneaky, unsigned")
    head = commit(repo, "signed on top", ("ssh", str(trusted)))
    assert _refusal(ranged, repo, head) == (
        f"not signed (commit {unsigned[:12]}, below the head; verify.scope is range)"
    )
    assert ranged.accepted(repo) == base
    CommitVerifier("ssh", signers, scope="head")(repo, head)
    assert ranged.accepted(repo) == head

    good = commit(repo, "good", ("ssh", str(trusted)))
    ranged(repo, good)
    _run("git", "checkout", "-q", "-b", "feature", cwd=repo)
    foreign = commit(repo, "by other", ("ssh", str(other)))
    _run("git", "checkout", "-q", "main", cwd=repo)
    _run("git", "-c", "gpg.format=ssh", "-c", f"user.signingKey={trusted}", "merge", "-q", "--no-ff", "-S",
         "-m", "merge feature", "feature", cwd=repo, env=WHO)  # fmt: skip
    merge = _run("git", "rev-parse", "HEAD", cwd=repo).strip()
    reason = _refusal(ranged, repo, merge)
    assert reason.startswith("signed by a key allowedSigners does not list")
    assert f"(commit {foreign[:12]}, below the head; verify.scope is range)" in reason
    all_signed = commit(repo, "all signed", ("ssh", str(trusted)))
    _refusal(ranged, repo, all_signed)  # the foreign commit is still between the last accepted and it


# -- the agent config -------------------------------------------------------------------------------------


def test_verify_config_is_relative_to_the_config_file(tmp_path: Path) -> None:
    """``verify.allowedSigners`` is read relative to the config file, and a missing file is a problem
    located at /verify/allowedSigners before the agent starts."""
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "signers").write_text("dev@example.com ssh-ed25519 AAAA\n")
    path = tmp_path / "conf" / "agent.yaml"
    path.write_text(
        "apiVersion: ecs-gitops/v1\nkind: AgentConfig\nverify: {mode: ssh, allowedSigners: signers}\n"
    )
    config = load_config(str(path), {})
    assert config.verify == VerifyConfig("ssh", str(tmp_path / "conf" / "signers"), "head", False)
    ranged = load_config(
        str(path), {"ECS_GITOPS_VERIFY_SCOPE": "range", "ECS_GITOPS_VERIFY_ALLOW_REWIND": "true"}
    )
    assert ranged.verify == VerifyConfig("ssh", str(tmp_path / "conf" / "signers"), "range", True)
    verifier = verifier_from(ranged)
    assert verifier is not None and (verifier.scope, verifier.allow_rewind) == ("range", True)
    with pytest.raises(InvalidInput) as caught:
        load_config(str(path), {"ECS_GITOPS_VERIFY_SCOPE": "everything"})
    assert [(p.file, p.pointer) for p in caught.value.problems] == [
        ("ECS_GITOPS_VERIFY_SCOPE", "/verify/scope")
    ]
    with pytest.raises(InvalidInput) as caught:
        load_config(str(path), {"ECS_GITOPS_VERIFY_ALLOWED_SIGNERS": "missing"})
    [problem] = caught.value.problems
    assert (problem.file, problem.pointer) == ("ECS_GITOPS_VERIFY_ALLOWED_SIGNERS", "/verify/allowedSigners")
    assert problem.message == f"no such file: {tmp_path / 'conf' / 'missing'}"
    path.write_text("apiVersion: ecs-gitops/v1\nkind: AgentConfig\nverify: {mode: x509}\n")
    with pytest.raises(InvalidInput) as caught:
        load_config(str(path), {})
    assert {p.pointer for p in caught.value.problems} == {"/verify/mode", "/verify/allowedSigners"}


# -- the agent ---------------------------------------------------------------------------------------------

WORKER_TD = "taskdefs/worker.yaml"


def test_the_agent_deploys_trusted_commits_and_refuses_unsigned_ones(
    sim_sandbox, tmp_path: Path, keys: tuple[Path, Path]
) -> None:
    """With verify set, a commit signed by a trusted key deploys; an unsigned head gets the failure status
    "commit not signed by a trusted key", ECS is not touched, and the next signed commit deploys."""
    trusted, other = keys
    story = Story(sim_sandbox, tmp_path / "story")
    signers = allowed_signers(tmp_path / "allowed", trusted)
    story.config = replace(story.config, verify=VerifyConfig("ssh", str(signers)))
    story.agent = story.new_agent()
    work = story.root

    def push(message: str, sign: tuple[str, str] | None, edit: tuple[str, str] | None = None) -> str:
        if edit:
            path = work / WORKER_TD
            path.write_text(path.read_text().replace(*edit))
        when = f"{int(story.clock.now().timestamp())} +0000"
        sha = commit(work, message, sign, env={"GIT_AUTHOR_DATE": when, "GIT_COMMITTER_DATE": when})
        _run("git", "push", "-q", "origin", "main", cwd=work)
        return sha

    first = push("deploy, signed", ("ssh", str(trusted)))
    assert story.settle().outcome == "unchanged"
    assert story.notes(first)["ecs-gitops"]["state"] == "success"
    assert story.running("prod", "worker") == "worker:1"

    story.aws.counter.reset()
    unsigned = push("worker 1.9.1, unsigned", None, ("worker:1.9.0", "worker:1.9.1"))
    result = story.agent.tick()
    assert result is not None and result.outcome == "untrusted"
    note = story.notes(unsigned)["ecs-gitops"]
    assert note["state"] == "failure"
    assert note["description"] == "commit not signed by a trusted key: not signed"
    assert story.aws.counter.mutating() == {}  # nothing registered, nothing updated
    assert (
        story.aws.counter.total() == 0
    )  # not even read: the manifests of an untrusted commit are not loaded
    assert story.running("prod", "worker") == "worker:1"

    foreign = push("worker 1.9.1, signed by another key", ("ssh", str(other)))
    assert story.agent.tick().outcome == "untrusted"
    assert "allowedSigners does not list" in story.notes(foreign)["ecs-gitops"]["description"]
    assert story.revisions("worker") == ["worker:1"]

    signed = push("worker 1.9.1, signed", ("ssh", str(trusted)))
    story.settle()
    assert story.notes(signed)["ecs-gitops/prod/worker"]["state"] == "success"
    assert story.running("prod", "worker") == "worker:2"

    # A force-push back to the first (signed) commit is a rewind: refused, even after a restart.
    _run("git", "reset", "-q", "--hard", first, cwd=work)
    _run("git", "push", "-q", "-f", "origin", "main", cwd=work)
    story.agent = story.new_agent()
    story.aws.counter.reset()
    assert story.agent.tick().outcome == "untrusted"
    assert story.notes(first)["ecs-gitops"]["description"].startswith(
        f"commit not signed by a trusted key: a rewind: it is older than {signed[:12]}"
    )
    assert story.aws.counter.mutating() == {}
    assert story.running("prod", "worker") == "worker:2"
