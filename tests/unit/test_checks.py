"""Semantic checks, table-driven: what a schema cannot say, and what ECS would reject later."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import pytest

from agent.errors import InvalidInput, Problem
from agent.manifests import load_desired
from agent.manifests.checks import allowed_clusters, parse_duration
from agent.manifests.tree import DirTree

HDR = "apiVersion: ecs-gitops/v1\n"
TD = "{family: %s, containerDefinitions: [{name: app, image: 'nginx:1', memory: 64%s}]}"


def service(name: str, spec: str = "", env: str = "") -> str:
    extra = f", environment: [{env}]" if env else ""
    return (
        f"{HDR}kind: Service\nmetadata: {{name: {name}}}\nspec:\n  cluster: prod\n  launchType: EC2\n"
        f"  taskDefinition: {TD % (name, extra)}\n{spec}"
    )


def load(tmp_path: Path, files: dict[str, str], config: object = None) -> list[Problem]:
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    try:
        return load_desired(DirTree(tmp_path), config).warnings
    except InvalidInput as err:
        return err.problems


def errors(problems: list[Problem]) -> list[str]:
    return [f"{p.file}: {p.pointer}: {p.message}" for p in problems if p.severity == "error"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90s", timedelta(seconds=90)),
        ("5m", timedelta(minutes=5)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("2h", timedelta(hours=2)),
        ("0s", timedelta(0)),
        ("", None),
        ("5 minutes", None),
        ("30m1h", None),
        (5, None),
    ],
)
def test_parse_duration(text: object, expected: timedelta | None) -> None:
    assert parse_duration(text) == expected


def test_dependency_cycles_are_each_reported_once(tmp_path: Path) -> None:
    """Two separate cycles, two problems, each written from the alphabetically first service."""
    problems = load(
        tmp_path,
        {
            "a.yaml": service("a", "  dependsOn: [b]\n"),
            "b.yaml": service("b", "  dependsOn: [c]\n"),
            "c.yaml": service("c", "  dependsOn: [a]\n"),
            "x.yaml": service("x", "  dependsOn: [y]\n"),
            "y.yaml": service("y", "  dependsOn: [x]\n"),
            "z.yaml": service("z", "  dependsOn: [a, x]\n"),
        },
    )
    assert errors(problems) == [
        "a.yaml: /spec/dependsOn/0: dependsOn forms a cycle: a -> b -> c -> a",
        "x.yaml: /spec/dependsOn/0: dependsOn forms a cycle: x -> y -> x",
    ]


def test_a_schema_error_does_not_cascade_into_unresolved_references(tmp_path: Path) -> None:
    """A strategy with a bad field is one error; the service naming it is not 'unresolved' too."""
    problems = load(
        tmp_path,
        {
            "s.yaml": f"{HDR}kind: DeploymentStrategy\nmetadata: {{name: safe}}\n"
            "spec: {type: rolling, speed: 3}\n",
            "web.yaml": service("web", "  strategy: safe\n"),
        },
    )
    found = errors(problems)
    assert len(found) == 1 and found[0].startswith('s.yaml: /spec/speed: unknown field "speed"')


@dataclass
class _Clusters:
    allow: tuple[str, ...] | None


@dataclass
class _Config:
    clusters: _Clusters = field(default_factory=lambda: _Clusters(None))


def test_allow_list_uses_the_ecs_cluster_name(tmp_path: Path) -> None:
    """A Cluster manifest's clusterName is what must be allowed; services naming it are checked too."""
    files = {
        "cluster.yaml": f"{HDR}kind: Cluster\nmetadata: {{name: prod}}\nspec: {{clusterName: prod-eu}}\n",
        "web.yaml": service("web"),
    }
    assert allowed_clusters(_Config()) is None and allowed_clusters(None) is None
    assert errors(load(tmp_path, files, _Config(_Clusters(("prod-eu",))))) == []
    assert errors(load(tmp_path, files, _Config(_Clusters(("prod",))))) == [
        'cluster.yaml: /spec/clusterName: cluster "prod-eu" is not in the agent config\'s allow-list (prod)',
        'web.yaml: /spec/cluster: cluster "prod-eu" is not in the agent config\'s allow-list (prod)',
    ]


def test_fargate_through_the_cluster_default_strategy(tmp_path: Path) -> None:
    """No launchType and no strategy: the cluster's default FARGATE provider makes it a Fargate service."""
    files = {
        "cluster.yaml": (
            f"{HDR}kind: Cluster\nmetadata: {{name: prod}}\n"
            "spec:\n  capacityProviders: [FARGATE]\n"
            "  defaultCapacityProviderStrategy: [{capacityProvider: FARGATE}]\n"
        ),
        "web.yaml": service("web").replace("  launchType: EC2\n", ""),
    }
    found = errors(load(tmp_path, files))
    cpu = 'task-level cpu is required: service "web" (web.yaml) runs on Fargate'
    assert f"web.yaml: /spec/taskDefinition/cpu: {cpu}" in found
    assert any(p.startswith("web.yaml: /spec/taskDefinition/requiresCompatibilities:") for p in found)


@pytest.mark.parametrize(
    ("env", "warned"),
    [
        ("{name: DB_PASSWORD, value: hunter2}", True),
        ("{name: GITHUB_TOKEN, value: abc}", True),
        ("{name: STRIPE_API_KEY, value: x}", True),
        ("{name: KEY, value: AKIAIOSFODNN7EXAMPLE}", True),
        ("{name: TLS, value: '-----BEGIN RSA PRIVATE KEY-----'}", True),
        ("{name: DB, value: 'postgres://app:s3cret@db:5432/app'}", True),
        ("{name: SIGNING, value: 'c2VjcmV0LXZhbHVlLXRoYXQtaXMtcXVpdGUtbG9uZzEyMzQ1Ng'}", True),
        ("{name: HASH, value: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08}", True),
        ("{name: SECRET_ARN, value: 'arn:aws:secretsmanager:eu-west-1:1:secret:x'}", False),
        ("{name: PASSWORD_FILE, value: ''}", False),
        ("{name: QUEUE_URL, value: 'https://sqs.eu-west-1.amazonaws.com/123456789012/orders'}", False),
        ("{name: LOG_LEVEL, value: info}", False),
        ("{name: TOKENIZER_MODEL, value: ''}", False),
    ],
)
def test_credentials_in_environment_are_warnings(tmp_path: Path, env: str, warned: bool) -> None:
    """A plain environment entry that looks like a credential warns (never fails) and names the entry."""
    problems = load(tmp_path, {"web.yaml": service("web", env=env)})
    assert errors(problems) == []
    warnings = [p for p in problems if "secrets[].valueFrom" in p.message]
    assert bool(warnings) == warned
    if warned:
        assert warnings[0].pointer == "/spec/taskDefinition/containerDefinitions/0/environment/0"
        assert warnings[0].line == 7


def test_manifests_example_has_no_credential_warnings() -> None:
    desired = load_desired(DirTree(Path(__file__).resolve().parents[2] / "manifests-example"))
    assert not [w for w in desired.warnings if "secrets" in w.message]


def test_inline_strategy_rules_point_inside_the_service(tmp_path: Path) -> None:
    strategy = "  strategy: {type: blueGreen, engine: ecs, bake: 2d}\n"
    problems = load(tmp_path, {"web.yaml": service("web", strategy)})
    assert errors(problems)[0].startswith("web.yaml: /spec/strategy/bake:")


def test_agent_engine_linear_without_load_balancer_is_an_error(tmp_path: Path) -> None:
    """The agent engine moves traffic by listener-rule weights between two target groups: it needs them."""
    files = {
        "s.yaml": f"{HDR}kind: DeploymentStrategy\nmetadata: {{name: lin}}\n"
        "spec: {type: linear, engine: agent, linear: {stepPercent: 25, stepBake: 1m}}\n",
        "web.yaml": service("web", "  strategy: lin\n"),
    }
    assert [e.split(":", 2)[1].strip() for e in errors(load(tmp_path, files))] == ["/spec/loadBalancers"]


def test_problems_are_sorted_by_file_and_line(tmp_path: Path) -> None:
    problems = load(
        tmp_path,
        {
            "b.yaml": service("b", "  windows: [nope]\n  dependsOn: [ghost]\n"),
            "a.yaml": service("a", "  strategy: nope\n"),
        },
    )
    keys = [(p.file, p.line or 0) for p in problems]
    assert keys == sorted(keys) and len(keys) == 3
