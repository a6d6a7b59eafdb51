"""`apply` and `plan --publish` exit 3 and say so on stdout when a commit status could not be written."""

from __future__ import annotations

import argparse
from types import SimpleNamespace
from typing import Any

import pytest

from agent import cli
from agent.errors import PermanentError
from agent.status.model import CommitStatus
from agent.status.outbox import Outbox

SHA = "d" * 40


class Refusing:
    name = "github"

    def publish(self, status: CommitStatus) -> None:
        error = PermanentError("token environment variable GITHUB_TOKEN is not set")
        error.reason = "token"  # type: ignore[attr-defined]
        raise error

    def read(self, sha: str) -> dict[str, dict]:
        return {}


def _agent(publisher: Any) -> Any:
    outbox = Outbox(publisher, clock=lambda: 0.0)
    status = CommitStatus(SHA, "ecs-gitops", "success", "1 services deployed")
    outbox.put(status)
    outbox.flush()
    result = SimpleNamespace(
        sha=SHA, outcome="applied", statuses={"ecs-gitops": status}, wake_at=None, problems=[]
    )
    lease = SimpleNamespace(holder=lambda: None, owner="me")
    source = SimpleNamespace(fetch=lambda: None)
    reconciler = SimpleNamespace(tick=lambda tree, sha: result)
    return SimpleNamespace(
        tick=lambda ref=None: result,
        lease=lease,
        leading=True,
        outbox=outbox,
        source=source,
        reconciler=reconciler,
    )


def test_apply_exits_3_when_a_status_was_not_delivered(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("time.sleep", lambda s: None)
    code = cli._apply(_agent(Refusing()), argparse.Namespace(ref=None, wait=False))
    out = capsys.readouterr().out
    assert code == cli.EXIT_UNDELIVERED == 3
    assert "not delivered: 1 commit status(es) (token)" in out


def test_apply_exits_0_when_every_status_was_delivered(monkeypatch: pytest.MonkeyPatch) -> None:
    class Accepting(Refusing):
        def publish(self, status: CommitStatus) -> None:
            pass

    monkeypatch.setattr("time.sleep", lambda s: None)
    assert cli._apply(_agent(Accepting()), argparse.Namespace(ref=None, wait=False)) == cli.EXIT_OK
