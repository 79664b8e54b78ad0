"""What happens to a call once the gateway lets its INVITE in: set-up, answer, in-dialog requests
(ACK, BYE, CANCEL, re-INVITE, UPDATE, INFO), media supervision and the end.

A mixin of ``SIPMediaGateway`` (it uses the gateway's socket, tables and hooks). The rules that
keep a call from being hijacked live here: a dialog is matched by Call-ID *and* both tags, its
in-dialog requests must count up and come from its peer (or authenticate when accounts exist),
a duplicate Call-ID never opens a second dialog, and no media leaves before the peer proved it
wants it (ACK or its own RTP).
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
import time

from aioptions.logsafe import clip
from telephony.media.call import CallInfo, LiveCall
from telephony.media.dialogs import Dialog, DialogState
from telephony.media.recording import StereoRecorder, shared_writer
from telephony.rtp.session import RtpPortsExhausted, RtpSession
from telephony.sip import replies, sdp, timers
from telephony.sip.info import DTMF_TYPES, dtmf_from_info
from telephony.sip.message import SipMessage, new_tag, uri_of, user_of

log = logging.getLogger("telephony.bridge")
ALLOW = "INVITE, ACK, BYE, CANCEL, OPTIONS, REGISTER, INFO, UPDATE, NOTIFY"
MIN_SE = 90  # RFC 4028 minimum session interval
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9_-]")


class CallFlow:
    # --- INVITE -------------------------------------------------------------------------------
    def _on_invite(self, req: SipMessage, src: tuple[str, int], local_ip: str | None) -> None:
        if req.to_tag:
            dlg = self._in_dialog(req, src)
            if dlg is not None:
                self._on_offer(dlg, req, src)
            return
        if req.call_id in self.dialogs:  # same Call-ID, new transaction: merged or forked (RFC 3261 8.2.2.2)
            self._respond(req, 482, src=src)
            return
        if self._closing:
            self._respond(req, 503, src=src)
            return
        ip = src[0]
        trunk = ip in self.trunk_ips
        if not trunk and not self.policy.is_trusted(ip) and not self.invite_limit.allow(ip):
            self.stats["rate_limited"] += 1  # an INVITE flood: dropped without a word, like pike
            return
        if self._admit(req, src) is None:
            return
        self.stats["invites"] += 1
        if self.active_calls >= self.max_calls:
            return self._reject(req, src, 486, f"busy ({self.active_calls} calls)")
        se = self._session_timer(req)
        if se < 0:
            self._respond(req, 422, to_tag=new_tag(), extra=[("Min-SE", str(MIN_SE))], src=src)
            return
        try:
            offer = sdp.parse_offer(req.body)
            codec, pt, dtmf_pt = sdp.negotiate(offer)
        except sdp.SdpError as exc:
            self.stats["rejected"] += 1
            self._respond(req, 488, to_tag=new_tag(), extra=[("Warning", f'304 talky "{exc}"')], src=src)
            return
        if not trunk and not self.call_slots.acquire(ip):
            return self._reject(req, src, 486, f"too many calls from {ip}")
        dlg = Dialog(invite=req, src=src, to_tag=new_tag(), remote_tag=req.from_tag,
                     local_addr=self.local_address(local_ip), remote_cseq=req.cseq[0], session_expires=se or None,
                     sdp_session=random.randint(1, 2**31))
        self.dialogs[req.call_id] = dlg
        self._respond(req, 100, src=src)
        asyncio.get_running_loop().create_task(self._setup_call(dlg, offer, codec, pt, dtmf_pt))

    def _reject(self, req: SipMessage, src, status: int, why: str) -> None:
        self.stats["rejected"] += 1
        self._respond(req, status, to_tag=new_tag(), src=src)
        log.info("call %s rejected: %s", clip(req.call_id, 40), why)

    @staticmethod
    def _session_timer(req: SipMessage) -> int:
        """The RFC 4028 interval the caller asked for and will refresh (0: none; -1: below Min-SE)."""
        value = req.get("session-expires")
        if value is None:
            return 0
        se = int(value.split(";", 1)[0])
        if se < MIN_SE:
            return -1
        tokens = {t.strip().lower() for h in req.get_all("supported") + req.get_all("require") for t in h.split(",")}
        return se if "timer" in tokens else 0

    async def _setup_call(self, dlg: Dialog, offer: sdp.Offer, codec: str, pt: int, dtmf_pt: int | None) -> None:
        req, src = dlg.invite, dlg.src
        dialed = user_of(req.uri or "") or user_of(uri_of(req.get("to") or ""))
        media = (offer.address, offer.port) if offer.address and not sdp.on_hold(offer) else None
        try:
            session = await RtpSession.open(
                host=self.rtp_host, port_range=self.rtp_ports, payload_type=pt, codec=codec, remote=media,
                clock=self.clock, dtmf_pt=dtmf_pt, signal_ip=src[0], latch_window_s=self.policy.rtp_latch_window_s,
                now=self.now)
        except RtpPortsExhausted:
            self._respond(req, 503, to_tag=dlg.to_tag, src=src)
            log.error("call %s rejected: no free RTP port", clip(req.call_id, 40))
            await self._end(dlg, "error", send_bye=False)
            return
        if dlg.state == "ended":  # cancelled while the socket was opening
            session.close()
            return
        info = CallInfo(req.call_id, uri_of(req.get("from") or ""), dialed, codec, media or (src[0], offer.port),
                        session.local_port)
        call = LiveCall(info, session, lambda reason: self._agent_hangup(dlg, reason))
        dlg.call = call
        log.info("call %s from %s to %s: %s, RTP local %d remote %s", clip(req.call_id, 40), clip(info.caller_uri, 80),
                 clip(dialed, 64), codec, session.local_port, media)
        try:
            if self.hooks.on_call_started:
                meta = await self.hooks.on_call_started(info) or {}
                call.record_id = meta.get("record_id")
                call.campaign_id = meta.get("campaign_id")
                call.context = meta
            if self.recordings_dir is not None:
                name = _UNSAFE_NAME.sub("_", f"call-{call.record_id or int(time.time())}-{req.call_id[:24]}")
                dlg.recorder = session.recorder = StereoRecorder(self.recordings_dir / f"{name}.wav", codec,
                                                                    writer=shared_writer())
            if dlg.state == "ended":
                return
            self._respond(req, 180, to_tag=dlg.to_tag, src=src)
            if self.ring_ms:
                await asyncio.sleep(self.ring_ms / 1000)
            if dlg.state == "ended":
                return
            raw = self._respond(req, 200, to_tag=dlg.to_tag, body=self._answer(dlg, offer),
                                extra=self._dialog_headers(dlg), src=src)
            dlg.move(DialogState.ANSWERED)
            dlg.last_response = raw
            dlg.media_since = self.now()
            call.answered_at = time.monotonic()
            self.stats["answered"] += 1
            self._apply_offer(dlg, offer, moved=False)
            self._refresh_session(dlg)
            session.start()
            if self.hooks.on_call_answered:
                await self.hooks.on_call_answered(call)
            dlg.tasks.append(asyncio.create_task(self._retransmit_200(dlg)))
            dlg.agent_task = asyncio.create_task(self._run_agent(dlg))
        except Exception:  # noqa: BLE001
            log.exception("call %s setup failed", clip(req.call_id, 40))
            await self._end(dlg, "error", send_bye=dlg.state != "early")

    def _dialog_headers(self, dlg: Dialog) -> list[tuple[str, str]]:
        extra = [("Contact", f"<sip:talky@{dlg.local_addr}:{self.port}>"), ("Content-Type", "application/sdp"),
                 ("Allow", ALLOW), ("Supported", "timer")]
        if dlg.session_expires:
            extra += [("Session-Expires", f"{dlg.session_expires};refresher=uac"), ("Require", "timer")]
        return extra

    def _answer(self, dlg: Dialog, offer: sdp.Offer | None) -> bytes:
        """Our SDP; the o= version goes up only when the media description changes (RFC 3264 8)."""
        session = dlg.call.session
        direction = sdp.ANSWER_DIRECTION[offer.direction] if offer else "sendrecv"

        def build(version: int) -> bytes:
            return sdp.build_answer(local_ip=dlg.local_addr, local_port=session.local_port, codec=session.codec,
                                    pt=session.pt, dtmf_pt=session.dtmf_pt, direction=direction,
                                    session_id=dlg.sdp_session, version=version)

        media = build(0)
        if dlg.sdp_media and media != dlg.sdp_media:
            dlg.sdp_version += 1
        dlg.sdp_media = media
        return build(dlg.sdp_version)

    def _apply_offer(self, dlg: Dialog, offer: sdp.Offer, *, moved: bool) -> None:
        """Hold state and media address from an offer (initial or re-INVITE/UPDATE)."""
        session = dlg.call.session
        session.send_enabled = not sdp.on_hold(offer)
        held = offer.direction != "sendrecv" or offer.address in ("0.0.0.0", "::")
        if held:
            dlg.held_since = dlg.held_since or self.now()
        elif dlg.held_since is not None:
            dlg.held_since = None
            dlg.media_since = self.now()
        if moved:
            new = (offer.address, offer.port) if offer.address and offer.address not in ("0.0.0.0", "::") else None
            if new is not None and new != session._sdp_addr:
                session.expect_media(new, dlg.src[0], self.policy.rtp_latch_window_s)
            session.reset_inbound()  # a re-INVITE may restart the sender's sequence: not a loss

    def _refresh_session(self, dlg: Dialog) -> None:
        if dlg.session_expires:  # RFC 4028 10: BYE at expiry minus min(32 s, interval/3) without a refresh
            se = dlg.session_expires
            dlg.session_deadline = self.now() + se - min(32, se / 3)

    async def _retransmit_200(self, dlg: Dialog) -> None:
        """RFC 3261 13.3.1.4: resend the 200 OK until the ACK; without one after 64*T1, hang up."""
        if not await timers.retransmit(lambda: self._send(dlg.last_response, dlg.src), dlg.ack_event,
                                       send_first=False, wait=self.timer_wait):
            if dlg.state == "answered":
                log.warning("call %s: no ACK after %.0f s, hanging up", clip(dlg.invite.call_id, 40), 64 * timers.T1)
                await self._end(dlg, "error", send_bye=True)

    async def _run_agent(self, dlg: Dialog) -> None:
        call = dlg.call
        try:
            agent = self._agent_for(dlg)  # the runner's agent, or a transfer leg's relay (media.transfer)
            await agent.run(call)
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - one agent's bug ends one call
            log.exception("agent failed on call %s", clip(call.call_id, 40))
            if dlg.state != "ended":
                await self._end(dlg, "error", send_bye=True)

    def _expired(self, dlg: Dialog, now: float) -> str | None:
        """Why this call must end now, if it must: RTP timeout (not on hold), hold timeout, session timer."""
        if dlg.state not in ("answered", "confirmed") or dlg.call is None:
            return None
        if dlg.session_deadline is not None and now >= dlg.session_deadline:
            return "session_expired"
        last = dlg.call.session.last_rx_at or 0.0
        if dlg.held_since is not None:
            if now - max(dlg.held_since, last) > self.hold_timeout_s:
                return "hold_timeout"
        elif now - max(dlg.media_since, last) > self.rtp_timeout_s:
            return "rtp_timeout"
        return None

    # --- in-dialog requests --------------------------------------------------------------------
    def _in_dialog(self, req: SipMessage, src: tuple[str, int]) -> Dialog | None:
        """The dialog this request belongs to, or None after answering it (481/401/500)."""
        dlg = self.dialogs.get(req.call_id)
        if (dlg is None or dlg.state == "ended" or dlg.call is None or req.from_tag != dlg.remote_tag
                or req.to_tag != dlg.to_tag or (dlg.role == "uac" and dlg.state == "early")):
            self._respond(req, 481, src=src)
            return None
        if src != dlg.src and not self.auth.open_mode() and self._admit(req, src) is None:
            return None  # a stranger who knows the Call-ID and tags must still prove who it is
        if req.cseq[0] <= dlg.remote_cseq:
            self._respond(req, 500, "Server Internal Error (CSeq out of order)", extra=[("Retry-After", "1")],
                          src=src)
            return None
        dlg.remote_cseq = req.cseq[0]
        return dlg

    def _on_ack(self, req: SipMessage, src, local_ip) -> None:
        dlg = self.dialogs.get(req.call_id)
        if (dlg is None or dlg.call is None or dlg.role != "uas" or req.to_tag != dlg.to_tag
                or req.from_tag != dlg.remote_tag):
            return  # ACK of a non-2xx final, of a dialog that is gone, or of a call we placed: nothing to do
        if src[0] != dlg.src[0] and not self.auth.open_mode():
            return  # only the caller confirms its call
        dlg.ack_event.set()
        if dlg.state == DialogState.ANSWERED:
            dlg.move(DialogState.CONFIRMED)
            dlg.call.session.verified = True
            self._peer_ips[src[0]] = self._peer_ips.get(src[0], 0) + 1
            dlg.exempt_ip = True

    def _on_offer(self, dlg: Dialog, req: SipMessage, src) -> None:
        """re-INVITE or UPDATE: hold/resume, a moved media address, a session refresh."""
        offer = None
        try:
            if req.body:
                offer = sdp.parse_offer(req.body)
                sdp.negotiate(offer)
        except sdp.SdpError as exc:
            self._respond(req, 488, extra=[("Warning", f'304 talky "{exc}"')], src=src)
            return
        if req.get("session-expires") is not None:
            se = self._session_timer(req)
            if se < 0:
                self._respond(req, 422, extra=[("Min-SE", str(MIN_SE))], src=src)
                return
            dlg.session_expires = se or None
            dlg.session_deadline = None
        self._refresh_session(dlg)
        if offer is not None:
            self._apply_offer(dlg, offer, moved=True)
        body = self._answer(dlg, offer) if (offer is not None or req.method == "INVITE") else b""
        extra = self._dialog_headers(dlg)
        if not body:
            extra = [h for h in extra if h[0] != "Content-Type"]
        self._respond(req, 200, to_tag=dlg.to_tag, body=body, extra=extra, src=src)
        log.info("call %s: %s -> %s", clip(req.call_id, 40), req.method, offer.direction if offer else "refresh")

    def _on_update(self, req: SipMessage, src, local_ip) -> None:
        dlg = self._in_dialog(req, src)
        if dlg is not None:
            self._on_offer(dlg, req, src)

    def _on_info(self, req: SipMessage, src, local_ip) -> None:
        dlg = self._in_dialog(req, src)
        if dlg is None:
            return
        ctype = (req.get("content-type") or "").split(";", 1)[0].strip().lower()
        if req.body and ctype not in DTMF_TYPES:
            self._respond(req, 415, extra=[("Accept", ", ".join(DTMF_TYPES))], src=src)
            return
        digit = dtmf_from_info(ctype, req.body) if req.body else None
        if digit is not None:
            dlg.call.dtmf(digit)
        self._respond(req, 200, src=src)

    def _on_bye(self, req: SipMessage, src, local_ip) -> None:
        dlg = self._in_dialog(req, src)
        if dlg is None:
            return
        self._respond(req, 200, src=src)
        if dlg.state == "early" and dlg.role == "uas":
            self._respond(dlg.invite, 487, to_tag=dlg.to_tag, src=dlg.src)
        self._spawn_end(dlg, "bye", send_bye=False)

    def _on_cancel(self, req: SipMessage, src, local_ip) -> None:
        dlg = self.dialogs.get(req.call_id)
        if (dlg is None or dlg.role != "uas" or dlg.invite.branch != req.branch or req.from_tag != dlg.remote_tag
                or src != dlg.src or dlg.state == "ended"):
            self._respond(req, 481, src=src)
            return
        self._respond(req, 200, src=src)
        if dlg.state == "early":
            self._respond(dlg.invite, 487, to_tag=dlg.to_tag, src=dlg.src)
            self._spawn_end(dlg, "cancel", send_bye=False)

    # --- ending ---------------------------------------------------------------------------------
    def _agent_hangup(self, dlg: Dialog, reason: str) -> None:
        if dlg.state != "ended":
            self._spawn_end(dlg, reason, send_bye=True)

    def _send_bye(self, dlg: Dialog) -> None:
        inv = dlg.invite
        dlg.local_seq += 1
        raw = replies.bye_for(inv, to_tag=dlg.to_tag, cseq=dlg.local_seq, host=dlg.local_addr, port=self.port)
        answered = asyncio.Event()

        async def run() -> None:
            try:
                await timers.retransmit(lambda: self._send(raw, dlg.src), answered, send_first=True,
                                        wait=self.timer_wait)
            finally:
                self._pending_bye.pop(inv.call_id, None)

        self._pending_bye[inv.call_id] = (answered, asyncio.get_running_loop().create_task(run()), dlg.src[0])

    def _spawn_end(self, dlg: Dialog, reason: str, *, send_bye: bool) -> None:
        """End a call in the background; aclose() waits for these so no record is left open."""
        task = asyncio.get_running_loop().create_task(self._end(dlg, reason, send_bye=send_bye))
        self._ending.add(task)
        task.add_done_callback(self._ending.discard)

    def _forget(self, dlg: Dialog) -> None:
        if self.dialogs.get(dlg.invite.call_id) is dlg:
            del self.dialogs[dlg.invite.call_id]

    async def _end(self, dlg: Dialog, reason: str, *, send_bye: bool) -> None:
        if dlg.state == "ended":
            return
        was = dlg.state
        dlg.move(DialogState.ENDED)
        if dlg.role == "uas" and dlg.src[0] not in self.trunk_ips:  # only inbound non-trunk calls took a slot
            self.call_slots.release(dlg.src[0])
        if dlg.exempt_ip:
            left = self._peer_ips.get(dlg.src[0], 1) - 1
            if left > 0:
                self._peer_ips[dlg.src[0]] = left
            else:
                self._peer_ips.pop(dlg.src[0], None)
        call = dlg.call
        if call is None:
            self._forget(dlg)
            return
        if send_bye and was != "early":
            self._send_bye(dlg)
        call.mark_ended(reason)
        call.session.close()
        for t in dlg.tasks:
            t.cancel()
        if dlg.agent_task is not None and not dlg.agent_task.done():
            try:
                await asyncio.wait_for(asyncio.shield(dlg.agent_task), 2.0)
            except (TimeoutError, asyncio.CancelledError, Exception):  # noqa: BLE001
                dlg.agent_task.cancel()
        path = await dlg.recorder.aclose() if dlg.recorder else None
        stats = call.session.stats()
        self.stats["ended"] += 1
        log.info("call %s ended (%s) rtp_in=%d rtp_out=%d lost=%d ignored=%d", clip(call.call_id, 40), reason,
                 stats["packets_in"], stats["packets_out"], stats["lost"], stats["ignored_sources"])
        try:
            if self.hooks.on_call_ended:
                await self.hooks.on_call_ended(call, stats, path)
        except Exception:  # noqa: BLE001
            log.exception("finalising call %s failed", clip(call.call_id, 40))
        finally:
            self._forget(dlg)
