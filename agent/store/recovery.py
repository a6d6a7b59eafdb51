"""How a store treats what it cannot read: a count per kind of damage, and a value decoded or dropped.

``RECOVERED`` counts, by kind (``sqlite_file``: a damaged SQLite file moved aside; ``sqlite_row`` /
``dynamodb_row``: a row whose value is not a JSON object, dropped), every repair since the process
started; the HTTP side exposes it as a metric.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import structlog

log = structlog.get_logger()

RECOVERED: Counter[str] = Counter()


def decode(text: Any, key: str, store: str) -> dict[str, Any] | None:
    """The JSON object ``text`` holds; None (one ``store.bad_row`` log line, one count) when it holds none,
    so the caller drops the row and goes on as if the key were absent."""
    try:
        value = json.loads(text)
    except (TypeError, ValueError) as e:
        error = str(e)
    else:
        if isinstance(value, dict):
            return value
        error = f"a JSON {type(value).__name__}, not an object"
    RECOVERED[f"{store}_row"] += 1
    log.error("store.bad_row", store=store, key=key, error=error, action="dropped")
    return None
