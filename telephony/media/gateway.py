"""SIPMediaGateway: a SIP UAS on UDP that softphones register to and call, carrying each call's
audio to an agent. Plain asyncio, no Django: the runner passes hooks for records and routing.

This module is the front door — the socket, what may come in (per-source budgets, scanner drop,
digest auth with lockout, the registrar) and housekeeping of every bounded table. What happens to
a call once it is let in (INVITE to BYE, media supervision) is ``telephony.media.callflow``.

Hostile-network rules kept here: replies go only to the packet's source address (RFC 3581), so
nothing is ever resolved and no third party is addressed; every table is capped and expires; one
bad datagram is counted and dropped, it never stops the listener — and if the socket itself
fails, ``failed`` is set and ``listening`` goes false so nobody reports "running".
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path

from aioptions.logsafe import clip  # Django-free: bounded, escaped attacker text for log lines
from telephony.media.call import LiveCall
from telephony.media.callflow import ALLOW, CallFlow
from telephony.media.dialogs import Dialog, GatewayHooks
from telephony.media.outbound import DialResult, OutboundMixin
from telephony.media.transfer import TransferMixin
from telephony.rtp.clock import MediaClock
from telephony.sip import replies, timers
from telephony.sip.auth import AuthResult, DigestAuth
from telephony.sip.limits import AuthLockout, CallCounter, Pike, RateLimiter
from telephony.sip.message import SipMessage, SipParseError, add_received, new_tag, parse, response_to, uri_of, user_of
from telephony.sip.policy import SipPolicy
from telephony.sip.registrar import IntervalTooBrief, Registrar, RegistrarError
from telephony.sip.transactions import ResponseCache
from telephony.sip.transport import SipTransport

log = logging.getLogger("telephony.bridge")
__all__ = ["DialResult", "GatewayHooks", "SIPMediaGateway"]


class SIPMediaGateway(TransferMixin, OutboundMixin, CallFlow):
    def __init__(self, *, host: str = "127.0.0.1", port: int = 5060, rtp_ports: tuple[int, int] = (10000, 20000),
                 agent_factory: Callable[[LiveCall], object], hooks: GatewayHooks | None = None,
                 max_calls: int = 100, rtp_timeout_s: float = 30.0, ring_ms: int = 0, realm: str = "talky",
                 recordings_dir: Path | None = None, advertise: str | None = None, media_host: str | None = None,
                 policy: SipPolicy | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.host, self.port = host, port
        self.advertised = advertise or media_host or None
        self.wildcard = host in ("0.0.0.0", "")
        self.rtp_host = "0.0.0.0" if self.wildcard else host
        self.rtp_ports = rtp_ports
        self.agent_factory = agent_factory
        self.hooks = hooks or GatewayHooks()
        self.max_calls = max_calls
        self.rtp_timeout_s = rtp_timeout_s
        self.ring_ms = ring_ms
        self.recordings_dir = recordings_dir
        self.policy = policy or SipPolicy()
        self.hold_timeout_s = self.policy.hold_timeout_s
        self.now = clock
        # how the SIP timers (200 OK and BYE retransmission) wait: real time here, a fake clock in tests
        self.timer_wait: timers.Wait = timers.wait_event
        self.clock = MediaClock()
        self.auth = DigestAuth(realm, self.hooks.lookup_ha1, self.hooks.open_mode)
        self.registrar = Registrar(self.policy, clock=clock)
        self.pike = Pike(self.policy, clock)
        self.invite_limit = RateLimiter(self.policy.invite_rate, self.policy.invite_burst, clock=clock,
                                        max_keys=self.policy.max_tracked_sources)
        self.lockout = AuthLockout(self.policy, clock)
        self.call_slots = CallCounter(self.policy)
        self.responses = ResponseCache(clock=clock)
        self.transport = SipTransport(self._on_datagram, self._on_listener_failure)
        self.failed = asyncio.Event()
        self.dialogs: dict[str, Dialog] = {}
        self._peer_ips: dict[str, int] = {}  # IPs of confirmed dialogs: their in-dialog requests skip pike
        # IP-authenticated trunks (the runner keeps this current): no digest, no per-source limits
        self.trunk_ips: frozenset[str] = frozenset()
        self.registrations: dict = {}  # REGISTER Call-ID -> TrunkRegistration (telephony.media.registration)
        # call-id -> (answered, retransmitting task, peer IP): our BYE until its final response
        self._pending_bye: dict[str, tuple[asyncio.Event, asyncio.Task, str]] = {}
        self._refers, self._transfers = {}, {}  # at most one REFER / transfer per dialog (media.transfer)
        self.stats = {"invites": 0, "answered": 0, "ended": 0, "rejected": 0, "bad_messages": 0, "registers": 0,
                      "flood_dropped": 0, "scanners_dropped": 0, "rate_limited": 0, "auth_failures": 0,
                      "locked_out": 0, "outbound": 0}
        self._closing = False
        self._ending: set[asyncio.Task] = set()
        self._housekeeper: asyncio.Task | None = None

    # --- lifecycle ------------------------------------------------------------------------
    async def start(self) -> None:
        self.port = self.transport.open(self.host, self.port)[1]
        self._housekeeper = asyncio.get_running_loop().create_task(self._housekeeping_loop())
        log.info("SIP bridge listening on udp:%s:%d (RTP %d-%d), advertising %s", self.host, self.port,
                 *self.rtp_ports, self.advertised or ("the address each request arrived on" if self.wildcard
                                                      else self.host))

    async def aclose(self) -> None:
        """BYE every active call, finalise it, stop listening."""
        self._closing = True
        await asyncio.gather(*(self._end(d, "shutdown", send_bye=d.state != "early")
                               for d in list(self.dialogs.values())), return_exceptions=True)
        if self._ending:  # calls that were already ending (BYE just arrived): let them be finalised
            await asyncio.wait(list(self._ending), timeout=10)
        for _, task, _ip in list(self._pending_bye.values()):
            task.cancel()
        if self._housekeeper is not None:
            self._housekeeper.cancel()
        await self.clock.aclose()
        self.transport.close()

    @property
    def listening(self) -> bool:
        return self.transport.listening

    @property
    def active_calls(self) -> int:
        return sum(1 for d in self.dialogs.values() if d.state != "ended")

    def local_address(self, local_ip: str | None) -> str:
        """What SDP c=/o=, Contact and our Via carry: --advertise, else the bound address, else (bound
        to 0.0.0.0) the address this request arrived on — never a loopback to a remote phone."""
        if self.advertised:
            return self.advertised
        if not self.wildcard:
            return self.host
        return local_ip or "127.0.0.1"

    def _on_listener_failure(self, exc: BaseException) -> None:
        self.failed.set()

    async def _housekeeping_loop(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            try:
                self.housekeeping()
            except Exception:  # noqa: BLE001 - housekeeping must outlive any one bad entry
                log.exception("SIP housekeeping failed")

    def housekeeping(self) -> None:
        """Expire what has expired: transactions, registrations, idle or held calls, session timers."""
        self.responses.prune()
        self.registrar.prune(max_items=2000)
        now = self.now()
        for dlg in list(self.dialogs.values()):
            reason = self._expired(dlg, now)
            if reason:
                log.info("call %s: %s", clip(dlg.invite.call_id, 40), reason)
                self._spawn_end(dlg, reason, send_bye=True)

    # --- packets --------------------------------------------------------------------------
    def _on_datagram(self, data: bytes, src: tuple[str, int], local_ip: str | None) -> None:
        ip = src[0]
        peer = ip in self._peer_ips  # a party to an established call: budgeted after parsing, see below
        if not peer and ip not in self.trunk_ips and not self._budget(ip):
            return
        if not data.strip():
            return  # keep-alive CRLFs
        try:
            msg = parse(data)
        except SipParseError as exc:
            self.stats["bad_messages"] += 1
            if peer and not self._budget(ip):
                return
            raw = replies.bad_request(data, str(exc))
            if raw is not None:
                self._send(raw, src)
            return
        if peer and not self._established(msg, ip) and not self._budget(ip):
            return  # only the requests of its own calls are exempt, not new INVITEs or REGISTERs
        try:
            if msg.is_request:
                self._on_request(msg, src, local_ip)
            else:
                self._on_response(msg, src)
        except Exception:  # noqa: BLE001 - a bad message must not take the bridge down
            self.stats["bad_messages"] += 1
            log.exception("error handling SIP %s from %s", clip(msg.method or msg.status, 20), ip)

    def _budget(self, ip: str) -> bool:
        """Count one message against the source's pike budget; False = drop it silently."""
        if self.pike.check(ip):
            return True
        self.stats["flood_dropped"] += 1
        if self.pike.newly_blocked:
            log.warning("SIP source %s over its request budget: ignored for %.0f s", ip, self.policy.block_s)
        return False

    def _established(self, msg: SipMessage, ip: str) -> bool:
        dlg = self.dialogs.get(msg.call_id)
        return dlg is not None and dlg.state == "confirmed" and dlg.src[0] == ip

    def _send(self, raw: bytes, addr: tuple[str, int]) -> bytes:
        self.transport.sendto(raw, addr)
        return raw

    def _respond(self, req: SipMessage, status: int, reason: str = "", *, src: tuple[str, int], **kw) -> bytes:
        """Answer to where the request came from (symmetric response routing: no DNS, no third party)."""
        raw = response_to(req, status, reason, **kw).serialize()
        self._send(raw, src)
        self.responses.put((req.branch, req.cseq[1], req.call_id), raw)
        return raw

    # --- requests -------------------------------------------------------------------------
    def _on_request(self, req: SipMessage, src: tuple[str, int], local_ip: str | None) -> None:
        if self.policy.is_scanner(req.get("user-agent")) and not self.policy.is_trusted(src[0]):
            self.stats["scanners_dropped"] += 1  # silence: a scanner learns nothing, not even that we exist
            return
        vias = [i for i, (k, _) in enumerate(req.headers) if k == "via"]
        req.headers[vias[0]] = ("via", add_received(req.top_via, src[0], src[1]))
        if req.method != "ACK":
            cached = self.responses.get((req.branch, req.cseq[1], req.call_id))
            if cached is not None:  # retransmission: the same answer again
                self._send(cached, src)
                return
        handler = {"INVITE": self._on_invite, "ACK": self._on_ack, "BYE": self._on_bye, "CANCEL": self._on_cancel,
                   "OPTIONS": self._on_options, "REGISTER": self._on_register, "INFO": self._on_info,
                   "UPDATE": self._on_update, "NOTIFY": self._on_notify}.get(req.method or "")
        if handler is None:
            self._respond(req, 405, extra=[("Allow", ALLOW)], src=src)
            return
        handler(req, src, local_ip)

    def _on_options(self, req: SipMessage, src, local_ip) -> None:
        self._respond(req, 200, extra=[("Allow", ALLOW), ("Accept", "application/sdp")], src=src)

    def _admit(self, req: SipMessage, src: tuple[str, int]) -> AuthResult | None:
        """Digest auth with lockout. None = refused (the response has been sent)."""
        if src[0] in self.trunk_ips:  # a trunk with IP authentication: its address is its credential
            return AuthResult(True, False, "", "trunk")
        result = self.auth.check(req.method or "", req.get("authorization"), req.uri)
        if result.reason == "open":
            return result
        ip = src[0]
        if self.lockout.locked(ip, result.user):
            self.stats["locked_out"] += 1
            self._respond(req, 403, "Forbidden (too many failed attempts)", to_tag=new_tag(), src=src)
            return None
        if result.ok:
            self.lockout.record_success(ip, result.user)
            return result
        if result.reason not in ("missing", "stale", "replay"):  # a phone may reorder; a replayer gets nothing
            self.stats["auth_failures"] += 1
            newly = self.lockout.record_failure(ip, result.user)
            if newly:
                log.warning("SIP auth lockout (%s) for %.0f s: source %s, user %s", "+".join(newly),
                            self.policy.auth_lockout_s, ip, clip(result.user, 64))
        # unknown user and wrong password: the same 401, indistinguishable to the peer
        self._respond(req, 401, to_tag=new_tag(), extra=[("WWW-Authenticate", self.auth.challenge(result.stale))],
                      src=src)
        return None

    def _on_register(self, req: SipMessage, src, local_ip) -> None:
        self.stats["registers"] += 1
        result = self._admit(req, src)
        if result is None:
            return
        aor = uri_of(req.get("to") or "")
        if result.reason != "open" and user_of(aor) != result.user:
            self._respond(req, 403, "Forbidden (credentials are not for this address)", to_tag=new_tag(), src=src)
            return
        try:
            bindings = self.registrar.update(aor, req.get_all("contact"), req.get("expires"), src)
        except RegistrarError as exc:
            extra = [("Min-Expires", str(exc.min_expires))] if isinstance(exc, IntervalTooBrief) else []
            self._respond(req, exc.status, to_tag=new_tag(), extra=extra + [("Warning", f'399 talky "{exc.reason}"')],
                          src=src)
            return
        extra = [("Contact", f"{c};expires={s}") for c, s in bindings]
        self._respond(req, 200, to_tag=new_tag(), extra=extra + [("Expires", str(bindings[0][1]) if bindings
                                                                  else "0")], src=src)
        log.info("REGISTER %s from %s:%d (%d binding(s))", clip(aor, 80), src[0], src[1], len(bindings))

    def _on_response(self, resp: SipMessage, src: tuple[str, int]) -> None:
        pending = self._pending_bye.get(resp.call_id)
        if pending is not None and resp.cseq[1] == "BYE" and (resp.status or 0) >= 200 and pending[2] == src[0]:
            pending[0].set()
            return
        if resp.cseq[1] == "REFER":
            self._on_refer_response(resp, src)  # our transfer's REFER (telephony.media.transfer)
            return
        self._on_uac_response(resp, src)  # responses to calls we place (telephony.media.outbound)
