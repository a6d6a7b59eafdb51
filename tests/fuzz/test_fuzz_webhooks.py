"""Property-based fuzzing of the webhook endpoints: whatever headers and body arrive, a request is answered
200, 401 or 403 (never an exception), and a tick is triggered only by a push to the tracked branch that
carries the right GitHub signature or GitLab token."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from email.message import Message

from hypothesis import given
from hypothesis import strategies as st

from agent.http.metrics import Metrics
from agent.http.server import Endpoints, Readiness, github_signature

SECRET = "fuzz-secret"
BRANCH = "main"
header_text = st.text(st.characters(min_codepoint=32, max_codepoint=255), max_size=80)
bodies = st.one_of(
    st.binary(max_size=300),
    st.fixed_dictionaries(
        {"ref": st.sampled_from(["refs/heads/main", "refs/heads/other", "refs/tags/main", "main", ""])},
        optional={"after": st.text(max_size=10), "zen": st.integers()},
    ).map(lambda d: json.dumps(d).encode()),
)


def _endpoints(triggered: list[int], secret: str | None = SECRET) -> Endpoints:
    return Endpoints(
        Readiness(60, lambda: datetime.now(UTC)),
        Metrics(),
        trigger=lambda: triggered.append(1),
        secret=lambda: secret,
        branch=BRANCH,
    )


def _headers(values: dict[str, str]) -> Message:
    headers = Message()
    for name, value in values.items():
        headers[name] = value
    return headers


@st.composite
def requests(draw: st.DrawFn) -> tuple[str, bytes, dict[str, str], bool]:
    """(provider, body, headers, correctly signed): signatures right, near or absent, events of any kind."""
    provider = draw(st.sampled_from(["github", "gitlab"]))
    body = draw(bodies)
    signed = draw(st.sampled_from(["right", "other-body", "other-secret", "garbage", "none"]))
    headers: dict[str, str] = {}
    if provider == "github":
        headers["X-GitHub-Event"] = draw(st.one_of(st.just("push"), header_text))
        signature = {
            "right": github_signature(SECRET, body),
            "other-body": github_signature(SECRET, body + b" "),
            "other-secret": github_signature(SECRET + "x", body),
            "garbage": draw(header_text),
        }.get(signed)
        if signature is not None:
            headers["X-Hub-Signature-256"] = signature
        headers["Content-Type"] = draw(
            st.sampled_from(["application/json", "application/x-www-form-urlencoded"])
        )
    else:
        headers["X-Gitlab-Event"] = draw(st.one_of(st.just("Push Hook"), header_text))
        token = {"right": SECRET, "other-body": SECRET[:-1], "other-secret": SECRET + "x"}.get(
            signed, draw(header_text) if signed == "garbage" else None
        )
        if token is not None:
            headers["X-Gitlab-Token"] = token
    return (
        provider,
        body,
        headers,
        signed == "right" or (signed == "garbage" and headers.get("X-Gitlab-Token") == SECRET),
    )


@given(request=requests())
def test_only_a_signed_push_to_the_branch_triggers(request: tuple[str, bytes, dict[str, str], bool]) -> None:
    """A wrong or missing signature is 401 and triggers nothing; a right one is 200 and triggers exactly
    when the event is a push whose ref is the tracked branch (or unreadable, to be safe)."""
    provider, body, headers, signed = request
    triggered: list[int] = []
    response = _endpoints(triggered).webhook(provider, _headers(headers), body)
    if not signed:
        assert response.status == 401 and triggered == []
        return
    assert response.status == 200
    answer = json.loads(response.body)
    assert answer["triggered"] is bool(triggered)
    event = headers.get("X-GitHub-Event") or headers.get("X-Gitlab-Event")
    if event not in ("push", "Push Hook"):
        assert triggered == []
        return
    try:
        data = json.loads(body or b"{}")
    except ValueError:
        data = None
    ref = data.get("ref") if isinstance(data, dict) else None
    assert bool(triggered) == (not isinstance(ref, str) or ref == f"refs/heads/{BRANCH}"), (ref, answer)


@given(request=requests())
def test_without_a_secret_nothing_triggers(request: tuple[str, bytes, dict[str, str], bool]) -> None:
    """While no secret is configured every webhook is 403, signed or not."""
    provider, body, headers, _ = request
    triggered: list[int] = []
    assert _endpoints(triggered, secret=None).webhook(provider, _headers(headers), body).status == 403
    assert triggered == []


@given(
    deliveries=st.lists(st.one_of(st.none(), st.sampled_from(["a", "b", "c"]), header_text), max_size=40),
    provider=st.sampled_from(["github", "gitlab"]),
)
def test_each_delivery_id_triggers_once(deliveries: list[str | None], provider: str) -> None:
    """Signed pushes to the branch, with delivery IDs that repeat: each ID triggers the first time only (a
    push without an ID always does), and the IDs kept never exceed the bound."""
    triggered: list[int] = []
    endpoints = _endpoints(triggered)
    endpoints.deliveries.size = 16
    header = "X-GitHub-Delivery" if provider == "github" else "X-Gitlab-Event-UUID"
    body = json.dumps({"ref": f"refs/heads/{BRANCH}"}).encode()
    expected, seen = 0, []
    for delivery in deliveries:
        headers = (
            {"X-GitHub-Event": "push", "X-Hub-Signature-256": github_signature(SECRET, body)}
            if provider == "github"
            else {"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": SECRET}
        )
        if delivery is not None:
            headers[header] = delivery
        message = _headers(headers)
        given_id = message.get(header)
        if not given_id or given_id not in seen[-16:]:
            expected += 1
        if given_id:
            if given_id in seen:
                seen.remove(given_id)
            seen.append(given_id)
        assert endpoints.webhook(provider, message, body).status == 200
        assert len(endpoints.deliveries) <= 16
    assert len(triggered) == expected
