"""The agent's own settings: file, ECS_GITOPS_* overrides, schema validation, defaults."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from agent.config import (
    AgentConfig,
    AwsConfig,
    ClustersConfig,
    SourceConfig,
    env_settings,
    load_config,
    parse_duration,
)
from agent.errors import InvalidInput

REPO = Path(__file__).resolve().parents[2]
HEADER = "apiVersion: ecs-gitops/v1\nkind: AgentConfig\n"


def _write(tmp_path: Path, body: str, name: str = "config.yaml") -> str:
    path = tmp_path / name
    path.write_text(body, encoding="utf-8")
    return str(path)


def _problems(path: str | None, env: dict[str, str] | None = None) -> list[tuple[str, str, str]]:
    with pytest.raises(InvalidInput) as caught:
        load_config(path, env or {})
    return [(p.file, p.pointer, p.message) for p in caught.value.problems]


def test_defaults_without_a_file() -> None:
    """With no file and no variables the agent polls main of the current directory every 60s."""
    config = load_config(None, {})
    assert config == AgentConfig.default()
    assert config.source == SourceConfig(repo=".", branch="main", path="", interval="60s")
    assert config.source.interval_seconds == 60
    assert config.aws == AwsConfig(region=None, endpoint_url=None, profile=None)
    assert config.clusters.allow is None and config.clusters.allows("anything")
    assert config.status.publisher == "gitnotes"
    assert (config.store.type, config.server.port) == ("sqlite", 8080)


def test_schema_defaults_and_dataclass_defaults_agree() -> None:
    """The defaults editors show (from the schema) are the ones the code uses (the dataclasses)."""
    assert AgentConfig.default() == AgentConfig()


def test_minimal_file_gets_defaults(tmp_path: Path) -> None:
    """A file with only apiVersion and kind yields the defaults, and remembers where it came from."""
    path = _write(tmp_path, HEADER)
    config = load_config(path, {})
    assert config == AgentConfig()
    assert config.source_file == path


@pytest.mark.parametrize(
    ("env", "read", "expected"),
    [
        (
            {"ECS_GITOPS_SOURCE_REPO": "https://example.com/r.git"},
            lambda c: c.source.repo,
            "https://example.com/r.git",
        ),
        ({"ECS_GITOPS_SOURCE_INTERVAL": "5m"}, lambda c: c.source.interval_seconds, 300),
        ({"ECS_GITOPS_AWS_REGION": "eu-west-1"}, lambda c: c.aws.region, "eu-west-1"),
        (
            {"ECS_GITOPS_AWS_ENDPOINT_URL": "http://127.0.0.1:5000"},
            lambda c: c.aws.endpoint_url,
            "http://127.0.0.1:5000",
        ),
        ({"ECS_GITOPS_CLUSTERS_ALLOW": "prod,staging"}, lambda c: c.clusters.allow, ("prod", "staging")),
        ({"ECS_GITOPS_CLUSTERS_ALLOW": " prod , ,ops "}, lambda c: c.clusters.allow, ("prod", "ops")),
        ({"ECS_GITOPS_SERVER_PORT": "9090"}, lambda c: c.server.port, 9090),
        (
            {"ECS_GITOPS_STATUS_GITHUB_API_URL": "https://ghe.example.com/api/v3"},
            lambda c: c.status.github.api_url,
            "https://ghe.example.com/api/v3",
        ),
        (
            {"ECS_GITOPS_STORE_TYPE": "dynamodb", "ECS_GITOPS_STORE_TABLE": "state"},
            lambda c: (c.store.type, c.store.table),
            ("dynamodb", "state"),
        ),
        ({"ECS_GITOPS_AWS_REGION": ""}, lambda c: c.aws.region, "us-east-1"),  # empty means unset
    ],
)
def test_environment_overrides_the_file(
    tmp_path: Path, env: dict[str, str], read: Any, expected: Any
) -> None:
    """ECS_GITOPS_<SECTION>_<FIELD> replaces the file's value or the default, typed like the field."""
    path = _write(tmp_path, HEADER + "aws: {region: us-east-1}\nsource: {repo: /srv/repo}\n")
    assert read(load_config(path, env)) == expected


def test_clusters_allow_from_env_is_a_list() -> None:
    """A comma-separated ECS_GITOPS_CLUSTERS_ALLOW becomes the allow-list, and other clusters are refused."""
    clusters = load_config(None, {"ECS_GITOPS_CLUSTERS_ALLOW": "prod,staging"}).clusters
    assert clusters == ClustersConfig(allow=("prod", "staging"))
    assert clusters.allows("staging") and not clusters.allows("dev")


def test_env_names_follow_the_schema() -> None:
    """Every leaf setting has an ECS_GITOPS_ variable named after its path, camelCase as UPPER_SNAKE."""
    names = set(env_settings())
    assert {
        "ECS_GITOPS_SOURCE_REPO",
        "ECS_GITOPS_SOURCE_TOKEN_ENV",
        "ECS_GITOPS_AWS_ENDPOINT_URL",
        "ECS_GITOPS_CLUSTERS_ALLOW",
        "ECS_GITOPS_STATUS_PUBLISHER",
        "ECS_GITOPS_STATUS_GITHUB_TOKEN_FILE",
        "ECS_GITOPS_STATUS_GITLAB_PROJECT",
        "ECS_GITOPS_STORE_PATH",
        "ECS_GITOPS_SERVER_PORT",
        "ECS_GITOPS_LOG_FORMAT",
    } <= names
    assert "ECS_GITOPS_API_VERSION" not in names


def test_invalid_file_reports_every_problem_with_pointers(tmp_path: Path) -> None:
    """Every mistake in the file is reported at once, each with the file and the JSON pointer of the field."""
    path = _write(
        tmp_path,
        HEADER
        + "source: {interval: 1 minute, brnach: main}\n"
        + "status: {publisher: slack}\n"
        + "store: {type: redis}\n"
        + "server: {port: 70000}\n"
        + "clusters: {allow: [prod, prod]}\n",
    )
    assert _problems(path) == [
        (path, "/clusters/allow", 'must not contain duplicates ("prod" appears more than once)'),
        (path, "/server/port", "must be at most 65535 (got 70000)"),
        (path, "/source/brnach", 'unknown field "brnach" (did you mean "branch"?)'),
        (path, "/source/interval", 'must be a duration such as 90s, 5m, 1h30m or 2h (got "1 minute")'),
        (path, "/status/publisher", 'must be one of gitnotes, github, gitlab, log (got "slack")'),
        (path, "/store/type", 'must be one of sqlite, dynamodb (got "redis")'),
    ]


def test_problem_from_a_variable_names_the_variable(tmp_path: Path) -> None:
    """A bad value that came from the environment is reported against the variable, not the file."""
    path = _write(tmp_path, HEADER)
    assert _problems(path, {"ECS_GITOPS_SERVER_PORT": "http", "ECS_GITOPS_STATUS_PUBLISHER": "github"}) == [
        ("ECS_GITOPS_SERVER_PORT", "/server/port", 'must be a whole number (got "http")'),
        (
            path,
            "/status/github",
            "required field is missing (the github publisher needs status.github.repository)",
        ),
    ]


@pytest.mark.parametrize(
    ("body", "pointer", "fragment"),
    [
        ("source: {}\n", "/apiVersion", "required field is missing"),
        (HEADER.replace("AgentConfig", "Service"), "/kind", 'must be "AgentConfig"'),
        ("- a list\n", "", "must be a mapping"),
        (
            HEADER + "status: {publisher: gitlab, gitlab: {}}\n",
            "/status/gitlab/project",
            "required field is missing",
        ),
    ],
)
def test_wrong_shapes_are_invalid(tmp_path: Path, body: str, pointer: str, fragment: str) -> None:
    """A config without its envelope, of another kind, not a mapping or incomplete is refused."""
    problems = _problems(_write(tmp_path, body))
    assert any(p == pointer and fragment in m for _, p, m in problems), problems


def test_unparsable_file_is_invalid_input_with_a_line(tmp_path: Path) -> None:
    """Broken YAML is reported as a problem of the file, with the line, instead of a traceback."""
    path = _write(tmp_path, HEADER + "source: {repo: [unclosed\n")
    with pytest.raises(InvalidInput) as caught:
        load_config(path, {})
    (problem,) = caught.value.problems
    assert problem.file == path and problem.line is not None and "not valid YAML" in problem.message


def test_missing_file_is_invalid_input(tmp_path: Path) -> None:
    """A config path that does not exist is a permanent, reported problem."""
    assert _problems(str(tmp_path / "nope.yaml"))[0][2].startswith("cannot read the config file")


def test_json_config_is_accepted(tmp_path: Path) -> None:
    """The config may be JSON as well as YAML."""
    path = _write(
        tmp_path,
        '{"apiVersion": "ecs-gitops/v1", "kind": "AgentConfig", "server": {"port": 81}}',
        name="config.json",
    )
    assert load_config(path, {}).server.port == 81


def test_misspelt_variable_is_a_warning_not_silence() -> None:
    """An ECS_GITOPS_ variable that is no setting is ignored with a warning; secrets named *_TOKEN are not."""
    config = load_config(None, {"ECS_GITOPS_AWS_REGON": "eu-west-1", "ECS_GITOPS_GIT_TOKEN": "secret"})
    assert config.aws.region is None
    assert config.warnings == (
        "ECS_GITOPS_AWS_REGON is not a setting and is ignored (did you mean ECS_GITOPS_AWS_REGION?)",
    )


def test_example_agent_config_loads() -> None:
    """manifests-example/agent-config.yaml, the agent's own settings, loads and matches its service."""
    config = load_config(str(REPO / "manifests-example" / "agent-config.yaml"), {})
    assert config.status.publisher == "github" and config.status.github.repository == "acme/ecs-deployments"
    assert config.server.port == 8080  # the port the agent's task definition maps
    assert config.clusters.allows("ops") and config.clusters.allows("prod")


@pytest.mark.parametrize(("text", "seconds"), [("90s", 90), ("5m", 300), ("1h30m", 5400), ("2h", 7200)])
def test_parse_duration(text: str, seconds: int) -> None:
    """Durations read hours, minutes and seconds in that order."""
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "5", "1m1h", "5 m"])
def test_parse_duration_refuses_other_text(text: str) -> None:
    """Anything that is not a duration is refused rather than read as zero."""
    with pytest.raises(ValueError):
        parse_duration(text)


def test_issue_9_settings_default_off_and_come_from_file_or_environment(tmp_path: Path) -> None:
    """planRefs, sync.selfHeal, sync.prune, status.planComments: off by default, set by file or variable."""
    config = load_config(None, {})
    assert config.source.plan_refs == ()
    assert (config.sync.self_heal, config.sync.prune, config.status.plan_comments) == (False, False, False)
    path = _write(
        tmp_path,
        HEADER
        + "source: {planRefs: [refs/pull/*/head]}\nsync: {prune: true}\nstatus: {planComments: true}\n",
    )
    config = load_config(path, {"ECS_GITOPS_SYNC_SELF_HEAL": "true"})
    assert config.source.plan_refs == ("refs/pull/*/head",)
    assert (config.sync.self_heal, config.sync.prune, config.status.plan_comments) == (True, True, True)
    env = {"ECS_GITOPS_SOURCE_PLAN_REFS": "refs/pull/*/head,refs/merge-requests/*/head"}
    assert load_config(None, env).source.plan_refs == ("refs/pull/*/head", "refs/merge-requests/*/head")


@pytest.mark.parametrize("pattern", ["pull/*/head", "refs/pull/*/*", "refs/pull/* head"])
def test_plan_refs_must_be_ref_patterns(tmp_path: Path, pattern: str) -> None:
    """A plan ref outside refs/, with two stars or a space is refused, naming the item."""
    path = _write(tmp_path, HEADER + f"source: {{planRefs: ['{pattern}']}}\n")
    ((file, pointer, message),) = _problems(path)
    assert (file, pointer) == (path, "/source/planRefs/0")
    assert "must be a ref pattern under refs/ with at most one *" in message
