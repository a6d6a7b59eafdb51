"""The Helm chart (helm/ecs-gitops): values validate against values.schema.json, and every template
renders to well-formed Kubernetes YAML with the default and the example values.

No helm binary here, so ``render`` below implements the Go-template subset the templates keep to:
``{{ .Values.a.b }}``, ``{{ .Release.Name }}``, ``{{- if X }}`` / ``{{- else }}`` / ``{{- end }}``,
``| quote``, ``toYaml X | nindent N`` and the ``{{-`` / ``-}}`` whitespace trimming. Anything else in a
template is an error, so the chart cannot drift outside what this test checks.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from agent.config import load_config

CHART = Path(__file__).resolve().parents[1] / "helm" / "ecs-gitops"
TEMPLATES = sorted((CHART / "templates").glob("*.yaml"))
RELEASE = {"Name": "ecs-gitops", "Namespace": "ecs-gitops"}
_ACTION = re.compile(r"{{(-?)\s*(.*?)\s*(-?)}}", re.DOTALL)


# -- a renderer for the subset ---------------------------------------------------------------------------


def _lookup(path: str, scope: dict[str, Any]) -> Any:
    if not path.startswith("."):
        raise ValueError(f"not a value path: {path!r}")
    node: Any = scope
    for part in path[1:].split("."):
        if not isinstance(node, dict) or part not in node:
            raise KeyError(f"{path} is not defined")
        node = node[part]
    return node


def _to_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        raise ValueError("a map or list needs toYaml")
    return str(value)


def _evaluate(expression: str, scope: dict[str, Any]) -> Any:
    """A pipeline: a value path or ``toYaml PATH``, then ``quote`` / ``nindent N`` stages."""
    first, *stages = (s.strip() for s in expression.split("|"))
    words = first.split()
    if words[0] == "toYaml" and len(words) == 2:
        value = yaml.safe_dump(_lookup(words[1], scope), sort_keys=False).rstrip("\n")
    elif len(words) == 1:
        value = _lookup(words[0], scope)
    else:
        raise ValueError(f"outside the supported subset: {expression!r}")
    for stage in stages:
        name, *args = stage.split()
        if name == "quote" and not args:
            value = json.dumps(_to_text(value))
        elif name == "nindent" and len(args) == 1:
            pad = " " * int(args[0])
            value = "\n" + "\n".join(pad + line if line else line for line in str(value).split("\n"))
        else:
            raise ValueError(f"outside the supported subset: {stage!r}")
    return value


def _truthy(value: Any) -> bool:
    return value not in (None, False, 0, "", {}, [])


def render(template: str, values: dict[str, Any]) -> str:
    """Render ``template`` with ``.Values`` = ``values`` and ``.Release`` = RELEASE."""
    scope = {"Values": values, "Release": RELEASE}
    pieces: list[tuple[str, str]] = []  # ("text", s) or ("action", expression)
    pos = 0
    for match in _ACTION.finditer(template):
        text = template[pos : match.start()]
        if match.group(1):
            text = text.rstrip()
        pieces.append(("text", text))
        pieces.append(("action", match.group(2)))
        pos = match.end()
        if match.group(3):
            rest = template[pos:]
            pos += len(rest) - len(rest.lstrip())
    pieces.append(("text", template[pos:]))

    out: list[str] = []
    stack: list[tuple[bool, bool]] = []  # (this branch taken, every enclosing branch taken)
    for kind, piece in pieces:
        active = all(taken for taken, _ in stack)
        if kind == "text":
            if active:
                out.append(piece)
        elif piece.startswith("if "):
            stack.append((active and _truthy(_evaluate(piece[3:], scope)), active))
        elif piece == "else":
            taken, outer = stack.pop()  # with the outer branch active, taken is the condition
            stack.append((outer and not taken, outer))
        elif piece == "end":
            stack.pop()
        elif active:
            out.append(_to_text(_evaluate(piece, scope)))
    if stack:
        raise ValueError("an if without its end")
    return "".join(out)


def _merge(base: Any, override: Any) -> Any:
    """Helm's -f merge: maps merge key by key, anything else replaces."""
    if isinstance(base, dict) and isinstance(override, dict):
        out = dict(base)
        for key, value in override.items():
            out[key] = _merge(base.get(key), value)
        return out
    return copy.deepcopy(override)


DEFAULTS = yaml.safe_load((CHART / "values.yaml").read_text())
EXAMPLE = _merge(DEFAULTS, yaml.safe_load((CHART / "ci" / "example-values.yaml").read_text()))
VALUE_SETS = {"default": DEFAULTS, "example": EXAMPLE}


def _documents(values: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """kind -> the rendered document, over every template."""
    out = {}
    for template in TEMPLATES:
        text = render(template.read_text(), values)
        for document in yaml.safe_load_all(text):
            if document is not None:
                out[document["kind"]] = document
    return out


# -- the renderer itself ---------------------------------------------------------------------------------


def test_the_renderer_handles_the_subset() -> None:
    """The renderer trims, branches, quotes and indents as Go templates do."""
    values = {"a": {"on": True, "off": "", "n": 3, "m": {"k": "v"}}}
    assert render("x: {{ .Values.a.n | quote }}", values) == 'x: "3"'
    assert render("a:\n  {{- if .Values.a.on }}\n  b: 1\n  {{- end }}\n", values) == "a:\n  b: 1\n"
    assert render("a:\n  {{- if .Values.a.off }}\n  b: 1\n  {{- else }}\n  c: 2\n  {{- end }}\n", values) == (
        "a:\n  c: 2\n"
    )
    assert render("m:\n  {{- toYaml .Values.a.m | nindent 2 }}\n", values) == "m:\n  k: v\n"
    with pytest.raises(KeyError):
        render("{{ .Values.a.missing }}", values)
    with pytest.raises(ValueError, match="subset"):
        render('{{ include "x" . }}', values)


# -- the chart -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(VALUE_SETS))
def test_values_validate_against_the_schema(name: str) -> None:
    """values.yaml, and the example values merged over it, satisfy values.schema.json."""
    schema = json.loads((CHART / "values.schema.json").read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(VALUE_SETS[name]), key=str)
    assert not errors, [f"{'/'.join(map(str, e.path))}: {e.message}" for e in errors]


def test_the_schema_refuses_a_typo_and_a_bad_port() -> None:
    """An unknown top-level value or a port out of range is refused, as helm install would."""
    validator = jsonschema.Draft7Validator(json.loads((CHART / "values.schema.json").read_text()))
    assert not validator.is_valid({**DEFAULTS, "imgae": {}})
    assert not validator.is_valid(_merge(DEFAULTS, {"server": {"port": 70000}}))


@pytest.mark.parametrize("name", sorted(VALUE_SETS))
@pytest.mark.parametrize("template", TEMPLATES, ids=lambda p: p.name)
def test_each_template_renders_to_well_formed_yaml(template: Path, name: str) -> None:
    """Each template renders to YAML documents with apiVersion, kind and metadata.name, no action left."""
    text = render(template.read_text(), VALUE_SETS[name])
    assert "{{" not in text and "}}" not in text
    for document in yaml.safe_load_all(text):
        if document is None:
            continue
        assert {"apiVersion", "kind", "metadata"} <= set(document)
        assert document["metadata"]["name"] == RELEASE["Name"]


@pytest.mark.parametrize("name", sorted(VALUE_SETS))
def test_the_deployment_probes_secrets_and_config(name: str, tmp_path: Path) -> None:
    """The Deployment probes /healthz and /readyz on the agent's port, runs non-root, takes secrets only by
    reference, and mounts a config that the agent itself loads without a problem."""
    values = VALUE_SETS[name]
    documents = _documents(values)
    assert {"Deployment", "ServiceAccount", "ConfigMap", "Service", "PodDisruptionBudget"} <= set(documents)
    pod = documents["Deployment"]["spec"]["template"]["spec"]
    (agent,) = pod["containers"]
    assert agent["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert agent["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert agent["ports"] == [{"name": "http", "containerPort": values["server"]["port"]}]
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] == 10001
    env = {e["name"]: e for e in agent["env"]}
    secrets = ("ECS_GITOPS_GIT_TOKEN", "ECS_GITOPS_WEBHOOK_SECRET")
    assert all("valueFrom" in env[n] and "value" not in env[n] for n in secrets if n in env)
    config_file = tmp_path / "config.yaml"
    config_file.write_text(documents["ConfigMap"]["data"]["config.yaml"])
    config = load_config(str(config_file), {k: e["value"] for k, e in env.items() if "value" in e})
    assert config.source.repo == values["config"]["source"]["repo"]
    assert config.server.port == values["server"]["port"] and config.server.host == "0.0.0.0"


def test_example_values_use_irsa_secrets_and_a_volume() -> None:
    """With the example values: the IRSA annotation, secretKeyRefs for both secrets, and the PVC."""
    documents = _documents(EXAMPLE)
    annotations = documents["ServiceAccount"]["metadata"]["annotations"]
    assert annotations == {"eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/ecs-gitops-agent"}
    pod = documents["Deployment"]["spec"]["template"]["spec"]
    env = {e["name"]: e for e in pod["containers"][0]["env"]}
    token = env["ECS_GITOPS_GIT_TOKEN"]["valueFrom"]["secretKeyRef"]
    assert token == {"name": "ecs-gitops-git", "key": "token"}
    assert env["ECS_GITOPS_WEBHOOK_SECRET"]["valueFrom"]["secretKeyRef"]["name"] == "ecs-gitops-webhook"
    assert env["ECS_GITOPS_LOG_LEVEL"] == {"name": "ECS_GITOPS_LOG_LEVEL", "value": "info"}
    data = next(v for v in pod["volumes"] if v["name"] == "data")
    assert data == {"name": "data", "persistentVolumeClaim": {"claimName": "ecs-gitops-state"}}


def test_default_values_have_no_irsa_annotation_and_an_empty_dir() -> None:
    """With the defaults: no role annotation, no secret env, state in an emptyDir."""
    documents = _documents(DEFAULTS)
    assert "annotations" not in documents["ServiceAccount"]["metadata"]
    pod = documents["Deployment"]["spec"]["template"]["spec"]
    names = {e["name"] for e in pod["containers"][0]["env"]}
    assert not names & {"ECS_GITOPS_GIT_TOKEN", "ECS_GITOPS_WEBHOOK_SECRET"}
    assert {"name": "data", "emptyDir": {}} in pod["volumes"]
