"""The log publisher writes one structured event per status and reads back the latest per context."""

from __future__ import annotations

from structlog.testing import capture_logs

from agent.status.log import LogPublisher
from agent.status.model import AGGREGATE, CommitStatus, Publisher, service_context

SHA = "b" * 40


def test_each_status_is_one_event_and_read_returns_the_latest() -> None:
    """Publishing logs status.published with sha, context, state and description; read keeps the newest."""
    publisher = LogPublisher()
    assert isinstance(publisher, Publisher)
    web = service_context("prod", "web")

    with capture_logs() as logs:
        publisher.publish(CommitStatus(SHA, web, "pending", "rolling out"))
        publisher.publish(CommitStatus(SHA, web, "success", "rolled out", updated_at="2024-05-01T12:00:00Z"))
        publisher.publish(CommitStatus(SHA, AGGREGATE, "success", "1 service rolled out"))

    assert logs[0] == {
        "event": "status.published",
        "log_level": "info",
        "sha": SHA,
        "context": web,
        "state": "pending",
        "description": "rolling out",
    }
    assert len(logs) == 3
    assert publisher.read(SHA)[web] == {
        "state": "success",
        "description": "rolled out",
        "updatedAt": "2024-05-01T12:00:00Z",
        "targetUrl": None,
    }
    assert set(publisher.read(SHA)) == {web, AGGREGATE}
    assert publisher.read("c" * 40) == {}


def test_descriptions_are_cut_to_140_characters() -> None:
    """A long description is cut to 140 characters ending with an ellipsis; a short one is kept."""
    status = CommitStatus(SHA, AGGREGATE, "failure", "x" * 300)
    assert len(status.description) == 140 and status.description.endswith("…")
    assert CommitStatus(SHA, AGGREGATE, "failure", "y" * 140).description == "y" * 140
