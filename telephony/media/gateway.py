"""SIPMediaGateway: a SIP UAS on UDP that softphones register to and call, carrying each call's
audio to an agent. Plain asyncio, no Django: the runner passes hooks for records and routing.

One process, many calls: one UDP socket for SIP, one RTP socket per call, one shared media clock.
A call's failure (agent exception, bad packet) is caught and ends only that call.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path

from telephony.media.call import CallInfo, LiveCall
from telephony.media.dialogs import Dialog, GatewayHooks
from telephony.media.recording import StereoRecorder
from telephony.rtp.clock import MediaClock
from telephony.rtp.session import RtpPortsExhausted, RtpSession
from telephony.sip import replies, sdp, timers
from telephony.sip.auth import DigestAuth, Registrar
from telephony.sip.message import (
    SipMessage,
    SipParseError,
    add_received,
    new_tag,
    param,
    parse,
    response_to,
    uri_of,
    user_of,
    via_destination,
)

log = logging.getLogger("telephony.bridge")
ALLOW = "INVITE, ACK, BYE, CANCEL, OPTIONS, REGISTER"


class SIPMediaGateway(asyncio.DatagramProtocol):
    def __init__(self, *, host: str = "127.0.0.1", port: int = 5060, rtp_ports: tuple[int, int] = (10000, 20000),
                 agent_factory: Callable[[LiveCall], object], hooks: GatewayHooks | None = None,
                 max_calls: int = 100, rtp_timeout_s: float = 30.0, ring_ms: int = 0, realm: str = "talky",
                 recordings_dir: Path | None = None, media_host: str | None = None) -> None:
        self.host, self.port = host, port
        self.media_host = media_host or ("127.0.0.1" if host in ("0.0.0.0", "") else host)
        self.rtp_ports = rtp_ports
        self.agent_factory = agent_factory
        self.hooks = hooks or GatewayHooks()
        self.max_calls = max_calls
        self.rtp_timeout_s = rtp_timeout_s
        self.ring_ms = ring_ms
        self.recordings_dir = recordings_dir
        self.clock = MediaClock()
        self.auth = DigestAuth(realm, self.hooks.lookup_ha1, self.hooks.open_mode)
        self.registrar = Registrar()
        self.transport: asyncio.DatagramTransport | None = None
        self.dialogs: dict[str, Dialog] = {}
        self._responses: dict[tuple[str, str, str], bytes] = {}  # (branch, method, call-id) -> last response
        self._pending_bye: dict[str, tuple[asyncio.Event, asyncio.Task]] = {}
        self.stats = {"invites": 0, "answered": 0, "ended": 0, "rejected": 0, "bad_messages": 0, "registers": 0}
        self._closing = False
        self._ending: set[asyncio.Task] = set()

    # --- lifecycle ------------------------------------------------------------------------
    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.create_datagram_endpoint(lambda: self, local_addr=(self.host, self.port))
        if self.port == 0 and self.transport is not None:
            self.port = self.transport.get_extra_info("sockname")[1]
        log.info("SIP bridge listening on udp:%s:%d (RTP %d-%d)", self.host, self.port, *self.rtp_ports)

    async def aclose(self) -> None:
        """BYE every active call, finalise it, stop listening."""
        self._closing = True
        await asyncio.gather(*(self._end(d, "shutdown", send_bye=d.state != "early")
                               for d in list(self.dialogs.values())), return_exceptions=True)
        if self._ending:  # calls that were already ending (BYE just arrived): let them be finalised
            await asyncio.wait(list(self._ending), timeout=10)
        for _, task in list(self._pending_bye.values()):
            task.cancel()
        await self.clock.aclose()
        if self.transport:
            self.transport.close()

    @property
    def active_calls(self) -> int:
        return sum(1 for d in self.dialogs.values() if d.state != "ended")

    # --- packets --------------------------------------------------------------------------
    def connection_made(self, transport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:
        if not data.strip():
            return  # keep-alive CRLFs
        try:
            msg = parse(data)
        except SipParseError as exc:
            self.stats["bad_messages"] += 1
            self._reply_400(data, addr, str(exc))
            return
        try:
            if msg.is_request:
                msg.headers[[k for k, _ in msg.headers].index("via")] = (
                    "via", add_received(msg.top_via, addr[0], addr[1]))
                self._on_request(msg, addr)
            else:
                self._on_response(msg)
        except Exception:  # noqa: BLE001 - a bad message must not take the bridge down
            self.stats["bad_messages"] += 1
            log.exception("error handling SIP %s from %s", msg.method or msg.status, addr)

    def _send(self, msg: SipMessage | bytes, addr: tuple[str, int]) -> bytes:
        raw = msg if isinstance(msg, bytes) else msg.serialize()
        if self.transport is not None:
            self.transport.sendto(raw, addr)
        return raw

    def _respond(self, req: SipMessage, status: int, reason: str = "", **kw) -> bytes:
        src = kw.pop("_src", ("127.0.0.1", 5060))
        resp = response_to(req, status, reason, **kw)
        raw = self._send(resp, via_destination(req.top_via, src))
        self._responses[(req.branch, req.cseq[1], req.call_id)] = raw
        return raw

    def _reply_400(self, data: bytes, addr, reason: str) -> None:
        try:
            raw = replies.bad_request(data, reason)
        except Exception:  # noqa: BLE001
            raw = None
        if raw is not None:
            self._send(raw, addr)

    # --- requests -------------------------------------------------------------------------
    def _on_request(self, req: SipMessage, src: tuple[str, int]) -> None:
        key = (req.branch, req.cseq[1], req.call_id)
        if req.method != "ACK" and key in self._responses:  # retransmission: same answer again
            self._send(self._responses[key], via_destination(req.top_via, src))
            return
        handler = {"INVITE": self._on_invite, "ACK": self._on_ack, "BYE": self._on_bye, "CANCEL": self._on_cancel,
                   "OPTIONS": self._on_options, "REGISTER": self._on_register}.get(req.method or "")
        if handler is None:
            self._respond(req, 405, extra=[("Allow", ALLOW)], _src=src)
            return
        handler(req, src)

    def _on_options(self, req: SipMessage, src) -> None:
        self._respond(req, 200, extra=[("Allow", ALLOW), ("Accept", "application/sdp")], _src=src)

    def _authorized(self, req: SipMessage, src) -> bool:
        ok, stale, _ = self.auth.check(req.method or "", req.get("authorization"))
        if not ok:
            self._respond(req, 401, to_tag=new_tag(), extra=[("WWW-Authenticate", self.auth.challenge(stale))],
                          _src=src)
            # a challenge is not the final word on this branch: the retry comes with a new branch
        return ok

    def _on_register(self, req: SipMessage, src) -> None:
        self.stats["registers"] += 1
        if not self._authorized(req, src):
            return
        aor = uri_of(req.get("to") or "")
        bindings = self.registrar.update(aor, req.get_all("contact"), req.get("expires"), src)
        extra = [("Contact", f"{c};expires={s}") for c, s in bindings]
        self._respond(req, 200, to_tag=new_tag(), extra=extra + [("Expires", str(bindings[0][1]) if bindings
                                                                   else "0")], _src=src)
        log.info("REGISTER %s from %s:%d (%d binding(s))", aor, src[0], src[1], len(bindings))

    def _on_invite(self, req: SipMessage, src) -> None:
        dlg = self.dialogs.get(req.call_id)
        to_tag = param(req.get("to") or "", "tag")
        if dlg is not None and to_tag:
            self._on_reinvite(dlg, req, src)
            return
        if to_tag:
            self._respond(req, 481, _src=src)
            return
        if dlg is not None:  # same call, new branch without a to-tag: a forked retry; ignore
            return
        if self._closing:
            self._respond(req, 503, _src=src)
            return
        if not self._authorized(req, src):
            return
        self.stats["invites"] += 1
        if self.active_calls >= self.max_calls:
            self.stats["rejected"] += 1
            self._respond(req, 486, to_tag=new_tag(), _src=src)
            log.info("call %s rejected: busy (%d calls)", req.call_id, self.active_calls)
            return
        try:
            offer = sdp.parse_offer(req.body)
            codec, pt, dtmf_pt = sdp.negotiate(offer)
        except sdp.SdpError as exc:
            self.stats["rejected"] += 1
            self._respond(req, 488, to_tag=new_tag(),
                          extra=[("Warning", f'304 talky "{exc}"')], _src=src)
            return
        self._respond(req, 100, _src=src)
        asyncio.get_running_loop().create_task(self._setup_call(req, src, offer, codec, pt, dtmf_pt))

    async def _setup_call(self, req: SipMessage, src, offer: sdp.Offer, codec: str, pt: int,
                          dtmf_pt: int | None) -> None:
        to_tag = new_tag()
        dialed = user_of(req.uri or "") or user_of(uri_of(req.get("to") or ""))
        try:
            session = await RtpSession.open(host=self.media_host, port_range=self.rtp_ports, payload_type=pt,
                                            codec=codec, remote=(offer.address, offer.port), clock=self.clock,
                                            dtmf_pt=dtmf_pt)
        except RtpPortsExhausted:
            self._respond(req, 503, to_tag=to_tag, _src=src)
            log.error("call %s rejected: no free RTP port", req.call_id)
            return
        info = CallInfo(req.call_id, uri_of(req.get("from") or ""), dialed, codec, (offer.address, offer.port),
                        session.local_port)
        call = LiveCall(info, session, lambda reason: self._agent_hangup(req.call_id, reason))
        dlg = Dialog(call=call, invite=req, src=src, to_tag=to_tag)
        self.dialogs[req.call_id] = dlg
        log.info("call %s from %s to %s: %s, RTP local %d remote %s:%d", req.call_id, info.caller_uri, dialed,
                 codec, session.local_port, offer.address, offer.port)
        try:
            if self.hooks.on_call_started:
                meta = await self.hooks.on_call_started(info) or {}
                call.record_id = meta.get("record_id")
                call.campaign_id = meta.get("campaign_id")
                call.context = meta
            if self.recordings_dir is not None:
                name = f"call-{call.record_id or int(time.time())}-{req.call_id[:24]}.wav".replace("/", "_")
                dlg.recorder = session.recorder = StereoRecorder(self.recordings_dir / name, codec)
            self._respond(req, 180, to_tag=to_tag, _src=src)
            if self.ring_ms:
                await asyncio.sleep(self.ring_ms / 1000)
            if dlg.state == "ended":
                return
            answer = sdp.build_answer(local_ip=self.media_host, local_port=session.local_port, codec=codec, pt=pt,
                                      dtmf_pt=dtmf_pt, direction=sdp.ANSWER_DIRECTION[offer.direction])
            contact = f"<sip:talky@{self.media_host}:{self.port}>"
            raw = self._respond(req, 200, to_tag=to_tag, body=answer,
                                extra=[("Contact", contact), ("Content-Type", "application/sdp"), ("Allow", ALLOW)],
                                _src=src)
            dlg.state = "answered"
            dlg.last_response = raw
            call.answered_at = time.monotonic()
            self.stats["answered"] += 1
            session.send_enabled = not sdp.on_hold(offer)
            session.start()
            if self.hooks.on_call_answered:
                await self.hooks.on_call_answered(call)
            dlg.tasks.append(asyncio.create_task(self._retransmit_200(dlg)))
            dlg.tasks.append(asyncio.create_task(self._watch_rtp(dlg)))
            dlg.agent_task = asyncio.create_task(self._run_agent(dlg))
        except Exception:  # noqa: BLE001
            log.exception("call %s setup failed", req.call_id)
            await self._end(dlg, "error", send_bye=dlg.state != "early")

    async def _retransmit_200(self, dlg: Dialog) -> None:
        """RFC 3261 13.3.1.4: resend the 200 OK until the ACK; without one after 64*T1, hang up."""
        dest = via_destination(dlg.invite.top_via, dlg.src)
        if not await timers.retransmit(lambda: self._send(dlg.last_response, dest), dlg.ack_event, send_first=False):
            if dlg.state == "answered":
                log.warning("call %s: no ACK after %.0f s, hanging up", dlg.call.call_id, 64 * timers.T1)
                await self._end(dlg, "error", send_bye=True)

    async def _run_agent(self, dlg: Dialog) -> None:
        call = dlg.call
        try:
            agent = self.agent_factory(call)
            await agent.run(call)
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - one agent's bug ends one call
            log.exception("agent failed on call %s", call.call_id)
            if dlg.state not in ("ended",):
                await self._end(dlg, "error", send_bye=True)

    async def _watch_rtp(self, dlg: Dialog) -> None:
        session = dlg.call.session
        while dlg.state != "ended":
            await asyncio.sleep(min(1.0, self.rtp_timeout_s / 4))
            last = session.last_rx_at or dlg.call.answered_at or time.monotonic()
            if time.monotonic() - last > self.rtp_timeout_s and session.send_enabled:
                log.info("call %s: no RTP for %.0f s", dlg.call.call_id, self.rtp_timeout_s)
                await self._end(dlg, "rtp_timeout", send_bye=True)
                return

    def _on_ack(self, req: SipMessage, src) -> None:
        dlg = self.dialogs.get(req.call_id)
        if dlg is not None:
            dlg.ack_event.set()
            if dlg.state == "answered":
                dlg.state = "confirmed"

    def _on_reinvite(self, dlg: Dialog, req: SipMessage, src) -> None:
        session = dlg.call.session
        try:
            offer = sdp.parse_offer(req.body) if req.body else None
            if offer is not None:
                sdp.negotiate(offer)
        except sdp.SdpError as exc:
            self._respond(req, 488, extra=[("Warning", f'304 talky "{exc}"')], _src=src)
            return
        direction = sdp.ANSWER_DIRECTION[offer.direction] if offer else "sendrecv"
        if offer is not None:
            session.send_enabled = not sdp.on_hold(offer)
            if not sdp.on_hold(offer) and not session.latched:
                session.remote = (offer.address, offer.port)
        answer = sdp.build_answer(local_ip=self.media_host, local_port=session.local_port, codec=session.codec,
                                  pt=session.pt, dtmf_pt=session.dtmf_pt, direction=direction, version=2)
        self._respond(req, 200, to_tag=dlg.to_tag, body=answer,
                      extra=[("Contact", f"<sip:talky@{self.media_host}:{self.port}>"),
                             ("Content-Type", "application/sdp")], _src=src)
        log.info("call %s: re-INVITE -> %s", dlg.call.call_id, direction)

    def _on_bye(self, req: SipMessage, src) -> None:
        dlg = self.dialogs.get(req.call_id)
        if dlg is None or dlg.state == "ended":
            self._respond(req, 481, _src=src)
            return
        self._respond(req, 200, _src=src)
        self._spawn_end(dlg, "bye", send_bye=False)

    def _on_cancel(self, req: SipMessage, src) -> None:
        dlg = self.dialogs.get(req.call_id)
        if dlg is None or dlg.invite.branch != req.branch:
            self._respond(req, 481, _src=src)
            return
        self._respond(req, 200, _src=src)
        if dlg.state == "early":
            self._respond(dlg.invite, 487, to_tag=dlg.to_tag, _src=dlg.src)
            self._spawn_end(dlg, "cancel", send_bye=False)

    def _on_response(self, resp: SipMessage) -> None:
        pending = self._pending_bye.get(resp.call_id)
        if pending is not None and resp.cseq[1] == "BYE" and (resp.status or 0) >= 200:
            pending[0].set()

    # --- ending ---------------------------------------------------------------------------
    def _agent_hangup(self, call_id: str, reason: str) -> None:
        dlg = self.dialogs.get(call_id)
        if dlg is not None and dlg.state != "ended":
            self._spawn_end(dlg, reason, send_bye=True)

    def _send_bye(self, dlg: Dialog) -> None:
        inv = dlg.invite
        dlg.local_seq += 1
        raw = replies.bye_for(inv, to_tag=dlg.to_tag, cseq=dlg.local_seq, host=self.media_host, port=self.port)

        answered = asyncio.Event()

        async def run() -> None:
            try:
                await timers.retransmit(lambda: self._send(raw, dlg.src), answered, send_first=True)
            finally:
                self._pending_bye.pop(inv.call_id, None)

        self._pending_bye[inv.call_id] = (answered, asyncio.get_running_loop().create_task(run()))

    def _spawn_end(self, dlg: Dialog, reason: str, *, send_bye: bool) -> None:
        """End a call in the background; aclose() waits for these so no record is left open."""
        task = asyncio.get_running_loop().create_task(self._end(dlg, reason, send_bye=send_bye))
        self._ending.add(task)
        task.add_done_callback(self._ending.discard)

    async def _end(self, dlg: Dialog, reason: str, *, send_bye: bool) -> None:
        if dlg.state == "ended":
            return
        was = dlg.state
        dlg.state = "ended"
        call = dlg.call
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
        path = dlg.recorder.close() if dlg.recorder else None
        stats = call.session.stats()
        self.stats["ended"] += 1
        log.info("call %s ended (%s) rtp_in=%d rtp_out=%d lost=%d", call.call_id, reason, stats["packets_in"],
                 stats["packets_out"], stats["lost"])
        try:
            if self.hooks.on_call_ended:
                await self.hooks.on_call_ended(call, stats, path)
        except Exception:  # noqa: BLE001
            log.exception("finalising call %s failed", call.call_id)
        finally:
            self.dialogs.pop(call.call_id, None)
