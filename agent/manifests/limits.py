"""How much one commit may ask the loader to read: a budget on files, bytes and documents.

A commit (the tracked branch's head, or a pull-request head planned from ``source.planRefs``) is read
within ``limits`` of the agent config: at most ``maxFiles`` candidate files, ``maxBytes`` bytes of them
and ``maxDocuments`` YAML documents (empty ones included: each costs a parse). The budget is spent file
by file as the loader goes; the file that overspends it is named in the problem, and nothing after it is
read. Each file has its own limits too (``loading.MAX_FILE_BYTES``, ``yaml_parsing.MAX_DOCUMENT_BYTES``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from agent.errors import Problem

DEFAULT_MAX_FILES = 2000
DEFAULT_MAX_BYTES = 8 * 1024 * 1024
DEFAULT_MAX_DOCUMENTS = 10_000


@dataclass
class Budget:
    """What is left of one commit's budget; ``spent`` turns True once a file overspent it."""

    max_files: int = DEFAULT_MAX_FILES
    max_bytes: int = DEFAULT_MAX_BYTES
    max_documents: int = DEFAULT_MAX_DOCUMENTS
    files: int = 0
    bytes: int = 0
    documents: int = 0
    spent: bool = False

    @classmethod
    def from_config(cls, config: Any) -> Budget:
        """The budget ``limits`` of the agent config sets (the defaults without a config)."""
        limits = getattr(config, "limits", None)
        return cls(
            max_files=int(getattr(limits, "max_files", DEFAULT_MAX_FILES)),
            max_bytes=int(getattr(limits, "max_bytes", DEFAULT_MAX_BYTES)),
            max_documents=int(getattr(limits, "max_documents", DEFAULT_MAX_DOCUMENTS)),
        )

    def take_file(self, path: str, size: int) -> Problem | None:
        """Count one file of ``size`` bytes about to be read; the problem when it overspends."""
        self.files += 1
        self.bytes += size
        if self.files > self.max_files:
            return self._over(path, f"the commit holds more than {self.max_files} manifest files")
        if self.bytes > self.max_bytes:
            what = f"the commit's manifest files add up to more than {self.max_bytes} bytes"
            return self._over(path, what, "maxBytes")
        return None

    def take_document(self, path: str, line: int | None) -> Problem | None:
        """Count one document about to be parsed; the problem when it overspends."""
        self.documents += 1
        if self.documents > self.max_documents:
            what = f"the commit holds more than {self.max_documents} YAML documents (empty ones count)"
            return self._over(path, what, "maxDocuments", line)
        return None

    def _over(self, path: str, what: str, setting: str = "maxFiles", line: int | None = None) -> Problem:
        self.spent = True
        return Problem(
            path,
            "",
            f"{what} (limits.{setting}); nothing from here on is read. Split the repository, narrow "
            "source.path, or raise the limit in the agent config",
            line,
        )
