"""Plan comments: one per pull or merge request, found by its marker and edited in place, never twice."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from agent.errors import PermanentError
from agent.sandbox.git_hosts import FakeGitHub
from agent.status import http
from agent.status.comments import (
    CREATED,
    MARKER,
    UNCHANGED,
    UPDATED,
    GitHubPlanComments,
    GitLabPlanComments,
    fit,
    request_number,
)
from agent.status.github import GitHubApi
from agent.status.gitlab import GitLabPublisher

TOKEN = "glpat-test-not-a-real-token"


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    with FakeGitHub() as fake:
        yield fake


def _github_comments(fake: FakeGitHub, token: str | None = None) -> GitHubPlanComments:
    api = GitHubApi(http.Token(value=token or fake.token), fake.url, timeout=5)
    return GitHubPlanComments(api, fake.repository)


def test_two_plans_make_one_comment_edited_in_place(github: FakeGitHub) -> None:
    """The first plan creates the comment; the next edits it; the same plan again writes nothing."""
    comments = _github_comments(github)
    github.comments[7] = [{"id": 1, "body": "LGTM"}]
    assert comments.upsert(7, f"{MARKER}\nplan one") == CREATED
    assert comments.upsert(7, f"{MARKER}\nplan two") == UPDATED
    assert comments.upsert(7, f"{MARKER}\nplan two") == UNCHANGED
    assert [c["body"] for c in github.comments[7]] == ["LGTM", f"{MARKER}\nplan two"]
    writes = [r for r in github.requests if r[0] != "GET"]
    assert writes == [
        ("POST", "/repos/acme/deployments/issues/7/comments"),
        ("PATCH", f"/repos/acme/deployments/issues/comments/{github.comments[7][1]['id']}"),
    ]


def test_the_marker_is_found_on_a_later_page(github: FakeGitHub) -> None:
    """A busy pull request: the plan comment after 150 others is still found, not duplicated."""
    github.comments[9] = [{"id": i, "body": f"comment {i}"} for i in range(150)]
    github.comments[9].append({"id": 999, "body": f"{MARKER}\nold plan"})
    assert _github_comments(github).upsert(9, f"{MARKER}\nnew plan") == UPDATED
    assert len(github.comments[9]) == 151 and github.comments[9][-1]["body"] == f"{MARKER}\nnew plan"
    assert ("GET", "/repos/acme/deployments/issues/9/comments") in github.requests


def test_a_token_that_may_not_comment_is_permanent(github: FakeGitHub) -> None:
    """A refused token is a PermanentError (retrying cannot help), and the token is not in the message."""
    with pytest.raises(PermanentError, match="HTTP 401") as caught:
        _github_comments(github, token="ghp_wrong").upsert(7, f"{MARKER}\nplan")
    assert "ghp_wrong" not in str(caught.value)


class GitLab(BaseHTTPRequestHandler):
    """Merge-request notes as GitLab's REST v4 documents them, for project 42."""

    def _serve(self) -> None:
        server: Any = self.server
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length)) if length else {}
        server.requests.append((self.command, self.path.split("?")[0]))
        status, answer = 404, {"message": "404 Not found"}
        if self.headers.get("PRIVATE-TOKEN") != TOKEN:
            status, answer = 401, {"message": "401 Unauthorized"}
        elif m := re.fullmatch(r"/api/v4/projects/42/merge_requests/(\d+)/notes(\?.*)?", self.path):
            notes = server.notes.setdefault(int(m.group(1)), [])
            if self.command == "GET":
                status, answer = 200, notes
            elif self.command == "POST" and set(body) == {"body"}:
                notes.append({"id": 500 + len(notes), "body": body["body"], "system": False})
                status, answer = 201, notes[-1]
        elif m := re.fullmatch(r"/api/v4/projects/42/merge_requests/(\d+)/notes/(\d+)", self.path):
            for note in server.notes.get(int(m.group(1)), []):
                if note["id"] == int(m.group(2)) and self.command == "PUT" and set(body) == {"body"}:
                    note["body"] = body["body"]
                    status, answer = 200, note
        data = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = _serve

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def gitlab() -> Iterator[Any]:
    server: Any = ThreadingHTTPServer(("127.0.0.1", 0), GitLab)
    server.notes, server.requests = {}, []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_gitlab_merge_request_note_is_edited_in_place(gitlab: Any) -> None:
    """GitLab: the note is created once (POST), then edited (PUT) under the same id."""
    project = GitLabPublisher(42, token=TOKEN, base_url=f"http://127.0.0.1:{gitlab.server_address[1]}/api/v4")
    comments = GitLabPlanComments(project)
    gitlab.notes[3] = [{"id": 1, "body": "approved", "system": True}]
    assert comments.upsert(3, f"{MARKER}\nplan one") == CREATED
    assert comments.upsert(3, f"{MARKER}\nplan two") == UPDATED
    assert [n["body"] for n in gitlab.notes[3]] == ["approved", f"{MARKER}\nplan two"]
    assert [r for r in gitlab.requests if r[0] != "GET"] == [
        ("POST", "/api/v4/projects/42/merge_requests/3/notes"),
        ("PUT", "/api/v4/projects/42/merge_requests/3/notes/501"),
    ]


@pytest.mark.parametrize(
    ("ref", "number"),
    [
        ("refs/pull/7/head", 7),
        ("refs/pull/12/merge", 12),
        ("refs/merge-requests/3/head", 3),
        ("refs/heads/main", None),
        ("abc123", None),
    ],
)
def test_request_number_from_ref(ref: str, number: int | None) -> None:
    """Pull and merge request refs name their number; branches and shas name none."""
    assert request_number(ref) == number


def test_a_long_plan_is_cut_on_a_line_and_its_fence_closed() -> None:
    """A body over the limit keeps whole lines, says it was cut, and closes the code block."""
    body = f"{MARKER}\n```diff\n" + "".join(f"~ line {i}\n" for i in range(10_000)) + "```\n"
    cut = fit(body, 2000)
    assert len(cut) <= 2000 and cut.startswith(MARKER)
    assert cut.endswith("```\n") and "(cut: the whole plan is in `ecs-gitops plan --ref <sha>`)" in cut
    assert fit("short") == "short"
