"""Inbound jitter buffer of 20 ms frames keyed by RTP sequence number (16-bit wrap aware)."""

from __future__ import annotations


def seq_diff(a: int, b: int) -> int:
    """a - b on the 16-bit sequence circle, in -32768..32767."""
    return ((a - b + 32768) & 0xFFFF) - 32768


class JitterBuffer:
    """Reorders, drops duplicates and late packets, and reports loss.

    ``pop()`` is called once per 20 ms tick; None means "nothing to play" (the caller conceals with
    silence). Playout starts once ``depth`` frames are buffered, which absorbs that much jitter.
    A jump of more than ``resync_gap`` packets (new talkspurt after a long gap, SSRC change)
    restarts playout at the new sequence instead of waiting for packets that will never come.
    """

    __slots__ = ("depth", "resync_gap", "_frames", "_next", "_started", "received", "lost", "late",
                 "duplicate", "max_size")

    def __init__(self, depth: int = 2, resync_gap: int = 50, max_size: int = 50) -> None:
        self.depth = depth
        self.resync_gap = resync_gap
        self.max_size = max_size
        self._frames: dict[int, bytes] = {}
        self._next: int | None = None
        self._started = False
        self.received = self.lost = self.late = self.duplicate = 0

    def put(self, seq: int, payload: bytes) -> None:
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
            self._next = seq
        self._frames[seq] = payload
        if len(self._frames) > self.max_size:  # consumer stalled: skip ahead
            oldest = min(self._frames, key=lambda s: seq_diff(s, self._next))
            del self._frames[oldest]
            self.lost += 1

    def reset(self) -> None:
        self._frames.clear()
        self._next = None
        self._started = False

    def pop(self) -> bytes | None:
        if self._next is None:
            return None
        if not self._started:
            if len(self._frames) < self.depth:
                return None
            self._started = True
        frame = self._frames.pop(self._next, None)
        if frame is None:
            if not self._frames:  # underrun: wait for the next packet to re-prime
                self._started = False
                return None
            self.lost += 1
        self._next = (self._next + 1) & 0xFFFF
        return frame

    def __len__(self) -> int:
        return len(self._frames)
