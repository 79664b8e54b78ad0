"""Event-loop lag monitor: how late the loop runs a timer, max and p99 per window (a minute by default).

Why: every call's media shares one event loop and one 20 ms clock, so anything slow on the loop (TLS
context builds, file opens, a sync DB query) delays every caller's audio at once. The lag of a timer
that should fire every ``interval`` is the direct measure of that. The probe is one ``call_at``
callback (no task, no sleep object): ~100 wake-ups a second cost a few microseconds each.
Each finished window is logged (warning when its max exceeds ``warn_ms``) and kept for ``stats()``.
"""

from __future__ import annotations

import asyncio
import logging
import math
from array import array
from collections.abc import Callable

log = logging.getLogger("telephony.looplag")


class LoopLagMonitor:
    """Samples the running loop's timer lag; ``stats()`` gives the last full window and the current one."""

    def __init__(self, interval: float = 0.010, window_s: float = 60.0, warn_ms: float = 20.0) -> None:
        self.interval = interval
        self.window_s = window_s
        self.warn_ms = warn_ms
        self.on_sample: list[Callable[[float], None]] = []  # e.g. a Prometheus histogram's observe
        self._loop: asyncio.AbstractEventLoop | None = None
        self._handle: asyncio.TimerHandle | None = None
        self._expected = 0.0
        self._window_start = 0.0
        self._samples = array("d")
        self._cur_max = 0.0
        self.last_window: dict | None = None  # {"max_ms", "p99_ms", "samples", "window_s"}
        self.all_time_max = 0.0
        self.windows = 0

    @property
    def running(self) -> bool:
        return self._handle is not None

    def start(self) -> None:
        if self._handle is not None:
            return
        self._loop = asyncio.get_running_loop()
        now = self._loop.time()
        self._window_start = now
        self._expected = now + self.interval
        self._handle = self._loop.call_at(self._expected, self._probe)

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _probe(self) -> None:
        loop = self._loop
        now = loop.time()
        self.record(max(0.0, now - self._expected), now)
        # next deadline from now, not from the missed one: one sample per stall, no catch-up burst
        self._expected = now + self.interval
        self._handle = loop.call_at(self._expected, self._probe)

    def record(self, lag: float, now: float) -> None:
        """One lag sample (seconds) taken at loop time ``now``; closes the window when it is full."""
        self._samples.append(lag)
        if lag > self._cur_max:
            self._cur_max = lag
        for cb in self.on_sample:
            cb(lag)
        if now - self._window_start >= self.window_s:
            self._roll(now)

    def _roll(self, now: float) -> None:
        summary = summarise(self._samples, now - self._window_start)
        self.last_window = summary
        self.windows += 1
        self.all_time_max = max(self.all_time_max, self._cur_max)
        self._samples = array("d")
        self._cur_max = 0.0
        self._window_start = now
        level = logging.WARNING if summary["max_ms"] > self.warn_ms else logging.INFO
        log.log(level, "event loop lag over %.0f s: max %.1f ms, p99 %.1f ms (%d samples)",
                summary["window_s"], summary["max_ms"], summary["p99_ms"], summary["samples"])

    def stats(self) -> dict:
        """Last full window (what an operator reads) plus the window in progress."""
        current = summarise(self._samples, (self._loop.time() - self._window_start) if self._loop else 0.0)
        last = self.last_window or current
        return {"max_ms": last["max_ms"], "p99_ms": last["p99_ms"], "window_s": last["window_s"],
                "current_max_ms": current["max_ms"],
                "all_time_max_ms": round(max(self.all_time_max, self._cur_max) * 1000.0, 2)}


def summarise(samples: array, window_s: float) -> dict:
    """max and p99 (nearest rank) of lag samples in seconds, reported in ms."""
    n = len(samples)
    if n == 0:
        return {"max_ms": 0.0, "p99_ms": 0.0, "samples": 0, "window_s": round(window_s, 1)}
    ordered = sorted(samples)
    p99 = ordered[max(0, math.ceil(0.99 * n) - 1)]
    return {"max_ms": round(ordered[-1] * 1000.0, 2), "p99_ms": round(p99 * 1000.0, 2), "samples": n,
            "window_s": round(window_s, 1)}
