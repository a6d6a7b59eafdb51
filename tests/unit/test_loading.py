"""Loading manifest roots: safe YAML/JSON, line numbers, classification, folder and git trees alike."""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from pathlib import Path

import git
import pytest

from agent.errors import InvalidInput, Problem
from agent.manifests import load_desired
from agent.manifests.loading import MAX_ALIAS_EXPANSION, classify, load_file, parse_json, parse_yaml
from agent.manifests.tree import DirTree, GitTree
from agent.sandbox.harness import CORPUS as CORPUS_DIR

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = REPO_ROOT / "manifests-example"
CORPUS = CORPUS_DIR
PROBLEM_FORM = re.compile(r"^[^\s:][^:]*(:\d+)?: /\S*: \S.*$")


def _bomb(levels: int = 9) -> str:
    lines = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for i in range(1, levels + 1):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]")
    return "\n".join(lines) + "\n"


def test_manifests_example_loads_without_errors() -> None:
    """The shipped example is valid; its only warning is the sandbox seed, which is not a manifest."""
    desired = load_desired(DirTree(EXAMPLE))
    assert sorted(desired.services) == ["api", "ecs-gitops", "reports", "web", "worker"]
    assert sorted(desired.strategies) == ["blue-green", "canary-10", "linear-25", "rolling-safe"]
    assert sorted(desired.windows) == ["weekday-nights", "year-end-freeze"]
    assert sorted(desired.capacity_providers) == ["prod-asg", "prod-managed"]
    assert sorted(desired.clusters) == ["ops", "prod"]
    assert desired.service_task_family["reports"] == "reports"
    assert desired.task_definitions["reports"].pointer == "/spec/taskDefinition"
    assert all(w.severity == "warning" for w in desired.warnings)
    assert desired.warnings == []  # the SandboxSeed and AgentConfig files are skipped, not warned about


def _commit_tree(tmp_path: Path) -> tuple[Path, str]:
    repo_dir = tmp_path / "repo"
    repo = git.Repo.init(repo_dir)
    shutil.copytree(EXAMPLE, repo_dir / "deploy")
    repo.index.add([str(p.relative_to(repo_dir)) for p in (repo_dir / "deploy").rglob("*") if p.is_file()])
    actor = git.Actor("test", "test@example.com")
    sha = repo.index.commit("manifests", author=actor, committer=actor).hexsha
    return repo_dir, sha


def test_git_tree_reads_the_same_desired_as_the_folder(tmp_path: Path) -> None:
    """Reading blobs at a commit (no checkout) gives exactly what reading the folder gives."""
    repo_dir, sha = _commit_tree(tmp_path)
    tree = GitTree(repo_dir, sha, "deploy")
    assert tree.revision == sha
    from_git = load_desired(tree)
    from_dir = load_desired(DirTree(EXAMPLE))
    assert from_git == from_dir
    assert from_git.revision == sha and from_dir.revision is None
    web = from_git.services["web"]
    assert web.source.line_of("/spec/strategy") == from_dir.services["web"].source.line_of("/spec/strategy")


def test_git_tree_reads_an_old_commit_without_checking_it_out(tmp_path: Path) -> None:
    """The work tree moves on; the tree at the first commit still shows the first content."""
    repo_dir, first = _commit_tree(tmp_path)
    repo = git.Repo(repo_dir)
    web = repo_dir / "deploy" / "services" / "web.yaml"
    web.write_text(web.read_text().replace("desiredCount: 4", "desiredCount: 9"))
    repo.index.add([str(web.relative_to(repo_dir))])
    actor = git.Actor("test", "test@example.com")
    repo.index.commit("scale", author=actor, committer=actor)
    assert load_desired(GitTree(repo_dir, first, "deploy")).services["web"].spec["desiredCount"] == 4
    assert load_desired(GitTree(repo_dir, "HEAD", "deploy")).services["web"].spec["desiredCount"] == 9


def test_git_tree_clones_a_url_bare(tmp_path: Path) -> None:
    """A URL is cloned bare into the cache folder; the files come from blobs."""
    repo_dir, sha = _commit_tree(tmp_path)
    tree = GitTree(f"file://{repo_dir}", "HEAD", "deploy", cache_dir=tmp_path / "cache")
    assert tree.revision == sha
    assert (tmp_path / "cache" / "HEAD").is_file() and not (tmp_path / "cache" / "deploy").exists()
    assert sorted(load_desired(tree).services) == ["api", "ecs-gitops", "reports", "web", "worker"]


def test_git_tree_refuses_a_symlink_leaving_the_root(tmp_path: Path) -> None:
    """A symlink blob (mode 120000) pointing outside the manifest root is refused, not followed."""
    repo_dir = tmp_path / "repo"
    repo = git.Repo.init(repo_dir)
    (repo_dir / "deploy" / "taskdefs").mkdir(parents=True)
    (repo_dir / "secret.json").write_text('{"family": "x", "containerDefinitions": []}')
    os.symlink("../../secret.json", repo_dir / "deploy" / "taskdefs" / "leak.json")
    (repo_dir / "deploy" / "taskdefs" / "ok.json").write_text(
        '{"family": "ok", "containerDefinitions": [{"name": "a", "image": "nginx:1", "memory": 64}]}'
    )
    os.symlink("ok.json", repo_dir / "deploy" / "taskdefs" / "alias.json")
    repo.index.add(
        ["secret.json", "deploy/taskdefs/leak.json", "deploy/taskdefs/ok.json", "deploy/taskdefs/alias.json"]
    )
    actor = git.Actor("t", "t@example.com")
    repo.index.commit("links", author=actor, committer=actor)
    tree = GitTree(repo_dir, "HEAD", "deploy")
    assert tree.is_symlink("taskdefs/leak.json") and tree.resolve("taskdefs/leak.json") is None
    assert tree.resolve("taskdefs/alias.json") == "taskdefs/ok.json"
    with pytest.raises(InvalidInput) as err:
        load_desired(tree)
    assert [(p.file, p.severity) for p in err.value.problems] == [("taskdefs/leak.json", "error")]
    assert "outside the manifest root" in err.value.problems[0].message


def test_symlink_inside_the_root_is_read_once(tmp_path: Path) -> None:
    """A symlink to a file inside the root is not a second copy; references through it resolve."""
    (tmp_path / "taskdefs").mkdir()
    (tmp_path / "services").mkdir()
    (tmp_path / "taskdefs" / "web.json").write_text(
        '{"family": "web", "containerDefinitions": [{"name": "a", "image": "nginx:1", "memory": 64}]}'
    )
    os.symlink("taskdefs", tmp_path / "current")
    (tmp_path / "services" / "web.yaml").write_text(
        "apiVersion: ecs-gitops/v1\nkind: Service\nmetadata: {name: web}\n"
        "spec: {cluster: prod, launchType: EC2, taskDefinition: ../current/web.json}\n"
    )
    desired = load_desired(DirTree(tmp_path))
    assert desired.task_definitions["web"].source.file == "taskdefs/web.json"
    assert desired.service_task_family == {"web": "web"}


def test_alias_bomb_is_refused_quickly() -> None:
    """A billion laughs costs milliseconds: the node graph is measured before anything is built."""
    start = time.perf_counter()
    docs, problems = parse_yaml(_bomb(), "bomb.yaml")
    assert time.perf_counter() - start < 1.0
    assert docs == [] and "billion laughs" in problems[0].message


def test_aliases_and_merge_keys_within_budget_are_allowed() -> None:
    """Sharing an environment list or merging defaults is normal YAML; it stays allowed."""
    text = (
        "env: &env [{name: A, value: '1'}, {name: B, value: '2'}]\n"
        "base: &base {image: 'nginx:1', memory: 64}\n"
        "containers:\n"
        "  - <<: *base\n    name: a\n    environment: *env\n"
        "  - <<: *base\n    name: b\n    memory: 128\n"
    )
    (doc,), problems = parse_yaml(text, "x.yaml")
    assert problems == []
    assert doc.data["containers"][1] == {"image": "nginx:1", "memory": 128, "name": "b"}
    assert doc.data["containers"][0]["environment"][1]["value"] == "2"
    assert doc.source.lines["/containers/1/memory"] == 9
    assert doc.source.lines["/containers/1/image"] == 2  # merged: the line where it is written


def test_alias_expansion_limit_is_per_document() -> None:
    """Just over the budget is refused; the limit is a constant, not a guess."""
    items = ", ".join(["x"] * 100)
    uses = ", ".join(["*a"] * (MAX_ALIAS_EXPANSION // 100 + 1))
    _, problems = parse_yaml(f"a: &a [{items}]\nb: [{uses}]\n", "x.yaml")
    assert problems and "aliases expand" in problems[0].message


@pytest.mark.parametrize(
    ("text", "line", "pointer", "fragment"),
    [
        ("a: 1\nb:\n  c: 2\n  c: 3\n", 4, "/b/c", 'duplicate key "c" (first at line 3)'),
        ("a: [" * 65 + "]" * 65 + "\n", 1, "", "deeper than 64"),
        ("a: &x [*x]\n", 1, "", "recursive alias"),
        ("a: !!set {x, y}\n", 1, "", "is not allowed"),
        ("a: b\n c: d\n", 2, "", "not valid YAML"),
        ("a: *nope\n", 1, "", "undefined alias"),
    ],
)
def test_yaml_refusals_carry_line_and_pointer(text: str, line: int, pointer: str, fragment: str) -> None:
    _, problems = parse_yaml(text, "f.yaml")
    assert len(problems) == 1
    assert (problems[0].line, problems[0].pointer) == (line, pointer)
    assert fragment in problems[0].message


def test_yaml_values_stay_json() -> None:
    """Keys are strings (``on`` is not True), dates stay strings, empty documents are skipped."""
    docs, problems = parse_yaml("on: 1\n1: x\nwhen: 2024-12-20\n---\n---\n# only a comment\n", "x.yaml")
    assert problems == []
    assert [d.data for d in docs] == [{"on": 1, "1": "x", "when": "2024-12-20"}]


def test_later_documents_are_still_read_after_a_bad_one() -> None:
    docs, problems = parse_yaml("a: !!binary aGk=\n---\nb: 1\n", "x.yaml")
    assert [d.data for d in docs] == [{"b": 1}]
    assert [p.line for p in problems] == [1]


def test_json_lines_and_duplicates() -> None:
    text = (
        '{\n  "family": "web",\n  "containerDefinitions": [\n    {"name": "a",\n     "name": "b"}\n  ]\n}\n'
    )
    docs, problems = parse_json(text, "t.json")
    assert docs == []
    assert problems == [
        Problem("t.json", "/containerDefinitions/0/name", 'duplicate key "name" (first at line 4)', 5)
    ]
    (doc,), _ = parse_json(text.replace('"name": "b"', '"image": "b"'), "t.json")
    assert doc.source.lines["/containerDefinitions/0/image"] == 5
    assert doc.source.line_of("/containerDefinitions/0/missing") == 4


@pytest.mark.parametrize("path", sorted(CORPUS.glob("**/*.json")), ids=lambda p: p.name[:60])
def test_real_task_definitions_parse_as_task_definitions(path: Path, tmp_path: Path) -> None:
    """Task definitions people keep in their repositories load as they are, with line numbers."""
    shutil.copy(path, tmp_path / path.name)
    tree = DirTree(tmp_path)
    loaded = load_file(tree, path.name)
    assert loaded.problems == []
    classified = classify(loaded.documents)
    assert len(classified.task_definitions) == 1 and not classified.problems
    td = classified.task_definitions[0]
    assert td.source.line_of("/containerDefinitions/0") and td.family
    desired = load_desired(tree)
    assert list(desired.task_definitions) == [td.family]


def test_describe_task_definition_output_is_unwrapped(tmp_path: Path) -> None:
    """The describe wrapper is accepted; read-only fields are dropped; its tags go with the body."""
    body = {
        "taskDefinitionArn": "arn:aws:ecs:eu-west-1:123456789012:task-definition/web:7",
        "family": "web",
        "revision": 7,
        "status": "ACTIVE",
        "compatibilities": ["EC2", "FARGATE"],
        "requiresAttributes": [{"name": "com.amazonaws.ecs.capability.docker-remote-api.1.18"}],
        "registeredAt": "2024-05-01T10:00:00+00:00",
        "registeredBy": "arn:aws:iam::123456789012:root",
        "containerDefinitions": [{"name": "a", "image": "nginx:1", "memory": 64}],
    }
    (tmp_path / "web.json").write_text(
        json.dumps({"taskDefinition": body, "tags": [{"key": "team", "value": "a"}]})
    )
    td = load_desired(DirTree(tmp_path)).task_definitions["web"]
    assert td.pointer == "/taskDefinition"
    assert td.body == {
        "family": "web",
        "containerDefinitions": body["containerDefinitions"],
        "tags": [{"key": "team", "value": "a"}],
    }


def test_every_problem_of_every_file_in_one_run(tmp_path: Path) -> None:
    """Three broken files give three problems, sorted by file then line, each FILE[:LINE]: /ptr: msg."""
    (tmp_path / "a.yaml").write_text(
        "apiVersion: ecs-gitops/v1\nkind: Window\nmetadata: {name: w}\nspec: {}\n"
    )
    (tmp_path / "b.json").write_text("{,}")
    (tmp_path / "c.yaml").write_text("x: 1\nx: 2\n")
    (tmp_path / ".hidden.yaml").write_text("not: [valid")
    (tmp_path / "notes.txt").write_text("not: [valid")
    with pytest.raises(InvalidInput) as err:
        load_desired(DirTree(tmp_path))
    problems = err.value.problems
    assert [p.file for p in problems] == sorted(p.file for p in problems)
    assert {p.file for p in problems} == {"a.yaml", "b.json", "c.yaml"}
    assert len([p for p in problems if p.file == "a.yaml"]) == 3  # type, schedule, duration missing
    for p in problems:
        assert PROBLEM_FORM.match(str(p)), str(p)


def test_problem_str_has_the_documented_form() -> None:
    assert str(Problem("services/web.yaml", "/spec/strategy", 'no DeploymentStrategy named "x"', 12)) == (
        'services/web.yaml:12: /spec/strategy: no DeploymentStrategy named "x"'
    )
    assert str(Problem("b.json", "", "not valid JSON")) == "b.json: /: not valid JSON"


def test_unexpected_errors_become_problems(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A bug in one check is reported against the document, never raised as a traceback."""
    from agent.manifests.checks import windows

    def broken(ctx: object, manifest: object) -> None:
        raise KeyError("boom")

    monkeypatch.setattr(windows, "check_window", broken)
    shutil.copytree(EXAMPLE / "windows", tmp_path / "windows")
    with pytest.raises(InvalidInput) as err:
        load_desired(DirTree(tmp_path))
    assert all("internal error while checking Window" in p.message for p in err.value.problems)
    assert {p.file for p in err.value.problems} == {"windows/windows.yaml"}


def test_unreadable_root_is_a_problem(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput) as err:
        load_desired(GitTreeLike(tmp_path))
    assert "cannot list the manifest root" in err.value.problems[0].message


class GitTreeLike(DirTree):
    def walk(self):  # type: ignore[no-untyped-def]
        raise OSError("permission denied")
