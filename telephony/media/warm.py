"""Warm transfer, a mixin under ``TransferMixin``: the agent calls the target first, briefs it, then joins.

Blind transfer (REFER, or dial-and-bridge) hands the caller over with no word to the person who
picks up. A warm transfer is what a receptionist does: the caller holds, the agent dials the
target itself (``dial()``, the same UAC and routing rules as the bridged path: a registered
extension, a SIP URI, a trunk number within the trunk's allowed prefixes), speaks a short summary
of the call to whoever answers (``brief(leg)``, supplied by the agent: it owns the TTS and the
transcript), and only then joins the two calls with a ``RelayAgent`` each way. The caller's
recording goes on through the join (same RTP session), with the target's voice on the agent channel.

If the target does not answer, is busy, rejects, rings past ``transfer_ring_s`` or hangs up during
the summary, ``TransferFailed`` carries that outcome back to the agent, which is still on the
caller's call (never cancelled on this path) and tells the caller; the call goes on. If the
caller hangs up meanwhile, the ringing is cancelled or the target's leg is ended.

While it is being briefed the target's leg runs a ``HoldAgent``: it drains the leg's inbound
frames (so the jitter buffer's queue stays empty) and says nothing of its own. Bounded: the
summary gets at most ``warm_brief_timeout_s``; plain asyncio, no Django.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from aioptions.logsafe import clip
from telephony.media.call import LiveCall, TransferFailed
from telephony.media.dialogs import Dialog
from telephony.media.relay import RelayAgent

log = logging.getLogger("telephony.bridge")
Brief = Callable[[LiveCall], Awaitable[object]]


class HoldAgent:
    """The target's leg while the agent briefs it: consume its audio, add none, end nothing."""

    def __init__(self) -> None:
        self.frames = 0

    async def run(self, call) -> None:
        async for _frame in call.audio_in():
            self.frames += 1


class WarmTransferMixin:
    warm_brief_timeout_s = 60.0  # the summary is a few sentences: a TTS that hangs must not hold the caller

    async def _dial_leg(self, dlg: Dialog, dest, *, warm: bool) -> Dialog:
        """Dial the target for this caller; the answered leg's dialog, or ``TransferFailed`` with
        the outcome (no_answer, busy, rejected, failed, caller_left). A caller who hangs up while
        the target rings gets the ringing cancelled."""
        caller: LiveCall = dlg.call
        dest.extra = {**dest.extra, "transfer_of": caller.call_id, **({"warm": True} if warm else {})}
        dialling = asyncio.ensure_future(self.dial(dest, ring_timeout_s=self.transfer_ring_s))
        ended = asyncio.ensure_future(caller.ended.wait())
        try:
            await asyncio.wait({dialling, ended}, return_when=asyncio.FIRST_COMPLETED)
            if not dialling.done():  # the caller hung up while the target rang: stop the ringing
                leg = self._leg_of(caller.call_id)
                if leg is not None and leg.state == "early":
                    leg.cancel_asked = True
                    if leg.responses is not None and not leg.responses.full():
                        leg.responses.put_nowait(None)  # wake the dialling coroutine
                await dialling
        finally:
            ended.cancel()
        result = dialling.result()
        leg = self.dialogs.get(result.call_id)
        if result.outcome != "answered" or leg is None or leg.call is None:
            outcome = "caller_left" if caller.ended.is_set() else result.outcome
            raise TransferFailed(f"the target did not answer ({result.outcome}"
                                 + (f", {result.status}" if result.status else "") + ")", outcome)
        if caller.ended.is_set():
            leg.call.end_now("transferred")
            raise TransferFailed("the caller hung up before the target answered", "caller_left")
        return leg

    def _join(self, dlg: Dialog, leg: Dialog, uri: str) -> str:
        """Replace the agent on the caller's call (and the hold on a warm leg) by relays each way."""
        caller = dlg.call
        loop = asyncio.get_running_loop()
        caller.clear_playout()
        old = dlg.agent_task
        dlg.agent_task = loop.create_task(RelayAgent(leg.call).run(caller))
        if leg.call.info.extra.get("warm"):
            hold = leg.agent_task
            leg.call.clear_playout()
            leg.agent_task = loop.create_task(RelayAgent(caller).run(leg.call))
            if hold is not None and not hold.done():
                hold.cancel()
        if old is not None and not old.done():
            old.cancel()  # last: the transfer may have been asked from inside this very task
        log.info("call %s: bridged to %s (call %s)", clip(caller.call_id, 40), clip(uri, 80),
                 clip(leg.call.call_id, 40))
        return "bridged"

    async def _warm(self, dlg: Dialog, dest, brief: Brief | None) -> str:
        caller: LiveCall = dlg.call
        leg = await self._dial_leg(dlg, dest, warm=True)
        target: LiveCall = leg.call
        log.info("call %s: warm transfer: %s answered, briefing it", clip(caller.call_id, 40),
                 clip(dest.request_uri, 80))
        if brief is not None:
            briefing = asyncio.ensure_future(brief(target))
            ends = {asyncio.ensure_future(caller.ended.wait()), asyncio.ensure_future(target.ended.wait())}
            try:
                await asyncio.wait({briefing, *ends}, timeout=self.warm_brief_timeout_s,
                                   return_when=asyncio.FIRST_COMPLETED)
            finally:
                for t in ends:
                    t.cancel()
                if not briefing.done():
                    briefing.cancel()
                    log.warning("call %s: the summary did not finish; joining anyway", clip(caller.call_id, 40))
                elif not briefing.cancelled() and briefing.exception() is not None:
                    log.warning("call %s: the summary failed (%s); joining anyway", clip(caller.call_id, 40),
                                type(briefing.exception()).__name__)
        if caller.ended.is_set():
            target.end_now("transferred")
            raise TransferFailed("the caller hung up during the summary", "caller_left")
        if target.ended.is_set():
            raise TransferFailed("the target hung up during the summary", "hung_up")
        return self._join(dlg, leg, dest.request_uri)
