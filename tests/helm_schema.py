"""helm/ecs-gitops/values.schema.json: the chart's own values, and under ``config`` the agent config schema
(schemas/agent-config.schema.json, with the common definitions it uses) embedded, so ``helm install``
refuses a config the agent would refuse. tests/test_helm_chart.py fails when the embedded copy is stale;
``python tests/helm_schema.py`` rewrites it."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "helm" / "ecs-gitops" / "values.schema.json"
PREFIX = "agentConfig"  # the embedded definitions are $defs/agentConfig, $defs/agentConfig.<name>


def _rewrite(node: Any) -> Any:
    """Point the agent schema's references at their embedded copies."""
    if isinstance(node, dict):
        out = {k: _rewrite(v) for k, v in node.items()}
        ref = out.get("$ref")
        if isinstance(ref, str):
            match = re.fullmatch(r"(?:(common)\.schema\.json)?#/\$defs/(\w+)", ref)
            assert match, f"an unexpected $ref in the agent config schema: {ref}"
            out["$ref"] = f"#/$defs/{PREFIX}.{match.group(1) or 'agent'}.{match.group(2)}"
        return out
    if isinstance(node, list):
        return [_rewrite(v) for v in node]
    return node


def embedded_definitions() -> dict[str, Any]:
    """$defs entries: the agent config schema and every definition it reaches."""
    agent = json.loads((ROOT / "schemas" / "agent-config.schema.json").read_text())
    common = json.loads((ROOT / "schemas" / "common.schema.json").read_text())
    out = {PREFIX: _rewrite({k: v for k, v in agent.items() if k not in ("$schema", "$id", "$defs")})}
    out.update({f"{PREFIX}.agent.{k}": _rewrite(v) for k, v in agent.get("$defs", {}).items()})
    pending = [ref for ref in re.findall(r'"#/\$defs/([^"]+)"', json.dumps(out)) if ref not in out]
    while pending:
        name = pending.pop()
        if name in out:
            continue
        out[name] = _rewrite(common["$defs"][name.rsplit(".", 1)[1]])
        pending += [r for r in re.findall(r'"#/\$defs/([^"]+)"', json.dumps(out[name])) if r not in out]
    return dict(sorted(out.items()))


def current() -> dict[str, Any]:
    """values.schema.json with its embedded definitions taken from schemas/ now."""
    schema = json.loads(SCHEMA.read_text())
    kept = {k: v for k, v in schema.get("$defs", {}).items() if not k.startswith(PREFIX)}
    schema["$defs"] = {**kept, **embedded_definitions()}
    return schema


if __name__ == "__main__":
    SCHEMA.write_text(json.dumps(current(), indent=2) + "\n")
