"""``python -m agent.cli``: the same as the ``ecs-gitops`` console script."""

from agent.cli import entry

entry()
