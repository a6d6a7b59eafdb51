"""The daemon's heap after its first tick: frozen, and collected less often.

``freeze_heap`` runs once the first tick is done (``Agent.heap_frozen``): everything alive then (modules,
botocore's models, the first plan) leaves the cyclic collector's walks, and the young generation is
collected every ``YOUNG_GENERATION`` allocations instead of CPython's 700.
"""

from __future__ import annotations

import gc

# Once the heap is frozen, the youngest generation is collected after this many allocations (net of
# frees) instead of CPython's 700. A steady tick allocates and frees about a hundred objects per service,
# nearly all freed by reference counting; at 700 a no-op tick of 1,000 services ran about 60 collections
# (18 ms of its CPU), at 50,000 none. What waits longer is only garbage in reference cycles, at most this
# many objects (a few MB).
YOUNG_GENERATION = 50_000


def freeze_heap() -> None:
    """Collect, then leave every object alive now (modules, botocore's models, the first plan) out of the
    cyclic collector's walks (``gc.freeze``); they are still freed when their last reference goes. Then
    space the young collections out (``YOUNG_GENERATION``)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_GENERATION, *gc.get_threshold()[1:])
