"""The garbage collector's settings for a long-running process, applied once it has started."""

from __future__ import annotations

import gc

# Young-generation collections every 10,000 net container allocations instead of CPython's 700 (and the older
# generations a little less often): request-shaped work allocates thousands of short-lived containers per request,
# nearly all freed by reference counting, so at the default a gateway worker under create-order load spent about
# 4.8 % of its CPU in collections (730 in a 15 s run), at this setting about 1.5 % (measured with gc.callbacks
# under bench/create_order.py). A collection then takes a few milliseconds instead of about one.
THRESHOLDS = (10_000, 20, 100)


def settle_heap() -> None:
    """Everything built so far (modules, mappers, the container) lives as long as the process: frozen out of the
    collector's sight, so a collection under load walks only what the work allocates; then `THRESHOLDS`."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)
