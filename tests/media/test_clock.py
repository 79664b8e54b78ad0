"""Smooth egress (issue 18 step 4): the shared clock driven with a fake time source, no sleeping.

What a caller hears after the bridge's loop stalls: the late wake-up may send the frame due then and
one more, never a burst; the other due ticks still run (inbound continuity) but defer their packet,
and every deferral, late wake-up and skipped tick is counted. The agent's audio is not lost.
"""

from __future__ import annotations

from telephony.rtp.clock import MediaClock
from telephony.rtp.packet import parse_rtp
from telephony.rtp.session import FRAME, RtpSession

IV = 0.020


class WireTransport:
    """Records (fake time, packet) for every sendto."""

    def __init__(self, clock: list[float]) -> None:
        self.clock = clock
        self.sent: list[tuple[float, bytes]] = []

    def sendto(self, data: bytes, addr) -> None:
        self.sent.append((self.clock[0], data))

    def close(self) -> None:
        pass


def _session(clock: MediaClock, now: list[float]) -> RtpSession:
    s = RtpSession(payload_type=0, codec="PCMU", remote=("127.0.0.1", 40000), clock=clock)
    s.transport = WireTransport(now)
    s.verified = True
    clock._callbacks.append(s.tick)  # registered without the asyncio task: the test drives run_due
    return s


def _drive(clock: MediaClock, now: list[float], until: float, stall_at: float, stall: float) -> None:
    """Wake at every deadline like the task would, except that the wake-up at ``stall_at`` is late."""
    clock.start_at(0.0)
    t = 0.0
    while t <= until + 1e-9:
        if abs(t - stall_at) < 1e-9:
            t += stall
        now[0] = t
        t = clock.run_due(t)


def _max_ahead_frames(times: list[float]) -> float:
    """How far ahead of its deadline a packet went, in frames, where the deadline re-anchors on a late
    packet (a receiver re-primes on it): E_0 = s_0, E_i = max(E_{i-1} + 20 ms, s_i)."""
    worst, e = 0.0, None
    for s in times:
        e = s if e is None else max(e + IV, s)
        worst = max(worst, (e - s) / IV)
    return worst


def test_stall_sends_at_most_one_frame_ahead_and_counts_the_rest():
    now = [0.0]
    clock = MediaClock(time_source=lambda: now[0])
    calls = [_session(clock, now) for _ in range(3)]
    frames = [bytes([i]) * FRAME for i in range(1, 21)]
    for s in calls:
        for f in frames:
            s.enqueue(f)
    _drive(clock, now, until=0.6, stall_at=0.2, stall=0.100)  # the tick due at 200 ms runs at 300 ms

    assert clock.late_ticks == 1 and clock.skipped_ticks == 0
    assert clock.deferred_ticks == 4  # 6 ticks due at 300 ms: 2 sent, 4 deferred, none silently
    assert clock.ticks == 31  # every tick of 0..600 ms ran: inbound audio stays continuous
    for s in calls:
        times = [t for t, _ in s.transport.sent]
        assert sum(abs(t - 0.3) < 1e-9 for t in times) == 2  # the late wake-up: due frame + one ahead
        assert _max_ahead_frames(times) <= 1.0 + 1e-6
        assert s.out_deferred == 4 and s.packets_out == 31 - 4
        pkts = [parse_rtp(d) for _, d in s.transport.sent]
        seqs = [(p.seq - pkts[0].seq) & 0xFFFF for p in pkts]
        assert seqs == list(range(len(pkts)))  # no gap on the wire: the stream paused, nothing lost
        assert [(p.ts - pkts[0].ts) & 0xFFFFFFFF for p in pkts] == [i * FRAME for i in range(len(pkts))]
        agent = [p.payload for p in pkts if p.payload != s.silence]
        assert agent == frames  # every agent frame, in order


def test_old_policy_would_burst():
    """The metric itself: a 6-packet catch-up burst is 5 frames ahead (what egress jitter measured)."""
    times = [i * IV for i in range(10)] + [0.3] * 6 + [0.32, 0.34]
    assert abs(_max_ahead_frames(times) - 5.0) < 1e-6


def test_long_stall_skips_beyond_max_catchup_and_counts_it():
    now = [0.0]
    clock = MediaClock(max_catchup=10, time_source=lambda: now[0])
    seen: list[int] = []
    clock._callbacks.append(lambda t, n: seen.append(n))
    _drive(clock, now, until=1.0, stall_at=0.1, stall=0.5)  # 25 ticks missed
    assert clock.late_ticks == 1
    assert clock.skipped_ticks == 25 - 10
    assert len(seen) + clock.skipped_ticks == 51  # each tick of 0..1000 ms either ran or is counted
    assert seen == sorted(set(seen))


def test_small_lateness_defers_nothing():
    """A wake-up a few ms late (one tick due) sends normally: deferral is only for real bursts."""
    now = [0.0]
    clock = MediaClock(time_source=lambda: now[0])
    sent: list[bool] = []
    clock._callbacks.append(lambda t, n: sent.append(clock.egress))
    clock.start_at(0.0)
    t = 0.0
    for i in range(50):
        now[0] = t + (0.007 if i % 3 == 0 else 0.0)
        t = clock.run_due(now[0])
    assert all(sent) and clock.deferred_ticks == 0 and clock.late_ticks == 0
