"""Adaptive inbound jitter buffer of 20 ms frames keyed by RTP sequence number (16-bit wrap aware).

Why adaptive (issue 18): a fixed buffer that re-primes after every underrun keeps whatever backlog a
stall or a delay spike left behind for the rest of the call (up to its cap, where it then threw away
caller audio). Here the playout delay is steered back to a *target* that follows the measured jitter:

- **Target.** Each packet's relative delay (arrival time minus RTP timestamp) is compared with the
  smallest recent one; the excess is the packet's jitter, filed in a 5 ms histogram that forgets
  (the last ~4 s weigh most). Every 0.5 s the target becomes the frame being played plus enough
  frames to cover the 95th percentile: 2 frames (20-40 ms of delay, depending on where packets land
  between ticks) on a clean network, more when the network jitters, capped at ``max_target``.
  A stall delivers a burst of very late packets; it is filed once, so one stall does not raise the
  target for seconds (its backlog is drained instead).
- **Drain.** When more than ``target + 1`` frames are waiting for two ticks in a row, each tick
  drops a frame of silence (no sample above ~-35 dBFS) at the head and plays the next one, until the
  level is back at the target: backlog goes during pauses, 20 ms per tick, and speech is never
  discarded to do it.
- **Underrun.** With nothing buffered the tick conceals (None: the session plays silence) without
  advancing, and playout re-primes to the target, so a late packet is played late rather than
  dropped; the delay this adds is drained in the next pause instead of staying for good. A missing
  frame with later ones queued beyond the target is lost (concealed and skipped).
- **Cap.** Past ``max_size`` frames (a consumer stalled for seconds) the oldest silent frame goes,
  else the oldest frame (counted lost): memory stays bounded.

The per-packet path (``put``) is a dict insert and a few float operations; the silence check runs
only when draining.
"""

from __future__ import annotations

import math

from aioptions.codecs.g711 import LOUD

FRAME_S = 0.020
_BUCKETS_PER_S = 200  # 5 ms histogram buckets
_BUCKETS = 64  # up to 320 ms; anything later lands in the last one
_GROW = 1.0 / 0.995  # forgetting: the last ~4 s of packets weigh most
_QUANTILE = 0.95  # the target covers 95 % of recent packets' jitter; the rest is concealed
_SPIKE_S = 0.100  # a burst of packets this late is one stall, filed once


def seq_diff(a: int, b: int) -> int:
    """a - b on the 16-bit sequence circle, in -32768..32767."""
    return ((a - b + 32768) & 0xFFFF) - 32768


def is_silent(frame: bytes, codec: str = "PCMU") -> bool:
    """No sample louder than about -35 dBFS (one C-speed translate and a byte search)."""
    return 1 not in frame.translate(LOUD[codec])


class JitterBuffer:
    """Reorders, drops duplicates and late packets, conceals and reports loss; adapts its delay.

    ``pop()`` is called once per 20 ms tick; None means "nothing to play" (the caller conceals with
    silence). ``put(seq, payload, now, ts)`` files a packet; ``now`` (seconds) and ``ts`` (RTP
    timestamp, 8 kHz) feed the jitter estimate, without them the target stays at ``depth``.
    A jump of more than ``resync_gap`` packets (new talkspurt after a long gap, SSRC change)
    restarts playout at the new sequence instead of waiting for packets that will never come.
    """

    __slots__ = ("depth", "resync_gap", "max_size", "max_target", "_frames", "_next", "_high", "_started",
                 "_loud", "_over", "_base_ts", "_base_t", "_wmin", "_pmin", "_wcount", "_since", "target",
                 "_hist", "_w", "_in_spike", "jitter_q",
                 "received", "lost", "late", "duplicate", "concealed", "drained")

    def __init__(self, depth: int = 2, resync_gap: int = 50, max_size: int = 150, max_target: int = 10,
                 codec: str = "PCMU") -> None:
        self.depth = depth  # the smallest target, in frames
        self.resync_gap = resync_gap
        self.max_size = max_size
        self.max_target = max(depth, max_target)
        self._loud = LOUD.get(codec, LOUD["PCMU"])
        self._frames: dict[int, bytes] = {}
        self._next: int | None = None
        self._high = 0  # highest sequence number filed
        self._started = False
        self._over = 0  # consecutive ticks with a backlog beyond target + 1
        self._base_ts: int | None = None
        self._base_t = 0.0
        self._wmin = self._pmin = math.inf
        self._wcount = 0
        self._since = 0  # packets since the target was last recomputed
        self.jitter_q = 0.0  # the 95th percentile of recent jitter, seconds
        self._hist = [0.0] * _BUCKETS
        self._w = 1.0
        self._in_spike = False
        self.target = depth
        self.received = self.lost = self.late = self.duplicate = self.concealed = self.drained = 0

    # --- packets in ----------------------------------------------------------------------------
    def put(self, seq: int, payload: bytes, now: float | None = None, ts: int | None = None) -> None:
        if self._next is not None:
            d = seq_diff(seq, self._next)
            if d < 0:
                if d < -self.resync_gap:
                    self.reset()
                else:
                    self.late += 1
                    return
            elif d > self.resync_gap:
                self.reset()
        if seq in self._frames:
            self.duplicate += 1
            return
        self.received += 1
        if self._next is None:
            self._next = self._high = seq
        elif seq_diff(seq, self._high) > 0:
            self._high = seq
        self._frames[seq] = payload
        if now is not None and ts is not None:
            self._observe(now, ts)
        if len(self._frames) > self.max_size:  # consumer stalled for seconds
            self._evict()

    def _observe(self, now: float, ts: int) -> None:
        """File one packet's jitter (relative delay above the recent minimum) in the histogram."""
        if self._base_ts is None:
            self._base_ts, self._base_t = ts, now
        dts = ((ts - self._base_ts + 0x80000000) & 0xFFFFFFFF) - 0x80000000  # signed: reordering is fine
        rel = (now - self._base_t) - dts / 8000.0
        if rel < self._wmin:
            self._wmin = rel
        excess = rel - (self._wmin if self._wmin < self._pmin else self._pmin)
        if excess > 2.0:  # a timestamp jump (sender restart, broken clock): measure afresh
            self._base_ts, self._base_t = ts, now
            self._wmin = self._pmin = 0.0
            excess = 0.0
        self._wcount += 1
        if self._wcount >= 250:  # 5 s windows: the minimum follows slow clock drift
            self._pmin, self._wmin, self._wcount = self._wmin, rel, 0
        if excess > _SPIKE_S:
            if self._in_spike:  # one stall delivers a burst of late packets: count it once
                return
            self._in_spike = True
        else:
            self._in_spike = False
        i = int(excess * _BUCKETS_PER_S)
        self._hist[i if i < _BUCKETS else _BUCKETS - 1] += self._w
        self._w *= _GROW
        if self._w > 1e12:  # renormalise the lazily-forgetting weights
            self._hist = [h / self._w for h in self._hist]
            self._w = 1.0
        self._since += 1
        if self._since >= 25:  # every 0.5 s: recompute the target
            self._since = 0
            self._retarget()

    def _retarget(self) -> None:
        hist = self._hist
        total = sum(hist)
        if total <= 0.0:
            return
        need = total * _QUANTILE
        acc, i = hist[0], 0
        while acc < need and i < _BUCKETS - 1:
            i += 1
            acc += hist[i]
        self.jitter_q = (i + 1) / _BUCKETS_PER_S
        target = math.ceil((self.jitter_q + 0.020) / FRAME_S)
        self.target = self.depth if target < self.depth else self.max_target if target > self.max_target else target

    def _evict(self) -> None:
        order = sorted(self._frames, key=lambda s: seq_diff(s, self._next))
        victim = next((s for s in order if 1 not in self._frames[s].translate(self._loud)), None)
        if victim is None:  # all speech: the oldest goes, and that is a loss
            victim = order[0]
            self.lost += 1
        else:
            self.drained += 1
        del self._frames[victim]

    def reset(self) -> None:
        self._frames.clear()
        self._next = None
        self._started = False
        self._over = 0
        self._base_ts = None
        self._wmin = self._pmin = math.inf
        self._wcount = 0

    # --- frames out (one per tick) -------------------------------------------------------------
    def level(self) -> int:
        """Frames from the playout point to the newest packet (the buffer's delay, in frames)."""
        if self._next is None or not self._frames:
            return 0
        return seq_diff(self._high, self._next) + 1

    def pop(self) -> bytes | None:
        if self._next is None:
            return None
        frames = self._frames
        if not self._started:
            if len(frames) < self.target:
                return None
            self._started = True
        level = seq_diff(self._high, self._next) + 1 if frames else 0
        if level > self.target + 1:
            self._over += 1
        elif level <= self.target:
            self._over = 0
        if self._over >= 2 and level > self.target:  # backlog for 2 ticks: drain it down to the target
            head = frames.get(self._next)
            if head is not None and 1 not in head.translate(self._loud):
                del frames[self._next]  # drain: a frame of silence is not played
                self.drained += 1
                self._next = (self._next + 1) & 0xFFFF
                level -= 1
        frame = frames.pop(self._next, None)
        if frame is None:
            if not frames:  # underrun: conceal, keep waiting for this frame, re-prime to the target
                self._started = False
                self.concealed += 1
                return None
            if level <= self.target:  # a later frame is here but we are within the target: wait a tick
                self.concealed += 1
                return None
            self.lost += 1
        self._next = (self._next + 1) & 0xFFFF
        return frame

    def stats(self) -> dict:
        return {"target_ms": self.target * 20, "level_ms": self.level() * 20,
                "jitter_p95_ms": round(self.jitter_q * 1000.0, 1), "concealed": self.concealed,
                "drained": self.drained, "lost": self.lost, "late": self.late}

    def __len__(self) -> int:
        return len(self._frames)
