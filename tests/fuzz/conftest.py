"""Hypothesis profiles for the hostile-input fuzzers.

``ci`` (the default, what ``make test`` runs): a short budget per target, derandomised so a run is
reproducible and never fails on luck. ``fuzz`` (``make fuzz``, or ``HYPOTHESIS_PROFILE=fuzz``): 10,000
examples per target (``FUZZ_EXAMPLES=N`` changes that), random, with hypothesis's example database so a
failure found once is replayed first next time. Deadlines are off in both: the machine is shared, and a
slow example is not a bug here (what could make the loader slow has limits of its own, e.g. the alias
budget, and targets assert them).
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

_SLOW = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]

settings.register_profile(
    "ci", max_examples=50, derandomize=True, deadline=None, database=None, suppress_health_check=_SLOW
)
settings.register_profile(
    "fuzz",
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "10000")),
    deadline=None,
    suppress_health_check=_SLOW,
    print_blob=True,
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
