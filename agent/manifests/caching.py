"""A manifest root's Desired, kept by the root tree's git id: an unchanged root (a tick at the same commit,
or a commit that touched nothing under the root) reuses the Desired of the last load. A folder on disk
(``DirTree``) has no id and is always read afresh; within a git root that changed, an unchanged file's parse
is reused (agent.manifests.parsed). Bounded: the last two roots (the branch's head and a preview's).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from agent.errors import InvalidInput


class DesiredCache:
    """The Desired (or the InvalidInput) of the last roots loaded, by the root tree's git id and config."""

    KEPT = 2

    def __init__(self) -> None:
        self._entries: OrderedDict[tuple[str, int], tuple[Any, Any]] = OrderedDict()

    def load(self, tree: Any, config: Any) -> Any:
        from agent.manifests import load_desired

        content_id = getattr(tree, "content_id", None)
        if content_id is None:
            return load_desired(tree, config)
        key = (str(content_id), id(config))
        found = self._entries.get(key)
        if found is not None and found[1] is config:
            self._entries.move_to_end(key)
            outcome = found[0]
            if isinstance(outcome, InvalidInput):
                raise InvalidInput(list(outcome.problems))
            return outcome
        try:
            outcome = load_desired(tree, config)
        except InvalidInput as e:
            outcome = e
        self._entries[key] = (outcome, config)
        while len(self._entries) > self.KEPT:
            self._entries.popitem(last=False)
        if isinstance(outcome, InvalidInput):
            raise InvalidInput(list(outcome.problems))
        return outcome
