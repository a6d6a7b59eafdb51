"""deploy/bootstrap.yaml, the one-command install on ECS: cfn-lint finds nothing, and the task role's
statements are the generated policy's (agent/aws/policy.py) for one whole cluster: the same Sids with the
same actions, ``*`` only where the generated policy has it, and the names of manifests-example's agent
(roles, secret, log group) made by a stack named ecs-gitops."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from agent.aws.policy import agent_policy
from agent.config import load_config
from agent.manifests import load_desired
from agent.manifests.tree import DirTree

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "deploy" / "bootstrap.yaml"
EXAMPLE = ROOT / "manifests-example"


class _Loader(yaml.SafeLoader):
    """YAML with CloudFormation's short tags (!Sub, !Ref, ...) read as {"Fn::Sub": ...} and the like."""


def _tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    name = "Ref" if suffix == "Ref" else f"Fn::{suffix}"
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
        if suffix == "GetAtt":
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {name: value}


_Loader.add_multi_constructor("!", _tag)


def _template() -> dict[str, Any]:
    return dict(yaml.load(TEMPLATE.read_text(), Loader=_Loader))  # a SafeLoader subclass


def _task_role_statements() -> list[dict[str, Any]]:
    (policy,) = _template()["Resources"]["TaskRole"]["Properties"]["Policies"]
    out = []
    for statement in policy["PolicyDocument"]["Statement"]:
        if "Fn::If" in statement:  # [condition, statement, AWS::NoValue]
            statement = statement["Fn::If"][1]
        out.append(statement)
    return out


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def test_cfn_lint_finds_nothing() -> None:
    """cfn-lint (the CloudFormation linter) passes the template with no error, warning or note."""
    api = pytest.importorskip("cfnlint.api")
    matches = api.lint_file(TEMPLATE)
    assert not matches, "\n".join(str(m) for m in matches)


def test_the_task_role_has_the_generated_statements() -> None:
    """Each Sid of the generated policy (manifests-example, with the DynamoDB store the template can
    create) is in the task role with the same actions, and the task role has no other; a statement is on
    "*" exactly where the generated one is."""
    config = load_config(str(EXAMPLE / "agent-config.yaml"), {"ECS_GITOPS_STORE_TYPE": "dynamodb"})
    generated = {
        s["Sid"]: s for s in agent_policy(load_desired(DirTree(EXAMPLE), config), config)["Statement"]
    }
    template = {s["Sid"]: s for s in _task_role_statements()}
    assert set(template) == set(generated)
    for sid, statement in template.items():
        assert sorted(_listed(statement["Action"])) == generated[sid]["Action"], sid
        assert (statement["Resource"] == "*") == (generated[sid]["Resource"] == "*"), sid
        assert bool(statement.get("Condition")) >= bool(generated[sid].get("Condition")), sid
        for resource in _listed(statement["Resource"]):
            assert resource == "*" or "Fn::Sub" in resource or "Fn::GetAtt" in resource, (sid, resource)
            text = json.dumps(resource)
            assert "${AWS::AccountId}" in text or "GetAtt" in text or resource == "*", (sid, resource)


def test_the_names_match_the_example_agent_task_definition() -> None:
    """A stack named ecs-gitops makes the roles, the secret and the log group that
    manifests-example/agent/task-definition.json names, so the agent can take over its own service."""
    body = json.loads((EXAMPLE / "agent" / "task-definition.json").read_text())
    resources = _template()["Resources"]
    stack = "ecs-gitops"

    def name(resource: str, key: str) -> str:
        return str(resources[resource]["Properties"][key]["Fn::Sub"]).replace("${AWS::StackName}", stack)

    assert body["taskRoleArn"].endswith(f":role/{name('TaskRole', 'RoleName')}")
    assert body["executionRoleArn"].endswith(f":role/{name('ExecutionRole', 'RoleName')}")
    (container,) = body["containerDefinitions"]
    assert container["secrets"][0]["valueFrom"].endswith(f":secret:{name('GitTokenSecret', 'Name')}")
    log_group = _template()["Parameters"]["LogGroupName"]["Default"]
    assert container["logConfiguration"]["options"]["awslogs-group"] == log_group
    assert resources["LogGroup"]["Properties"]["LogGroupName"] == {"Ref": "LogGroupName"}
