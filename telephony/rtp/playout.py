"""The two queues every call transport has between its 20 ms clock tick and the agent, in one place.

``Playout`` is the agent's audio waiting for the tick: bytes in, one frame per tick out, and a
callback at the tick that sends a given byte (the pipeline's mouth-to-ear and barge-in marks).
``FrameQueue`` is the caller's frames the other way: the tick pushes one, the agent's async
iterator reads them and ends when the call closes. The RTP session, the browser call and the
in-memory call used to carry three copies of this bookkeeping; a bug fixed in one stayed in the
others. Plain asyncio, no Django (the RTP layer uses it, so it may import nothing above it).
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import AsyncIterator, Callable

FRAME = 160  # bytes of G.711 per 20 ms

OnSent = Callable[[float], None]


class Playout:
    """Agent audio queued for the clock, with send-time marks.

    Offsets are absolute byte positions in everything ever queued, so a mark set at "the end of
    what is queued now" fires on the tick that sends that byte, and ``clear`` (barge-in) drops the
    marks of audio that will never be sent.
    """

    def __init__(self, frame: int = FRAME) -> None:
        self.frame = frame
        self._out = bytearray()
        self._offset = 0  # absolute byte index of _out[0]
        self._marks: collections.deque[tuple[int, OnSent]] = collections.deque()
        self.drained = asyncio.Event()  # set while nothing is queued: hang-up and "played" wait on it
        self.drained.set()

    def put(self, payload: bytes, on_sent: OnSent | None = None) -> None:
        """Queue ``payload``; ``on_sent(now)`` runs at the tick that sends its first byte."""
        if not payload:
            return
        if on_sent is not None:
            self._marks.append((self._offset + len(self._out), on_sent))
        self._out += payload
        self.drained.clear()

    def clear(self) -> int:
        """Drop everything not sent yet (and its marks); returns the bytes dropped."""
        dropped = len(self._out)
        self._offset += dropped
        self._out.clear()
        self._marks.clear()
        self.drained.set()
        return dropped

    def __len__(self) -> int:
        return len(self._out)

    def take(self, now: float) -> bytes:
        """The next frame's bytes (up to one frame: the caller pads a short tail), firing the marks
        it carries with ``now``."""
        out = bytes(self._out[:self.frame])
        del self._out[:self.frame]
        start = self._offset
        self._offset += len(out)
        while self._marks and self._marks[0][0] < self._offset:
            pos, cb = self._marks.popleft()
            if pos >= start:
                cb(now)
        if not self._out:
            self.drained.set()
        return out

    async def wait_drained(self, stop: asyncio.Event, timeout: float) -> None:
        """Until every queued byte has been taken by a tick (or cleared), ``stop`` is set (the call
        ended), or ``timeout`` seconds pass: an event wait, no polling."""
        if self.drained.is_set() or stop.is_set():
            return
        waits = [asyncio.ensure_future(self.drained.wait()), asyncio.ensure_future(stop.wait())]
        try:
            await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()


class FrameQueue:
    """Inbound frames from the clock tick to one async reader; bounded, oldest dropped first."""

    def __init__(self, maxlen: int = 250) -> None:
        self._frames: collections.deque[bytes] = collections.deque(maxlen=maxlen)
        self._event = asyncio.Event()
        self._closed = False

    def push(self, frame: bytes) -> bool:
        """Add a frame and wake the reader; False when the queue was full and the oldest was dropped."""
        full = len(self._frames) == self._frames.maxlen
        self._frames.append(frame)
        self._event.set()
        return not full

    def clear(self) -> None:
        self._frames.clear()

    def close(self) -> None:
        """End the reader's iteration once it has read what is queued."""
        self._closed = True
        self._event.set()

    def __len__(self) -> int:
        return len(self._frames)

    async def frames(self) -> AsyncIterator[bytes]:
        """Every frame pushed, in order; ends after ``close``."""
        while True:
            while self._frames:
                yield self._frames.popleft()
            if self._closed:
                return
            self._event.clear()
            await self._event.wait()
