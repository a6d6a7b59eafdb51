"""The prune limit's arithmetic and the trailer that lifts it (agent/reconcile/prune.py)."""

from __future__ import annotations

import pytest

from agent.config import AgentConfig, PruneLimit, SyncConfig
from agent.reconcile.prune import allowed_by_trailer, prune_limit


@pytest.mark.parametrize(
    ("managed", "expected"), [(1, 1), (5, 1), (10, 1), (11, 2), (40, 4), (50, 5), (51, 5), (1000, 5)]
)
def test_the_default_limit_is_5_services_and_10_percent_rounded_up(managed: int, expected: int) -> None:
    """Whichever is fewer: one service may always be retired, a commit dropping every service may not."""
    assert prune_limit(AgentConfig.default(), managed) == expected
    assert AgentConfig.default().sync.prune_limit == PruneLimit(services=5, percent=10)


def test_a_configured_limit() -> None:
    config = AgentConfig(sync=SyncConfig(prune=True, prune_limit=PruneLimit(services=20, percent=50)))
    assert [prune_limit(config, n) for n in (3, 10, 100)] == [2, 5, 20]
    assert prune_limit(AgentConfig(sync=SyncConfig(prune_limit=PruneLimit(0, 100))), 10) == 0


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("retire\n\necs-gitops-allow-prune: 7\n", 7),
        ("retire\n\nSigned-off-by: A <a@b>\nEcs-GitOps-Allow-Prune:3", 3),
        ("retire\r\n\r\necs-gitops-allow-prune: 2\r\n", 2),
        ("ecs-gitops-allow-prune: 7\n\nthe body, not a trailer", None),  # not in the last paragraph
        ("retire\n\necs-gitops-allow-prune: many", None),
        ("retire\n\necs-gitops-allow-prune: -1", None),
        ("", None),
        (None, None),
    ],
)
def test_the_trailer_is_read_from_the_last_paragraph(message: str | None, expected: int | None) -> None:
    assert allowed_by_trailer(message) == expected
