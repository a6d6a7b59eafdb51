"""The Helm chart (helm/ecs-gitops), rendered and linted by Helm itself: `helm lint --strict` and `helm
template` through Helm's Go SDK (helm-python-sdk, no helm binary), with the default values and each
documented value set (helm/ecs-gitops/ci/*.yaml). Every rendered object validates against the Kubernetes
OpenAPI schemas (kubernetes-validate, offline, strict: no unknown field), and the agent loads the config
the chart mounts.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from helm_schema import SCHEMA, current

from agent.config import load_config

helm = pytest.importorskip(
    "helm_python", reason="helm-python-sdk (Helm's Go SDK) ships x86_64 Linux wheels only"
)
kubernetes_validate = pytest.importorskip("kubernetes_validate")

CHART = Path(__file__).resolve().parents[1] / "helm" / "ecs-gitops"
VALUE_SETS = {"default": {}} | {
    p.stem: yaml.safe_load(p.read_text()) for p in sorted((CHART / "ci").glob("*-values.yaml"))
}
KUBERNETES = "1.30.0"  # the oldest minor EKS still supports in standard support
RELEASE = "ecs-gitops"


def _render(values: dict[str, Any], release: str = RELEASE) -> dict[str, str]:
    """template path -> rendered text, as `helm template RELEASE CHART -f values`."""
    chart = helm.Chart.load(CHART)
    return dict(chart.render(values, name=release, namespace="gitops", is_install=True))


def _objects(values: dict[str, Any], release: str = RELEASE) -> list[dict[str, Any]]:
    out = []
    for path, text in _render(values, release).items():
        if path.endswith(".yaml"):
            out += [doc for doc in yaml.safe_load_all(text) if doc]
    return out


def _by_kind(values: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(o["kind"], o["metadata"]["name"]): o for o in _objects(values)}


def _merged(values: dict[str, Any]) -> dict[str, Any]:
    return dict(helm.Chart.load(CHART).merge_values(values))


@pytest.mark.parametrize("name", sorted(VALUE_SETS))
def test_helm_lint_strict_passes(name: str) -> None:
    """`helm lint --strict` (warnings fail) finds nothing worse than information."""
    report = helm.lint(CHART, VALUE_SETS[name] or None, strict=True, kube_version=f"v{KUBERNETES}")
    assert not report["errors"], report
    assert all(m["severity"] <= 1 for m in report["messages"]), report["messages"]


@pytest.mark.parametrize("name", sorted(VALUE_SETS))
def test_rendered_objects_validate_against_the_kubernetes_schemas(name: str) -> None:
    """Every rendered object is valid for Kubernetes (strict: unknown fields are errors)."""
    objects = _objects(VALUE_SETS[name])
    assert {"Deployment", "ConfigMap", "Service"} <= {o["kind"] for o in objects}
    for obj in objects:
        kubernetes_validate.validate(obj, KUBERNETES, strict=True)


@pytest.mark.parametrize("name", sorted(VALUE_SETS))
def test_labels_security_and_the_config_the_agent_loads(name: str, tmp_path: Path) -> None:
    """Standard labels on every object; the pod meets Pod Security "restricted" (non-root, RuntimeDefault
    seccomp, no escalation, no capabilities); secrets come by reference; the agent loads its config."""
    values = _merged(VALUE_SETS[name])
    objects = _objects(VALUE_SETS[name])
    for obj in objects:
        labels = obj["metadata"]["labels"]
        assert {"helm.sh/chart", "app.kubernetes.io/name", "app.kubernetes.io/instance"} <= set(labels)
        assert labels["app.kubernetes.io/managed-by"] == "Helm" and labels["app.kubernetes.io/version"]
    (deployment,) = [o for o in objects if o["kind"] == "Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] == 10001
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    (agent,) = pod["containers"]
    assert agent["securityContext"]["allowPrivilegeEscalation"] is False
    assert agent["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert agent["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert agent["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    env = {e["name"]: e for e in agent["env"]}
    secrets = ("ECS_GITOPS_GIT_TOKEN", "ECS_GITOPS_WEBHOOK_SECRET")
    assert all("valueFrom" in env[n] and "value" not in env[n] for n in secrets if n in env)
    (configmap,) = [o for o in objects if o["kind"] == "ConfigMap"]
    config_file = tmp_path / "config.yaml"
    config_file.write_text(configmap["data"]["config.yaml"])
    config = load_config(str(config_file), {k: e["value"] for k, e in env.items() if "value" in e})
    assert config.source.repo == values["config"]["source"]["repo"]
    assert config.server.port == values["server"]["port"] and config.server.host == "0.0.0.0"
    hooks = values["webhooks"]
    assert config.server.webhook_port == (hooks["port"] if hooks["enabled"] else None)


def test_a_config_change_rolls_the_pod() -> None:
    """The pod template carries the config's checksum: another config, another pod template."""

    def checksum(values: dict[str, Any]) -> str:
        deployment = _by_kind(values)[("Deployment", RELEASE)]
        return str(deployment["spec"]["template"]["metadata"]["annotations"]["checksum/config"])

    assert checksum({}) == checksum({})
    assert checksum({}) != checksum(
        {"config": {**_merged({})["config"], "source": {"repo": "x", "interval": "5m"}}}
    )


def test_webhooks_have_their_own_service_and_the_ingress_routes_them_alone() -> None:
    """The webhooks Service exposes only the webhook port; the main Service only the agent's port; the
    Ingress routes /webhook/ (nothing else) to the webhooks Service."""
    objects = _by_kind(VALUE_SETS["webhook-ingress-values"])
    main = objects[("Service", RELEASE)]
    hooks = objects[("Service", f"{RELEASE}-webhooks")]
    assert [p["targetPort"] for p in main["spec"]["ports"]] == ["http"]
    assert [(p["targetPort"], p["port"]) for p in hooks["spec"]["ports"]] == [("webhooks", 8081)]
    ingress = objects[("Ingress", f"{RELEASE}-webhooks")]
    (rule,) = ingress["spec"]["rules"]
    (path,) = rule["http"]["paths"]
    assert rule["host"] == "gitops.example.com"
    assert (path["path"], path["pathType"]) == ("/webhook/", "Prefix")
    assert path["backend"]["service"] == {"name": f"{RELEASE}-webhooks", "port": {"name": "webhooks"}}
    defaults = _by_kind({})
    assert ("Ingress", f"{RELEASE}-webhooks") not in defaults
    off = _by_kind(VALUE_SETS["existing-service-account-values"])
    assert not [key for key in off if key[1].endswith("-webhooks")]


def test_names_service_account_and_scheduling() -> None:
    """fullname/nameOverride helpers, serviceAccount.create/name/annotations (IRSA), imagePullSecrets,
    nodeSelector, tolerations and affinity."""
    assert {o["metadata"]["name"] for o in _objects({}, release="prod")} >= {"prod-ecs-gitops"}
    assert {o["metadata"]["name"] for o in _objects({"fullnameOverride": "agent"})} >= {"agent"}
    named = _objects({"nameOverride": "deployer"}, release="prod")
    assert {o["metadata"]["labels"]["app.kubernetes.io/name"] for o in named} == {"deployer"}
    assert "prod-deployer" in {o["metadata"]["name"] for o in named}
    example = _by_kind(VALUE_SETS["example-values"])
    account = example[("ServiceAccount", RELEASE)]
    assert account["metadata"]["annotations"] == {
        "eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/ecs-gitops-agent"
    }
    pod = example[("Deployment", RELEASE)]["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == RELEASE and pod["imagePullSecrets"] == [{"name": "ghcr-pull"}]
    assert (
        pod["nodeSelector"] == {"kubernetes.io/os": "linux"} and pod["tolerations"][0]["key"] == "dedicated"
    )
    assert "nodeAffinity" in pod["affinity"]
    assert {"name": "data", "persistentVolumeClaim": {"claimName": "ecs-gitops-state"}} in pod["volumes"]
    existing = _by_kind(VALUE_SETS["existing-service-account-values"])
    assert not [k for k in existing if k[0] == "ServiceAccount"]
    pod = existing[("Deployment", RELEASE)]["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "platform-ecs-gitops"
    defaults = _by_kind({})
    assert "annotations" not in defaults[("ServiceAccount", RELEASE)]["metadata"]
    assert {"name": "data", "emptyDir": {}} in defaults[("Deployment", RELEASE)]["spec"]["template"]["spec"][
        "volumes"
    ]


@pytest.mark.parametrize(
    ("values", "why"),
    [
        (
            {
                "config": {
                    "apiVersion": "ecs-gitops/v1",
                    "kind": "AgentConfig",
                    "source": {"interval": "5 minutes"},
                }
            },
            "a duration the agent refuses",
        ),
        (
            {"config": {"apiVersion": "ecs-gitops/v1", "kind": "AgentConfig", "sourec": {}}},
            "a typo in the config",
        ),
        ({"imgae": {}}, "a typo in the values"),
        ({"server": {"port": 70000}}, "a port out of range"),
    ],
    ids=["interval", "config-typo", "values-typo", "port"],
)
def test_helm_refuses_bad_values(values: dict[str, Any], why: str) -> None:
    """values.schema.json (with the agent config schema embedded) makes Helm refuse them before install."""
    with pytest.raises(helm.HelmValuesError):
        _render(values)


def test_helm_accepts_global_values() -> None:
    """An umbrella chart's `global:` passes the schema."""
    _render({"global": {"imageRegistry": "registry.example.com"}})


def test_the_embedded_agent_config_schema_is_current() -> None:
    """values.schema.json embeds schemas/agent-config.schema.json as it is now."""
    assert json.loads(SCHEMA.read_text()) == current(), "stale: run `python tests/helm_schema.py`"
