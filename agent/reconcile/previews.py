"""Plans for proposed commits: pull-request (merge-request) heads are planned, never applied.

Read top to bottom, for each ref of ``source.planRefs`` whose head was not planned yet:
fetch (``GitSource.fetch_refs``) -> load + validate + observe + plan, exactly as a tick does but stopping
there -> the commit status ``ecs-gitops/plan`` on that head -> optionally the rendered plan as the one
comment of its pull request, edited in place -> remember the head (``plan/<sha>`` in the state store), so
each head is planned once.

The status is ``success`` with the plan in one line ("3 services change: web image v1→v2, …") when the
manifests are valid, ``failure`` naming the first problem (file and JSON pointer) when they are not, so
a branch protection rule requiring ``ecs-gitops/plan`` keeps invalid manifests out of the branch the agent
deploys, and ``error`` when the plan could not be made for a reason of the agent's (an AWS permission,
say). A transient error (git, AWS or the Git host unreachable) leaves the head unplanned for the next
tick. ``ecs-gitops plan --publish --ref REV`` runs the same code for one ref.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import structlog

from agent.errors import InvalidInput, PermanentError, Problem, TransientError
from agent.manifests.tree import Tree
from agent.plan.model import Plan
from agent.plan.render import render_text
from agent.plan.summary import describe
from agent.reconcile.results import PlanResult
from agent.status.comments import MARKER, PlanComments, request_number
from agent.status.model import CommitStatus, truncate

log = structlog.get_logger()

PLAN_CONTEXT = "ecs-gitops/plan"


@dataclass
class Preview:
    """What planning one proposed commit gave: its status, and the plan or the problems."""

    ref: str
    sha: str
    status: CommitStatus
    plan: Plan | None = None
    problems: list[Problem] = field(default_factory=list)
    comment: str | None = None  # created / updated / unchanged, when a comment was written

    @property
    def text(self) -> str:
        """The plan as ``ecs-gitops plan`` prints it, or the problems one per line."""
        if self.plan is not None:
            return render_text(self.plan)
        errors = [p for p in self.problems if p.severity == "error"] or self.problems
        return "".join(f"{p}\n" for p in errors) or f"{self.status.description}\n"


class Previewer:
    """Plans proposed commits and reports on them; holds nothing but its collaborators."""

    def __init__(
        self,
        plan: Callable[[Tree], PlanResult],
        source: Any,
        outbox: Any,
        store: Any,
        comments: PlanComments | None = None,
        path: str = "",
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.plan = plan
        self.source = source
        self.outbox = outbox
        self.store = store
        self.comments = comments
        self.path = path
        self.clock = clock  # wall time for the status (the outbox's clock is monotonic)

    def run(self, patterns: Sequence[str]) -> list[Preview]:
        """Plan every head of the refs matching ``patterns`` that was not planned yet."""
        if not patterns:
            return []
        done = []
        for ref, sha in sorted(self.source.fetch_refs(patterns).items()):
            if self.store.get(_key(sha)) is not None:
                continue
            try:
                done.append(self.preview(ref, sha))
            except TransientError as e:  # the next tick tries again
                log.warning("plan.preview_retry", ref=ref, sha=sha[:12], error=str(e))
        return done

    def preview(self, ref: str, sha: str, number: int | None = None) -> Preview:
        """Plan ``sha`` (the head of ``ref``), publish ``ecs-gitops/plan`` and the comment; remember it.

        ``number`` is the pull/merge request to comment on (default: read from ``ref``).
        """
        preview = self._plan(ref, sha)
        log.info(
            "plan.previewed",
            ref=ref,
            sha=sha[:12],
            state=preview.status.state,
            description=preview.status.description,
        )
        preview.status = replace(preview.status.stamped(self.clock()), ref=ref)  # GitLab files it by ref
        self.outbox.put(preview.status)
        self.outbox.flush()
        number = number if number is not None else request_number(ref)
        if self.comments is not None and number is not None:
            try:
                preview.comment = self.comments.upsert(number, comment_body(preview))
            except PermanentError as e:  # a token that may not comment: the status still went out
                log.error("plan.comment_failed", ref=ref, number=number, error=str(e))
        self.store.put(
            _key(sha), {"ref": ref, "state": preview.status.state, "description": preview.status.description}
        )
        return preview

    def _plan(self, ref: str, sha: str) -> Preview:
        try:
            result = self.plan(self.source.tree(sha, self.path))
        except InvalidInput as e:
            errors = [p for p in e.problems if p.severity == "error"]
            first = errors[0] if errors else Problem("", "", "invalid manifests")
            more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
            status = CommitStatus(sha, PLAN_CONTEXT, "failure", truncate(f"invalid: {first}{more}"))
            return Preview(ref, sha, status, problems=list(e.problems))
        except TransientError:
            raise
        except PermanentError as e:
            status = CommitStatus(sha, PLAN_CONTEXT, "error", truncate(f"could not plan: {e}"))
            return Preview(ref, sha, status)
        if result.errors:  # an account that could not be read (accounts): the plan of the others is partial
            more = f" (+{len(result.errors) - 1} more)" if len(result.errors) > 1 else ""
            description = truncate(f"could not plan account {result.errors[0]}{more}")
            return Preview(ref, sha, CommitStatus(sha, PLAN_CONTEXT, "error", description), plan=result.plan)
        status = CommitStatus(sha, PLAN_CONTEXT, "success", truncate(describe(result.plan)))
        return Preview(ref, sha, status, plan=result.plan)


def comment_body(preview: Preview) -> str:
    """The comment: the marker, a heading, the one-line summary, the plan (or the problems)."""
    head = f"{MARKER}\n#### ecs-gitops plan for `{preview.sha[:12]}` ({preview.ref})\n\n"
    if preview.plan is None and preview.status.state == "failure":
        return (
            f"{head}**Invalid manifests: nothing can be deployed from this commit.**\n\n"
            f"```text\n{preview.text}```\n"
        )
    if preview.plan is None:
        return f"{head}**The plan could not be made:** {preview.status.description}\n"
    if preview.status.state == "error":  # some accounts could not be read: what follows is partial
        return f"{head}**The plan is partial:** {preview.status.description}\n\n```diff\n{preview.text}```\n"
    return (
        f"{head}**{describe(preview.plan)}**\n\n```diff\n{preview.text}```\n\n"
        "Planned against ECS as it is now; nothing is applied until this is merged.\n"
    )


def _key(sha: str) -> str:
    return f"plan/{sha}"
