"""The GitLab publisher speaks REST v4 as documented, checked by a loopback server, and types failures."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from agent.errors import PermanentError, TransientError
from agent.status.gitlab import GitLabPublisher
from agent.status.model import CommitStatus, service_context

SHA = "0123456789abcdef0123456789abcdef01234567"
TOKEN = "glpat-test-not-a-real-token"
DOCUMENTED_FIELDS = {
    "state",
    "ref",
    "name",
    "context",
    "target_url",
    "description",
    "coverage",
    "pipeline_id",
}


class GitLab(BaseHTTPRequestHandler):
    """Answers like GitLab, after checking the request the way the API documentation describes it."""

    answer: tuple[int, Any] = (201, None)
    received: list[dict[str, Any]]

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.received.append({"path": self.path, "headers": dict(self.headers), "body": body})  # type: ignore[attr-defined]
        problems = []
        if self.path not in (
            f"/api/v4/projects/42/statuses/{SHA}",
            f"/api/v4/projects/group%2Fproject/statuses/{SHA}",
        ):
            problems.append(f"unexpected path {self.path}")
        if self.headers.get("PRIVATE-TOKEN") != TOKEN:
            self._send(401, {"message": "401 Unauthorized"})
            return
        if set(body) - DOCUMENTED_FIELDS:
            problems.append(f"undocumented fields {sorted(set(body) - DOCUMENTED_FIELDS)}")
        if body.get("state") not in ("pending", "running", "success", "failed", "canceled"):
            problems.append(f"bad state {body.get('state')!r}")
        if problems:
            self._send(400, {"message": "; ".join(problems)})
            return
        status, payload = self.server.answer  # type: ignore[attr-defined]
        if payload is None:
            payload = {
                "id": 93,
                "sha": SHA,
                "ref": "main",
                "status": body["state"],
                "name": body.get("name"),
                "target_url": body.get("target_url"),
                "description": body.get("description"),
                "created_at": "2024-05-01T12:00:00.000Z",
                "allow_failure": False,
            }
        self._send(status, payload)

    def do_GET(self) -> None:
        self.server.received.append({"path": self.path, "headers": dict(self.headers)})  # type: ignore[attr-defined]
        self._send(
            200,
            [
                {
                    "status": "running",
                    "name": "ecs-gitops/prod/web",
                    "description": "rolling out",
                    "target_url": None,
                    "created_at": "2024-05-01T12:00:00.000Z",
                    "finished_at": None,
                },
                {
                    "status": "failed",
                    "name": "ecs-gitops",
                    "description": "web failed",
                    "target_url": "https://x",
                    "created_at": "2024-05-01T12:00:00.000Z",
                    "finished_at": "2024-05-01T12:03:00.000Z",
                },
            ],
        )

    def _send(self, status: int, payload: Any) -> None:
        raw = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def running_server() -> Iterator[ThreadingHTTPServer]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), GitLab)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()
    thread.join()


@pytest.fixture
def server(running_server: ThreadingHTTPServer) -> ThreadingHTTPServer:
    running_server.received = []  # type: ignore[attr-defined]
    running_server.answer = (201, None)  # type: ignore[attr-defined]
    return running_server


def _publisher(server: ThreadingHTTPServer, project: str = "42", token: str = TOKEN) -> GitLabPublisher:
    return GitLabPublisher(project, token=token, base_url=f"http://127.0.0.1:{server.server_port}", timeout=5)


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        ("pending", "pending"),
        ("success", "success"),
        ("failure", "failed"),
        ("error", "failed"),
    ],
)
def test_status_is_posted_as_documented(server: ThreadingHTTPServer, ours: str, theirs: str) -> None:
    """Method, path, PRIVATE-TOKEN and the documented fields are what GitLab expects; states are mapped."""
    status = CommitStatus(SHA, service_context("prod", "web"), ours, "rolled out", "https://ci.example/7")
    _publisher(server).publish(status)

    (request,) = server.received  # type: ignore[attr-defined]
    assert request["body"] == {
        "state": theirs,
        "name": "ecs-gitops/prod/web",
        "description": "rolled out",
        "target_url": "https://ci.example/7",
    }


def test_project_path_is_url_encoded(server: ThreadingHTTPServer) -> None:
    """A project given as group/project is sent as group%2Fproject."""
    _publisher(server, project="group/project").publish(CommitStatus(SHA, "ecs-gitops", "success", "ok"))
    assert server.received[0]["path"] == f"/api/v4/projects/group%2Fproject/statuses/{SHA}"  # type: ignore[attr-defined]


def test_server_error_is_transient(server: ThreadingHTTPServer) -> None:
    """A 500 from GitLab raises TransientError."""
    server.answer = (500, {"message": "500 Internal Server Error"})  # type: ignore[attr-defined]
    with pytest.raises(TransientError, match="HTTP 500"):
        _publisher(server).publish(CommitStatus(SHA, "ecs-gitops", "success", "ok"))


def test_bad_token_is_permanent_and_never_shown(server: ThreadingHTTPServer) -> None:
    """A 401 raises PermanentError whose message does not contain the token."""
    with pytest.raises(PermanentError, match="HTTP 401") as excinfo:
        _publisher(server, token="glpat-wrong").publish(CommitStatus(SHA, "ecs-gitops", "success", "ok"))
    assert "glpat-wrong" not in str(excinfo.value)


def test_same_state_again_counts_as_written(server: ThreadingHTTPServer) -> None:
    """GitLab's 400 "Cannot transition status" for a repeated state is not an error."""
    server.answer = (400, {"message": "Cannot transition status via :enqueue from :pending"})  # type: ignore[attr-defined]
    _publisher(server).publish(CommitStatus(SHA, "ecs-gitops", "pending", "waiting"))


def test_unreachable_host_is_transient() -> None:
    """A refused connection raises TransientError."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), GitLab)
    port = httpd.server_port
    httpd.server_close()
    publisher = GitLabPublisher("42", token=TOKEN, base_url=f"http://127.0.0.1:{port}", timeout=2)
    with pytest.raises(TransientError):
        publisher.publish(CommitStatus(SHA, "ecs-gitops", "success", "ok"))


def test_read_maps_states_back(server: ThreadingHTTPServer) -> None:
    """Reading lists the latest status per name in our vocabulary."""
    statuses = _publisher(server).read(SHA)
    assert server.received[0]["path"] == f"/api/v4/projects/42/repository/commits/{SHA}/statuses?per_page=100"  # type: ignore[attr-defined]
    assert statuses == {
        "ecs-gitops/prod/web": {
            "state": "pending",
            "description": "rolling out",
            "updatedAt": "2024-05-01T12:00:00.000Z",
            "targetUrl": None,
        },
        "ecs-gitops": {
            "state": "failure",
            "description": "web failed",
            "updatedAt": "2024-05-01T12:03:00.000Z",
            "targetUrl": "https://x",
        },
    }
