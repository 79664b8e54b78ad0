"""The adaptive jitter buffer against synthetic arrival patterns (issue 18), on a simulated clock:
packets arrive at scripted times, ticks come every 20 ms, and every frame played is traced back to
the packet that carried it, so delay, loss and "was speech ever discarded" are exact, with no sleeps."""

import random

from telephony.rtp.jitter import JitterBuffer, is_silent

SPEECH, SILENCE = "speech", "silence"


def frame(kind: str) -> bytes:
    """A distinct bytes object per packet (identity traces it through the buffer)."""
    return bytes(bytearray([0x10 if kind == SPEECH else 0xFF] * 160))


def simulate(arrivals, seconds: float, phase: float = 0.013, jb: JitterBuffer | None = None):
    """arrivals: [(arrival_time, seq, kind)]; 20 ms ticks at k*20 ms + phase. Returns the buffer and
    [(tick_time, seq | None, kind | None, delay_s)] per tick after the first frame played."""
    jb = jb if jb is not None else JitterBuffer()
    sent = {}
    events = [(t, 0, seq, kind) for t, seq, kind in arrivals]
    events += [(k * 0.02 + phase, 1, k, None) for k in range(int(seconds / 0.02))]
    events.sort(key=lambda e: (e[0], e[1]))
    played, arrived = [], {}
    for t, is_tick, seq, kind in events:
        if not is_tick:
            seq, ts = seq if isinstance(seq, tuple) else (seq, seq * 160)
            payload = frame(kind)
            sent[id(payload)] = (seq, kind, payload)
            arrived[seq] = t
            jb.put(seq & 0xFFFF, payload, t, ts & 0xFFFFFFFF)
            continue
        out = jb.pop()
        if out is None:
            if played:
                played.append((t, None, None, None))
            continue
        s, k, _ = sent[id(out)]
        played.append((t, s, k, t - arrived[s]))
    return jb, played


def stream(kinds, start: float = 0.0, jitter=lambda n: 0.0005):
    """One packet per 20 ms with the given kinds; arrival = send time + jitter(n)."""
    return [(start + n * 0.02 + jitter(n), n, kind) for n, kind in enumerate(kinds)]


def test_clean_network_plays_at_20_to_40_ms_with_no_concealment():
    rng = random.Random(1)
    jb, played = simulate(stream([SPEECH] * 500, jitter=lambda n: rng.uniform(0, 0.002)), 10.5)
    delays = [d for _, s, _, d in played if s is not None]
    assert jb.target == 2 and jb.lost == 0 and jb.drained == 0
    assert all(s is not None for _, s, _, _ in played[:500])  # concealment only after the stream ended
    assert len(delays) == 500 and all(0.020 <= d <= 0.040 for d in delays[5:]), (min(delays), max(delays))


def test_a_stall_backlog_drains_in_the_next_pause_without_discarding_speech():
    # 2 s of speech, 1 s pause, 2 s of speech; packets 40..49 held 300 ms by the network, then a burst
    kinds = [SPEECH] * 100 + [SILENCE] * 50 + [SPEECH] * 100

    def jitter(n):
        return 0.0005 + (0.300 - (n - 40) * 0.02 if 40 <= n < 55 else 0.0)

    jb, played = simulate(stream(kinds, jitter=jitter), 6.0)
    speech_played = [s for _, s, k, _ in played if k == SPEECH]
    assert speech_played == [n for n, k in enumerate(kinds) if k == SPEECH]  # every word, in order
    assert jb.lost == 0 and jb.drained > 0 and jb.concealed > 0
    late_in_call = [d for t, s, _, d in played if s is not None and s >= 150]
    assert max(late_in_call) <= 0.045  # the spike's delay did not stay for the rest of the call
    during = [d for t, s, _, d in played if s is not None and 56 <= s < 100]
    assert max(during) >= 0.2  # while speech went on, it was delayed rather than cut


def test_target_follows_a_jittery_network_and_comes_back():
    rng = random.Random(2)
    kinds = ([SPEECH] * 40 + [SILENCE] * 10) * 30  # 30 s: speech with pauses

    def jitter(n):
        return rng.uniform(0, 0.060) if n < 750 else rng.uniform(0, 0.001)  # 15 s rough, 15 s clean

    jb = JitterBuffer()
    targets = []
    arrivals = stream(kinds, jitter=jitter)
    _, played = simulate(arrivals[:750], 15.0, jb=jb)
    targets.append(jb.target)
    rough_concealed = jb.concealed
    jb2, played2 = simulate(arrivals, 30.5, jb=JitterBuffer())
    targets.append(jb2.target)
    assert targets[0] >= 4  # 60 ms of jitter: the buffer grew to cover it
    assert rough_concealed <= 15  # mostly absorbed (a few while the estimate learned)
    assert targets[1] == 2  # 15 s of a clean network later it is back to 40 ms
    tail = [d for t, s, _, d in played2 if s is not None and s >= 1400]
    assert max(tail) <= 0.045
    assert jb2.lost == 0


def test_loss_is_concealed_and_skipped_and_a_sender_pause_does_not_add_delay():
    kinds = [SPEECH] * 100
    arrivals = [a for a in stream(kinds) if a[1] not in (30, 31)]  # two packets lost
    # the sender pauses 1 s before packet 60 (sequence numbers go on, timestamps jump with the time)
    arrivals = [(t + 1.0, (s, s * 160 + 8000), k) if s >= 60 else (t, s, k) for t, s, k in arrivals]
    jb, played = simulate(arrivals, 3.5)
    assert jb.lost == 2
    assert [s for _, s, _, _ in played if s is not None] == [n for n in range(100) if n not in (30, 31)]
    after = [d for _, s, _, d in played if s is not None and s >= 65]
    assert max(after) <= 0.045  # the pause was concealed and re-primed: no delay kept afterwards


def test_reorder_within_target_is_absorbed():
    arrivals = stream([SPEECH] * 50)
    arrivals[20], arrivals[21] = (arrivals[21][0], 20, SPEECH), (arrivals[20][0], 21, SPEECH)  # swapped
    jb, played = simulate(arrivals, 1.5)
    assert [s for _, s, _, _ in played if s is not None] == list(range(50)) and jb.lost == 0


def test_a_stalled_consumer_keeps_memory_bounded_and_prefers_dropping_silence():
    jb = JitterBuffer(max_size=20)
    for n in range(40):  # nobody pops: 10 silent frames among 40
        jb.put(n, frame(SILENCE if 10 <= n < 20 else SPEECH), n * 0.02, n * 160)
    assert len(jb) == 20 and jb.drained == 10 and jb.lost == 10


def test_silence_check():
    assert is_silent(b"\xff" * 160) and is_silent(b"\xd5" * 160, "PCMA")
    assert not is_silent(b"\xff" * 159 + b"\x10")
