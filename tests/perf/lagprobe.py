"""A test-side event-loop blocking probe: how long the loop thread ran without yielding to a timer.

A timer due every ``interval`` measures two things at each wake-up: the wall-clock lag (how late it
ran) and the CPU time the loop thread used since the previous wake-up. Code that blocks the loop burns
the loop thread's CPU for the whole lag; a busy machine (another process, another thread holding the
GIL) makes the timer late without the loop thread running. So *blocked* = min(lag, loop-thread CPU)
is what our code did to the loop, independent of how loaded the shared test machine is.
"""

from __future__ import annotations

import asyncio
import time


class BlockingProbe:
    def __init__(self, interval: float = 0.001) -> None:
        self.interval = interval
        self.worst_ms = 0.0  # max blocked
        self.worst_lag_ms = 0.0  # max wall lag (includes machine noise; reported, not asserted)
        self.samples = 0
        self._handle: asyncio.TimerHandle | None = None

    def start(self) -> BlockingProbe:
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._expected = loop.time() + self.interval
        self._cpu = time.thread_time()
        self._handle = loop.call_at(self._expected, self._wake)
        return self

    def _wake(self) -> None:
        now = self._loop.time()
        cpu = time.thread_time()
        lag = max(0.0, now - self._expected)
        blocked = min(lag, cpu - self._cpu)
        self.samples += 1
        self.worst_ms = max(self.worst_ms, blocked * 1000.0)
        self.worst_lag_ms = max(self.worst_lag_ms, lag * 1000.0)
        self._expected = now + self.interval
        self._cpu = time.thread_time()
        self._handle = self._loop.call_at(self._expected, self._wake)

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
