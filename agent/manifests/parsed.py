"""A file's parse, kept by its git blob id: an unchanged file is a dictionary lookup, not a parse.

Bounded: the parses of the ``PARSED_KEPT`` files used last. A folder on disk (``DirTree``) has no ids and
is always parsed afresh.
"""

from __future__ import annotations

import copy
from collections import OrderedDict

from agent.errors import Problem
from agent.manifests.documents import Document

PARSED_KEPT = 4096


class ParseCache:
    """(blob id, path) -> the documents and problems parsing that file gave (handed out as copies), and how
    many documents of the commit's budget it took (empty ones count)."""

    def __init__(self, kept: int = PARSED_KEPT) -> None:
        self.kept = kept
        self._entries: OrderedDict[tuple[str, str], tuple[list[Document], list[Problem], int]] = OrderedDict()

    def get(self, blob_id: str, path: str) -> tuple[list[Document], list[Problem], int] | None:
        found = self._entries.get((blob_id, path))
        if found is None:
            return None
        self._entries.move_to_end((blob_id, path))
        documents, problems, taken = found
        return [Document(copy.deepcopy(d.data), d.source) for d in documents], list(problems), taken

    def put(
        self, blob_id: str, path: str, documents: list[Document], problems: list[Problem], taken: int
    ) -> None:
        kept = [Document(copy.deepcopy(d.data), d.source) for d in documents]
        self._entries[(blob_id, path)] = (kept, list(problems), taken)
        while len(self._entries) > self.kept:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)


PARSED = ParseCache()
