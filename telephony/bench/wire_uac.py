"""The wire benchmark's load generator: an asyncio SIP UAC + RTP endpoint of its own.

Why its own: a benchmark that reuses the bridge's SIP parser, RTP packing or codecs would share the
bridge's bugs and blind spots. This module imports nothing from the project: SIP messages are a few
format strings, RTP is ``struct``, mu-law loudness is a 256-entry table computed here.

Every received RTP packet is timestamped by the kernel (SO_TIMESTAMPNS via ``recvmsg``), so the
generator's own event-loop delays do not count against the bridge. Times are CLOCK_REALTIME ns
(what SO_TIMESTAMPNS reports); send times are taken right after ``sendto`` on the same clock.
"""

from __future__ import annotations

import asyncio
import os
import random
import socket
import struct
import time
from dataclasses import dataclass, field

SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)  # Linux; SCM_TIMESTAMPNS has the same value
FRAME_NS = 20_000_000
_RTP = struct.Struct("!BBHII")


def _ulaw_magnitude(b: int) -> int:
    b = ~b & 0xFF
    mag = ((((b & 0x0F) << 3) + 0x84) << ((b & 0x70) >> 4)) - 0x84
    return mag


# 1 where a mu-law byte decodes louder than ~-30 dBFS (|x| > 1000): "this packet carries voice"
LOUD = bytes(1 if _ulaw_magnitude(b) > 1000 else 0 for b in range(256))


def is_loud(payload: bytes) -> bool:
    return 1 in payload.translate(LOUD)


@dataclass
class WireCall:
    index: int
    call_id: str
    tag: str
    rtp: socket.socket
    script: list[bytes]  # 20 ms frames to send from answer on
    speech_first: int  # index in script of the first loud frame
    speech_last: int  # index of the last loud frame
    status: int = 0  # final INVITE response
    to_header: str = ""
    contact: str = ""
    remote: tuple[str, int] | None = None
    answered_ns: int = 0
    sent: int = 0
    seq: int = field(default_factory=lambda: random.randint(0, 0xFFFF))
    ts: int = field(default_factory=lambda: random.randint(0, 0xFFFFFFFF))
    ssrc: int = field(default_factory=lambda: random.randint(1, 0xFFFFFFFF))
    speech_start_ns: int = 0  # send time of the first loud frame
    speech_end_ns: int = 0  # send time of the last loud frame + 20 ms
    rx: list[tuple[int, int, int, bool, bool]] = field(default_factory=list)  # (kernel ns, seq, ts, marker, loud)
    ended_by_bridge: bool = False
    bye_status: int = 0
    invite_text: str = ""
    answered: asyncio.Event = field(default_factory=asyncio.Event)
    done: asyncio.Event = field(default_factory=asyncio.Event)


def _headers(raw: str) -> tuple[str, dict[str, str], str]:
    head, _, body = raw.partition("\r\n\r\n")
    lines = head.split("\r\n")
    hdrs: dict[str, str] = {}
    compact = {"i": "call-id", "t": "to", "f": "from", "m": "contact", "v": "via", "l": "content-length"}
    for ln in lines[1:]:
        k, _, v = ln.partition(":")
        k = k.strip().lower()
        hdrs.setdefault(compact.get(k, k), v.strip())
    return lines[0], hdrs, body


class LoadGenerator(asyncio.DatagramProtocol):
    """Places calls to ``target`` (the bridge's SIP address) from one UDP socket; RTP on one socket per call."""

    def __init__(self, target: tuple[str, int], host: str = "127.0.0.1") -> None:
        self.target = target
        self.host = host
        self.calls: dict[str, WireCall] = {}
        self.transport: asyncio.DatagramTransport | None = None
        self.port = 0
        self.options_ok = asyncio.Event()
        self._loop = asyncio.get_event_loop()

    async def open(self) -> None:
        self.transport, _ = await self._loop.create_datagram_endpoint(lambda: self, local_addr=(self.host, 0))
        self.port = self.transport.get_extra_info("sockname")[1]

    def close(self) -> None:
        for c in self.calls.values():
            self._close_rtp(c)
        if self.transport:
            self.transport.close()

    # --- SIP out -------------------------------------------------------------------------------
    def _via(self) -> str:
        return f"SIP/2.0/UDP {self.host}:{self.port};branch=z9hG4bK{os.urandom(6).hex()};rport"

    def _send(self, text: str) -> None:
        self.transport.sendto(text.encode(), self.target)

    def options(self) -> None:
        self._send(f"OPTIONS sip:{self.target[0]}:{self.target[1]} SIP/2.0\r\nVia: {self._via()}\r\n"
                   f"Max-Forwards: 70\r\nFrom: <sip:probe@{self.host}>;tag={os.urandom(4).hex()}\r\n"
                   f"To: <sip:{self.target[0]}>\r\nCall-ID: probe-{os.urandom(6).hex()}\r\nCSeq: 1 OPTIONS\r\n"
                   f"Content-Length: 0\r\n\r\n")

    def invite(self, call: WireCall) -> None:
        """Send (or retransmit, byte-identical: same branch, same transaction) the call's INVITE."""
        if not call.invite_text:
            call.invite_text = self._invite_text(call)
        self._send(call.invite_text)

    def _invite_text(self, call: WireCall) -> str:
        rtp_port = call.rtp.getsockname()[1]
        sdp = (f"v=0\r\no=- {call.index + 1000} 1 IN IP4 {self.host}\r\ns=-\r\nc=IN IP4 {self.host}\r\nt=0 0\r\n"
               f"m=audio {rtp_port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n"
               f"a=fmtp:101 0-16\r\na=ptime:20\r\na=sendrecv\r\n")
        return (f"INVITE sip:100@{self.target[0]}:{self.target[1]} SIP/2.0\r\nVia: {self._via()}\r\n"
                   f"Max-Forwards: 70\r\nFrom: <sip:load{call.index}@{self.host}>;tag={call.tag}\r\n"
                   f"To: <sip:100@{self.target[0]}>\r\nCall-ID: {call.call_id}\r\nCSeq: 1 INVITE\r\n"
                   f"Contact: <sip:load{call.index}@{self.host}:{self.port}>\r\nContent-Type: application/sdp\r\n"
                   f"Content-Length: {len(sdp)}\r\n\r\n{sdp}")

    def _in_dialog(self, call: WireCall, method: str, cseq: int) -> None:
        uri = call.contact or f"sip:100@{self.target[0]}:{self.target[1]}"
        self._send(f"{method} {uri} SIP/2.0\r\nVia: {self._via()}\r\nMax-Forwards: 70\r\n"
                   f"From: <sip:load{call.index}@{self.host}>;tag={call.tag}\r\nTo: {call.to_header}\r\n"
                   f"Call-ID: {call.call_id}\r\nCSeq: {cseq} {method}\r\nContent-Length: 0\r\n\r\n")

    def bye(self, call: WireCall) -> None:
        self._in_dialog(call, "BYE", 2)

    # --- SIP in --------------------------------------------------------------------------------
    def datagram_received(self, data: bytes, addr) -> None:
        try:
            first, h, body = _headers(data.decode("utf-8", "replace"))
        except ValueError:
            return
        call = self.calls.get(h.get("call-id", ""))
        if first.startswith("SIP/2.0 "):
            status = int(first.split(" ", 2)[1])
            method = h.get("cseq", "").split(" ")[-1]
            if method == "OPTIONS":
                self.options_ok.set()
            if call is None:
                return
            if method == "INVITE" and status >= 200:
                call.status = status
                if 200 <= status < 300:
                    call.to_header = h.get("to", "")
                    c = h.get("contact", "")
                    call.contact = c[c.find("<") + 1:c.find(">")] if "<" in c else c
                    call.remote = _sdp_media(body)
                    self._in_dialog(call, "ACK", 1)  # every 200 (a retransmission too) gets its ACK
                    if not call.answered.is_set():
                        call.answered_ns = time.time_ns()
                else:
                    self._in_dialog(call, "ACK", 1)
                    call.done.set()
                call.answered.set()
            elif method == "BYE" and status >= 200:
                call.bye_status = status
                call.done.set()
        elif first.startswith("BYE ") and call is not None:
            call.ended_by_bridge = not call.done.is_set()
            self.transport.sendto(_reply_200(data.decode("utf-8", "replace")).encode(), addr)
            call.done.set()
        elif first.split(" ", 1)[0] in ("OPTIONS", "INFO", "UPDATE", "NOTIFY"):
            self.transport.sendto(_reply_200(data.decode("utf-8", "replace")).encode(), addr)

    # --- RTP ----------------------------------------------------------------------------------
    def new_call(self, index: int, script: list[bytes]) -> WireCall:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind((self.host, 0))
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 18)
        sock.setblocking(False)
        loud = [i for i, f in enumerate(script) if is_loud(f)]
        call = WireCall(index=index, call_id=f"wire-{index}-{os.urandom(6).hex()}", tag=os.urandom(4).hex(),
                        rtp=sock, script=script, speech_first=loud[0] if loud else -1,
                        speech_last=loud[-1] if loud else -1)
        self.calls[call.call_id] = call
        self._loop.add_reader(sock.fileno(), self._on_rtp, call)
        return call

    def _on_rtp(self, call: WireCall) -> None:
        space = socket.CMSG_SPACE(16)
        while True:
            try:
                data, anc, _flags, _addr = call.rtp.recvmsg(2048, space)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            t = 0
            for level, kind, cdata in anc:
                if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(cdata) >= 16:
                    sec, nsec = struct.unpack("qq", cdata[:16])
                    t = sec * 1_000_000_000 + nsec
            if len(data) < 12:
                continue
            b0, b1, seq, ts, _ssrc = _RTP.unpack_from(data)
            if b1 & 0x7F != 0:  # only PCMU audio counts (not telephone-event)
                continue
            call.rx.append((t or time.time_ns(), seq, ts, bool(b1 & 0x80), is_loud(data[12 + 4 * (b0 & 0x0F):])))

    def send_frame(self, call: WireCall) -> None:
        """The call's next scripted frame (silence after the script), on its negotiated address."""
        i = call.sent
        payload = call.script[i] if i < len(call.script) else b"\xff" * 160
        pkt = _RTP.pack(0x80, (0x80 if i == 0 else 0), call.seq, call.ts, call.ssrc) + payload
        try:
            call.rtp.sendto(pkt, call.remote)
        except OSError:
            pass
        now = time.time_ns()
        if i == call.speech_first:
            call.speech_start_ns = now
        if i == call.speech_last:
            call.speech_end_ns = now + FRAME_NS
        call.sent += 1
        call.seq = (call.seq + 1) & 0xFFFF
        call.ts = (call.ts + 160) & 0xFFFFFFFF

    async def wait_up(self, tries: int = 200) -> None:
        """Until the bridge answers OPTIONS (0.3 s per try, 60 s at most by default)."""
        for _ in range(tries):
            self.options()
            try:
                await asyncio.wait_for(self.options_ok.wait(), 0.3)
                return
            except TimeoutError:
                continue
        raise RuntimeError("bridge did not answer OPTIONS")

    async def pace(self, stop: asyncio.Event) -> None:
        """One absolute-deadline 20 ms clock for every answered call's RTP, until ``stop``."""
        start, k = time.monotonic(), 0
        while not stop.is_set():
            k += 1
            await asyncio.sleep(max(0.0, start + k * 0.02 - time.monotonic()))
            for c in list(self.calls.values()):
                if c.remote and c.answered_ns and not c.done.is_set():
                    self.send_frame(c)

    async def place(self, call: WireCall, hangup_s: float) -> None:
        """One call's life: INVITE (retransmitted as timer A says, same transaction), talk while
        ``pace`` sends the script, BYE after ``hangup_s`` unless the bridge hung up first."""
        for wait in (1.0, 2.0, 4.0):
            self.invite(call)
            try:
                await asyncio.wait_for(call.answered.wait(), wait)
                break
            except TimeoutError:
                continue
        if call.status != 200:
            return
        try:
            await asyncio.wait_for(call.done.wait(), hangup_s)
            return  # the bridge hung up first
        except TimeoutError:
            pass
        for _ in range(3):
            self.bye(call)
            try:
                await asyncio.wait_for(call.done.wait(), 2.0)
                return
            except TimeoutError:
                continue

    def retire(self, call: WireCall) -> None:
        """Forget a finished call (its socket and its received packets): a long soak keeps no history."""
        self._close_rtp(call)
        self.calls.pop(call.call_id, None)

    def _close_rtp(self, call: WireCall) -> None:
        if call.rtp.fileno() >= 0:
            self._loop.remove_reader(call.rtp.fileno())
            call.rtp.close()


def _sdp_media(body: str) -> tuple[str, int] | None:
    addr, port = None, None
    for ln in body.split("\r\n"):
        if ln.startswith("c=IN IP4 "):
            addr = ln[9:].strip()
        elif ln.startswith("m=audio "):
            port = int(ln.split()[1])
    return (addr, port) if addr and port else None


def _reply_200(request: str) -> str:
    _first, h, _ = _headers(request)
    return (f"SIP/2.0 200 OK\r\nVia: {h.get('via', '')}\r\nFrom: {h.get('from', '')}\r\nTo: {h.get('to', '')}\r\n"
            f"Call-ID: {h.get('call-id', '')}\r\nCSeq: {h.get('cseq', '')}\r\nContent-Length: 0\r\n\r\n")
