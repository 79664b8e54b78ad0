"""One 20 ms media clock for every call in the process, with smooth egress after a late tick.

A single task wakes at absolute deadlines ``t0 + n * interval`` on the monotonic clock (no drift)
and calls each registered callback with ``(now, n)``. Every due tick runs (up to ``max_catchup``
missed ones; beyond that they are skipped and counted), so the inbound side — jitter-buffer pops,
the pipeline's frames, the recording — stays continuous through a stall of the loop.

Egress is what the caller hears, and a burst of catch-up packets is what made egress jitter p99
19-38 ms under load (issue 18): the caller's jitter buffer underran during the stall and re-primes
on the first late packet, so every extra packet of a burst sits in it as added delay. So the clock
keeps an *egress deadline* ``E`` (shared by all calls: they all send on the same ticks): a tick may
put a packet on the wire only while ``E <= now + interval``, i.e. at most one frame ahead of real
time; a late packet re-anchors ``E`` to now. After a 100 ms stall the late wake-up sends the frame
due then plus one more, and the other due ticks *defer* their packet: the session then sends
nothing and does not advance its RTP sequence or timestamp (the stream pauses, no audio is lost,
the agent's queued audio goes on the next ticks). Deferred ticks are counted (``deferred_ticks``),
as are late wake-ups, skipped ticks and failing callbacks (logged, rate-limited; one call's bug
never stops the clock or the other calls).

The time source and sleep are injectable, and ``run_due(now)`` is the whole scheduling step, so
tests drive stalls with a fake clock and no sleeping.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)
TickCallback = Callable[[float, int], None]
_EPS = 1e-6  # float slack when comparing deadlines


class MediaClock:
    """Shared 20 ms tick. Callbacks read ``clock.egress`` during a tick: False = do not send this tick."""

    def __init__(self, interval: float = 0.020, max_catchup: int = 10,
                 time_source: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self.interval = interval
        self.max_catchup = max_catchup  # missed ticks run at once after a stall; more are skipped
        self.time = time_source
        self._sleep = sleep
        self._callbacks: list[TickCallback] = []
        self._task: asyncio.Task | None = None
        self._t0: float | None = None
        self._n = 0
        self._egress_at: float | None = None  # E: the deadline of the next packet on the wire
        self.egress = True  # valid during a tick: may callbacks send a packet now?
        self.ticks = 0
        self.late_ticks = 0  # wake-ups more than one interval late
        self.skipped_ticks = 0  # ticks not run at all (stall longer than max_catchup)
        self.deferred_ticks = 0  # ticks run without egress (it would have burst ahead of real time)
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
                "deferred_ticks": self.deferred_ticks, "errors": self.errors,
                "max_lateness_ms": round(self.max_lateness * 1000, 2)}

    # --- scheduling ----------------------------------------------------------------------------
    def start_at(self, t0: float) -> None:
        """Anchor the grid (the task does it on start; tests call it with their fake time)."""
        self._t0 = t0
        self._n = 0
        self._egress_at = None

    def run_due(self, now: float) -> float:
        """Run every tick due at ``now`` and return the next deadline. The whole scheduling policy."""
        if self._t0 is None:
            self.start_at(now)
        interval = self.interval
        deadline = self._t0 + self._n * interval
        if deadline > now + _EPS:
            return deadline
        lateness = now - deadline
        if lateness > self.max_lateness:
            self.max_lateness = lateness
        if lateness > interval + _EPS:
            self.late_ticks += 1
            behind = int((lateness + _EPS) / interval)  # ticks due besides this one
            if behind > self.max_catchup:  # too far behind: resync rather than run them all
                self.skipped_ticks += behind - self.max_catchup
                self._n += behind - self.max_catchup
        while self._t0 + self._n * interval <= now + _EPS and self._callbacks:
            self.egress = self._may_send(now)
            if not self.egress:
                self.deferred_ticks += 1
            self._tick(now, self._n)
            self._n += 1
        self.egress = True
        if not self._callbacks:  # nothing ticked: keep the grid in step with time
            self._n = max(self._n, int((now - self._t0 + _EPS) / interval) + 1)
        return self._t0 + self._n * interval

    def _may_send(self, now: float) -> bool:
        """Token rule on the egress deadline E: send while E <= now + interval; a late send re-anchors E."""
        e = self._egress_at
        if e is None or e < now:
            e = now
        if e - now > self.interval + _EPS:
            return False
        self._egress_at = e + self.interval
        return True

    async def _run(self) -> None:
        self.start_at(self.time())
        while self._callbacks:
            deadline = self.run_due(self.time())
            delay = deadline - self.time()
            if delay > 0:
                await self._sleep(delay)

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
