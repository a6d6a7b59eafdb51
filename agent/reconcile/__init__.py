"""The reconcile loop: one tick reads the commit and ECS, decides per service, acts, and reports.

tick.py is the story, top to bottom; each module beside it is one step: lanes (accounts), deciding
(engines), acting, drift, prune, statuses; previews plan pull requests without acting.
"""

from agent.reconcile.fingerprints import rollout_record
from agent.reconcile.results import PlanResult, TickResult
from agent.reconcile.tick import Reconciler

__all__ = ["PlanResult", "Reconciler", "TickResult", "rollout_record"]
