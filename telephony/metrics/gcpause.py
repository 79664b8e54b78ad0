"""Garbage-collector pauses of a bridge process, and the one thing done about them.

A collection runs on whichever thread allocates, usually the event loop's, and nothing else runs
on that loop until it ends: every call's 20 ms tick waits. A py-spy profile of 50 pipeline calls
with churn showed the loop frozen 300-440 ms on one unchanged Python line with every other thread
idle: full (generation 2) collections walking the whole heap, most of it the modules, Django and
the provider SDKs loaded at start, none of which will ever be garbage.

``freeze_startup_heap`` moves everything alive once the bridge has warmed up into the collector's
permanent generation (``gc.freeze``, made for long-lived servers), so later collections walk only
what calls allocate. ``GcPauses`` times every collection (``gc.callbacks``) for /metrics and the
status, so an operator can see the pauses instead of guessing at them. Plain Python, no Django.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable


class GcPauses:
    """Times each collection by generation: ``observe(generation, seconds)`` for every one, plus
    the count and the longest per generation since start."""

    def __init__(self, observe: Callable[[int, float], None] | None = None,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        self.observe = observe
        self.clock = clock
        self.count = [0, 0, 0]
        self.max_s = [0.0, 0.0, 0.0]
        self._started: float | None = None

    def __call__(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._started = self.clock()
            return
        if self._started is None:
            return
        took, self._started = self.clock() - self._started, None
        gen = min(max(int(info.get("generation", 0)), 0), 2)
        self.count[gen] += 1
        self.max_s[gen] = max(self.max_s[gen], took)
        if self.observe is not None:
            self.observe(gen, took)

    def start(self) -> None:
        if self not in gc.callbacks:
            gc.callbacks.append(self)

    def stop(self) -> None:
        if self in gc.callbacks:
            gc.callbacks.remove(self)

    def stats(self) -> dict:
        return {"collections": list(self.count), "max_ms": [round(s * 1000.0, 2) for s in self.max_s],
                "frozen_objects": gc.get_freeze_count()}


YOUNG_THRESHOLD = 10_000  # allocations between young collections (CPython's default: 700)


def freeze_startup_heap() -> int:
    """Collect once, then exempt every surviving object from future collections; returns how many
    were frozen. Call after start-up (imports, warm-up) and before calls arrive.

    Also spaces the young collections out: at 700 allocations a streaming reply's objects were still
    alive at most collections, so they were promoted and piled up until a full collection walked
    them all; with more room between young collections most of them die young, for free."""
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, older, oldest)
    return gc.get_freeze_count()
