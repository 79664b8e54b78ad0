"""A browser call as the agent sees it: ``CallHandle`` over WebSocket frames (plain asyncio, no Django).

The browser sends 160-byte mu-law frames (20 ms at 8 kHz) as binary messages; they wait in a short
inbound buffer and leave it one per tick of a 20 ms media clock, with silence when none arrived
(the pipeline needs a continuous stream, exactly as from RTP). The agent's audio is paced on the
same tick and each 20 ms frame goes to the browser as one binary message, so barge-in works like
on the phone: ``clear_playout`` drops what was not sent yet and tells the page to drop the little
it has buffered. Every tick writes one caller and one agent frame to the stereo recording.
"""

from __future__ import annotations

import asyncio
import collections
import time
import weakref
from collections.abc import AsyncIterator, Callable

from telephony.media.contract import CallEvent, HangupEvent, events_until_hangup
from telephony.rtp.clock import MediaClock
from telephony.rtp.playout import FRAME, FrameQueue, Playout

SILENCE = b"\xff" * FRAME  # mu-law zero
MAX_INBOUND_FRAMES = 10  # 200 ms: older caller audio is dropped rather than delaying every turn
MAX_MESSAGE_BYTES = FRAME * 10

_clocks: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def media_clock() -> MediaClock:
    """One 20 ms clock for every browser call of this event loop (as the bridge has one for RTP)."""
    loop = asyncio.get_running_loop()
    clock = _clocks.get(loop)
    if clock is None:
        clock = _clocks[loop] = MediaClock()
    return clock


class BrowserCall:
    """Implements ``CallHandle``. ``send_audio(frame)`` and ``send_control(dict)`` must not block
    (the consumer queues them for its socket); ``recorder`` is a ``StereoRecorder`` or None."""

    codec = "PCMU"
    dialed_user = "browser"

    def __init__(self, *, call_id: str, caller_uri: str, record_id: int | None, campaign_id: int | None,
                 send_audio: Callable[[bytes], None], send_control: Callable[[dict], None],
                 recorder=None, clock: MediaClock | None = None) -> None:
        self.call_id = call_id
        self.caller_uri = caller_uri
        self.record_id = record_id
        self.campaign_id = campaign_id
        self.context: dict = {}
        self.direction = "inbound"
        self.recorder = recorder
        self._send_audio = send_audio
        self._send_control = send_control
        self._inbound: collections.deque[bytes] = collections.deque()
        self._partial = b""
        self._frames = FrameQueue(maxlen=250)  # the caller's frames, read by audio_in()
        self.playout = Playout(FRAME)  # the agent's audio, one frame per tick
        self._events: asyncio.Queue[CallEvent] = asyncio.Queue()
        self.ended = asyncio.Event()
        self.end_reason: str | None = None
        self.last_agent_packet_at: float | None = None
        self.frames_in = self.frames_out = self.frames_concealed = self.frames_dropped = 0
        self._clock = clock
        if clock is not None:
            clock.add(self.tick)

    # --- from the browser ------------------------------------------------------------------
    def feed(self, data: bytes) -> None:
        """Caller audio from one WebSocket message (any length up to MAX_MESSAGE_BYTES)."""
        if self.ended.is_set() or not data:
            return
        data = self._partial + data[:MAX_MESSAGE_BYTES]
        whole = len(data) - len(data) % FRAME
        for i in range(0, whole, FRAME):
            self._inbound.append(data[i:i + FRAME])
            self.frames_in += 1
        self._partial = data[whole:]
        while len(self._inbound) > MAX_INBOUND_FRAMES:
            self._inbound.popleft()
            self.frames_dropped += 1

    def mark_ended(self, reason: str) -> None:
        if self.ended.is_set():
            return
        self.end_reason = reason
        self.ended.set()
        if self._clock is not None:
            self._clock.remove(self.tick)
        self._frames.close()
        self._events.put_nowait(HangupEvent(reason, time.monotonic()))

    # --- clock -----------------------------------------------------------------------------
    def tick(self, now: float, n: int = 0) -> None:
        if self.ended.is_set():
            return
        if self._inbound:
            frame = self._inbound.popleft()
        else:
            frame = SILENCE
            self.frames_concealed += 1
        self._frames.push(frame)
        out = self._next_out(now)
        if self.recorder is not None:
            self.recorder.write(frame, out if out is not None else SILENCE)

    def _next_out(self, now: float) -> bytes | None:
        if not self.playout:
            return None
        out = self.playout.take(now)
        if len(out) < FRAME:
            out += SILENCE[: FRAME - len(out)]
        self.last_agent_packet_at = now
        self.frames_out += 1
        self._send_audio(out)
        return out

    # --- CallHandle ------------------------------------------------------------------------
    def audio_in(self) -> AsyncIterator[bytes]:
        return self._frames.frames()

    def events(self) -> AsyncIterator[CallEvent]:
        return events_until_hangup(self._events)

    def play(self, payload: bytes, on_sent: Callable[[float], None] | None = None) -> None:
        if not self.ended.is_set():
            self.playout.put(payload, on_sent)

    def clear_playout(self) -> int:
        dropped = self.playout.clear()
        self._send_control({"type": "clear"})  # the page drops what it has buffered too
        return dropped

    @property
    def playout_queued_bytes(self) -> int:
        return len(self.playout)

    async def playout_drained(self, timeout: float) -> None:
        await self.playout.wait_drained(self.ended, timeout)

    async def hangup(self, reason: str = "agent", drain_timeout: float = 10.0) -> None:
        """Let queued agent audio play out (bounded), then end the call."""
        await self.playout_drained(drain_timeout)
        await asyncio.sleep(0.1)  # a grace for the page to play its last buffered frames
        self.mark_ended(reason)

    def stats(self) -> dict:
        return {"packets_in": self.frames_in, "packets_out": self.frames_out, "lost": self.frames_dropped,
                "late": 0, "jitter_ms": 0.0, "concealed": self.frames_concealed}
