"""Plans of proposed commits with several accounts: an account that cannot be read makes the plan status
an error naming it, while the comment still shows the other accounts' plan, marked partial."""

from __future__ import annotations

from typing import Any

from agent.aws.accounts import Account, Lane
from agent.manifests.model import Desired
from agent.plan.model import CREATE, AccountRef, Change, Plan
from agent.plan.observed import Observed
from agent.reconcile import PlanResult
from agent.reconcile.previews import Previewer, comment_body
from agent.status.model import CommitStatus

SHA = "a" * 40
PROD = Account("prod", "eu-west-1", ("prod",), "111111111111")
STAGING = Account("staging", "us-east-1", ("staging",), "222222222222")


class _Source:
    def tree(self, sha: str, path: str) -> str:
        return f"tree of {sha}"


class _Outbox:
    def __init__(self) -> None:
        self.sent: list[CommitStatus] = []

    def put(self, status: CommitStatus) -> None:
        self.sent.append(status)

    def flush(self) -> int:
        return len(self.sent)


class _Store(dict[str, Any]):
    def put(self, key: str, value: dict[str, Any]) -> None:
        self[key] = value


def _lane(account: Account) -> Lane:
    return Lane(account, None, None, None, None)  # type: ignore[arg-type]  # only .account is read


def _result(staging_error: str) -> PlanResult:
    web = Change("Service", "prod/web", CREATE, account=AccountRef("prod", "111111111111", "eu-west-1"))
    prod = PlanResult(Plan((web,), SHA), Desired(), Observed(), lane=_lane(PROD))
    staging = PlanResult(Plan((), SHA), Desired(), Observed(), lane=_lane(STAGING), error=staging_error)
    return PlanResult(Plan((web,), SHA), Desired(), Observed(), parts=[prod, staging])


def test_an_unreadable_account_makes_the_plan_status_an_error_and_the_comment_partial() -> None:
    """The status is an error naming the account; the plan of the others is kept and commented."""
    outbox, store = _Outbox(), _Store()
    previewer = Previewer(lambda tree: _result("AssumeRole: AccessDenied"), _Source(), outbox, store)

    preview = previewer.preview("refs/pull/4/head", SHA)

    assert (preview.status.state, preview.status.description) == (
        "error",
        "could not plan account staging (222222222222, us-east-1): AssumeRole: AccessDenied",
    )
    assert outbox.sent == [preview.status]
    assert preview.plan is not None and "Account prod (111111111111, eu-west-1):" in preview.text
    body = comment_body(preview)
    assert "**The plan is partial:** could not plan account staging" in body
    assert "+ Service prod/web (create)" in body
    assert store[f"plan/{SHA}"]["state"] == "error"


def test_every_account_read_gives_a_success() -> None:
    """Without an account error the status is the one-line summary, as with one account."""
    previewer = Previewer(lambda tree: _result(""), _Source(), _Outbox(), _Store())
    preview = previewer.preview("refs/pull/4/head", SHA)
    assert preview.status.state == "success"
    assert "The plan is partial" not in comment_body(preview)
