"""A small JSON-over-HTTPS client for Git-host APIs, on the standard library only.

It owns the two things every host adapter needs to get right: typing failures by what the caller does
next (5xx, 429, rate limits, timeouts and refused connections are transient; other 4xx are permanent)
and keeping the token out of every message, log line and repr.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from email.message import Message
from pathlib import Path
from typing import Any

from agent.errors import PermanentError, TransientError

DEFAULT_TIMEOUT = 10.0


@dataclass(frozen=True)
class Token:
    """Where a secret token comes from: a file, an environment variable, or (tests) a literal value.

    Read at each request, so a rotated (or corrected) file or variable is picked up without a restart. A
    file, when set, wins over the variable (a mounted secret is what the operator configured).
    """

    env: str | None = None
    file: str | None = None
    value: str | None = field(default=None, repr=False)

    def get(self) -> str:
        if self.value:
            return self.value
        if self.file:
            try:
                token = Path(self.file).read_text(encoding="utf-8").strip()
            except OSError as e:
                raise TokenError(f"cannot read token file {self.file}: {e.strerror}") from None
            if token:
                return token
            raise TokenError(f"token file {self.file} is empty")
        if self.env:
            token = os.environ.get(self.env, "").strip()
            if token:
                return token
            raise TokenError(f"token environment variable {self.env} is not set")
        raise TokenError("no token configured (set an environment variable name or a file)")


class TokenError(PermanentError):
    """No token to send: the variable is unset, the file missing or empty."""

    reason = "token"


class HttpPermanentError(PermanentError):
    """A 4xx that retrying at once won't fix; ``status`` and the host's ``detail`` message are kept, and
    ``reason`` names the kind for the failure metric (auth, forbidden, not_found, invalid, http_4xx)."""

    def __init__(self, message: str, status: int, detail: str) -> None:
        super().__init__(message)
        self.status = status
        self.detail = detail
        self.reason = REASONS.get(status, "http_4xx")


class HttpTransientError(TransientError):
    """What may pass: a 5xx, a rate limit, a timeout or a host that did not answer (``reason`` says which:
    http_5xx, rate_limited, unreachable)."""

    def __init__(self, message: str, reason: str, delay: float | None = None) -> None:
        super().__init__(message, delay=5.0 if delay is None else delay)
        self.reason = reason


REASONS = {401: "auth", 403: "forbidden", 404: "not_found", 422: "invalid"}


@dataclass(frozen=True)
class Response:
    status: int
    headers: Message
    body: Any  # parsed JSON, or the text when it is not JSON, or None when empty


def request(
    method: str,
    url: str,
    *,
    headers: dict[str, str],
    body: Any = None,
    timeout: float = DEFAULT_TIMEOUT,
    secret: str = "",
) -> Response:
    """Send one request; return 2xx responses, raise typed errors for everything else.

    ``secret`` is scrubbed from any error message (a host may echo a header back).
    """
    data = None
    headers = dict(headers)
    if body is not None:
        data = json.dumps(body).encode()
        headers.setdefault("Content-Type", "application/json")
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    what = f"{method} {_without_query(url)}"
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return Response(resp.status, resp.headers, _parse(resp.read()))
    except urllib.error.HTTPError as e:
        detail = _scrub(_detail(e), secret)
        delay = _retry_after(e.code, e.headers, detail)
        message = f"{what}: HTTP {e.code} {detail}".rstrip()
        if delay is not None:
            raise HttpTransientError(message, "rate_limited", delay=delay) from None
        if e.code >= 500:
            raise HttpTransientError(message, "http_5xx", delay=5.0) from None
        raise HttpPermanentError(message, e.code, detail) from None
    except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise HttpTransientError(f"{what}: {_scrub(str(reason), secret)}", "unreachable") from None


def _parse(raw: bytes) -> Any:
    if not raw:
        return None
    text = raw.decode("utf-8", "replace")
    try:
        return json.loads(text)
    except ValueError:
        return text


def _detail(e: urllib.error.HTTPError) -> str:
    try:
        body = _parse(e.read())
    except OSError:
        return ""
    if isinstance(body, dict):
        message = body.get("message") or body.get("error") or body.get("title") or ""
        return str(message)[:300]
    return str(body or "")[:300]


def _retry_after(code: int, headers: Message | None, detail: str = "") -> float | None:
    """A delay when the host asks us to come back later, else None.

    GitHub's documented answers: 429, or 403 with ``Retry-After`` (secondary rate limit), or 403 with
    ``X-RateLimit-Remaining: 0`` (primary limit: wait until ``X-RateLimit-Reset``), or 403 whose message
    says "rate limit" with neither header (wait at least a minute).
    """
    if code not in (403, 429):
        return None
    headers = headers if headers is not None else Message()
    if headers.get("Retry-After", "").strip().isdigit():
        return float(headers["Retry-After"])
    if headers.get("X-RateLimit-Remaining") == "0" and headers.get("X-RateLimit-Reset", "").isdigit():
        return max(1.0, float(headers["X-RateLimit-Reset"]) - time.time())
    if code == 429 or "rate limit" in detail.lower():
        return 60.0
    return None


def _without_query(url: str) -> str:
    return url.split("?", 1)[0]


def _scrub(text: str, secret: str) -> str:
    return text.replace(secret, "***") if secret else text
