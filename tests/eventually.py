"""Waiting for a condition instead of sleeping for a while.

A test that sleeps 0.2 s and then asserts is asserting a wall-clock window: on a loaded CI box the
other side may need 0.3 s and the test flakes. ``eventually`` waits for the condition itself; its
bound only stops a broken test from hanging, it is never the thing being tested.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable


async def eventually(cond: Callable[[], object], bound_s: float = 10.0, poll_s: float = 0.005) -> None:
    """Return as soon as ``cond()`` is true; TimeoutError after ``bound_s`` (a failed test, not a timing)."""
    async def poll() -> None:
        while not cond():
            await asyncio.sleep(poll_s)
    await asyncio.wait_for(poll(), bound_s)
