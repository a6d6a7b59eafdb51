"""Round trip: once a plan is applied to the sandbox, planning the same manifests shows no changes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent.cli import main
from agent.plan.model import NO_CHANGE
from agent.sandbox.harness import CORPUS, EXAMPLE, write

CORPUS_FILES = sorted(CORPUS.glob("*.json"))


def test_corpus_is_there() -> None:
    """The shared corpus of real task definitions is found beside the repository (CI has it too)."""
    assert len(CORPUS_FILES) >= 13


def test_manifests_example_plans_no_change_once_applied(harness) -> None:
    """Every service, task definition, cluster and capacity provider of manifests-example is unchanged
    after its plan is applied."""
    first = harness.apply(EXAMPLE)
    assert first.plan.has_changes
    assert {c.kind for c in first.plan.changes} == {
        "TaskDefinition",
        "Service",
        "Cluster",
        "CapacityProvider",
    }

    second = harness.plan(EXAMPLE)
    changed = [
        (c.kind, c.name, c.action, [f.path for f in c.fields])
        for c in second.plan.changes
        if c.changes_anything
    ]
    assert changed == []
    assert not second.plan.has_changes
    names = {(c.kind, c.name) for c in second.plan.changes}
    assert {("Service", f"prod/{s}") for s in ("web", "api", "worker", "reports")} <= names
    assert {("TaskDefinition", f) for f in ("web", "api", "worker", "reports", "ecs-gitops")} <= names


def _describe_output(harness, family: str) -> dict:
    ecs = harness.aws.client("ecs")
    out = ecs.describe_task_definition(taskDefinition=family, include=["TAGS"])
    out.pop("ResponseMetadata", None)
    return json.loads(json.dumps(out, default=str))  # registeredAt etc. as the CLI prints them


def test_describe_task_definition_output_pasted_as_a_manifest_plans_no_change(
    harness, tmp_path: Path
) -> None:
    """A file holding `aws ecs describe-task-definition` output, read-only fields and all, is planned as
    the revision it came from: no new registration, no change."""
    harness.apply(EXAMPLE)
    pasted = _describe_output(harness, "worker")
    assert "taskDefinitionArn" in pasted["taskDefinition"] and "registeredAt" in pasted["taskDefinition"]
    write(tmp_path, "worker-taskdef.json", pasted)
    write(
        tmp_path,
        "worker.yaml",
        (EXAMPLE / "services" / "worker.yaml")
        .read_text()
        .replace("../taskdefs/worker.yaml", "worker-taskdef.json")
        .replace("  strategy: rolling-safe\n", ""),
    )
    result = harness.plan(tmp_path)
    td = next(c for c in result.plan.changes if c.kind == "TaskDefinition")
    assert td.action in (NO_CHANGE, "reuse"), td
    svc = next(c for c in result.plan.changes if c.kind == "Service")
    assert not svc.changes_anything, [(f.path, f.old, f.new) for f in svc.fields]


@pytest.mark.parametrize("path", CORPUS_FILES, ids=lambda p: p.name[:60])
def test_corpus_task_definition_validates_plans_and_round_trips(harness, tmp_path: Path, path: Path) -> None:
    """A real task definition from a public repository validates, plans a registration, and plans as
    no change once registered."""
    write(tmp_path, path.name, path.read_text())
    assert main(["validate", str(tmp_path)]) == 0
    first = harness.apply(tmp_path)
    assert [c.action for c in first.plan.changes] in (["register"], ["reuse"], [NO_CHANGE])
    second = harness.plan(tmp_path)
    assert [c.action for c in second.plan.changes] == [NO_CHANGE], second.plan.changes


def test_plan_cli_reads_a_git_ref_without_checkout(sandbox, tmp_path: Path, capsys, monkeypatch) -> None:
    """`plan --repo R --ref REV` plans the files at that commit, exit code 2 for changes, with no
    checkout of the work tree."""
    import shutil

    import git

    sandbox.reset()  # an empty account: the plan must create everything
    sandbox.seed(EXAMPLE / "sandbox-seed.yaml")
    repo = git.Repo.init(tmp_path / "repo", initial_branch="main")
    with repo.config_writer() as cw:
        cw.set_value("user", "name", "t").set_value("user", "email", "t@example.com")
    shutil.copytree(EXAMPLE, Path(repo.working_dir) / "deploy")
    repo.git.add(A=True)
    repo.index.commit("manifests")
    shutil.rmtree(Path(repo.working_dir) / "deploy")  # the work tree no longer has them
    monkeypatch.chdir(tmp_path)
    code = main(
        [
            "plan",
            "--repo",
            repo.working_dir,
            "--ref",
            "HEAD",
            "--path",
            "deploy",
            "--endpoint-url",
            sandbox.endpoint,
            "--region",
            sandbox.region,
            "--json",
        ]
    )
    out = json.loads(capsys.readouterr().out)
    assert code == 2
    assert out["revision"] == repo.head.commit.hexsha
    assert any(c["kind"] == "Service" and c["action"] == "create" for c in out["changes"])
