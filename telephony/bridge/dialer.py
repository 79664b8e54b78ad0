"""The campaign dialer inside each bridge: every tick, for each running campaign, claim as many
due contacts as its concurrency and per-minute pacing allow (counted across all bridges in the
database) and place their calls through ``OutboundCalls`` (trunk caps, allowlist, DNC again).

The clock (``now``) and the pause between ticks (``sleep``) are injected: tests call ``tick()``
with a fake clock and a fake placer and never wait. The database work runs in worker threads
(``sync_to_async``), once per tick and once per call end — never per packet.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Awaitable, Callable

from asgiref.sync import sync_to_async
from django.utils import timezone

from campaigns import dialer as db
from campaigns.outbound import Refused
from telephony import selectors
from telephony.bridge.outbound import TrunkFull

log = logging.getLogger("telephony.bridge")
Placer = Callable[..., Awaitable]


class Dialer:
    def __init__(self, *, node: str, place: Placer, now: Callable[[], dt.datetime] = timezone.now,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep, interval_s: float = 1.0,
                 node_timeout_s: float = 15.0) -> None:
        self.node, self.place, self.now, self.sleep = node, place, now, sleep
        self.interval_s, self.node_timeout_s = interval_s, node_timeout_s
        self.calls: dict[int, asyncio.Task] = {}  # contact id -> the task placing its call
        self._task: asyncio.Task | None = None
        self.ticks = 0

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def _run(self) -> None:
        while True:
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - the next tick may work (database back, bad row fixed)
                log.exception("dialer tick failed")
            await self.sleep(self.interval_s)

    async def tick(self) -> list[dict]:
        """One round over the running campaigns; returns the contacts whose calls were started."""
        now = self.now()
        self.ticks += 1
        if self.ticks % 30 == 1:
            live = await sync_to_async(lambda: list(selectors.live_nodes(self.node_timeout_s)
                                                    .values_list("name", flat=True)))()
            await sync_to_async(db.release_claims)(live + [self.node])
        started: list[dict] = []
        for camp in await sync_to_async(db.running_campaigns)():
            room = await sync_to_async(db.capacity)(camp["campaign_id"], max_concurrent=camp["max_concurrent"],
                                                    calls_per_minute=camp["calls_per_minute"], now=now)
            claimed = await sync_to_async(db.claim_due)(camp["campaign_id"], limit=room, node=self.node, now=now)
            for contact in claimed:
                task = asyncio.create_task(self._call(contact, camp["ring_timeout_s"]))
                self.calls[contact["id"]] = task
                task.add_done_callback(lambda _t, cid=contact["id"]: self.calls.pop(cid, None))
                started.append(contact)
        return started

    async def _call(self, contact: dict, ring_timeout_s: float) -> None:
        cid = contact["id"]
        variables = {"name": contact["name"], **contact["variables"]}
        try:
            result = await self.place(contact["phone"], contact["campaign_id"], contact_id=cid, variables=variables,
                                      ring_timeout_s=ring_timeout_s)
        except TrunkFull:
            await self._record(cid, "failed", count_attempt=False)  # nothing dialled: try again soon
            return
        except Refused as exc:
            log.warning("dialer: contact %s refused: %s", cid, exc)
            await self._record(cid, "refused")
            return
        except Exception:  # noqa: BLE001
            log.exception("dialer: calling contact %s failed", cid)
            await self._record(cid, "failed")
            return
        if getattr(result, "record_id", None) is None:  # no Call row, so no end hook: record it here
            await self._record(cid, getattr(result, "outcome", "failed"))

    async def finished(self, contact_id: int, outcome: str, record_id: int | None) -> None:
        """The runner's end-of-call hook (the Call row is final)."""
        await self._record(contact_id, outcome)

    async def _record(self, contact_id: int, outcome: str, *, count_attempt: bool = True) -> str:
        return await sync_to_async(db.record_outcome)(contact_id, outcome, now=self.now(),
                                                      count_attempt=count_attempt)
