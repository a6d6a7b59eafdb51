"""Credentials for git remotes, handed to git through its environment only.

A token never goes into the remote URL, the argv of a git process or a log line: it is read when a
fetch starts (so a rotated secret is picked up) and passed as an ``http.<origin>.extraHeader`` set
through ``GIT_CONFIG_COUNT`` / ``GIT_CONFIG_KEY_n`` / ``GIT_CONFIG_VALUE_n``. The header is scoped to
the remote's origin (scheme, host, port), and, unlike ``GIT_ASKPASS``, no credential helper ever sees
the token, so none can store it. SSH gets a ``GIT_SSH_COMMAND`` that pins the key and the known hosts
and never prompts.
"""

from __future__ import annotations

import base64
import os
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from agent.errors import PermanentError

HOST_KEY_CHECKING = ("yes", "accept-new", "no")
# userinfo with a password (any scheme), or any userinfo of an http(s) URL (a token may be the user).
_URL_SECRET_USERINFO = re.compile(
    r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)[^/@\s:]*:[^/@\s]*@|(?P<http>https?://)[^/@\s]+@", re.IGNORECASE
)


def redact_url(text: str) -> str:
    """``text`` with the credentials of every URL in it replaced by ``***``, fit for messages and logs."""
    return _URL_SECRET_USERINFO.sub(lambda m: f"{m.group('scheme') or m.group('http')}***@", text)


def is_http_url(url: str) -> bool:
    return url.lower().startswith(("http://", "https://"))


def _origin(url: str) -> str:
    """``scheme://host[:port]/`` of an http(s) URL: the scope git matches ``http.<url>.*`` against."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme.lower()}://{host}{port}/"


@dataclass(frozen=True)
class GitAuth:
    """How to authenticate to the remote: an https token, an ssh key, or both (used by URL scheme).

    ``token_env`` names an environment variable holding the token; ``token_file`` is a file holding it
    (a mounted secret). ``username`` goes with the token in HTTP Basic auth: ``x-access-token`` suits
    GitHub, ``oauth2`` GitLab. The token itself is never an attribute, so ``repr`` cannot leak it.
    """

    token_env: str | None = None
    token_file: Path | None = None
    username: str = "x-access-token"
    key_file: Path | None = None
    known_hosts: Path | None = None
    strict_host_key_checking: str = "yes"
    connect_timeout: int = 15

    def __post_init__(self) -> None:
        if self.token_env and self.token_file:
            raise PermanentError("git auth: give token_env or token_file, not both")
        if self.strict_host_key_checking not in HOST_KEY_CHECKING:
            raise PermanentError(
                f"git auth: strict_host_key_checking must be one of {', '.join(HOST_KEY_CHECKING)}"
            )

    @property
    def has_token(self) -> bool:
        return bool(self.token_env or self.token_file)

    def token(self, environ: Mapping[str, str] | None = None) -> str | None:
        """The token, read now; None when none is configured. Missing or empty is a configuration error."""
        environ = os.environ if environ is None else environ
        if self.token_env:
            value = environ.get(self.token_env, "").strip()
            if not value:
                raise PermanentError(f"git auth: environment variable {self.token_env} is not set or empty")
            return value
        if self.token_file:
            try:
                value = Path(self.token_file).read_text(encoding="utf-8").strip()
            except OSError as e:
                raise PermanentError(
                    f"git auth: cannot read token file {self.token_file}: {e.strerror}"
                ) from e
            if not value:
                raise PermanentError(f"git auth: token file {self.token_file} is empty")
            return value
        return None

    def ssh_command(self) -> str:
        """The ``GIT_SSH_COMMAND``: this key only, these known hosts, never a prompt."""
        return ssh_command(
            key_file=self.key_file,
            known_hosts=self.known_hosts,
            strict_host_key_checking=self.strict_host_key_checking,
            connect_timeout=self.connect_timeout,
        )

    def git_env(self, url: str, environ: Mapping[str, str] | None = None) -> dict[str, str]:
        """Environment variables to add to a git process talking to ``url``.

        The token (for http(s) URLs) travels as a config entry set through the environment, which
        ``ps`` and gitpython's command logging do not show; it is appended after any
        ``GIT_CONFIG_COUNT`` entries already present.
        """
        environ = os.environ if environ is None else environ
        env: dict[str, str] = {}
        if self.key_file or self.known_hosts or self.strict_host_key_checking != "yes":
            env["GIT_SSH_COMMAND"] = self.ssh_command()
        if is_http_url(url) and self.has_token:
            token = self.token(environ)
            basic = base64.b64encode(f"{self.username}:{token}".encode()).decode("ascii")
            try:
                index = int(environ.get("GIT_CONFIG_COUNT", "0") or "0")
            except ValueError:
                index = 0
            env["GIT_CONFIG_COUNT"] = str(index + 1)
            env[f"GIT_CONFIG_KEY_{index}"] = f"http.{_origin(url)}.extraHeader"
            env[f"GIT_CONFIG_VALUE_{index}"] = f"Authorization: Basic {basic}"
        return env

    def secrets(self, environ: Mapping[str, str] | None = None) -> list[str]:
        """Strings that must never appear in a message: the token and its Basic-auth encoding."""
        try:
            token = self.token(environ)
        except PermanentError:
            return []
        if not token:
            return []
        basic = base64.b64encode(f"{self.username}:{token}".encode()).decode("ascii")
        return [token, basic]


def ssh_command(
    key_file: Path | None = None,
    known_hosts: Path | None = None,
    strict_host_key_checking: str = "yes",
    connect_timeout: int = 15,
) -> str:
    """An ssh command line for ``GIT_SSH_COMMAND`` (paths shell-quoted: git runs it through a shell)."""
    parts = ["ssh"]
    if key_file:
        parts += ["-i", shlex.quote(str(key_file)), "-o", "IdentitiesOnly=yes"]
    if known_hosts:
        parts += ["-o", shlex.quote(f"UserKnownHostsFile={known_hosts}")]
    parts += [
        "-o",
        f"StrictHostKeyChecking={strict_host_key_checking}",
        "-o",
        "BatchMode=yes",
        "-o",
        f"ConnectTimeout={int(connect_timeout)}",
    ]
    return " ".join(parts)
