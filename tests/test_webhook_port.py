"""``server.webhookPort``: the push webhooks on a listener of their own, and only there, so a Service or a
load balancer can publish them without /metrics and /dashboard/ (helm/ecs-gitops's webhooks Service)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

from agent.config import load_config
from agent.http.metrics import Metrics
from agent.http.server import AgentServer, Endpoints, Readiness, github_signature

SECRET = "s3cret"
PUSH = json.dumps({"ref": "refs/heads/main"}).encode()


def _call(url: str, body: bytes | None = None, headers: dict[str, str] | None = None) -> int:
    request = urllib.request.Request(url, data=body, headers=headers or {}, method="POST" if body else "GET")
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as e:
        return int(e.code)


def test_webhooks_answer_on_their_own_port_only() -> None:
    """With a webhook port, a signed push triggers a tick there; the main port answers it 404 and keeps
    /healthz and /metrics, which the webhook port does not serve."""
    triggered: list[bool] = []
    endpoints = Endpoints(
        Readiness(60, lambda: datetime.now(UTC)),
        Metrics(),
        lambda: triggered.append(True),
        lambda: SECRET,
        "main",
    )
    signed = {"X-GitHub-Event": "push", "X-Hub-Signature-256": github_signature(SECRET, PUSH)}
    with AgentServer(endpoints, "127.0.0.1", 0, webhook_port=0) as server:
        assert server.webhook_port != server.port
        hooks = f"http://127.0.0.1:{server.webhook_port}"
        assert _call(server.url + "/webhook/github", PUSH, signed) == 404 and not triggered
        assert _call(hooks + "/webhook/github", PUSH, signed) == 200 and triggered == [True]
        assert _call(hooks + "/webhook/gitlab", PUSH, {"X-Gitlab-Token": "nope"}) == 401
        assert [_call(server.url + p) for p in ("/healthz", "/metrics")] == [200, 200]
        assert [_call(hooks + p) for p in ("/healthz", "/metrics", "/dashboard/")] == [404, 404, 404]


def test_without_a_webhook_port_webhooks_share_the_main_port() -> None:
    """The default: one listener serves everything, as before."""
    endpoints = Endpoints(
        Readiness(60, lambda: datetime.now(UTC)), Metrics(), lambda: None, lambda: None, "main"
    )
    with AgentServer(endpoints, "127.0.0.1", 0) as server:
        assert server.webhook_port == server.port
        assert _call(server.url + "/webhook/github", PUSH, {"X-GitHub-Event": "push"}) == 403  # no secret set


def test_the_config_option_and_its_variable(tmp_path: Path) -> None:
    """server.webhookPort comes from the file or ECS_GITOPS_SERVER_WEBHOOK_PORT; unset, it is None."""
    assert load_config(None, {}).server.webhook_port is None
    assert load_config(None, {"ECS_GITOPS_SERVER_WEBHOOK_PORT": "8081"}).server.webhook_port == 8081
    path = tmp_path / "config.yaml"
    path.write_text("apiVersion: ecs-gitops/v1\nkind: AgentConfig\nserver: {port: 8080, webhookPort: 9090}\n")
    assert load_config(str(path), {}).server.webhook_port == 9090
