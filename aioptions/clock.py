"""The one monotonic clock the pipeline's deadlines and the tool runner read and sleep on.

Plain Python at the bottom of the layers, so ``telephony.pipeline`` and ``telephony.actions`` share
it without importing each other; tests pass a subclass they drive by hand instead of sleeping.
"""

from __future__ import annotations

import asyncio
import time


class Clock:
    """Monotonic time and sleeping until a deadline; tests replace it with a manual clock."""

    def now(self) -> float:
        return time.monotonic()

    async def sleep_until(self, deadline: float) -> None:
        await asyncio.sleep(max(0.0, deadline - time.monotonic()))
