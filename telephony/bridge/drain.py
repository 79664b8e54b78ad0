"""Draining a bridge: no new calls, live calls finish, then a clean stop. Nothing is lost.

Order matters: first the gateway answers OPTIONS and new INVITEs with 503 (the proxy's dispatcher
takes the bridge out of rotation at its next probe, and an INVITE already on its way fails over
to another bridge), and the node row says ``draining`` (the dispatcher view marks it inactive on
the next reload). Then the live calls get up to ``timeout_s`` to end by themselves; whatever is
still up then gets a BYE from ``runner.stop()`` and a finalised Call row, as on any clean stop.
"""

from __future__ import annotations

import asyncio
import logging
import time

log = logging.getLogger("telephony.bridge")


async def drain(runner, timeout_s: float, *, abort: asyncio.Event | None = None, poll_s: float = 0.1) -> int:
    """Drain ``runner`` (a BridgeRunner) and return how many calls were still up at the deadline
    (they are ended by the caller's ``runner.stop()``). ``abort`` cuts the wait short (a second
    SIGTERM, SIGINT). Returns at once when no call is up."""
    gw = runner.gateway
    gw.drain()
    try:
        await runner.node.mark_draining()
    except Exception:  # noqa: BLE001 - the 503s already keep new calls away; the row is a bonus
        log.exception("could not mark the node draining in the database")
    start = time.monotonic()
    log.warning("draining: no new calls; waiting up to %.0f s for %d live call(s)", timeout_s, gw.active_calls)
    deadline = start + max(0.0, timeout_s)
    while gw.active_calls and time.monotonic() < deadline and not (abort is not None and abort.is_set()):
        await asyncio.sleep(poll_s)
    left = gw.active_calls
    log.warning("drain done after %.1f s: %d call(s) left for BYE", time.monotonic() - start, left)
    return left
