"""Call a lifecycle hook of an agent-engine rollout: an HTTP POST, or a Lambda invoke.

The request body is JSON ``{"service", "cluster", "sha", "stage", "weights", "taskDefinition"}``
(``weights``: target-group ARN -> production weight at that moment). Over HTTP it is signed like GitHub
signs webhooks: ``X-Ecs-Gitops-Signature-256: sha256=<hex HMAC-SHA256(secret, body)>``, the secret read
from the environment variable the agent config names (``hooks.secretEnv``, default
``ECS_GITOPS_HOOK_SECRET``); without a secret the header is left out. A Lambda function gets the same
JSON as its event (InvocationType RequestResponse).

The hook answers ``{"status": "SUCCEEDED" | "FAILED" | "IN_PROGRESS", "reason": "..."}``:

* HTTP 2xx with that JSON: its status and reason;
* HTTP 4xx: FAILED (the hook refuses the request; the reason says why), a 2xx answer with FAILED too;
* HTTP 5xx, an answer that is not such JSON, a connection error or a timeout: IN_PROGRESS, so it is asked
  again (every 5 s, by the engine) until the hook's own ``timeout`` runs out and its ``onTimeout`` applies;
* Lambda: the function's JSON result read the same way; a ``FunctionError`` (the function raised) is
  FAILED, and so is an invoke Lambda refuses (4xx: no such function, access denied); one that does not
  get through (throttled, 5xx, unreachable) is IN_PROGRESS.

Each request waits at most ``min(10 s, what is left of the hook's timeout)``. The standard library's urllib
is enough for one signed POST; no HTTP library is needed.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog

from agent.rollout.progressive import Hook, HookState, Weights

log = structlog.get_logger()

SIGNATURE_HEADER = "X-Ecs-Gitops-Signature-256"
DEFAULT_SECRET_ENV = "ECS_GITOPS_HOOK_SECRET"
REQUEST_TIMEOUT = timedelta(seconds=10)
MIN_TIMEOUT = timedelta(seconds=0.25)  # the floor when the hook's time is (nearly) up
SUCCEEDED, FAILED, IN_PROGRESS = "SUCCEEDED", "FAILED", "IN_PROGRESS"
_STATUSES = (SUCCEEDED, FAILED, IN_PROGRESS)
_REASON_LIMIT = 200


@dataclass(frozen=True)
class HookCall:
    """What a hook is told: which rollout, which stage, and where traffic is."""

    service: str
    cluster: str
    sha: str
    stage: str
    weights: Weights
    task_definition: str | None

    def body(self) -> bytes:
        return json.dumps(
            {
                "service": self.service,
                "cluster": self.cluster,
                "sha": self.sha,
                "stage": self.stage,
                "weights": {arn: weight for arn, weight in self.weights},
                "taskDefinition": self.task_definition,
            },
            sort_keys=True,
        ).encode()


def signature(secret: str, body: bytes) -> str:
    """The header value: ``sha256=`` and the hex HMAC-SHA256 of ``body`` keyed with ``secret``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class HookCaller:
    """Calls hooks for the reconciler; one per agent.

    ``secret_env`` names the environment variable read (on each call, so a rotated secret is picked up);
    ``lambda_client`` returns the boto3 Lambda client (only made when a Lambda hook is called).
    """

    def __init__(
        self,
        secret_env: str = DEFAULT_SECRET_ENV,
        lambda_client: Callable[[], Any] | None = None,
        env: Mapping[str, str] = os.environ,
    ) -> None:
        self.secret_env = secret_env
        self.lambda_client = lambda_client
        self.env = env

    def call(self, hook: Hook, call: HookCall, previous: HookState | None, now: datetime) -> HookState:
        """Call ``hook`` once and return its state; ``first_called_at`` is kept from ``previous``."""
        first = previous.first_called_at if previous is not None else now
        left = first + hook.timeout - now
        timeout = max(MIN_TIMEOUT, min(REQUEST_TIMEOUT, left)).total_seconds()
        if hook.url:
            status, reason = self._http(hook.url, call.body(), timeout)
        elif hook.lambda_arn:
            status, reason = self._lambda(hook.lambda_arn, call.body())
        else:
            status, reason = FAILED, f"hook {hook.stage} has neither url nor lambda"
        log.info("hook.called", stage=hook.stage, service=call.service, status=status, reason=reason)
        return HookState(hook.stage, status, first, now, _cut(reason))

    # -- transports --------------------------------------------------------------------------------

    def _http(self, url: str, body: bytes, timeout: float) -> tuple[str, str]:
        headers = {"Content-Type": "application/json", "User-Agent": "ecs-gitops"}
        secret = self.env.get(self.secret_env)
        if secret:
            headers[SIGNATURE_HEADER] = signature(secret, body)
        request = urllib.request.Request(url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return _answer(response.read(), f"HTTP {response.status}")
        except urllib.error.HTTPError as e:
            text = _read(e)
            return (FAILED if 400 <= e.code < 500 else IN_PROGRESS), _http_reason(e.code, text)
        except (urllib.error.URLError, OSError) as e:  # refused, unreachable, timed out
            reason = getattr(e, "reason", e)
            reason = (
                getattr(reason, "strerror", None) or reason
            )  # "Connection refused", not "[Errno 111] ..."
            return IN_PROGRESS, f"cannot reach {url}: {reason}"

    def _lambda(self, function: str, body: bytes) -> tuple[str, str]:
        from botocore.exceptions import BotoCoreError, ClientError

        if self.lambda_client is None:
            return IN_PROGRESS, "no Lambda client configured"
        try:
            out = self.lambda_client().invoke(
                FunctionName=function, InvocationType="RequestResponse", Payload=body
            )
        except ClientError as e:
            error = e.response.get("Error", {})
            code = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            text = f"{error.get('Code', 'Error')}: {error.get('Message', '')}".rstrip(": ")
            if 400 <= code < 500 and code != 429:  # no such function, access denied: asking again won't help
                return FAILED, f"invoke refused: {text}"
            return IN_PROGRESS, f"invoke failed: {text}"
        except BotoCoreError as e:
            return IN_PROGRESS, f"invoke failed: {e}"
        payload = out["Payload"].read() if out.get("Payload") is not None else b""
        if out.get("FunctionError"):
            try:
                data = json.loads(payload or b"{}")
            except ValueError:
                data = {}
            message = data.get("errorMessage") if isinstance(data, dict) else None
            return FAILED, f"function error: {message or out['FunctionError']}"
        return _answer(payload, "Lambda")


def _read(error: urllib.error.HTTPError) -> bytes:
    try:
        return error.read()
    except OSError:
        return b""


def _answer(payload: bytes, where: str) -> tuple[str, str]:
    """(status, reason) of an answer body; IN_PROGRESS when it is not the expected JSON."""
    try:
        data = json.loads(payload)
    except ValueError:
        return IN_PROGRESS, f"{where}: answer is not JSON"
    status = data.get("status") if isinstance(data, dict) else None
    if status not in _STATUSES:
        return IN_PROGRESS, f"{where}: answer has no status SUCCEEDED, FAILED or IN_PROGRESS"
    reason = data.get("reason")
    return str(status), "" if reason is None else str(reason)


def _http_reason(code: int, body: bytes) -> str:
    text = body.decode("utf-8", "replace").strip()
    try:
        data = json.loads(text)
        if isinstance(data, dict) and data.get("reason"):
            text = str(data["reason"])
    except ValueError:
        pass
    return f"HTTP {code}" + (f": {text}" if text else "")


def _cut(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _REASON_LIMIT else text[: _REASON_LIMIT - 1] + "…"


# -- the store's form of a HookState ---------------------------------------------------------------


def hook_key(cluster: str, service: str, fingerprint: str, stage: str) -> str:
    """Where the reconciler keeps a hook's state for one rollout (a new content starts afresh)."""
    return f"hook/{cluster}/{service}/{fingerprint}/{stage}"


def state_to_json(state: HookState) -> dict[str, Any]:
    return {
        "stage": state.stage,
        "status": state.status,
        "first_called_at": state.first_called_at.isoformat(),
        "last_called_at": state.last_called_at.isoformat(),
        "reason": state.reason,
    }


def state_from_json(data: Mapping[str, Any] | None) -> HookState | None:
    if not data:
        return None
    return HookState(
        stage=str(data["stage"]),
        status=str(data["status"]),
        first_called_at=datetime.fromisoformat(data["first_called_at"]),
        last_called_at=datetime.fromisoformat(data["last_called_at"]),
        reason=str(data.get("reason") or ""),
    )
