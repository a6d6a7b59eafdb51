"""The agent's IAM policy (manifests-example/agent/iam-policy.json) grants exactly what the agent calls.

``agent.aws.clients.OPERATIONS_CALLED`` records every operation the agent's own AWS clients performed in
this test session (the tests' setup calls go through other clients and are not in it); the
``operations_called`` fixture (tests/conftest.py) adds the other workers' records under pytest-xdist.
tests/conftest.py runs this module last. Some permissions are checked by AWS during another call instead
of being calls themselves (``iam:PassRole`` when a task definition names roles); IMPLIED lists them.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent.manifests import load_desired
from agent.manifests.tree import DirTree

POLICY = Path(__file__).resolve().parents[1] / "manifests-example" / "agent" / "iam-policy.json"

# botocore service name -> IAM action prefix, where they differ or are not obvious.
PREFIX = {
    "ecs": "ecs",
    "ec2": "ec2",
    "elbv2": "elasticloadbalancing",
    "iam": "iam",
    "cloudwatch": "cloudwatch",
    "autoscaling": "autoscaling",
    "lambda": "lambda",
    "dynamodb": "dynamodb",
    "sts": "sts",
}

# API operations whose IAM action has another name.
ACTION_OF = {"lambda:Invoke": "lambda:InvokeFunction"}

# Permissions AWS checks inside another call: granted when that call is made, never called themselves.
IMPLIED = {
    # Task definitions name a task role and an execution role; services name an infrastructure role.
    "ecs:RegisterTaskDefinition": {"iam:PassRole"},
    "ecs:CreateService": {"iam:PassRole"},
    "ecs:UpdateService": {"iam:PassRole"},
    # Managed Instances providers name an infrastructure role and an instance profile.
    "ecs:CreateCapacityProvider": {"iam:PassRole"},
    "ecs:UpdateCapacityProvider": {"iam:PassRole"},
}

# Operations that are no IAM action of their own: AWS authorises each of their parts instead. The state
# store's transactions (agent/store/dynamodb.py) are a ConditionCheck on the lease plus an Update or a Delete.
AUTHORISED_AS = {
    "dynamodb:TransactWriteItems": {
        "dynamodb:ConditionCheckItem",
        "dynamodb:UpdateItem",
        "dynamodb:DeleteItem",
    },
}


def _policy_actions() -> set[str]:
    document = json.loads(POLICY.read_text())
    actions: set[str] = set()
    for statement in document["Statement"]:
        assert statement["Effect"] == "Allow", statement
        listed = statement["Action"]
        actions.update([listed] if isinstance(listed, str) else listed)
    return actions


def _called(operations: set[str]) -> set[str]:
    out = set()
    for key in operations:
        service, operation = key.split(".", 1)
        assert service in PREFIX, f"add the IAM prefix of {service!r} to PREFIX"
        action = f"{PREFIX[service]}:{operation}"
        action = ACTION_OF.get(action, action)
        out.update(AUTHORISED_AS.get(action, {action}))
    return out


def test_the_policy_is_a_valid_document_without_wildcard_actions() -> None:
    """The policy is IAM JSON (Version 2012-10-17, Allow statements with Sids) naming each action, no '*'."""
    document = json.loads(POLICY.read_text())
    assert document["Version"] == "2012-10-17"
    sids = [s["Sid"] for s in document["Statement"]]
    assert len(sids) == len(set(sids))
    assert all("*" not in action for action in _policy_actions())
    assert all(":" in action for action in _policy_actions())


def test_the_policy_is_not_a_manifest() -> None:
    """The loader skips the policy silently: manifests-example loads with no warning about it."""
    desired = load_desired(DirTree(POLICY.parents[1]))
    assert not [w for w in desired.warnings if "iam-policy" in str(w)]


def test_every_operation_the_agent_called_is_allowed(operations_called: set[str]) -> None:
    """Each AWS operation the agent performed during the tests, and what AWS checks with it, is allowed."""
    called = _called(operations_called)
    needed = called | {p for action in called for p in IMPLIED.get(action, ())}
    missing = sorted(needed - _policy_actions())
    assert not missing, f"the agent called these, but {POLICY.name} does not allow them: {missing}"


def test_every_allowed_action_was_used(whole_suite: bool, operations_called: set[str]) -> None:
    """No action in the policy goes unused by the whole suite (least privilege)."""
    if not whole_suite:
        reason = "only part of the suite ran: unused actions can only be judged after the whole suite"
        print(f"skipped: {reason}")
        pytest.skip(reason)
    called = _called(operations_called)
    used = called | {p for action in called for p in IMPLIED.get(action, ())}
    unused = sorted(_policy_actions() - used)
    assert not unused, f"{POLICY.name} allows actions the agent never called in the suite: {unused}"
