"""The GitLab publisher, every request checked by FakeGitLab's contract (GitLab's documented fields and its
job state machine; no OpenAPI description of GitLab's v4 API is published on the registries)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.errors import PermanentError, TransientError
from agent.sandbox.gitlab_host import FakeGitLab
from agent.status.gitlab import GitLabPublisher
from agent.status.model import AGGREGATE, CommitStatus, service_context
from agent.status.outbox import Outbox

SHA = "0123456789abcdef0123456789abcdef01234567"
TOKEN = "glpat-test-not-a-real-token"
WEB = service_context("prod", "web")


@pytest.fixture
def gitlab() -> Iterator[FakeGitLab]:
    with FakeGitLab(token=TOKEN) as host:
        yield host
    assert host.violations == [], "every request the publisher made must pass the contract"


def _publisher(host: FakeGitLab, project: str = "42", **kwargs: object) -> GitLabPublisher:
    kwargs.setdefault("token", TOKEN)
    kwargs.setdefault("ref", "main")
    return GitLabPublisher(project, base_url=host.url + "/api/v4", timeout=2, **kwargs)  # type: ignore[arg-type]


def test_a_rollout_goes_pending_running_success_with_changing_text(gitlab: FakeGitLab) -> None:
    """The first in-progress status is pending, the next one running (its text changes), and the end
    success; a running job takes no new text, so none is sent (GitLab would answer 400)."""
    publisher = _publisher(gitlab)
    for text in ("web:5 waiting for the window", "web:5 canary 10%", "web:5 canary 10%: 4m left"):
        publisher.publish(CommitStatus(SHA, WEB, "pending", text))
    publisher.publish(CommitStatus(SHA, WEB, "success", "web:5 serving 100 %"))

    assert [(h["state"], h["description"]) for h in gitlab.history] == [
        ("pending", "web:5 waiting for the window"),
        ("running", "web:5 canary 10%"),
        ("success", "web:5 serving 100 %"),
    ]
    assert gitlab.states(SHA, WEB) == [("success", "web:5 serving 100 %")]
    assert all(h["ref"] == "main" for h in gitlab.history)


def test_a_failed_rollout_ends_failed_and_error_maps_to_failed(gitlab: FakeGitLab) -> None:
    publisher = _publisher(gitlab)
    publisher.publish(CommitStatus(SHA, WEB, "pending", "web:5 rolling out"))
    publisher.publish(CommitStatus(SHA, WEB, "failure", "web:5 rolled back: alarm web-5xx"))
    publisher.publish(CommitStatus(SHA, AGGREGATE, "error", "the agent failed"))
    assert [h["state"] for h in gitlab.history] == ["pending", "failed", "failed"]


def test_a_new_rollout_on_the_same_commit_starts_a_new_job(gitlab: FakeGitLab) -> None:
    """After a finished job the next post starts a new one, as GitLab does."""
    publisher = _publisher(gitlab)
    publisher.publish(CommitStatus(SHA, WEB, "success", "deployed"))
    publisher.publish(CommitStatus(SHA, WEB, "pending", "drift corrected: rolling out"))
    assert gitlab.states(SHA, WEB) == [("success", "deployed"), ("pending", "drift corrected: rolling out")]


def test_after_a_restart_the_transition_answer_counts_as_written(gitlab: FakeGitLab) -> None:
    """A new publisher (a restarted agent) does not know the job is running: GitLab's 400 tells it, and
    its next progress text is not sent."""
    _publisher(gitlab).publish(CommitStatus(SHA, WEB, "pending", "queued"))
    _publisher(gitlab).publish(CommitStatus(SHA, WEB, "pending", "rolling out"))  # pending -> running
    restarted = _publisher(gitlab)
    restarted.publish(CommitStatus(SHA, WEB, "pending", "still rolling out"))  # 400: already running
    restarted.publish(CommitStatus(SHA, WEB, "pending", "nearly done"))  # known running: not sent
    restarted.publish(CommitStatus(SHA, WEB, "success", "done"))
    assert [h["state"] for h in gitlab.history] == ["pending", "running", "success"]
    assert gitlab.states(SHA, WEB) == [("success", "done")]


def test_ref_is_sent_and_a_merge_request_head_uses_its_source_branch(gitlab: FakeGitLab) -> None:
    """Without ref GitLab guesses one (404 for a fork's head); a plan of refs/merge-requests/7/head is
    filed under the merge request's source branch, read once from the API."""
    gitlab.merge_requests[7] = "feature/faster"
    publisher = _publisher(gitlab, ref=None)
    plan = CommitStatus(SHA, "ecs-gitops/plan", "success", "2 to change", ref="refs/merge-requests/7/head")
    publisher.publish(plan)
    publisher.publish(CommitStatus(SHA, "ecs-gitops/plan", "success", "3 to change", ref=plan.ref))
    assert [h["ref"] for h in gitlab.history] == ["feature/faster", "feature/faster"]
    assert sum(1 for m, p, _ in gitlab.requests if m == "GET" and p.endswith("/merge_requests/7")) == 1
    with pytest.raises(PermanentError, match="References for commit"):
        publisher.publish(CommitStatus(SHA, WEB, "pending", "no ref known"))


@pytest.mark.parametrize(
    ("auth", "header", "value"),
    [
        ("private", "PRIVATE-TOKEN", TOKEN),
        ("bearer", "Authorization", f"Bearer {TOKEN}"),
        ("job", "JOB-TOKEN", TOKEN),
    ],
)
def test_each_token_kind_goes_in_its_header(gitlab: FakeGitLab, auth: str, header: str, value: str) -> None:
    _publisher(gitlab, auth=auth).publish(CommitStatus(SHA, AGGREGATE, "success", "ok"))
    assert gitlab.requests[-1][2] == {header: value}


def test_token_file_is_read_at_each_request(gitlab: FakeGitLab, tmp_path: Path) -> None:
    """A wrong token (401) is permanent for this attempt; fixing the file fixes the next one."""
    token_file = tmp_path / "token"
    token_file.write_text("glpat-wrong\n")
    publisher = _publisher(gitlab, token=None, token_file=str(token_file))
    with pytest.raises(PermanentError, match="401") as caught:
        publisher.publish(CommitStatus(SHA, AGGREGATE, "success", "ok"))
    assert "glpat-wrong" not in str(caught.value)
    token_file.write_text(TOKEN + "\n")
    publisher.publish(CommitStatus(SHA, AGGREGATE, "success", "ok"))
    assert gitlab.states(SHA, AGGREGATE) == [("success", "ok")]


def test_project_path_is_url_encoded_and_checked(gitlab: FakeGitLab) -> None:
    publisher = _publisher(gitlab, project="group/project")
    assert publisher.check() == "group/project"
    publisher.publish(CommitStatus(SHA, AGGREGATE, "success", "ok", target_url="https://agent.example/d"))
    assert gitlab.requests[-1][1] == f"/api/v4/projects/group%2Fproject/statuses/{SHA}"
    assert gitlab.jobs[-1]["target_url"] == "https://agent.example/d"


def test_server_error_and_unreachable_host_are_transient(gitlab: FakeGitLab) -> None:
    publisher = _publisher(gitlab)
    gitlab.fail = (502, "Bad Gateway")
    with pytest.raises(TransientError):
        publisher.publish(CommitStatus(SHA, AGGREGATE, "success", "ok"))
    gitlab.fail = (429, "Retry later")
    with pytest.raises(TransientError):
        publisher.publish(CommitStatus(SHA, AGGREGATE, "success", "ok"))
    gitlab.fail = None
    gitlab.kill()
    with pytest.raises(TransientError):
        publisher.publish(CommitStatus(SHA, AGGREGATE, "success", "ok"))
    gitlab.revive()
    publisher.publish(CommitStatus(SHA, AGGREGATE, "success", "ok"))


def test_read_maps_every_gitlab_state_and_pages(gitlab: FakeGitLab) -> None:
    """Reading lists the latest job per name over every page, in our vocabulary (GitLab's waiting states
    are pending, not error)."""
    publisher = _publisher(gitlab)
    for i in range(120):
        publisher.publish(CommitStatus(SHA, f"ecs-gitops/prod/svc{i}", "success", f"svc{i} deployed"))
    publisher.publish(CommitStatus(SHA, WEB, "pending", "rolling out"))
    publisher.publish(CommitStatus(SHA, AGGREGATE, "failure", "web failed"))
    for state in ("waiting_for_resource", "manual", "scheduled", "preparing", "created"):
        gitlab.jobs.append({**gitlab.jobs[0], "id": 9000 + len(gitlab.jobs), "name": state, "status": state})
    statuses = publisher.read(SHA)
    assert len(statuses) == 122 + 5
    assert statuses[WEB]["state"] == "pending" and statuses[AGGREGATE]["state"] == "failure"
    assert statuses["ecs-gitops/prod/svc119"]["description"] == "svc119 deployed"
    assert {
        statuses[s]["state"] for s in ("waiting_for_resource", "manual", "scheduled", "preparing", "created")
    } == {"pending"}


def test_the_outbox_retries_a_down_gitlab_and_sends_the_newest_once(gitlab: FakeGitLab) -> None:
    """GitLab down for a whole rollout: once back, only the newest status per name goes out, once."""
    now = [1000.0]
    outbox = Outbox(_publisher(gitlab), lambda: now[0])
    gitlab.kill()
    for text in ("queued", "canary 10%", "canary 10%: 2m left"):
        outbox.put(CommitStatus(SHA, WEB, "pending", text))
        outbox.flush()
        now[0] += 60
    outbox.put(CommitStatus(SHA, WEB, "success", "serving 100 %"))
    outbox.flush()
    assert outbox.undelivered_for() is not None and outbox.failures == {("gitlab", "unreachable"): 4}
    gitlab.revive()
    now[0] += 600
    assert outbox.flush() == 1 and outbox.pending() == []
    assert [(h["state"], h["description"]) for h in gitlab.history] == [("success", "serving 100 %")]
