"""RFC 3261 retransmission over UDP: T1 doubling up to T2 until answered, giving up after 64*T1.

How long to wait is a parameter (``wait``), not a call to the loop's clock, so a test can drive
the timers with a fake clock instead of sleeping through them; the default waits in real time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

T1, T2 = 0.5, 4.0

# (event, seconds) -> True if the event was set within the time, False if the time ran out
Wait = Callable[[asyncio.Event, float], Awaitable[bool]]


async def wait_event(done: asyncio.Event, seconds: float) -> bool:
    """Wait in real (loop) time for ``done``, at most ``seconds``."""
    try:
        await asyncio.wait_for(done.wait(), seconds)
        return True
    except TimeoutError:
        return False


async def retransmit(send: Callable[[], None], done: asyncio.Event, *, send_first: bool,
                     give_up_after: float = 64 * T1, wait: Wait = wait_event) -> bool:
    """Call ``send`` on the RFC schedule until ``done`` is set. True if it was, False on giving up."""
    if send_first:
        send()
    interval, waited = T1, 0.0
    while waited < give_up_after:
        if await wait(done, interval):
            return True
        waited += interval
        send()
        interval = min(interval * 2, T2)
    return done.is_set()
