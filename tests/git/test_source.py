"""GitSource over real git repositories: local paths, bare remotes by file://, and git over loopback HTTP."""

from __future__ import annotations

import base64
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import git
import pytest
from structlog.testing import capture_logs

from agent.errors import PermanentError, TransientError
from agent.git.auth import GitAuth, redact_url, ssh_command
from agent.git.source import GitSource, is_local, local_path

TOKEN = "ghp_s3cretT0kenThatMustNeverLeak"


# ---------------------------------------------------------------- helpers


def init_repo(path: Path, bare: bool = False) -> git.Repo:
    repo = git.Repo.init(path, bare=bare, initial_branch="main")
    with repo.config_writer() as config:
        config.set_value("user", "name", "Test Author")
        config.set_value("user", "email", "author@example.com")
        config.set_value("commit", "gpgsign", "false")
    return repo


def commit(repo: git.Repo, files: dict[str, str], message: str) -> str:
    root = Path(repo.working_tree_dir)
    for name, content in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(content)
    repo.index.add(list(files))
    return repo.index.commit(message).hexsha


@pytest.fixture
def work(tmp_path: Path) -> git.Repo:
    """A non-bare repository with one commit on main."""
    repo = init_repo(tmp_path / "work")
    commit(repo, {"services/web.yaml": "image: web:v1\n"}, "first")
    return repo


@pytest.fixture
def remote(tmp_path: Path, work: git.Repo) -> Path:
    """A bare repository that ``work`` pushes to as ``origin``."""
    bare = tmp_path / "remote.git"
    init_repo(bare, bare=True)
    work.create_remote("origin", str(bare))
    work.git.push("origin", "main")
    return bare


@pytest.fixture
def make_source(tmp_path: Path) -> Iterator:
    sources: list[GitSource] = []

    def make(url: str, branch: str = "main", **kwargs) -> GitSource:
        source = GitSource(url, branch, workdir=tmp_path / f"clone{len(sources)}", **kwargs)
        sources.append(source)
        return source

    yield make
    for source in sources:
        source.close()


# ---------------------------------------------------------------- fetching


def test_first_fetch_from_local_work_tree(work, make_source):
    """The first fetch from a local non-bare repository creates a bare clone at the branch head."""
    source = make_source(work.working_tree_dir)
    result = source.fetch()
    assert result.sha == work.head.commit.hexsha
    assert (result.previous, result.changed, result.forced) == (None, True, False)
    assert source.head() == result.sha
    assert git.Repo(source.clone_path).bare


def test_first_fetch_from_bare_repo_by_file_url(remote, work, make_source):
    """A bare repository given as a file:// URL is fetched like any remote."""
    source = make_source(remote.as_uri())
    assert source.fetch().sha == work.head.commit.hexsha
    assert source.local_path == remote


def test_new_commit_is_changed(work, make_source):
    """A new commit on the branch is reported as changed, with the previous head."""
    source = make_source(work.working_tree_dir)
    first = source.fetch().sha
    second = commit(work, {"services/web.yaml": "image: web:v2\n"}, "bump")
    result = source.fetch()
    assert (result.sha, result.previous, result.changed, result.forced) == (second, first, True, False)


def test_no_new_commit_is_unchanged(work, make_source):
    """Fetching again without a new commit reports the same head, unchanged."""
    source = make_source(work.working_tree_dir)
    first = source.fetch().sha
    result = source.fetch()
    assert (result.sha, result.previous, result.changed, result.forced) == (first, first, False, False)


def test_commits_on_other_branches_are_ignored(work, make_source):
    """Only the tracked branch is fetched: a commit on another branch neither changes nor appears."""
    source = make_source(work.working_tree_dir)
    source.fetch()
    work.git.checkout("-b", "feature")
    commit(work, {"x.yaml": "x: 1\n"}, "feature work")
    assert not source.fetch().changed
    assert [h.name for h in git.Repo(source.clone_path).heads] == ["main"]


def test_force_push_is_handled_and_logged(remote, work, make_source):
    """A force-push that rewrites history yields the new head with forced=True and a git.force_push log."""
    source = make_source(remote.as_uri())
    base = work.head.commit.hexsha
    old = commit(work, {"services/web.yaml": "image: web:v2\n"}, "to be rewritten")
    work.git.push("origin", "main")
    assert source.fetch().sha == old
    work.git.reset("--hard", base)
    new = commit(work, {"services/web.yaml": "image: web:v3\n"}, "rewritten")
    work.git.push("--force", "origin", "main")
    with capture_logs() as logs:
        result = source.fetch()
    assert (result.sha, result.previous, result.changed, result.forced) == (new, old, True, True)
    forced = [e for e in logs if e["event"] == "git.force_push"]
    assert forced and forced[0]["old"] == old and forced[0]["new"] == new
    assert forced[0]["log_level"] == "warning"


def test_tree_reads_an_old_sha_without_checkout(work, make_source):
    """tree(old sha) reads the file as it was at that commit, from a bare clone with no work tree."""
    source = make_source(work.working_tree_dir)
    old = source.fetch().sha
    commit(work, {"services/web.yaml": "image: web:v2\n"}, "bump")
    commit(work, {"services/api.yaml": "image: api:v1\n"}, "add api")
    source.fetch()
    tree = source.tree(old)
    assert tree.revision == old
    assert list(tree.walk()) == ["services/web.yaml"]
    assert tree.read("services/web.yaml") == b"image: web:v1\n"
    assert source.tree(source.head(), subdir="services").read("web.yaml") == b"image: web:v2\n"
    assert not (source.clone_path / "services").exists()


def test_commit_info(work, make_source):
    """commit_info gives the author, the summary line and an aware commit time for timelines."""
    source = make_source(work.working_tree_dir)
    sha = source.fetch().sha
    info = source.commit_info(sha)
    assert (info.author, info.summary) == ("Test Author", "first")
    assert info.committed_at.tzinfo is not None
    author, _, _ = info  # also unpacks as a plain tuple
    assert author == "Test Author"


def test_notes_are_fetched(work, make_source):
    """Notes refs come along, so a status written elsewhere is readable in the clone."""
    source = make_source(work.working_tree_dir)
    sha = source.fetch().sha
    work.git.notes("--ref", "ecs-gitops", "add", "-m", '{"ecs-gitops": {"state": "success"}}', sha)
    assert not source.fetch().changed  # notes do not move the branch
    clone = git.Repo(source.clone_path)
    assert clone.git.notes("--ref", "ecs-gitops", "show", sha) == '{"ecs-gitops": {"state": "success"}}'


def test_state_survives_a_new_source_object(work, tmp_path):
    """The last fetched head lives in the clone, so a restarted agent sees previous and changed correctly."""
    with GitSource(work.working_tree_dir, workdir=tmp_path / "clone") as source:
        first = source.fetch().sha
    with GitSource(work.working_tree_dir, workdir=tmp_path / "clone") as again:
        assert again.head() == first
        assert not again.fetch().changed


def test_verify_hook_is_called_with_the_clone(work, make_source):
    """verify(sha) hands the clone and the sha to the configured verifier and propagates its refusal."""
    seen = []

    def refuse(clone: Path, sha: str) -> None:
        seen.append((clone, sha))
        raise PermanentError("commit not signed by a trusted key")

    source = make_source(work.working_tree_dir, verifier=refuse)
    sha = source.fetch().sha
    with pytest.raises(PermanentError, match="not signed"):
        source.verify(sha)
    assert seen == [(source.clone_path, sha)]
    make_source(work.working_tree_dir).verify(sha)  # no verifier: nothing to refuse


# ---------------------------------------------------------------- errors


def test_deleted_remote_is_transient(remote, make_source):
    """A remote that disappears after the first fetch gives a TransientError, not a crash."""
    source = make_source(remote.as_uri())
    source.fetch()
    shutil.rmtree(remote)
    with pytest.raises(TransientError, match="failed"):
        source.fetch()
    assert source.head() is not None  # the last good head is kept


def test_unreachable_remote_is_transient(make_source):
    """A remote nobody answers on (connection refused) gives a TransientError."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    with pytest.raises(TransientError):
        make_source(f"http://127.0.0.1:{port}/repo.git").fetch()


def test_slow_remote_times_out_as_transient(make_source):
    """A remote that accepts and never answers is killed after the timeout, as a TransientError."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    try:
        source = make_source(f"http://127.0.0.1:{port}/repo.git", timeout=1)
        started = time.monotonic()
        with pytest.raises(TransientError, match="timed out"):
            source.fetch()
        assert time.monotonic() - started < 10
    finally:
        listener.close()


def test_missing_branch_is_permanent(work, make_source):
    """A branch that does not exist in the remote is a PermanentError (a human must fix the config)."""
    with pytest.raises(PermanentError, match="'release'"):
        make_source(work.working_tree_dir, "release").fetch()


def test_invalid_branch_name_is_permanent(work, tmp_path):
    """A branch name that could smuggle a refspec or an option is refused up front."""
    for bad in ["main:refs/heads/x", "-x", "a..b", "*", ""]:
        with pytest.raises(PermanentError):
            GitSource(work.working_tree_dir, bad, workdir=tmp_path / "clone")


def test_credentials_in_the_url_are_refused(tmp_path):
    """A URL with a token in it is refused, so the token never lands in the clone's config or a log."""
    with pytest.raises(PermanentError, match="auth") as raised:
        GitSource(f"https://x-access-token:{TOKEN}@git.example.com/r.git", workdir=tmp_path / "c")
    assert TOKEN not in str(raised.value)


def test_workdir_with_other_content_is_refused(work, tmp_path):
    """A non-empty workdir that is not a bare clone is not overwritten."""
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with GitSource(work.working_tree_dir, workdir=tmp_path / "busy") as source, pytest.raises(PermanentError):
        source.fetch()


def test_url_kinds():
    """Paths and file:// URLs are local; ssh, scp-like and https URLs are not."""
    assert is_local("/srv/repo") and is_local("relative/repo")
    assert not is_local("git@github.com:org/repo.git")
    assert not is_local("ssh://git@host/repo.git") and not is_local("https://host/repo.git")
    assert local_path("file:///srv/my%20repo") == Path("/srv/my repo")
    assert local_path("https://host/repo.git") is None


# ---------------------------------------------------------------- auth


def test_token_travels_in_env_config_not_argv():
    """The token becomes an http.<origin>.extraHeader set through GIT_CONFIG_* env, scoped to the host."""
    auth = GitAuth(token_env="GIT_TOKEN")
    env = auth.git_env("https://git.example.com:8443/org/repo.git", environ={"GIT_TOKEN": TOKEN})
    assert env["GIT_CONFIG_COUNT"] == "1"
    assert env["GIT_CONFIG_KEY_0"] == "http.https://git.example.com:8443/.extraHeader"
    expected = base64.b64encode(f"x-access-token:{TOKEN}".encode()).decode()
    assert env["GIT_CONFIG_VALUE_0"] == f"Authorization: Basic {expected}"
    assert TOKEN not in repr(auth)


def test_token_config_appends_to_existing_env_config():
    """Config entries already passed through the environment are kept; ours is appended."""
    env = GitAuth(token_env="T").git_env("https://h/r.git", environ={"T": TOKEN, "GIT_CONFIG_COUNT": "2"})
    assert env["GIT_CONFIG_COUNT"] == "3" and "GIT_CONFIG_KEY_2" in env


def test_token_is_not_used_for_ssh_urls(tmp_path):
    """An ssh URL gets the ssh command, never the http token."""
    auth = GitAuth(token_env="T", key_file=tmp_path / "id_ed25519", known_hosts=tmp_path / "known_hosts")
    env = auth.git_env("git@github.com:org/repo.git", environ={"T": TOKEN})
    assert "GIT_CONFIG_COUNT" not in env
    command = env["GIT_SSH_COMMAND"]
    for option in [
        "IdentitiesOnly=yes",
        f"UserKnownHostsFile={tmp_path}/known_hosts",
        "StrictHostKeyChecking=yes",
        "BatchMode=yes",
    ]:
        assert option in command
    assert "StrictHostKeyChecking=accept-new" in ssh_command(strict_host_key_checking="accept-new")


def test_token_file_is_read_at_each_fetch(tmp_path):
    """A token file is read when needed, so a rotated secret is picked up; a missing one is permanent."""
    token_file = tmp_path / "token"
    auth = GitAuth(token_file=token_file)
    with pytest.raises(PermanentError, match="cannot read token file"):
        auth.git_env("https://h/r.git")
    token_file.write_text("first\n")
    assert auth.token() == "first"
    token_file.write_text("second\n")
    assert auth.token() == "second"
    with pytest.raises(PermanentError):
        GitAuth(token_env="T", token_file=token_file)


def test_redact_url():
    """Credentials in URLs are hidden; an ssh user name is not a secret."""
    assert redact_url("https://user:pw@host/x") == "https://***@host/x"
    assert redact_url(f"fatal: 'https://{TOKEN}@host/x'") == "fatal: 'https://***@host/x'"
    assert redact_url("ssh://git@host/x") == "ssh://git@host/x"


class _GitHttpBackend(BaseHTTPRequestHandler):
    """git's smart HTTP protocol through ``git http-backend`` (CGI), behind HTTP Basic auth."""

    root: Path
    expected_auth: str
    seen_auth: list[str | None]

    def log_message(self, format, *args):  # keep test output quiet
        pass

    def do_GET(self):
        self._serve()

    def do_POST(self):
        self._serve()

    def _serve(self):
        auth = self.headers.get("Authorization")
        self.seen_auth.append(auth)
        if auth != self.expected_auth:
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="git"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        path, _, query = self.path.partition("?")
        env = {
            "PATH": os.environ["PATH"],
            "GIT_PROJECT_ROOT": str(self.root),
            "GIT_HTTP_EXPORT_ALL": "1",
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "REQUEST_METHOD": self.command,
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "REMOTE_ADDR": "127.0.0.1",
            "REMOTE_USER": "test",
        }
        if self.headers.get("Git-Protocol"):
            env["GIT_PROTOCOL"] = self.headers["Git-Protocol"]
        if self.headers.get("Content-Encoding"):
            env["HTTP_CONTENT_ENCODING"] = self.headers["Content-Encoding"]
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        out = subprocess.run(
            ["git", "http-backend"], input=body, env=env, capture_output=True, timeout=30, check=False
        ).stdout
        head, _, payload = out.partition(b"\r\n\r\n")
        if not payload and b"\n\n" in out:
            head, _, payload = out.partition(b"\n\n")
        status, headers = 200, []
        for line in head.decode("latin-1").splitlines():
            name, _, value = line.partition(":")
            if name.lower() == "status":
                status = int(value.split()[0])
            elif name:
                headers.append((name, value.strip()))
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


@pytest.fixture
def http_remote(remote: Path) -> Iterator[tuple[str, list[str | None]]]:
    """``remote`` served over smart HTTP on loopback, accepting only Basic auth with TOKEN."""
    seen: list[str | None] = []
    basic = base64.b64encode(f"x-access-token:{TOKEN}".encode()).decode()
    handler = type(
        "Handler",
        (_GitHttpBackend,),
        {"root": remote.parent, "expected_auth": f"Basic {basic}", "seen_auth": seen},
    )
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/{remote.name}", seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_token_fetch_over_http_keeps_token_out_of_argv_and_logs(
    http_remote, work, make_source, monkeypatch, tmp_path
):
    """A token-authenticated fetch works over HTTP while the token stays out of every argv and log line."""
    url, seen = http_remote
    monkeypatch.setenv("GIT_TOKEN", TOKEN)
    trace = tmp_path / "git-trace.log"
    monkeypatch.setenv("GIT_TRACE", str(trace))  # argv of git and of its children (remote-http, ...)
    argvs: list[list[str]] = []
    real_popen = git.cmd.safer_popen

    def recording_popen(command, *args, **kwargs):
        argvs.append([str(a) for a in command])
        return real_popen(command, *args, **kwargs)

    monkeypatch.setattr(git.cmd, "safer_popen", recording_popen)
    source = make_source(url, auth=GitAuth(token_env="GIT_TOKEN"))
    with capture_logs() as logs:
        result = source.fetch()

    assert result.sha == work.head.commit.hexsha
    assert any(a and a.startswith("Basic ") for a in seen)
    basic = base64.b64encode(f"x-access-token:{TOKEN}".encode()).decode()
    assert argvs and any("fetch" in argv for argv in argvs)
    text = trace.read_text() + repr(argvs) + repr(logs) + (source.clone_path / "config").read_text()
    assert TOKEN not in text and basic not in text


def test_wrong_token_is_transient_and_redacted(http_remote, make_source, monkeypatch):
    """A refused token is a TransientError whose message names neither the token nor its encoding."""
    url, _ = http_remote
    monkeypatch.setenv("GIT_TOKEN", "wrong-" + TOKEN)
    source = make_source(url, auth=GitAuth(token_env="GIT_TOKEN"))
    with capture_logs() as logs, pytest.raises(TransientError, match="authentication failed") as raised:
        source.fetch()
    message = str(raised.value)
    assert "wrong-" not in message and TOKEN not in message and TOKEN not in repr(logs)


def test_relative_source_and_workdir_paths_work_from_the_current_folder(work, tmp_path, monkeypatch):
    """`apply --repo deployments` with the default relative data folder fetches like absolute paths do."""
    monkeypatch.chdir(tmp_path)
    source = GitSource(Path(work.working_dir).name, "main", workdir=Path(".ecs-gitops/source"))
    try:
        result = source.fetch()
    finally:
        source.close()
    assert result.sha == work.head.commit.hexsha
    assert (tmp_path / ".ecs-gitops" / "source" / "HEAD").is_file()


def test_fetch_refs_mirrors_pull_request_heads_and_drops_closed_ones(work, remote, make_source) -> None:
    """Heads of refs/pull/*/head are fetched beside the branch (never into it), readable from the clone,
    and forgotten once the remote drops them; the tracked branch is untouched."""
    main = work.head.commit.hexsha
    head = commit(work, {"services/web.yaml": "image: web:v2\n"}, "proposal")
    work.git.push("origin", "HEAD:refs/pull/7/head")
    work.git.push("origin", f"{main}:refs/pull/8/head")
    source = make_source(f"file://{remote}")
    assert source.fetch().sha == main

    assert source.fetch_refs(["refs/pull/*/head"]) == {"refs/pull/7/head": head, "refs/pull/8/head": main}
    assert source.tree(head).read("services/web.yaml") == b"image: web:v2\n"
    assert source.head() == main

    work.git.push("origin", ":refs/pull/8/head")
    assert source.fetch_refs(["refs/pull/*/head"]) == {"refs/pull/7/head": head}
    assert source.fetch_refs([]) == {}


def test_fetch_refs_of_a_missing_exact_ref_names_it(work, remote, make_source) -> None:
    """A plan ref without * names one ref; when it does not exist the error says which."""
    source = make_source(f"file://{remote}")
    source.fetch()
    with pytest.raises(PermanentError, match="fetching refs/heads/staging from"):
        source.fetch_refs(["refs/heads/staging"])
