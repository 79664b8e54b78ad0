"""Calls the bridge places: ``SIPMediaGateway.dial()``, the SIP UAC half of the gateway.

A mixin of ``SIPMediaGateway`` like ``CallFlow``. One coroutine per call drives the client INVITE
transaction (Timer A retransmission until a provisional, digest answer to one 401/407, early media
on 180/183 with SDP, CANCEL at the ring timeout, ACK of every final response); from the 200 OK on
the call is an ordinary dialog of the gateway: the same ``RtpSession``, recorder, agent, in-dialog
BYE/re-INVITE handling and housekeeping as a call we answered.

Rules that keep it safe: the destination must already be an IP address (the caller resolved it
off the event loop; nothing here touches DNS); responses are accepted only from that address and
for the current INVITE's branch; nothing is sent on the RTP socket before the 200 OK (early media
is received and recorded, never answered, and the agent does not hear it); the dialog counts
against ``max_calls`` from the first INVITE.
"""

from __future__ import annotations

import asyncio
import logging
import random
import secrets
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from aioptions.codecs import g711
from aioptions.codecs.g711 import SILENCE_BYTE
from aioptions.codecs.wav import wav_to_g711
from aioptions.logsafe import clip
from telephony.media.amd import Amd, BeepOrSilence
from telephony.media.call import CallInfo, LiveCall
from telephony.media.dialogs import Dialog, DialogState
from telephony.media.recording import StereoRecorder
from telephony.rtp.session import FRAME, RtpPortsExhausted, RtpSession
from telephony.sip import sdp, timers, uac
from telephony.sip.message import SipMessage, ip_literal, new_tag, user_of

log = logging.getLogger("telephony.bridge")
Step = Callable[[str], None]
MAX_QUEUED_RESPONSES = 32


@dataclass
class DialResult:
    outcome: str  # one of uac.OUTCOMES
    status: int = 0  # the final SIP status (0: none, e.g. transport failure)
    reason: str = ""
    call_id: str = ""
    record_id: int | None = None
    setup_ms: float | None = None  # first INVITE -> 200 OK


class OutboundMixin:
    async def dial(self, target: uac.OutboundTarget, *, ring_timeout_s: float = 60.0,
                   invite_timeout_s: float = 64 * timers.T1, on_step: Step | None = None) -> DialResult:
        """Place a call and return when it is answered (the call then runs on) or has failed."""
        step = on_step or (lambda text: None)
        ip = ip_literal(target.dest[0])
        if ip is None:
            raise ValueError("dial() needs an IP address: resolve the host name off the event loop first")
        if self._closing:
            return DialResult("failed", 503, "bridge is stopping")
        if self.active_calls >= self.max_calls:
            return DialResult("failed", 503, f"bridge at its call limit ({self.max_calls})")
        dest = (ip, target.dest[1])
        local_addr = self.advertised or (self.host if not self.wildcard else _source_ip_for(ip))
        try:
            session = await RtpSession.open(
                host=self.rtp_host, port_range=self.rtp_ports, payload_type=0, codec="PCMU", remote=None,
                clock=self.clock, dtmf_pt=101, signal_ip=ip, latch_window_s=self.policy.rtp_latch_window_s,
                now=self.now)
        except RtpPortsExhausted:
            return DialResult("failed", 503, "no free RTP port")
        session.send_enabled = False  # nothing leaves before the 200 OK
        call_id = f"{secrets.token_hex(12)}@talky"
        dialed = target.dialed or user_of(target.request_uri) or target.request_uri[:64]
        info = CallInfo(call_id, f"sip:{target.from_user}@{target.from_host or local_addr}", dialed, "PCMU",
                        (ip, 0), session.local_port, extra={"direction": "outbound", **target.extra})
        dlg = Dialog(invite=SipMessage(method="INVITE"), src=dest, to_tag=new_tag(), remote_tag="",
                     local_addr=local_addr, role="uac", sdp_session=random.randint(1, 2**31),
                     responses=asyncio.Queue(MAX_QUEUED_RESPONSES))
        dlg.sdp_media = b"offer"  # our first answer in a re-INVITE gets a higher o= version than the offer
        call = LiveCall(info, session, lambda reason: self._agent_hangup(dlg, reason))
        call.direction = "outbound"
        dlg.call = call
        self.dialogs[call_id] = dlg
        self._peer_ips[ip] = self._peer_ips.get(ip, 0) + 1  # the carrier's answers skip pike
        dlg.exempt_ip = True
        try:
            if self.hooks.on_call_started:
                meta = await self.hooks.on_call_started(info) or {}
                call.record_id, call.campaign_id, call.context = meta.get("record_id"), meta.get("campaign_id"), meta
            result = await self._run_invite(dlg, target, ring_timeout_s, invite_timeout_s, step)
        except Exception:  # noqa: BLE001 - one bad call must not take the bridge down
            log.exception("outbound call %s failed", clip(call_id, 40))
            result = DialResult("failed", 0, "internal error")
        result.call_id, result.record_id = call_id, call.record_id
        call.sip_status = call.sip_status or result.status or None
        if result.outcome != "answered" and dlg.state != "ended":
            call.outcome = result.outcome
            await self._end(dlg, result.outcome, send_bye=False)
        step(f"outcome: {result.outcome}" + (f" ({result.status} {result.reason})" if result.status else ""))
        return result

    # --- the client INVITE transaction ----------------------------------------------------------
    async def _run_invite(self, dlg: Dialog, target: uac.OutboundTarget, ring_timeout_s: float,
                          invite_timeout_s: float, step: Step) -> DialResult:
        local = (dlg.local_addr, self.port)
        body = uac.build_offer(local_ip=dlg.local_addr, local_port=dlg.call.session.local_port,
                               session_id=dlg.sdp_session)
        loop = asyncio.get_running_loop()
        started = loop.time()
        ring_deadline = started + ring_timeout_s
        cseq, authorization, provisional, cancelled = 1, None, False, False
        invite = self._send_invite(dlg, target, cseq, local, body, authorization, step)
        interval, sent_at = timers.T1, loop.time()
        while True:
            if dlg.state == "ended":  # the bridge is stopping (aclose) or the call was torn down
                return DialResult("failed", 0, "ended before an answer")
            now = loop.time()
            if not cancelled and (now >= ring_deadline or dlg.cancel_asked):
                cancelled = True
                self._send(uac.cancel_for(invite).serialize(), dlg.src)
                step("CANCEL (the call is no longer wanted)" if dlg.cancel_asked
                     else f"CANCEL after {ring_timeout_s:g} s of ringing")
                ring_deadline = now + 64 * timers.T1  # for the 487
                interval, sent_at = timers.T1, now
            elif cancelled and now >= ring_deadline:
                return DialResult("no_answer" if provisional else "failed", 0, "no final response to CANCEL")
            if not provisional and not cancelled and now - started >= invite_timeout_s:
                return DialResult("failed", 0, "no response (timeout)")
            wait = ring_deadline - now
            if not provisional or cancelled:
                wait = min(wait, max(0.0, sent_at + interval - now))
            try:
                resp = await asyncio.wait_for(dlg.responses.get(), max(wait, 0.001))
            except TimeoutError:
                if loop.time() >= sent_at + interval and (not provisional or cancelled):
                    raw = uac.cancel_for(invite).serialize() if cancelled else invite.serialize()
                    self._send(raw, dlg.src)  # Timer A (INVITE) / Timer E (CANCEL)
                    sent_at, interval = loop.time(), min(interval * 2, timers.T2 if cancelled else 64 * timers.T1)
                continue
            if resp is None:
                continue  # woken by _end
            if resp.branch != invite.branch or resp.cseq[0] != cseq:
                continue  # a stale transaction's response (before the digest retry)
            status = resp.status or 0
            if status < 200:
                provisional = True
                step(f"<- {status} {clip(resp.reason, 40)}")
                if status in (180, 183) and resp.body:
                    self._early_media(dlg, resp)
                continue
            if status < 300:
                step(f"<- {status} {clip(resp.reason, 40)}")
                dlg.invite = invite
                ok = await self._uac_answered(dlg, resp, local, step)
                setup = round((loop.time() - started) * 1000, 1)
                if cancelled:  # answered while our CANCEL was on its way: take it down at once
                    self._send_bye(dlg)
                    return DialResult("no_answer", status, "answered after CANCEL")
                if not ok:
                    return DialResult("failed", status, "unusable SDP answer")
                return DialResult("answered", status, resp.reason, setup_ms=setup)
            self._send(uac.ack_for(invite, resp, local=local).serialize(), dlg.src)
            step(f"<- {status} {clip(resp.reason, 40)}; ACK")
            if status in (401, 407) and authorization is None and target.auth_user and not cancelled:
                header = "www-authenticate" if status == 401 else "proxy-authenticate"
                value = uac.digest_authorization(resp.get(header) or "", method="INVITE", uri=target.request_uri,
                                                 username=target.auth_user, password=target.auth_password)
                if value is not None:
                    authorization = ("authorization" if status == 401 else "proxy-authorization", value)
                    cseq += 1
                    invite = self._send_invite(dlg, target, cseq, local, body, authorization, step)
                    interval, sent_at, provisional = timers.T1, loop.time(), False
                    continue
            return DialResult(uac.outcome_for(status), status, resp.reason)

    def _send_invite(self, dlg: Dialog, target: uac.OutboundTarget, cseq: int, local: tuple[str, int], body: bytes,
                     authorization: tuple[str, str] | None, step: Step) -> SipMessage:
        invite = uac.build_invite(target, call_id=dlg.call.call_id, from_tag=dlg.to_tag, cseq=cseq, local=local,
                                  body=body, authorization=authorization)
        dlg.invite = invite
        dlg.local_seq = cseq
        self.stats["outbound"] = self.stats.get("outbound", 0) + (cseq == 1)
        self._send(invite.serialize(), dlg.src)
        step(f"-> INVITE {clip(target.request_uri, 80)} to {dlg.src[0]}:{dlg.src[1]}"
             + (" (with credentials)" if authorization else ""))
        return invite

    def _on_uac_response(self, resp: SipMessage, src: tuple[str, int]) -> bool:
        """A response to something we sent as UAC. True when it was ours (handled or dropped)."""
        reg = self.registrations.get(resp.call_id)
        if reg is not None:
            reg.on_response(resp, src)
            return True
        dlg = self.dialogs.get(resp.call_id)
        if dlg is None or dlg.role != "uac":
            return False
        if src[0] != dlg.src[0]:
            return True  # only the carrier we called may answer: a stranger's response is dropped
        method = resp.cseq[1]
        if method == "INVITE":
            if dlg.state == "early" and dlg.responses is not None:
                if not dlg.responses.full():
                    dlg.responses.put_nowait(resp)
            elif (resp.status or 0) // 100 == 2 and dlg.state == "confirmed" and resp.to_tag == dlg.remote_tag:
                self._send(dlg.last_response, dlg.src)  # the 2xx again: our ACK was lost, send it again
        return True

    def _set_codec(self, dlg: Dialog, answer: sdp.Offer) -> bool:
        try:
            codec, pt, dtmf_pt = sdp.negotiate(answer)
        except sdp.SdpError:
            return False
        session = dlg.call.session
        session.codec, session.pt, session.dtmf_pt = codec, pt, dtmf_pt
        session.silence = bytes([SILENCE_BYTE[codec]]) * FRAME
        dlg.call.codec = dlg.call.info.codec = codec
        if self.recordings_dir is not None and dlg.recorder is None:
            name = f"call-{dlg.call.record_id or int(time.time())}-out-{dlg.call.call_id[:24]}"
            dlg.recorder = session.recorder = StereoRecorder(self.recordings_dir / f"{name}.wav", codec)
        return True

    def _early_media(self, dlg: Dialog, resp: SipMessage) -> None:
        """180/183 with SDP: receive and record the carrier's tones/announcements; send nothing."""
        try:
            answer = sdp.parse_offer(resp.body)
        except sdp.SdpError:
            return
        if not self._set_codec(dlg, answer):
            return
        session = dlg.call.session
        addr = (answer.address, answer.port) if answer.address else None
        session.expect_media(addr, dlg.src[0], self.policy.rtp_latch_window_s)
        if addr is not None and session.remote is None:
            session.remote = addr
        if not dlg.media_started:
            dlg.media_started = True
            session.start()  # ticks write the recording; send_enabled stays False

    async def _uac_answered(self, dlg: Dialog, resp: SipMessage, local: tuple[str, int], step: Step) -> bool:
        dlg.remote_tag, dlg.remote_to = resp.to_tag, resp.get("to") or ""
        dlg.call.sip_status = resp.status
        dlg.remote_target, dlg.routes = uac.remote_target(dlg.invite, resp), uac.route_set(resp)
        ack = uac.ack_for(dlg.invite, resp, local=local).serialize()
        self._send(ack, dlg.src)
        step("-> ACK")
        dlg.last_response = ack
        dlg.ack_event.set()
        dlg.move(DialogState.CONFIRMED)
        call, session = dlg.call, dlg.call.session
        try:
            answer = sdp.parse_offer(resp.body)
        except sdp.SdpError:
            answer = None
        if answer is None or not self._set_codec(dlg, answer):
            self._send_bye(dlg)
            call.outcome = "failed"
            self._spawn_end(dlg, "error", send_bye=False)
            return False
        addr = (answer.address, answer.port) if answer.address else None
        session.expect_media(addr, dlg.src[0], self.policy.rtp_latch_window_s)
        if addr is not None and not session.latched:
            session.remote = addr
        session._frames.clear()  # early media went to the recording only: the agent starts at the answer
        session.reset_inbound()
        session.verified = True  # the callee answered: it wants our media
        self._apply_offer(dlg, answer, moved=False)
        dlg.media_since = self.now()
        call.answered_at = time.monotonic()
        call.outcome = "answered"
        self.stats["answered"] += 1
        self._refresh_session(dlg)
        if not dlg.media_started:
            dlg.media_started = True
            session.start()
        if self.hooks.on_call_answered:
            await self.hooks.on_call_answered(call)
        if dlg.state == "confirmed":
            mode = "off" if call.info.extra.get("transfer_of") else call.context.get("amd_mode", "off")
            dlg.agent_task = asyncio.create_task(self._amd_then_agent(dlg, mode) if mode in ("hangup", "message")
                                                 else self._run_agent(dlg))
        return True

    async def _amd_then_agent(self, dlg: Dialog, mode: str) -> None:
        """Answering-machine detection on the media clock's frames; a person gets the agent (the
        frames heard meanwhile are dropped so it starts fresh), a machine gets a hang-up or, after
        its beep (or silence), the campaign's voicemail message."""
        call, session = dlg.call, dlg.call.session
        amd, beep = Amd(), BeepOrSilence()
        decided, ready = asyncio.Event(), asyncio.Event()

        def on_audio(frame: bytes) -> None:
            pcm = g711.decode(session.codec, frame)
            if amd.verdict is None:
                if amd.feed(pcm):
                    decided.set()
            elif amd.verdict == "machine" and beep.feed(pcm):
                ready.set()

        session.on_audio = on_audio
        try:
            await asyncio.wait_for(decided.wait(), amd.p.total_analysis_ms / 1000 + 2)
        except TimeoutError:
            pass
        log.info("call %s: AMD %s (%s)", clip(call.call_id, 40), amd.verdict or "timeout", amd.reason)
        if amd.verdict != "machine":
            session.on_audio = None
            session._frames.clear()
            await self._run_agent(dlg)
            return
        call.outcome = "voicemail"
        if mode == "message":
            try:
                await asyncio.wait_for(ready.wait(), 20)
            except TimeoutError:
                pass
            wav = call.context.get("voicemail_wav")
            if wav and not call.ended.is_set():
                call.play(await asyncio.to_thread(wav_to_g711, Path(wav), session.codec))
        session.on_audio = None
        await call.hangup("agent", drain_timeout=60.0)  # the whole message plays, then BYE

    # --- overrides of the UAS call flow for role "uac" -------------------------------------------
    def _send_bye(self, dlg: Dialog) -> None:
        if dlg.role != "uac":
            super()._send_bye(dlg)
            return
        dlg.local_seq += 1
        raw = uac.bye_as_uac(invite=dlg.invite, remote_to=dlg.remote_to,
                             target=dlg.remote_target or (dlg.invite.uri or ""), routes=dlg.routes,
                             cseq=dlg.local_seq, local=(dlg.local_addr, self.port))
        answered = asyncio.Event()
        call_id = dlg.invite.call_id

        async def run() -> None:
            try:
                await timers.retransmit(lambda: self._send(raw, dlg.src), answered, send_first=True)
            finally:
                self._pending_bye.pop(call_id, None)

        self._pending_bye[call_id] = (answered, asyncio.get_running_loop().create_task(run()), dlg.src[0])

    async def _end(self, dlg: Dialog, reason: str, *, send_bye: bool) -> None:
        if dlg.role == "uac" and dlg.state == "early":
            if dlg.invite.method == "INVITE" and dlg.invite.headers and reason == "shutdown":
                self._send(uac.cancel_for(dlg.invite).serialize(), dlg.src)  # stopping: stop the ringing too
            if dlg.call is not None and not getattr(dlg.call, "outcome", ""):
                dlg.call.outcome = "failed"
            if dlg.responses is not None and not dlg.responses.full():
                dlg.responses.put_nowait(None)  # wake the dialling coroutine
        await super()._end(dlg, reason, send_bye=send_bye)


def _source_ip_for(dest_ip: str) -> str:
    """The local address the kernel would send from to ``dest_ip`` (a connected UDP socket sends
    nothing and resolves nothing): what our Via, Contact and SDP carry on a 0.0.0.0 bridge."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect((dest_ip, 9))
            return s.getsockname()[0]
        except OSError:
            return "127.0.0.1"
