"""Call transfer, a mixin of ``SIPMediaGateway``: REFER first, bridging second (DESIGN.md).

1. **REFER** (RFC 3515): an in-dialog REFER to the caller with Refer-To (the target's URI) and
   Referred-By. A 2xx (202) means the caller's phone will call the target itself and report how
   it goes in NOTIFYs carrying ``message/sipfrag``; each NOTIFY is matched like any in-dialog
   request (Call-ID, both tags, rising CSeq, the caller's address) and answered 200. A final 2xx
   sipfrag = transferred: we send BYE and the call ends with reason "transferred".
2. **Bridge** when REFER is refused (405/501/603/481..., or no answer) or the sipfrag is a 4xx-6xx:
   the gateway dials the target itself (``dial()``: a number through the campaign's trunk, whose
   allowed prefixes apply, or a SIP URI / registered extension), and once it answers the agent is
   replaced by two ``RelayAgent``s carrying audio between the calls; the caller's recording goes
   on; when either hangs up the other gets a BYE. If the caller hangs up while the target rings,
   the ringing is cancelled.

3. **Warm** (``mode="warm"``, telephony.media.warm): no REFER; the gateway dials the target, the
   agent's ``brief`` speaks a summary to it while the caller holds, then the calls are bridged as
   in 2; a target that does not answer leaves the caller with the agent, which says so.

Bounded: one transfer per call at a time (``_transfers``/``_refers`` hold at most one entry per
dialog and are emptied in ``finally``); REFER retransmits on Timer E and gives up after 64*T1;
the wait for the final NOTIFY is bounded by ``refer_notify_timeout_s``. Plain asyncio, no Django:
the runner's ``transfer_target`` hook turns the agent's target into an ``OutboundTarget``.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from dataclasses import dataclass, field

from aioptions.logsafe import clip
from telephony.media.call import TransferFailed
from telephony.media.dialogs import Dialog
from telephony.media.relay import RelayAgent
from telephony.media.warm import Brief, HoldAgent, WarmTransferMixin
from telephony.sip import refer, timers
from telephony.sip.message import SipMessage, param, uri_of

log = logging.getLogger("telephony.bridge")
REFER_NOT_SUPPORTED = (405, 420, 481, 501, 603)  # for the log: refused outright vs failed later


@dataclass
class ReferState:
    """One REFER of one dialog: its CSeq, the peer's answer, and the final sipfrag status."""

    cseq: int
    answered: asyncio.Event = field(default_factory=asyncio.Event)
    status: int | None = None  # the REFER's final response
    final: asyncio.Event = field(default_factory=asyncio.Event)
    frag: int | None = None  # the last sipfrag status reported
    notifies: int = 0


class TransferMixin(WarmTransferMixin):
    _refers: dict[str, ReferState]  # call-id -> the REFER in flight (set up by the gateway)
    _transfers: dict[str, asyncio.Task]  # call-id -> the transfer in flight
    refer_notify_timeout_s = 60.0  # after a 202, how long the transferee may take to report the outcome
    transfer_ring_s = 30.0  # how long the bridged leg may ring

    # --- the agent's side -------------------------------------------------------------------
    def _agent_for(self, dlg: Dialog):
        """The agent of an answered call: a relay for the leg a transfer dialled, else the runner's.
        Also where a call becomes transferable (``LiveCall.transfer``)."""
        call = dlg.call
        call.transferer = functools.partial(self.transfer, dlg)
        of = call.info.extra.get("transfer_of")
        if of:
            if call.info.extra.get("warm"):
                return HoldAgent()  # briefed first; the transfer joins it to the caller (warm.py)
            peer = self.dialogs.get(of)
            return RelayAgent(peer.call if peer is not None and peer.state != "ended" else None)
        return self.agent_factory(call)

    async def transfer(self, dlg: Dialog, target: str, mode: str = "blind", brief: Brief | None = None) -> str:
        """Run one transfer of this call in its own task (the agent that asked may be cancelled
        when the bridge replaces it; the transfer must go on)."""
        transfers = self._transfers
        call = dlg.call
        if dlg.state != "confirmed" or call is None or call.ended.is_set():
            raise TransferFailed("the call is not established")
        if call.call_id in transfers or call.info.extra.get("transfer_of"):
            raise TransferFailed("a transfer of this call is already in progress")
        if self.hooks.transfer_target is None:
            raise TransferFailed("transfers are not configured on this bridge")
        if mode not in ("blind", "warm"):
            raise TransferFailed(f"unknown transfer mode {mode[:20]!r}")
        task = asyncio.get_running_loop().create_task(self._run_transfer(dlg, target, mode, brief))
        transfers[call.call_id] = task
        def done(t: asyncio.Task) -> None:
            transfers.pop(call.call_id, None)
            if not t.cancelled():
                t.exception()  # retrieved: the agent that awaited it may have been replaced (bridged)

        task.add_done_callback(done)
        return await asyncio.shield(task)

    async def _run_transfer(self, dlg: Dialog, target: str, mode: str, brief: Brief | None) -> str:
        call = dlg.call
        try:
            dest = await self.hooks.transfer_target(call, target)
        except TransferFailed:
            raise
        except Exception as exc:  # noqa: BLE001 - Refused (rules), bad URI, resolution failure
            raise TransferFailed(f"target refused: {str(exc)[:200]}", "refused") from None
        if mode == "warm":
            return await self._warm(dlg, dest, brief)
        why = await self._refer(dlg, dest.request_uri)
        if why == "transferred":
            log.info("call %s: transferred by REFER to %s", clip(call.call_id, 40), clip(dest.request_uri, 80))
            self._spawn_end(dlg, "transferred", send_bye=True)
            return "transferred"
        if dlg.state == "ended":
            raise TransferFailed("the call ended during the transfer")
        log.info("call %s: REFER did not transfer (%s): dialling %s to bridge", clip(call.call_id, 40), why,
                 clip(dest.request_uri, 80))
        return await self._bridge(dlg, dest)

    # --- 1. REFER ------------------------------------------------------------------------------
    def _dialog_request(self, dlg: Dialog, method: str, extra: list[tuple[str, str]]) -> SipMessage:
        """An in-dialog request from our side, for either role (RFC 3261 12.2.1.1)."""
        inv = dlg.invite
        dlg.local_seq += 1
        local = (dlg.local_addr, self.port)
        if dlg.role == "uac":
            return refer.in_dialog_request(
                method, uri=dlg.remote_target or (inv.uri or ""), from_hdr=inv.get("from") or "",
                to_hdr=dlg.remote_to, call_id=inv.call_id, cseq=dlg.local_seq, routes=dlg.routes, local=local,
                extra=extra)
        to_hdr = inv.get("to") or ""
        ours = f"{to_hdr};tag={dlg.to_tag}" if param(to_hdr, "tag") is None else to_hdr
        return refer.in_dialog_request(
            method, uri=uri_of(inv.get("contact") or inv.get("from") or ""), from_hdr=ours,
            to_hdr=inv.get("from") or "", call_id=inv.call_id, cseq=dlg.local_seq,
            routes=inv.get_all("record-route"), local=local, extra=extra)

    async def _refer(self, dlg: Dialog, refer_to: str) -> str:
        """Send REFER and follow its NOTIFYs. "transferred", or why not (the bridge follows)."""
        refers = self._refers
        call_id = dlg.invite.call_id
        req = self._dialog_request(dlg, "REFER", refer.refer_headers(refer_to, local=(dlg.local_addr, self.port)))
        state = ReferState(cseq=dlg.local_seq)
        refers[call_id] = state
        raw = req.serialize()
        ended = asyncio.ensure_future(dlg.call.ended.wait())
        try:
            sending = asyncio.ensure_future(timers.retransmit(lambda: self._send(raw, dlg.src), state.answered,
                                                              send_first=True))
            await asyncio.wait({sending, ended}, return_when=asyncio.FIRST_COMPLETED)
            sending.cancel()
            if dlg.call.ended.is_set():
                return "the call ended"
            if state.status is None:
                return "no answer to REFER"
            if state.status >= 300:
                kind = "refused" if state.status in REFER_NOT_SUPPORTED else "failed"
                return f"REFER {kind} ({state.status})"
            final = asyncio.ensure_future(state.final.wait())
            try:
                await asyncio.wait({final, ended}, timeout=self.refer_notify_timeout_s,
                                   return_when=asyncio.FIRST_COMPLETED)
            finally:
                final.cancel()
            if dlg.call.ended.is_set():
                return "the call ended"
            if not state.final.is_set():
                return "no final NOTIFY"
            if state.frag is not None and 200 <= state.frag < 300:
                return "transferred"
            return f"the transferee's call failed ({state.frag})"
        finally:
            ended.cancel()
            if refers.get(call_id) is state:
                del refers[call_id]

    def _on_refer_response(self, resp: SipMessage, src: tuple[str, int]) -> None:
        """A response to our REFER: only from the peer, only for the REFER in flight."""
        state = self._refers.get(resp.call_id)
        dlg = self.dialogs.get(resp.call_id)
        if state is None or dlg is None or src[0] != dlg.src[0] or resp.cseq[0] != state.cseq:
            return
        if (resp.status or 0) >= 200 and state.status is None:
            state.status = resp.status
            state.answered.set()

    def _on_notify(self, req: SipMessage, src: tuple[str, int], local_ip) -> None:
        dlg = self._in_dialog(req, src)  # Call-ID, both tags, rising CSeq, the peer (or auth): else answered
        if dlg is None:
            return
        state = self._refers.get(req.call_id)
        if state is None or refer.event_package(req) != "refer":
            self._respond(req, 489, "Bad Event", src=src)  # RFC 6665: no such subscription
            return
        status = refer.sipfrag_status(req.body)
        if status is None and not refer.subscription_terminated(req):
            self._respond(req, 400, "Bad Request (no sipfrag status line)", src=src)
            return
        self._respond(req, 200, src=src)
        state.notifies += 1
        if state.status is None:  # the NOTIFY overtook the 202: an implicit acceptance (RFC 3515 2.4.4)
            state.status = 202
            state.answered.set()
        if status is not None:
            state.frag = status
        if (status is not None and status >= 200) or refer.subscription_terminated(req):
            state.final.set()

    # --- 2. dial and bridge --------------------------------------------------------------------
    def _leg_of(self, call_id: str) -> Dialog | None:
        return next((d for d in self.dialogs.values() if d.call is not None
                     and d.call.info.extra.get("transfer_of") == call_id), None)

    async def _bridge(self, dlg: Dialog, dest) -> str:
        """REFER did not transfer: dial the target ourselves and relay audio (warm.py's helpers)."""
        leg = await self._dial_leg(dlg, dest, warm=False)
        return self._join(dlg, leg, dest.request_uri)
