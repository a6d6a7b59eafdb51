"""Pure rollout engines: ``advance(state, observation, now) -> Decision``. No I/O, no sleeping."""
