"""The commits the dashboard names: links to them on GitHub or GitLab, and the status changes the agent
wrote on them (the page's history)."""

from __future__ import annotations

import re
import threading
from collections import OrderedDict, deque
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

HISTORY = 50  # status changes kept for the page (this process's, newest first)


# -- commit links ------------------------------------------------------------------------------------


def commit_url_template(config: Any, repo_url: str) -> str | None:
    """``https://host/OWNER/REPO/commit/{sha}`` (GitHub) or ``.../-/commit/{sha}`` (GitLab), or None.

    From the status publisher's settings when it is GitHub or GitLab (``status.github.repository`` on
    ``api_url``'s host; ``status.gitlab.project`` when it is a path, not a numeric ID), else from an
    https or scp-style repository URL on github.com or a host named gitlab.
    """
    status = getattr(config, "status", None)
    publisher = getattr(status, "publisher", None)
    if publisher == "github" and status.github.repository:
        return f"{_web_base(status.github.api_url, 'github')}/{status.github.repository}/commit/{{sha}}"
    if publisher == "gitlab" and status.gitlab.project and not str(status.gitlab.project).isdigit():
        return f"{_web_base(status.gitlab.api_url, 'gitlab')}/{status.gitlab.project}/-/commit/{{sha}}"
    match = re.match(r"^(?:https://(?:[^@/]+@)?|git@)([^/:]+)[/:]([^/]+/[^/]+?)(?:\.git)?/?$", repo_url)
    if match is None:
        return None
    host, path = match.groups()
    if host == "github.com":
        return f"https://github.com/{path}/commit/{{sha}}"
    if "gitlab" in host:
        return f"https://{host}/{path}/-/commit/{{sha}}"
    return None


def _web_base(api_url: str, kind: str) -> str:
    """The web host of an API URL: api.github.com -> github.com; https://ghe/api/v3 -> https://ghe."""
    parts = urlsplit(api_url)
    host = parts.netloc.rsplit("@", 1)[-1]
    if kind == "github" and host == "api.github.com":
        host = "github.com"
    return f"{parts.scheme or 'https'}://{host}"


# -- history ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Change:
    """One status the agent wrote: ``context`` of commit ``sha`` became ``state`` at ``at``."""

    at: datetime
    sha: str
    context: str
    state: str
    description: str


class History:
    """The last ``size`` status changes this process made, fed after each tick (thread-safe).

    A tick reports every service's status, changed or not; only changes are kept. The last value seen
    per (commit, context) is remembered for the ``20 * size`` most recently reported pairs.
    """

    def __init__(self, size: int = HISTORY) -> None:
        self.size = size
        self._changes: deque[Change] = deque(maxlen=size)
        self._last: OrderedDict[tuple[str, str], tuple[str, str]] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, statuses: Iterable[Any], at: datetime) -> None:
        """Record each status (sha, context, state, description) that differs from the last one seen."""
        with self._lock:
            for status in statuses:
                key = (status.sha, status.context)
                value = (status.state, status.description)
                if self._last.get(key) != value:
                    self._changes.append(
                        Change(at, status.sha, status.context, status.state, status.description)
                    )
                self._last[key] = value
                self._last.move_to_end(key)
            while len(self._last) > 20 * self.size:
                self._last.popitem(last=False)

    def newest_first(self) -> list[Change]:
        with self._lock:
            return list(reversed(self._changes))
