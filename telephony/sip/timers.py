"""RFC 3261 retransmission over UDP: T1 doubling up to T2 until answered, giving up after 64*T1."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

T1, T2 = 0.5, 4.0


async def retransmit(send: Callable[[], None], done: asyncio.Event, *, send_first: bool,
                     give_up_after: float = 64 * T1) -> bool:
    """Call ``send`` on the RFC schedule until ``done`` is set. True if it was, False on giving up."""
    if send_first:
        send()
    interval, waited = T1, 0.0
    while waited < give_up_after:
        try:
            await asyncio.wait_for(done.wait(), interval)
            return True
        except TimeoutError:
            waited += interval
            send()
            interval = min(interval * 2, T2)
    return done.is_set()
