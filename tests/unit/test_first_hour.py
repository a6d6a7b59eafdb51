"""What a new user meets first: where the manifests are read, where AWS settings come from, and agent
config problems located by line."""

from __future__ import annotations

import argparse
from pathlib import Path

import git
import pytest

from agent.cli import aws_settings
from agent.config import load_config
from agent.errors import InvalidInput, PermanentError
from agent.git.trees import git_tree, manifest_tree
from agent.manifests import load_desired
from agent.manifests.tree import DirTree, GitTree

HEADER = "apiVersion: ecs-gitops/v1\nkind: AgentConfig\n"


def _problems(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> list[str]:
    path = tmp_path / "agent.yaml"
    path.write_text(text)
    with pytest.raises(InvalidInput) as caught:
        load_config(str(path), env or {})
    return [str(p).replace(str(path), "agent.yaml") for p in caught.value.problems]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (
            HEADER + "source:\n  repo: .\n  intervall: 30s\n",
            'agent.yaml:5: /source/intervall: unknown field "intervall"',
        ),
        (HEADER + "source:\n  interval: 48h\n", "agent.yaml:4: /source/interval: must be at most 24h"),
        (HEADER + "store:\n  type: redis\n", "agent.yaml:4: /store/type: must be one of"),
        (
            HEADER + "verify:\n  mode: ssh\n  allowedSigners: nope\n",
            "agent.yaml:5: /verify/allowedSigners: no such file",
        ),
    ],
)
def test_agent_config_problems_name_their_line(tmp_path: Path, text: str, problem: str) -> None:
    assert any(p.startswith(problem) for p in _problems(tmp_path, text)), _problems(tmp_path, text)


def test_a_problem_set_by_a_variable_names_the_variable_not_a_line(tmp_path: Path) -> None:
    found = _problems(tmp_path, HEADER, {"ECS_GITOPS_SOURCE_INTERVAL": "soon"})
    assert found[0].startswith("ECS_GITOPS_SOURCE_INTERVAL: /source/interval: ")


@pytest.mark.parametrize("given", ["1234", '"1234"', "acme/deployments"])
def test_gitlab_project_is_an_id_or_a_path(tmp_path: Path, given: str) -> None:
    path = tmp_path / "agent.yaml"
    path.write_text(HEADER + f"status:\n  publisher: gitlab\n  gitlab:\n    project: {given}\n")
    assert load_config(str(path), {}).status.gitlab.project == given.strip('"')
    from_env = load_config(
        None, {"ECS_GITOPS_STATUS_PUBLISHER": "gitlab", "ECS_GITOPS_STATUS_GITLAB_PROJECT": "77"}
    )
    assert from_env.status.gitlab.project == "77"


def test_gitlab_project_zero_is_refused(tmp_path: Path) -> None:
    found = _problems(tmp_path, HEADER + "status:\n  publisher: gitlab\n  gitlab:\n    project: 0\n")
    assert found and found[0].startswith("agent.yaml:6: /status/gitlab/project:")


def test_aws_settings_flag_then_environment_then_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "agent.yaml"
    path.write_text(HEADER + "aws:\n  endpointUrl: http://127.0.0.1:1\n  region: eu-west-1\n")
    config = load_config(str(path), {})
    for name in ("AWS_ENDPOINT_URL", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    args = argparse.Namespace(endpoint_url=None, region=None, profile=None)
    assert aws_settings(args, config)["endpoint_url"] == ("http://127.0.0.1:1", f"aws.endpointUrl in {path}")
    assert aws_settings(args, config)["profile"] == (None, "default")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:2")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    assert aws_settings(args, config)["endpoint_url"] == ("http://127.0.0.1:2", "AWS_ENDPOINT_URL")
    assert aws_settings(args, config)["region"] == ("us-east-1", "AWS_DEFAULT_REGION")
    args.endpoint_url = "http://127.0.0.1:3"
    assert aws_settings(args, config)["endpoint_url"] == ("http://127.0.0.1:3", "--endpoint-url")


@pytest.fixture
def repo(tmp_path: Path) -> git.Repo:
    repo = git.Repo.init(tmp_path / "repo", initial_branch="main")
    with repo.config_writer() as cw:
        cw.set_value("user", "name", "t").set_value("user", "email", "t@example.com")
    (tmp_path / "repo" / "deploy").mkdir()
    (tmp_path / "repo" / "deploy" / "a.yaml").write_text("x: 1\n")
    repo.git.add(A=True)
    repo.index.commit("one")
    return repo


def test_a_folder_missing_at_the_commit_is_a_located_problem(repo: git.Repo) -> None:
    tree = GitTree(repo.working_dir, "HEAD", "renamed")
    with pytest.raises(InvalidInput) as caught:
        load_desired(tree)
    (problem,) = caught.value.problems
    assert f"no folder 'renamed' at commit {repo.head.commit.hexsha[:12]}" in str(problem)


def test_a_folder_inside_a_repository_is_read_at_the_ref(repo: git.Repo) -> None:
    tree = git_tree(str(Path(repo.working_dir) / "deploy"), "HEAD", "")
    assert (tree.subdir, list(tree.walk())) == ("deploy", ["a.yaml"])


def test_an_explicit_repo_stands_alone(repo: git.Repo) -> None:
    """Without --repo the config's path applies; with --repo, only --path does."""
    source = argparse.Namespace(repo=repo.working_dir, path="deploy", branch="main")
    assert manifest_tree(None, None, None, source).root == Path(repo.working_dir) / "deploy"
    alone = manifest_tree(repo.working_dir, None, None, source)
    assert isinstance(alone, DirTree) and alone.root == Path(repo.working_dir)
    assert manifest_tree(None, "HEAD", None, source).subdir == "deploy"
    assert manifest_tree(repo.working_dir, "HEAD", None, source).subdir == ""


@pytest.mark.parametrize(
    ("repo_arg", "ref", "message"),
    [
        ("{repo}", "nosuchref", "--ref nosuchref: no such commit, branch or tag in"),
        ("{repo}", "HEAD~4", "--ref HEAD~4: no such commit"),
        ("{plain}", "HEAD", "is not in a git repository"),
        ("{missing}", "HEAD", "no such folder"),
    ],
)
def test_git_mistakes_are_one_line_errors(
    repo: git.Repo, tmp_path: Path, repo_arg: str, ref: str, message: str
) -> None:
    (tmp_path / "plain").mkdir()
    where = repo_arg.format(repo=repo.working_dir, plain=tmp_path / "plain", missing=tmp_path / "missing")
    with pytest.raises(PermanentError) as caught:
        git_tree(where, ref, "")
    assert message in str(caught.value) and "\n" not in str(caught.value)
