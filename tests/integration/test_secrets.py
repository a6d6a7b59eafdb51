"""Secrets never leave the agent: environment values of task definitions, the Git-host token, the git
token and the webhook secret appear in no log line, plan (text or JSON), commit status or state file,
through ``plan``, ``apply`` and the running agent (``run``, with push webhooks), while the manifests hold
marker values and the variables hold marker strings."""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import git
import pytest

from agent.aws.clients import Aws
from agent.cli import main
from agent.config import load_config
from agent.daemon import Agent
from agent.http.server import github_signature
from agent.logs import configure_logging
from agent.sandbox.harness import copy_example

ENV_SECRET = "hunter2-SECRET-VALUE"
GITHUB_TOKEN = "ghp-GITHUB-TOKEN-MARKER-0451"
GIT_TOKEN = "GIT-TOKEN-MARKER-2112"
WEBHOOK_SECRET = "WEBHOOK-SECRET-MARKER-1138"
MARKERS = (ENV_SECRET, GITHUB_TOKEN, GIT_TOKEN, WEBHOOK_SECRET)


class FakeGitHub:
    """A GitHub statuses API on 127.0.0.1 that records what it is sent; its first answer is a 500 whose
    message echoes the Authorization header back, as a careless proxy might."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.paths: list[str] = []
        self.authorizations: list[str] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                fake.authorizations.append(self.headers.get("Authorization") or "")
                if len(fake.authorizations) == 1:
                    answer, status = {"message": f"upstream said no to {self.headers['Authorization']}"}, 500
                else:
                    fake.bodies.append(json.loads(body))
                    fake.paths.append(self.path)
                    answer, status = {"state": "ok"}, 201
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeGitHub:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _with_secrets(root: Path, value: str) -> None:
    """Put ``value`` into environment entries of a file task definition and of an inline one."""
    web = root / "taskdefs" / "web.json"
    body = json.loads(web.read_text())
    body["containerDefinitions"][0]["environment"] = [
        {"name": "DB_PASSWORD", "value": value},
        {"name": "LOG_FORMAT", "value": "json"},
        {"name": "UPSTREAM", "value": f"https://user:{value}@api.internal:9000"},
    ]
    web.write_text(json.dumps(body, indent=2))
    reports = root / "services" / "reports.yaml"
    text = reports.read_text().replace(
        "{name: LOG_LEVEL, value: info}", f"{{name: SIGNING_KEY, value: {value}-r}}"
    )
    reports.write_text(text)


@pytest.fixture
def repo(tmp_path: Path) -> Iterator[tuple[git.Repo, git.Repo]]:
    remote = git.Repo.init(tmp_path / "origin.git", bare=True, initial_branch="main")
    work = git.Repo.clone_from(remote.git_dir, tmp_path / "work")
    with work.config_writer() as cw:
        cw.set_value("user", "name", "Dev").set_value("user", "email", "dev@example.com")
    copy_example(tmp_path / "work")  # the agent runs on the real clock: no year-end freeze
    _with_secrets(tmp_path / "work", ENV_SECRET)
    # web waits for nothing, so one ``apply`` creates it and the next plan diffs its task definition.
    service = tmp_path / "work" / "services" / "web.yaml"
    service.write_text(service.read_text().replace("  dependsOn: [api]\n", ""))
    work.git.add(A=True)
    work.index.commit("manifests with secrets in environment")
    work.git.push("origin", "main")
    yield remote, work
    work.close()
    remote.close()


def _leaks(text: str) -> list[str]:
    return [marker for marker in MARKERS if marker in text]


def test_no_secret_reaches_logs_plans_statuses_or_state(
    sandbox: Any,
    repo: tuple[git.Repo, git.Repo],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """plan (text and JSON), apply and the running agent, with push webhooks good and bad, on manifests
    whose environment values and variables hold markers: no marker in stdout, stderr (JSON logs at
    debug), statuses sent, the plan, or the state store; the plan still says which values changed."""
    remote, work = repo
    monkeypatch.setenv("GITHUB_TOKEN", GITHUB_TOKEN)
    monkeypatch.setenv("ECS_GITOPS_GIT_TOKEN", GIT_TOKEN)
    monkeypatch.setenv("ECS_GITOPS_WEBHOOK_SECRET", WEBHOOK_SECRET)
    port = _free_port()
    data_dir = tmp_path / "data"
    seen: list[str] = []
    with FakeGitHub() as github:
        config_file = tmp_path / "agent.yaml"
        config_file.write_text(
            "apiVersion: ecs-gitops/v1\nkind: AgentConfig\n"
            f"source: {{repo: 'file://{remote.git_dir}', branch: main, interval: 1h}}\n"
            f"aws: {{region: {sandbox.region}, endpointUrl: '{sandbox.endpoint}'}}\n"
            f"status: {{publisher: github, github: {{apiUrl: '{github.url}', repository: acme/app}}}}\n"
            f"server: {{host: 127.0.0.1, port: {port}}}\n"
            "log: {level: debug, format: json}\n"
        )
        cli = ["--config", str(config_file)]
        work_dir = str(work.working_dir)

        # plan, as text and as JSON, before anything exists
        assert main([*cli, "plan", "--repo", work_dir]) == 2
        assert main([*cli, "plan", "--repo", work_dir, "--json"]) == 2
        first = capsys.readouterr()
        seen += [first.out, first.err]
        assert "DB_PASSWORD" in first.out and "(sensitive)" in first.out

        # apply deploys it (statuses go to the fake GitHub, the first answer echoing the token)
        assert main([*cli, "apply", "--data-dir", str(data_dir)]) == 0
        applied = capsys.readouterr()
        seen += [applied.out, applied.err]

        # a new secret value: the plan shows that it changed, not what it is
        _with_secrets(Path(work_dir), ENV_SECRET + "-rotated")
        work.git.add(A=True)
        work.index.commit("rotate the database password")
        work.git.push("origin", "main")
        assert main([*cli, "plan", "--repo", work_dir]) == 2
        text = capsys.readouterr()
        assert (
            "/containerDefinitions/web/environment/DB_PASSWORD/value: (sensitive) -> (sensitive, changed)"
            in text.out
        )
        assert main([*cli, "plan", "--repo", work_dir, "--json"]) == 2
        as_json = capsys.readouterr()
        plan = json.loads(as_json.out)
        changed = [
            f for c in plan["changes"] for f in c["fields"] if f["path"].endswith("/DB_PASSWORD/value")
        ]
        assert changed == [
            {
                "path": "/containerDefinitions/web/environment/DB_PASSWORD/value",
                "old": "(sensitive)",
                "new": "(sensitive, changed)",
                "sensitive": True,
            }
        ]
        seen += [text.out, text.err, as_json.out, as_json.err]

        # run: the daemon, woken by a signed push webhook (a badly signed one is refused)
        config = load_config(str(config_file))
        configure_logging(config)
        agent = Agent(config, data_dir, Aws(sandbox.region, sandbox.endpoint))
        stop = threading.Event()
        runner = threading.Thread(target=agent.run, args=(stop,), daemon=True)
        runner.start()
        head = work.head.commit.hexsha
        push = b'{"ref": "refs/heads/main"}'
        hooked, deadline = False, time.monotonic() + 60
        while time.monotonic() < deadline:  # poll: the server coming up, then the statuses of the head
            hooked = hooked or _webhook(port, push, WEBHOOK_SECRET) == 200
            if hooked and any(path.endswith(f"/statuses/{head}") for path in github.paths):
                break
            time.sleep(0.05)
        assert hooked and any(path.endswith(f"/statuses/{head}") for path in github.paths)
        assert _webhook(port, push, "wrong-secret") == 401
        stop.set()
        runner.join(timeout=60)
        assert not runner.is_alive()
        ran = capsys.readouterr()
        seen += [ran.out, ran.err]

    statuses = json.dumps(github.bodies)
    state = (data_dir / "ecs-gitops-state.db").read_bytes().decode("utf-8", "replace")
    # the captures hold what they should, so a clean scan means something
    assert '"event": "tick.done"' in "".join(seen) and "webhook.tick" in "".join(seen)
    assert any(b["context"] == "ecs-gitops/prod/web" for b in github.bodies)
    assert all(auth == f"Bearer {GITHUB_TOKEN}" for auth in github.authorizations)  # it was sent, to GitHub
    for name, text in [("outputs and logs", "\n".join(seen)), ("statuses", statuses), ("state", state)]:
        assert _leaks(text) == [], f"{name} leak {_leaks(text)}"


def _webhook(port: int, body: bytes, secret: str) -> int:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/webhook/github",
        data=body,
        headers={
            "X-GitHub-Event": "push",
            "X-Hub-Signature-256": github_signature(secret, body),
            "Content-Type": "application/json",
        },
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as e:
        return int(e.code)
    except OSError:
        return 0  # the server is not listening yet


@pytest.mark.parametrize(
    ("entry", "pointer"),
    [
        ({"name": "DB_PASSWORD", "value": 4815162342}, "/containerDefinitions/0/environment/0/value"),
        (f"DB_PASSWORD={ENV_SECRET}", "/containerDefinitions/0/environment/0"),
        ({"name": "DB_PASSWORD", "value": [ENV_SECRET]}, "/containerDefinitions/0/environment/0/value"),
        ({"name": "DB_PASSWORD", "vaule": ENV_SECRET}, "/containerDefinitions/0/environment/0/vaule"),
    ],
    ids=["number", "string-entry", "list-value", "misspelt-key"],
)
def test_a_malformed_environment_entry_is_located_without_quoting_it(
    entry: Any, pointer: str, tmp_path: Path
) -> None:
    """An environment entry of the wrong shape is refused at its pointer, and the message (which becomes
    a commit status and a log line) does not quote the value that may be a secret."""
    from agent.errors import InvalidInput
    from agent.manifests import load_desired
    from agent.manifests.tree import DirTree

    (tmp_path / "web.json").write_text(
        json.dumps(
            {
                "family": "web",
                "containerDefinitions": [
                    {"name": "app", "image": "nginx:1", "memory": 256, "environment": [entry]}
                ],
            }
        )
    )
    with pytest.raises(InvalidInput) as caught:
        load_desired(DirTree(tmp_path))
    shown = "\n".join(str(p) for p in caught.value.problems)
    assert any(p.file == "web.json" and p.pointer == pointer for p in caught.value.problems), shown
    assert ENV_SECRET not in shown and "4815162342" not in shown


def test_a_logged_traceback_carries_no_local_variables(capsys: pytest.CaptureFixture[str]) -> None:
    """A JSON log line with a traceback (log.exception) keeps the frames but not their local variables,
    where a token read a moment before would otherwise be printed."""
    import structlog

    from agent.config import AgentConfig, LogConfig

    configure_logging(AgentConfig(log=LogConfig(format="json")))

    def fetch() -> None:
        token = GITHUB_TOKEN  # what a failing call had in hand
        raise RuntimeError(f"remote refused ({len(token)} characters)")

    try:
        fetch()
    except RuntimeError:
        structlog.get_logger().exception("tick.crashed")
    line = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    frames = line["exception"][0]["frames"]
    assert [f["name"] for f in frames][-1] == "fetch" and "remote refused (28 characters)" in json.dumps(line)
    assert GITHUB_TOKEN not in json.dumps(line)
