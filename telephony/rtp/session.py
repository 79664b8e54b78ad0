"""One call's RTP endpoint: a UDP socket, inbound jitter buffer, outbound paced queue.

Packet path (``datagram_received``): parse the header, file the payload — no tasks, no logging,
no exceptions escaping. Everything periodic happens in ``tick`` from the shared MediaClock: one
inbound frame out of the jitter buffer (silence when there is none) and exactly one outbound packet
(agent audio, or silence so the stream, NAT binding and recording stay continuous).
"""

from __future__ import annotations

import asyncio
import random
import socket
import time
from collections.abc import AsyncIterator, Callable
from typing import Protocol

from aioptions.codecs.g711 import SILENCE_BYTE

from .clock import MediaClock
from .jitter import JitterBuffer
from .packet import build_rtp, parse_dtmf, parse_rtp
from .playout import FrameQueue, Playout

FRAME = 160  # bytes of G.711 per 20 ms


class FrameSink(Protocol):
    """Where each tick's caller and agent frames go (the call's recording). Declared here so the RTP
    layer does not import the media layer above it (telephony.media.recording implements it)."""

    def write(self, caller_frame: bytes, agent_frame: bytes) -> None: ...


class RtpPortsExhausted(RuntimeError):
    pass


class RtpSession(asyncio.DatagramProtocol):
    def __init__(self, *, payload_type: int, codec: str, remote: tuple[str, int] | None, clock: MediaClock,
                 dtmf_pt: int | None = 101, on_dtmf: Callable[[str], None] | None = None,
                 recorder: FrameSink | None = None, signal_ip: str | None = None,
                 latch_window_s: float = 10.0, now: Callable[[], float] = time.monotonic) -> None:
        self.now = now  # the gateway's clock: media timeouts and the latch window are read against it
        self.pt = payload_type
        self.codec = codec
        self.remote = remote  # where we send: the SDP address until media latches
        self.latched = False
        self.expect_media(remote, signal_ip, latch_window_s)
        # nothing is sent until the peer proved it wants the media: ACK, or RTP from it (anti-reflection)
        self.verified = False
        self.clock = clock
        self.dtmf_pt = dtmf_pt
        self.on_dtmf = on_dtmf
        self.recorder = recorder
        self.on_audio: Callable[[bytes], None] | None = None
        self.silence = bytes([SILENCE_BYTE[codec]]) * FRAME
        self.jitter = JitterBuffer(codec=codec)  # adaptive: 20-40 ms on a clean network (issue 18)
        self.transport: asyncio.DatagramTransport | None = None
        self.local_port = 0
        self.playout = Playout(FRAME)  # the agent's audio, one frame per tick
        self._seq = random.randint(0, 0xFFFF)
        self._ts = random.randint(0, 0xFFFFFFFF)
        self._ssrc = random.randint(1, 0xFFFFFFFF)
        self._talking = False
        self._frames = FrameQueue(maxlen=250)  # the caller's frames, read by frames()
        self._closed = False
        self.send_enabled = True  # re-INVITE hold: False stops our stream (queued agent audio waits)
        self.packets_in = self.packets_out = self.ignored = self.malformed = self.frames_dropped = 0
        self.out_deferred = 0  # ticks whose packet the clock held back (smooth egress after a stall)
        self.last_rx_at: float | None = None
        self.last_agent_packet_at: float | None = None
        self.started_at = time.monotonic()
        self._last_dtmf_ts: int | None = None
        self._transit: float | None = None
        self._ssrc_in: int | None = None
        self._jitter = 0.0  # RFC 3550 interarrival jitter, in timestamp units
        self.send_times: list[float] | None = None  # set to [] to record egress times (benchmarks)

    @classmethod
    async def open(cls, *, host: str, port_range: tuple[int, int], payload_type: int, codec: str,
                   remote: tuple[str, int] | None, clock: MediaClock, dtmf_pt: int | None = 101,
                   on_dtmf: Callable[[str], None] | None = None, recorder: FrameSink | None = None,
                   signal_ip: str | None = None, latch_window_s: float = 10.0,
                   now: Callable[[], float] = time.monotonic) -> RtpSession:
        loop = asyncio.get_running_loop()
        lo, hi = port_range
        start = lo + 2 * random.randint(0, max(0, (hi - lo) // 2 - 1))
        ports = list(range(start, hi, 2)) + list(range(lo + (lo % 2), start, 2))
        for port in ports:
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                sock.bind((host, port))
            except OSError:
                sock.close()
                continue
            sock.setblocking(False)
            proto = cls(payload_type=payload_type, codec=codec, remote=remote, clock=clock, dtmf_pt=dtmf_pt,
                        on_dtmf=on_dtmf, recorder=recorder, signal_ip=signal_ip, latch_window_s=latch_window_s,
                        now=now)
            await loop.create_datagram_endpoint(lambda p=proto: p, sock=sock)
            proto.local_port = port
            return proto
        raise RtpPortsExhausted(f"no free RTP port in {lo}-{hi}")

    # --- asyncio protocol ------------------------------------------------------------------
    def connection_made(self, transport) -> None:
        self.transport = transport

    def expect_media(self, sdp_addr: tuple[str, int] | None, signal_ip: str | None, window_s: float) -> None:
        """Who may send us media: the SDP address, or (NAT) any port of the caller's signalling or SDP
        IP for ``window_s``; the first valid RTP from one of them latches, and then only it counts.
        Called at set-up and again when a re-INVITE moves the media."""
        self._sdp_addr = sdp_addr
        self._latch_ips = frozenset(ip for ip in (signal_ip, sdp_addr[0] if sdp_addr else None) if ip)
        self._latch_until = self.now() + window_s
        if self.latched:
            self.latched = False
            self.remote = sdp_addr or self.remote

    def _may_latch(self, addr) -> bool:
        return addr == self._sdp_addr or (addr[0] in self._latch_ips and self.now() < self._latch_until)

    def datagram_received(self, data: bytes, addr) -> None:
        if self.latched:
            if addr != self.remote:
                self.ignored += 1
                return
        elif not self._may_latch(addr):
            self.ignored += 1
            return
        pkt = parse_rtp(data)
        if pkt is None:
            self.malformed += 1
            return
        if not self.latched:  # symmetric RTP: answer where the media really comes from (NAT)
            if pkt.pt != self.pt and pkt.pt != self.dtmf_pt:
                self.ignored += 1
                return
            self.remote = addr
            self.latched = self.verified = True
        if pkt.ssrc != self._ssrc_in:  # a new stream (re-INVITE, phone restart): no losses across it
            if self._ssrc_in is not None:
                self.reset_inbound()
            self._ssrc_in = pkt.ssrc
        now = self.now()
        self.last_rx_at = now
        self.packets_in += 1
        if pkt.pt == self.pt:
            self.jitter.put(pkt.seq, pkt.payload, now, pkt.ts)
            transit = now * 8000.0 - pkt.ts
            if self._transit is not None:
                d = abs(transit - self._transit)
                if d < 8000:  # ignore timestamp jumps (new talkspurt base)
                    self._jitter += (d - self._jitter) / 16.0
            self._transit = transit
        elif pkt.pt == self.dtmf_pt:
            ev = parse_dtmf(pkt.payload)
            if ev is not None and pkt.ts != self._last_dtmf_ts:
                self._last_dtmf_ts = pkt.ts
                if self.on_dtmf:
                    self.on_dtmf(ev[0])

    def error_received(self, exc) -> None:  # ICMP port unreachable etc.: keep going
        pass

    # --- clock -----------------------------------------------------------------------------
    def start(self) -> None:
        self.clock.add(self.tick)

    def tick(self, now: float, n: int) -> None:
        frame = self.jitter.pop() or self.silence
        if not self._frames.push(frame):
            self.frames_dropped += 1
        if self.on_audio is not None:
            self.on_audio(frame)
        out = self._next_out(now)
        if self.recorder is not None:
            self.recorder.write(frame, out)

    def reset_inbound(self) -> None:
        """Forget the inbound sequence/timing state: the next packet starts a new stream."""
        self.jitter.reset()
        self._transit = None

    def _next_out(self, now: float) -> bytes:
        if not self.clock.egress:  # late tick past the one-frame burst: the stream pauses, nothing is lost
            self.out_deferred += 1
            return self.silence
        can_send = (self.transport is not None and self.remote is not None and self.send_enabled
                    and self.verified and not self._closed)
        agent = can_send and bool(self.playout)  # on hold / unverified: the agent's audio waits, it is not lost
        if agent:
            out = self.playout.take(now)
            if len(out) < FRAME:
                out += self.silence[: FRAME - len(out)]
        else:
            out = self.silence
        if can_send:
            marker = agent and not self._talking
            self.transport.sendto(build_rtp(self.pt, self._seq, self._ts, self._ssrc, marker, out), self.remote)
            self.packets_out += 1
            if agent:
                self.last_agent_packet_at = now
            if self.send_times is not None:
                self.send_times.append(now)
        self._talking = agent
        self._seq = (self._seq + 1) & 0xFFFF
        self._ts = (self._ts + FRAME) & 0xFFFFFFFF
        return out

    # --- agent side ------------------------------------------------------------------------
    def enqueue(self, payload: bytes, on_sent: Callable[[float], None] | None = None) -> None:
        self.playout.put(payload, on_sent)

    def clear(self) -> int:
        return self.playout.clear()

    @property
    def queued_bytes(self) -> int:
        return len(self.playout)

    def frames(self) -> AsyncIterator[bytes]:
        """Every inbound 20 ms frame, continuous; ends when the session closes."""
        return self._frames.frames()

    def stats(self) -> dict:
        return {
            "packets_in": self.packets_in, "packets_out": self.packets_out, "lost": self.jitter.lost,
            "late": self.jitter.late, "duplicate": self.jitter.duplicate, "out_deferred": self.out_deferred,
            "jitter_buffer": self.jitter.stats(),
            "jitter_ms": round(self._jitter / 8.0, 2), "ignored_sources": self.ignored,
            "malformed": self.malformed, "remote": list(self.remote) if self.remote else None,
        }

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.clock.remove(self.tick)
        self._frames.close()
        if self.transport is not None:
            self.transport.close()
