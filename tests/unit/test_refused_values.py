"""Values validation refuses before any AWS call, each at its pointer: control characters in an image or an
environment variable name, and a cluster ARN naming an account the agent config's ``accounts`` does not
list."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent.config import AccountConfig, AgentConfig
from agent.errors import InvalidInput, Problem
from agent.manifests import load_desired
from agent.manifests.tree import DirTree

HDR = "apiVersion: ecs-gitops/v1\n"


def _service(cluster: str = "prod", image: str = "nginx:1", env: list[dict[str, str]] | None = None) -> str:
    container = {"name": "app", "image": image, "memory": 64, "environment": env or []}
    body = {"family": "web", "containerDefinitions": [container]}
    return (
        f"{HDR}kind: Service\nmetadata: {{name: web}}\nspec:\n  cluster: {json.dumps(cluster)}\n"
        f"  launchType: EC2\n  taskDefinition: {json.dumps(body)}\n"
    )


def _errors(tmp_path: Path, text: str, config: object = None) -> list[tuple[str, str]]:
    (tmp_path / "web.yaml").write_text(text)
    try:
        load_desired(DirTree(tmp_path), config)
    except InvalidInput as err:
        return [(p.pointer, p.message) for p in err.problems if p.severity == "error"]
    return []


@pytest.mark.parametrize("image", ["nginx:1\x00evil", "nginx:1\nevil", "nginx:1\r"])
def test_a_control_character_in_an_image_is_refused(tmp_path: Path, image: str) -> None:
    """NUL or a newline in ``image`` would be registered as is; it is a located error instead."""
    found = _errors(tmp_path, _service(image=image))
    assert [p for p, _ in found] == ["/spec/taskDefinition/containerDefinitions/0/image"]
    assert found[0][1].endswith("holds a control character; no image name does")
    assert str(Problem("web.yaml", found[0][0], found[0][1], 7)).count("\n") == 0


def test_a_nul_in_an_environment_name_is_refused(tmp_path: Path) -> None:
    """NUL in an environment variable name is refused at the name; the value may hold what it likes."""
    env = [{"name": "OK", "value": "a\nb"}, {"name": "BAD\x00NAME", "value": "x"}]
    assert _errors(tmp_path, _service(env=env)) == [
        (
            "/spec/taskDefinition/containerDefinitions/0/environment/1/name",
            '"BAD\\u0000NAME" holds a control character; an environment name cannot',
        )
    ]


def test_a_cluster_arn_of_an_unlisted_account_is_refused(tmp_path: Path) -> None:
    """A cluster ARN naming another account passes only when ``accounts`` lists that account (by
    accountId or roleArn); without ``accounts`` a cluster ARN cannot be checked, so it is refused too."""
    victim = "arn:aws:ecs:eu-west-1:999999999999:cluster/victim"
    found = _errors(tmp_path, _service(cluster=victim))
    assert found == [
        (
            "/spec/cluster",
            f'cluster "{victim}" names account 999999999999, which no entry of the agent config\'s accounts '
            "lists (accountId or roleArn); name the cluster instead, or list its account",
        )
    ]
    home = AccountConfig("home", clusters=(victim,), account_id="111111111111")
    config = AgentConfig(accounts=(home,))
    assert [p for p, _ in _errors(tmp_path, _service(cluster=victim), config)] == ["/spec/cluster"]
    other = AccountConfig(
        "victim", clusters=(victim,), role_arn="arn:aws:iam::999999999999:role/ecs-gitops-deployer"
    )
    assert _errors(tmp_path, _service(cluster=victim), AgentConfig(accounts=(home, other))) == []
    assert _errors(tmp_path, _service(cluster="prod")) == []
