"""One 20 ms media clock for every call in the process.

A single task wakes at absolute deadlines ``t0 + n * interval`` on the monotonic clock (no drift)
and calls each registered callback. When the loop was late it runs the missed ticks at once (up to
``max_catchup``), then resynchronises and counts the skipped ticks. A failing callback is counted
and logged (rate-limited); it never stops the clock or the other calls.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

log = logging.getLogger(__name__)
TickCallback = Callable[[float, int], None]


class MediaClock:
    def __init__(self, interval: float = 0.020, max_catchup: int = 5) -> None:
        self.interval = interval
        self.max_catchup = max_catchup
        self._callbacks: list[TickCallback] = []
        self._task: asyncio.Task | None = None
        self.ticks = 0
        self.late_ticks = 0
        self.skipped_ticks = 0
        self.errors = 0
        self.max_lateness = 0.0
        self._last_error_log = 0.0

    def add(self, callback: TickCallback) -> None:
        if callback not in self._callbacks:
            self._callbacks.append(callback)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="media-clock")

    def remove(self, callback: TickCallback) -> None:
        try:
            self._callbacks.remove(callback)
        except ValueError:
            pass

    def __len__(self) -> int:
        return len(self._callbacks)

    async def aclose(self) -> None:
        self._callbacks.clear()
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    def stats(self) -> dict:
        return {"ticks": self.ticks, "late_ticks": self.late_ticks, "skipped_ticks": self.skipped_ticks,
                "errors": self.errors, "max_lateness_ms": round(self.max_lateness * 1000, 2)}

    async def _run(self) -> None:
        interval = self.interval
        t0 = time.monotonic()
        n = 0
        while self._callbacks:
            deadline = t0 + n * interval
            now = time.monotonic()
            if deadline > now:
                await asyncio.sleep(deadline - now)
                now = time.monotonic()
            lateness = now - deadline
            if lateness > self.max_lateness:
                self.max_lateness = lateness
            if lateness > interval:
                self.late_ticks += 1
                behind = int(lateness / interval)
                if behind > self.max_catchup:  # too far behind: resync rather than burst
                    self.skipped_ticks += behind - self.max_catchup
                    n += behind - self.max_catchup
            self._tick(now, n)
            n += 1

    def _tick(self, now: float, n: int) -> None:
        self.ticks += 1
        for cb in tuple(self._callbacks):
            try:
                cb(now, n)
            except Exception:  # noqa: BLE001 - one call's bug must not stop every call's audio
                self.errors += 1
                if now - self._last_error_log > 5.0:
                    self._last_error_log = now
                    log.exception("media clock callback failed (%d errors so far)", self.errors)
