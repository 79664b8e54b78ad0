import asyncio
import socket

from hypothesis import given
from hypothesis import strategies as st

from telephony.rtp.clock import MediaClock
from telephony.rtp.jitter import JitterBuffer
from telephony.rtp.packet import build_rtp, parse_dtmf, parse_rtp
from telephony.rtp.session import RtpSession
from tests.eventually import eventually


@given(st.binary(max_size=300))
def test_parse_never_raises(data):
    parse_rtp(data)


def test_build_parse_roundtrip_and_malformed():
    raw = build_rtp(0, 65535, 123456, 0xDEADBEEF, True, b"\x01" * 160)
    p = parse_rtp(raw)
    assert (p.pt, p.seq, p.ts, p.ssrc, p.marker, len(p.payload)) == (0, 65535, 123456, 0xDEADBEEF, True, 160)
    assert parse_rtp(b"\x00" * 20) is None  # version 0
    assert parse_rtp(raw[:11]) is None
    assert parse_rtp(bytes([0x8F]) + raw[1:40]) is None  # 15 CSRCs (60 bytes) claimed, not present
    assert parse_rtp(bytes([0xA0]) + raw[1:12] + b"\x01\x05") is None  # padding longer than the payload
    assert parse_dtmf(bytes([5, 0x80, 0, 160])) == ("5", True, 0, 160)


def test_jitter_buffer_reorders_drops_late_and_duplicates():
    jb = JitterBuffer(depth=2)
    for seq in (65534, 0, 65535):  # out of order across the wrap
        jb.put(seq, bytes([seq & 0xFF]))
    assert [jb.pop(), jb.pop(), jb.pop()] == [bytes([0xFE]), bytes([0xFF]), bytes([0])]
    jb.put(0, b"x")  # late (already played)
    jb.put(2, b"b")
    jb.put(2, b"b")  # duplicate
    jb.put(3, b"c")
    assert jb.late == 1 and jb.duplicate == 1
    assert jb.pop() is None and jb.lost == 1  # seq 1 never came: concealed, counted lost
    assert jb.pop() == b"b"
    jb.put(3000, b"z")  # big jump: resync instead of stalling
    jb.put(3001, b"y")
    assert jb.pop() == b"z"


async def test_clock_keeps_time_and_isolates_failures():
    now = [100.0]

    async def sleep(seconds: float) -> None:  # fake time: a sleep moves the clock by exactly that much
        now[0] += seconds
        await asyncio.sleep(0)

    clock = MediaClock(time_source=lambda: now[0], sleep=sleep)
    ticks, fifty = [], asyncio.Event()

    def good(t: float, n: int) -> None:
        ticks.append((t, n))
        if len(ticks) == 50:
            fifty.set()

    def bad(t: float, n: int) -> None:
        raise RuntimeError("boom")

    clock.add(good)
    clock.add(bad)
    await asyncio.wait_for(fifty.wait(), 10)  # the bound only stops a broken test from hanging
    await clock.aclose()
    # every tick on the absolute grid t0 + n*20 ms (no drift), the failing callback counted, not fatal
    assert [n for _, n in ticks] == list(range(len(ticks)))
    assert all(abs(t - (100.0 + n * 0.020)) < 1e-9 for t, n in ticks)
    assert clock.errors == len(ticks) == clock.ticks


async def test_session_latches_paces_and_reports_sent_time():
    clock = MediaClock()
    a = await RtpSession.open(host="127.0.0.1", port_range=(31000, 31100), payload_type=0, codec="PCMU",
                              remote=None, clock=clock, signal_ip="127.0.0.1")
    peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    peer.bind(("127.0.0.1", 0))
    peer.setblocking(False)
    stranger = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    a.start()
    for i in range(5):
        peer.sendto(build_rtp(0, 100 + i, 160 * i, 7, False, b"\x11" * 160), ("127.0.0.1", a.local_port))
    await eventually(lambda: a.remote is not None)
    assert a.remote == peer.getsockname()
    stranger.sendto(build_rtp(0, 1, 0, 9, False, b"\x22" * 160), ("127.0.0.1", a.local_port))
    await eventually(lambda: a.ignored == 1)
    assert a.remote == peer.getsockname()  # the stranger's packet did not move the latch
    sent = []
    a.enqueue(b"\x33" * 320, on_sent=sent.append)
    await eventually(lambda: len(sent) == 1)
    loop = asyncio.get_running_loop()
    pkts = []
    while sum(p.payload == b"\x33" * 160 for p in pkts) < 2:
        pkts.append(parse_rtp(await asyncio.wait_for(loop.sock_recv(peer, 2000), 10)))
    seqs = [p.seq for p in pkts]
    assert all((b - a_) & 0xFFFF == 1 for a_, b in zip(seqs, seqs[1:], strict=False))
    assert all((q.ts - p.ts) & 0xFFFFFFFF == 160 for p, q in zip(pkts, pkts[1:], strict=False))
    agent = [p for p in pkts if p.payload == b"\x33" * 160]
    assert len(agent) == 2 and agent[0].marker and not agent[1].marker
    assert len(sent) == 1
    a.enqueue(b"\x44" * 1600)
    assert a.clear() == 1600 and a.queued_bytes == 0
    a.close()
    stranger.close()
    peer.close()
    await clock.aclose()


class _Wire:
    def __init__(self) -> None:
        self.packets: list[tuple[bytes, tuple]] = []

    def sendto(self, data: bytes, addr) -> None:
        self.packets.append((data, addr))


def _session(**kw) -> tuple[RtpSession, _Wire]:
    s = RtpSession(payload_type=0, codec="PCMU", remote=("127.0.0.1", 40000), clock=MediaClock(), **kw)
    s.transport = _Wire()
    return s, s.transport


def test_agent_audio_waits_through_hold_and_until_the_peer_is_verified():
    s, wire = _session(signal_ip="127.0.0.1")
    s.enqueue(b"\x33" * 480)
    s.tick(0.0, 0)
    assert wire.packets == [] and s.queued_bytes == 480  # no ACK / RTP from the caller yet: nothing leaves
    s.verified = True
    s.tick(0.02, 1)
    assert len(wire.packets) == 1 and s.queued_bytes == 320
    s.send_enabled = False  # re-INVITE: on hold
    for n in range(2, 10):
        s.tick(n * 0.02, n)
    assert len(wire.packets) == 1 and s.queued_bytes == 320  # what the agent said during hold is kept
    s.send_enabled = True
    s.tick(0.3, 11)
    s.tick(0.32, 12)
    assert [parse_rtp(d).payload for d, _ in wire.packets[1:]] == [b"\x33" * 160] * 2


def test_a_new_stream_after_a_reinvite_is_not_counted_as_loss():
    s, _ = _session(signal_ip="127.0.0.1")
    src = ("127.0.0.1", 40000)
    for i in range(5):
        s.datagram_received(build_rtp(0, 100 + i, i * 160, 7, False, b"\x11" * 160), src)
        s.tick(i * 0.02, i)
    for i in range(5):  # the phone restarts its sequence 30 higher with a new SSRC
        s.datagram_received(build_rtp(0, 135 + i, 90000 + i * 160, 8, False, b"\x11" * 160), src)
        s.tick(0.1 + i * 0.02, 5 + i)
    s.reset_inbound()  # and a re-INVITE resets the sequence state the same way
    for i in range(5):
        s.datagram_received(build_rtp(0, 160 + i, 190000 + i * 160, 8, False, b"\x11" * 160), src)
        s.tick(0.2 + i * 0.02, 10 + i)
    assert s.jitter.lost == 0 and s.packets_in == 15


def test_media_latches_only_to_the_callers_addresses_within_the_window():
    now = [100.0]
    s, _ = _session(signal_ip="192.0.2.10", latch_window_s=10.0, now=lambda: now[0])
    pkt = build_rtp(0, 1, 0, 5, False, b"\x11" * 160)
    s.datagram_received(pkt, ("198.51.100.1", 4000))  # a stranger
    s.datagram_received(build_rtp(96, 1, 0, 5, False, b"x"), ("192.0.2.10", 4000))  # caller's IP, wrong PT
    assert not s.latched and s.ignored == 2
    now[0] += 11  # past the window: a NAT'd port of the caller's IP no longer latches...
    s.datagram_received(pkt, ("192.0.2.10", 4002))
    assert not s.latched
    s.datagram_received(pkt, ("127.0.0.1", 40000))  # ...but the SDP address always does
    assert s.latched and s.verified and s.remote == ("127.0.0.1", 40000)
