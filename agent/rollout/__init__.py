"""Pure rollout engines: ``advance(state, observation, now) -> Decision``. No I/O, no sleeping.

* ``rolling``: ECS replaces tasks; the agent follows the deployment.
* ``progressive``: the agent engine (EXTERNAL controller): task sets, listener weights, bakes, hooks.
* ``windows``: maintenance and freeze windows (cron + duration + IANA zone, DST-correct).
* ``decisions``: the Decision an engine returns and the record the rolling engine keeps.
"""
