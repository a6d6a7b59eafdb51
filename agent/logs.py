"""The agent's log output: structlog, JSON lines in containers, a readable console on a terminal.

``configure_logging(config)`` is called once by the ``run`` and ``apply`` commands. Every module logs
through ``structlog.get_logger()`` with an event name and fields (``log.info("rollout.apply",
service=...)``); context that holds for a whole step — the commit ``sha``, the tick ``phase``, the
``service`` and ``engine`` — is bound, either on a logger (``log.bind(sha=...)``) or for the current
thread with ``structlog.contextvars.bound_contextvars``, and appears on every line logged inside it.

Logs go to standard error, so ``apply`` keeps its standard output for results. Format ``auto`` (the
default) writes JSON unless standard error is a terminal: what a container runtime, awslogs or a log
shipper wants, while a person at a terminal gets aligned, coloured lines.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

import structlog

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


class _StderrLoggerFactory:
    """A PrintLogger on whatever ``sys.stderr`` is when a line is logged (tests swap it)."""

    def __call__(self, *args: Any) -> structlog.PrintLogger:
        return structlog.PrintLogger(sys.stderr)


def wants_json(fmt: str, stream: Any = None) -> bool:
    """JSON for ``json``, console for ``console``; for ``auto``, JSON unless ``stream`` is a terminal."""
    if fmt in ("json", "console"):
        return fmt == "json"
    stream = sys.stderr if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    return not (callable(isatty) and isatty())


def processors(json_lines: bool, colors: bool = False) -> list[Any]:
    """The processor chain: bound context, level, UTC timestamp, exceptions, then the renderer."""
    chain: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
    ]
    if json_lines:
        chain += [
            # Tracebacks as data, without each frame's local variables (structlog shows them by default):
            # a local may hold a token or an environment value, and logs travel far.
            structlog.processors.ExceptionRenderer(
                structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
            ),
            structlog.processors.JSONRenderer(sort_keys=False, default=str),
        ]
    else:
        chain.append(structlog.dev.ConsoleRenderer(colors=colors))
    return chain


def configure_logging(config: Any) -> None:
    """Configure structlog from ``config.log`` (level and format); safe to call more than once."""
    log_config = getattr(config, "log", None)
    level = LEVELS.get(getattr(log_config, "level", "info"), logging.INFO)
    json_lines = wants_json(getattr(log_config, "format", "auto"))
    colors = not json_lines and sys.stderr.isatty() and not os.environ.get("NO_COLOR")
    structlog.configure(
        processors=processors(json_lines, colors),
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=_StderrLoggerFactory(),
        context_class=dict,
        cache_logger_on_first_use=False,
    )
