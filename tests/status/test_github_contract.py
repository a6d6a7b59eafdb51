"""The GitHub publisher's requests pass prism's validation against GitHub's official OpenAPI description."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from openapi_subset import write_subset

from agent.errors import PermanentError
from agent.status import http
from agent.status.comments import CREATED, MARKER, GitHubPlanComments
from agent.status.github import GitHubPublisher
from agent.status.model import AGGREGATE, CommitStatus, service_context

REPO_ROOT = Path(__file__).resolve().parents[2]
SHA = "6dcb09b5b57875f334f61aebed695e2e4193db5e"
TOKEN = "ghp_test-not-a-real-token"
# What the agent calls on GitHub: commit statuses, and the plan comments of pull requests.
OPERATIONS = [
    ("post", "/repos/{owner}/{repo}/statuses/{sha}"),
    ("get", "/repos/{owner}/{repo}/commits/{ref}/status"),
    ("get", "/repos/{owner}/{repo}/issues/{issue_number}/comments"),
    ("post", "/repos/{owner}/{repo}/issues/{issue_number}/comments"),
    ("get", "/repos/{owner}/{repo}/issues/comments/{comment_id}"),
    ("patch", "/repos/{owner}/{repo}/issues/comments/{comment_id}"),
]
# GitHub answers ``Accept: application/vnd.github+json`` (what its docs tell clients to send) with JSON,
# but its description lists responses as application/json only, and prism negotiates Accept strictly
# (406). The subset offers each JSON response under that media type too; requests are validated as is.
RESPONSE_ALIASES = {"application/vnd.github+json": "application/json"}
START_DEADLINE = 60.0


def _npm_cache() -> Path:
    cache = Path(os.environ.get("ECS_GITOPS_NPM_CACHE", ".cache/npm"))
    return cache if cache.is_absolute() else REPO_ROOT / cache


def _tools(cache: Path) -> tuple[Path, Path]:
    """prism's executable and GitHub's OpenAPI document, installing them when npm is there."""
    prism = cache / "node_modules" / ".bin" / "prism"
    document = cache / "node_modules" / "@octokit" / "openapi" / "generated" / "api.github.com.json"
    if not (prism.exists() and document.exists()):
        if shutil.which("npm") is None:
            reason = "npm is absent, so @octokit/openapi and @stoplight/prism-cli cannot be installed"
            print(f"SKIP GitHub contract test: {reason}")
            pytest.skip(reason)
        done = subprocess.run(
            ["bash", str(REPO_ROOT / ".ci" / "npm-tools.sh")],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            env={**os.environ, "ECS_GITOPS_NPM_CACHE": str(cache)},
            timeout=600,
            check=False,
        )
        if done.returncode != 0 or not (prism.exists() and document.exists()):
            pytest.fail(f".ci/npm-tools.sh did not install the tools:\n{done.stdout}\n{done.stderr}")
    return prism, document


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for_port(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_DEADLINE
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"prism exited with {proc.returncode}:\n{log.read_text(errors='replace')}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)  # polling a subprocess's port, with a deadline
    pytest.fail(f"prism did not listen within {START_DEADLINE}s:\n{log.read_text(errors='replace')}")


@pytest.fixture(scope="module")
def prism(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """prism mocking the subset of GitHub's API we call, on 127.0.0.1; yields its base URL."""
    prism_bin, document = _tools(_npm_cache())
    workdir = tmp_path_factory.mktemp("prism")
    spec = write_subset(document, OPERATIONS, workdir / "github-subset.json", RESPONSE_ALIASES)
    port = _free_port()
    log = workdir / "prism.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(prism_bin), "mock", "--errors", "-h", "127.0.0.1", "-p", str(port), str(spec)],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    try:
        _wait_for_port(port, proc, log)
        yield f"http://127.0.0.1:{port}"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@dataclass
class Exchange:
    method: str
    url: str
    headers: dict[str, str]
    response: http.Response


@pytest.fixture
def exchanges(monkeypatch: pytest.MonkeyPatch) -> list[Exchange]:
    """Every request the publisher makes with prism's answer, to check no violation was reported."""
    seen: list[Exchange] = []
    real = http.request

    def recording(method: str, url: str, **kwargs: Any) -> http.Response:
        response = real(method, url, **kwargs)
        seen.append(Exchange(method, url, kwargs["headers"], response))
        return response

    monkeypatch.setattr(http, "request", recording)
    return seen


def _publisher(base_url: str) -> GitHubPublisher:
    return GitHubPublisher("octo-org/deployments", token=TOKEN, base_url=base_url, timeout=10)


@pytest.mark.parametrize(
    "status",
    [
        CommitStatus(
            SHA,
            service_context("prod", "web"),
            "pending",
            "rolling out: 2/4 tasks healthy",
            "https://ecs-gitops.example/prod/web",
        ),
        CommitStatus(SHA, AGGREGATE, "success", "3 services rolled out"),
        CommitStatus(SHA, AGGREGATE, "failure", "services/web.yaml: /spec/cluster: " + "x" * 200),
        CommitStatus(SHA, AGGREGATE, "error", "agent error: ECS did not answer"),
    ],
    ids=["pending-with-url", "success", "failure-truncated", "error"],
)
def test_published_status_passes_githubs_openapi(
    prism: str, exchanges: list[Exchange], status: CommitStatus
) -> None:
    """Each state, with and without a target URL, is a valid create-commit-status request."""
    _publisher(prism).publish(status)

    (exchange,) = exchanges
    assert exchange.response.status == 201
    assert exchange.response.headers.get("sl-violations") is None
    assert exchange.headers == {
        "Accept": "application/vnd.github+json",
        "X-GitHub-Api-Version": "2022-11-28",
        "Authorization": f"Bearer {TOKEN}",
        "User-Agent": "ecs-gitops",
    }


def test_reading_statuses_passes_githubs_openapi(prism: str, exchanges: list[Exchange]) -> None:
    """The combined-status request is valid, and the documented response parses to one entry per context."""
    statuses = _publisher(prism).read(SHA)

    exchange = exchanges[0]
    assert exchange.method == "GET" and exchange.url.endswith(f"/commits/{SHA}/status?per_page=100&page=1")
    assert exchange.response.status == 200 and exchange.response.headers.get("sl-violations") is None
    assert statuses["continuous-integration/jenkins"]["state"] == "success"
    assert set(statuses["continuous-integration/jenkins"]) == {
        "state",
        "description",
        "updatedAt",
        "targetUrl",
    }


def test_a_deliberately_invalid_status_is_rejected(prism: str) -> None:
    """A state outside GitHub's enum, sent below the publisher's own validation, gets prism's 422."""
    request = urllib.request.Request(
        f"{prism}/repos/octo-org/deployments/statuses/{SHA}",
        method="POST",
        data=json.dumps({"state": "bogus", "context": AGGREGATE, "description": "x"}).encode(),
        headers={"Content-Type": "application/json", "Accept": "application/vnd.github+json"},
    )
    with pytest.raises(urllib.error.HTTPError) as excinfo:
        urllib.request.urlopen(request, timeout=10)
    error = excinfo.value
    problem = json.loads(error.read())
    assert error.code == 422
    assert error.headers["Content-Type"] == "application/problem+json"
    assert problem["type"].endswith("#UNPROCESSABLE_ENTITY")
    assert [(v["location"], v["code"]) for v in problem["validation"]] == [(["body", "state"], "enum")]

    # Through the publisher's client the same answer is a PermanentError: retrying cannot fix it.
    with pytest.raises(PermanentError, match="HTTP 422"):
        _publisher(prism).api.call(
            "POST", f"/repos/octo-org/deployments/statuses/{SHA}", {"state": "bogus", "context": AGGREGATE}
        )


def test_missing_required_state_is_rejected(prism: str) -> None:
    """A body without the required state is refused too, so the check covers required fields."""
    with pytest.raises(PermanentError, match="HTTP 422"):
        _publisher(prism).api.call(
            "POST",
            f"/repos/octo-org/deployments/statuses/{SHA}",
            {"context": AGGREGATE, "description": "no state"},
        )


def test_pr_comment_operations_are_served(prism: str, exchanges: list[Exchange]) -> None:
    """The subset also holds the PR-comment operations plan previews will use, and they validate."""
    api = _publisher(prism).api
    created = api.call("POST", "/repos/octo-org/deployments/issues/7/comments", {"body": "plan: 1 change"})
    updated = api.call("PATCH", "/repos/octo-org/deployments/issues/comments/42", {"body": "plan: 2 changes"})
    listed = api.call("GET", "/repos/octo-org/deployments/issues/7/comments?per_page=100")

    assert (created.status, updated.status, listed.status) == (201, 200, 200)
    assert all(e.response.headers.get("sl-violations") is None for e in exchanges)
    with pytest.raises(PermanentError, match="HTTP 422"):
        api.call("PATCH", "/repos/octo-org/deployments/issues/comments/42", {"text": "no body field"})


def test_plan_comment_requests_pass_githubs_openapi(prism: str, exchanges: list[Exchange]) -> None:
    """The plan commenter's requests are valid: listing (paginated), creating, and editing in place."""
    comments = GitHubPlanComments(_publisher(prism).api, "octo-org/deployments")
    body = f"{MARKER}\n#### ecs-gitops plan for `6dcb09b5b578`\n\n```diff\n~ Service prod/web\n```\n"

    assert comments.upsert(7, body) == CREATED  # GitHub's example comments carry no marker: POST
    comments.update(42, body)

    assert [(e.method, e.url.split("?")[0].removeprefix(prism)) for e in exchanges] == [
        ("GET", "/repos/octo-org/deployments/issues/7/comments"),
        ("POST", "/repos/octo-org/deployments/issues/7/comments"),
        ("PATCH", "/repos/octo-org/deployments/issues/comments/42"),
    ]
    assert exchanges[0].url.endswith("?per_page=100&page=1")
    assert [e.response.status for e in exchanges] == [200, 201, 200]
    assert all(e.response.headers.get("sl-violations") is None for e in exchanges)


def test_token_from_env_or_file_never_shows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The token is read from a named variable or a file at each call, and shows in no repr."""
    monkeypatch.setenv("ECS_GITOPS_TEST_GH_TOKEN", "ghp_from_env")
    (tmp_path / "token").write_text("ghp_from_file\n")
    assert http.Token(env="ECS_GITOPS_TEST_GH_TOKEN").get() == "ghp_from_env"
    assert http.Token(file=str(tmp_path / "token")).get() == "ghp_from_file"

    publisher = GitHubPublisher("o/r", token="ghp_secret", base_url="https://ghe.example.com/api/v3/")
    assert publisher.api.base_url == "https://ghe.example.com/api/v3"
    assert "ghp_secret" not in repr(publisher) + repr(publisher.api) + repr(http.Token(value="ghp_secret"))

    monkeypatch.delenv("ECS_GITOPS_TEST_GH_TOKEN")
    with pytest.raises(PermanentError, match="ECS_GITOPS_TEST_GH_TOKEN is not set"):
        GitHubPublisher("o/r", token_env="ECS_GITOPS_TEST_GH_TOKEN").publish(
            CommitStatus(SHA, AGGREGATE, "success", "ok")
        )
