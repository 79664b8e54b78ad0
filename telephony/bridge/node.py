"""This bridge process as a BridgeNode row: registered on start, heartbeat every ``beat_s`` (off the
event loop), marked stopped on a clean stop.

The row is what makes crash recovery safe with several bridges on one database: every Call row
names the node carrying it, and a starting bridge finalises only the open calls of nodes whose
heartbeat is older than ``SIP_NODE_TIMEOUT_S`` (or of no node), never those of a live bridge.

In a fleet the row is also the bridge's entry in Kamailio's destination list (view
``kam_dispatcher``): each heartbeat publishes the live call count, and reads back whether an
operator asked this node to drain (``POST /api/v1/sip/nodes/{id}/drain``) -> ``on_drain``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
from collections.abc import Callable

from asgiref.sync import sync_to_async
from django.conf import settings

from telephony import services
from telephony.bridge import fleetdb

log = logging.getLogger("telephony.bridge")


def node_name() -> str:
    """host-pid-random: unique per start even where every container's bridge is pid 1."""
    return f"{socket.gethostname()[:80]}-{os.getpid()}-{secrets.token_hex(4)}"


class BridgeNodeLease:
    """Register / heartbeat / stop this bridge's node row; finalise the calls of dead ones."""

    def __init__(self, *, host: str, port: int, advertised: str | None = None, beat_s: float = 2.0,
                 timeout_s: float | None = None, max_calls: int = 100,
                 live_calls: Callable[[], int] | None = None) -> None:
        self.host, self.port, self.advertised = host, port, advertised or ""
        self.max_calls = max_calls
        self.live_calls = live_calls or (lambda: 0)
        self.on_drain: Callable[[], None] | None = None  # called once when the row asks to drain
        self.draining = False
        self.beat_s = beat_s
        self.timeout_s = settings.SIP_NODE_TIMEOUT_S if timeout_s is None else timeout_s
        self.hostname = socket.gethostname()[:128]
        self.name = node_name()
        self.id: int | None = None
        self.recovered = 0
        self._task: asyncio.Task | None = None
        self._failing = False

    async def start(self, *, port: int | None = None) -> None:
        """Register, then finalise the calls dead bridges left open (ours excluded)."""
        if port is not None:
            self.port = port
        self.id = await self._register()
        self.recovered = await self.recover()
        if self.recovered:
            log.warning("finalised %d call(s) left open by a bridge that died (end reason: bridge lost)",
                        self.recovered)
        await sync_to_async(services.prune_dead_nodes)()
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def recover(self) -> int:
        """Every open call no live bridge owns (run once, at start: it scans the open calls)."""
        return await sync_to_async(services.recover_orphaned_calls)(timeout_s=self.timeout_s, exclude_node=self.id,
                                                                    hostname=self.hostname)

    async def reap(self) -> int:
        """Calls of bridges that died since (run every beat: one small query over the node table)."""
        n = await sync_to_async(services.reap_dead_nodes)(timeout_s=self.timeout_s, exclude_node=self.id,
                                                          hostname=self.hostname)
        if n:
            log.warning("another bridge died: finalised %d of its call(s) (bridge lost)", n)
        return n

    async def beat(self) -> bool:
        """One heartbeat. If another bridge judged us dead (our heartbeat stalled past the timeout)
        our row is marked stopped: register afresh so calls from now on belong to a live node (the
        calls in progress still finalise themselves properly when they end). Returns False then."""
        assert self.id is not None
        drain = await sync_to_async(fleetdb.heartbeat)(self.id, self.live_calls())
        if drain is not None:
            if drain and not self.draining:
                log.warning("bridge node %s: drain requested", self.name)
                self.draining = True
                if self.on_drain is not None:
                    self.on_drain()
            return True
        old = self.name
        self.name = node_name()
        self.id = await self._register()
        log.error("bridge node %s was marked dead by another bridge (heartbeat stalled longer than %.0f s?); "
                  "registered again as %s", old, self.timeout_s, self.name)
        return False

    async def _register(self) -> int:
        node_id = await sync_to_async(fleetdb.register)(name=self.name, host=self.host, sip_port=self.port,
                                                        pid=os.getpid(), advertised=self.advertised,
                                                        hostname=self.hostname, max_calls=self.max_calls)
        if self.draining:  # registered afresh while draining: stay out of rotation
            await sync_to_async(fleetdb.set_draining)(node_id)
        return node_id

    async def mark_draining(self) -> None:
        """This bridge drains (SIGTERM or the API): the dispatcher view shows it inactive."""
        self.draining = True
        if self.id is not None:
            await sync_to_async(fleetdb.set_draining)(self.id, self.live_calls())

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.beat_s)
            try:
                if await self.beat():
                    await self.reap()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - the database may be away for a while; keep beating
                if not self._failing:
                    log.exception("bridge node heartbeat failed")
                self._failing = True

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self.id is not None:
            try:
                await sync_to_async(services.stop_node)(self.id)
            except Exception:  # noqa: BLE001 - stopping must finish; the heartbeat timeout covers it
                log.exception("could not mark bridge node %s stopped", self.name)
