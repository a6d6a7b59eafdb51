"""Size limits, each a located error found while loading (so before any AWS call): a document's size once
its YAML aliases are expanded, a task definition's size as ECS counts it, environment entries per
container, and the commit's budget of files, bytes and documents (tracked branch and planned heads alike)."""

from __future__ import annotations

import json
import re
import time
from dataclasses import replace
from pathlib import Path

import pytest

from agent.config import AgentConfig, LimitsConfig, load_config
from agent.errors import InvalidInput, Problem
from agent.manifests import load_desired
from agent.manifests.checks.task_definitions import MAX_TASK_DEFINITION_BYTES, task_definition_size
from agent.manifests.tree import DirTree

PROBLEM_FORM = re.compile(r"^[^\s:][^:]*(:\d+)?: /\S*: \S.*$")
HDR = "apiVersion: ecs-gitops/v1\n"
SERVICE = (
    f"{HDR}kind: Service\nmetadata: {{name: web}}\nspec:\n  cluster: prod\n  launchType: EC2\n"
    "  taskDefinition: ../taskdefs/web.json\n"
)


def _write(root: Path, files: dict[str, str | bytes]) -> DirTree:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text.encode() if isinstance(text, str) else text)
    return DirTree(root)


def _errors(tree: DirTree, config: object = None) -> list[Problem]:
    with pytest.raises(InvalidInput) as caught:
        load_desired(tree, config)
    found = [p for p in caught.value.problems if p.severity == "error"]
    for problem in found:
        assert PROBLEM_FORM.match(str(problem)), str(problem)
    return found


def _taskdef(**container: object) -> str:
    return json.dumps(
        {
            "family": "web",
            "containerDefinitions": [{"name": "app", "image": "nginx:1", "memory": 256, **container}],
        }
    )


def test_one_big_anchor_behind_many_aliases_is_refused_before_it_is_built(tmp_path: Path) -> None:
    """120 KB of YAML: a 20 KB anchor and 4,000 aliases (well under the node budget) would be an 80 MB
    task definition; it is refused at once, at the document's line, measured on the node graph."""
    big = "x" * 20_000
    aliases = "[" + ", ".join(f"{{name: V{i}, value: *big}}" for i in range(4000)) + "]\n"
    text = '{"family": "web", "containerDefinitions": [{"name": "app", "image": "nginx:1", "memory": 256}]}\n'
    bomb = f"family: web\nshared: &big {big}\ncontainerDefinitions:\n  - name: app\n    image: nginx:1\n"
    bomb += "    memory: 256\n    environment: " + aliases
    assert 100_000 < len(bomb) < 140_000
    tree = _write(
        tmp_path, {"services/web.yaml": SERVICE, "taskdefs/web.json": text, "taskdefs/big.yaml": bomb}
    )
    started = time.monotonic()
    found = _errors(tree)
    assert time.monotonic() - started < 10
    assert [(p.file, p.line, p.pointer) for p in found] == [("taskdefs/big.yaml", 1, "")]
    assert "once its aliases are expanded; the limit is 1048576 bytes (1 MiB)" in found[0].message


def test_aliases_within_the_size_limit_are_read(tmp_path: Path) -> None:
    """Sharing an environment list between containers by an alias stays allowed."""
    taskdef = (
        "family: web\ncontainerDefinitions:\n"
        "  - {name: a, image: 'nginx:1', memory: 64, environment: &env [{name: A, value: '1'}]}\n"
        "  - {name: b, image: 'nginx:1', memory: 64, environment: *env}\n"
    )
    service = SERVICE.replace("../taskdefs/web.json", "../taskdefs/web.yaml")
    desired = load_desired(_write(tmp_path, {"services/web.yaml": service, "taskdefs/web.yaml": taskdef}))
    containers = desired.task_definitions["web"].body["containerDefinitions"]
    assert containers[0]["environment"] == containers[1]["environment"]


def test_ten_thousand_environment_variables_are_refused(tmp_path: Path) -> None:
    """A container with 10,000 environment entries is refused at its environment list (and the task
    definition's size at its root)."""
    env = [{"name": f"VAR_{i}", "value": "v"} for i in range(10_000)]
    tree = _write(tmp_path, {"services/web.yaml": SERVICE, "taskdefs/web.json": _taskdef(environment=env)})
    found = {p.pointer: p for p in _errors(tree)}
    assert found["/containerDefinitions/0/environment"].message.startswith(
        "10000 environment variables; at most 1000 per container"
    )
    assert found["/containerDefinitions/0/environment"].line == 1
    assert "ECS refuses more than 65536 bytes (64 KiB)" in found[""].message


def test_a_task_definition_over_64_kib_is_refused_and_one_under_is_not(tmp_path: Path) -> None:
    """The size is the task definition as compact JSON without tags, as ECS counts it: one byte over the
    limit is refused (at the inline task definition's pointer), exactly at the limit it is read."""
    body = json.loads(_taskdef(command=[""]))
    body["containerDefinitions"][0]["command"] = [
        "x" * (MAX_TASK_DEFINITION_BYTES - task_definition_size(body))
    ]
    assert task_definition_size(body) == MAX_TASK_DEFINITION_BYTES
    body["tags"] = [{"key": "team", "value": "y" * 200}]  # a separate parameter: not counted
    inline = f"{HDR}kind: Service\nmetadata: {{name: web}}\nspec:\n  cluster: prod\n  launchType: EC2\n"
    inline += f"  taskDefinition: {json.dumps(body)}\n"
    load_desired(_write(tmp_path / "ok", {"services/web.yaml": inline}))

    body["containerDefinitions"][0]["command"][0] += "x"
    inline = inline.split("  taskDefinition: ")[0] + f"  taskDefinition: {json.dumps(body)}\n"
    found = _errors(_write(tmp_path / "over", {"services/web.yaml": inline}))
    assert [(p.pointer, p.line, p.message) for p in found] == [
        (
            "/spec/taskDefinition",
            7,
            "the task definition is 65537 bytes as JSON; ECS refuses more than 65536 bytes (64 KiB)",
        )
    ]


def test_eight_files_of_empty_documents_stop_at_the_commits_document_budget(tmp_path: Path) -> None:
    """8 files of 260,000 empty YAML documents each (under 1 MiB per file): the default budget of 10,000
    documents stops the reading in the first file, quickly, naming the file and line where it ran out."""
    files = {f"docs/{i}.yaml": b"---\n" * 260_000 for i in range(8)}
    tree = _write(tmp_path, {"services/web.yaml": SERVICE, "taskdefs/web.json": _taskdef(), **files})
    started = time.monotonic()
    found = _errors(tree)
    assert time.monotonic() - started < 15
    assert [(p.file, p.line) for p in found] == [("docs/0.yaml", 10_001)]
    assert found[0].message.startswith(
        "the commit holds more than 10000 YAML documents (empty ones count) (limits.maxDocuments); "
        "nothing from here on is read."
    )


def test_the_commit_budget_of_files_and_bytes_comes_from_the_agent_config(tmp_path: Path) -> None:
    """limits.maxFiles and limits.maxBytes (config file or ECS_GITOPS_LIMITS_*) bound what one commit may
    hold; the file that overspends is named, and files sorting after it are not read."""
    tree = _write(
        tmp_path / "root",
        {"services/web.yaml": SERVICE, "taskdefs/web.json": _taskdef(), "z/broken.yaml": "a: [\n"},
    )
    config = load_config(None, {"ECS_GITOPS_LIMITS_MAX_FILES": "2"})
    assert config.limits == LimitsConfig(max_files=2)
    found = _errors(tree, config)
    assert [(p.file, p.pointer) for p in found] == [("z/broken.yaml", "")]
    assert found[0].message.startswith("the commit holds more than 2 manifest files (limits.maxFiles)")

    size = sum(len(p.read_bytes()) for p in (tmp_path / "root").rglob("*.*"))
    (tmp_path / "root" / "z" / "broken.yaml").unlink()
    (tmp_path / "config.yaml").write_text(
        f"apiVersion: ecs-gitops/v1\nkind: AgentConfig\nlimits:\n  maxBytes: {size - 10}\n"
    )
    config = load_config(str(tmp_path / "config.yaml"), {})
    found = _errors(tree, config)
    assert [p.file for p in found] == ["taskdefs/web.json"]
    assert "(limits.maxBytes)" in found[0].message
    assert load_desired(tree, replace(config, limits=LimitsConfig(max_bytes=size))).services


def test_limits_defaults_are_documented_in_the_schema() -> None:
    """The defaults the dataclass holds are the schema's (what editors and docs show)."""
    assert AgentConfig.default().limits == LimitsConfig(
        max_files=2000, max_bytes=8 * 1024 * 1024, max_documents=10_000
    )
