"""An in-memory CallHandle with a real 20 ms pacing loop: what the pipeline sees from the bridge,
without SIP (tests and benchmarks drive the pipeline through it). Inbound audio comes from a script
of frames; outbound frames are recorded with their send times so tests can measure time-to-silence
and mouth-to-ear."""

from __future__ import annotations

import asyncio
import time

from telephony.media.contract import DtmfEvent, HangupEvent, events_until_hangup
from telephony.rtp.playout import Playout

SILENCE = b"\xff" * 160


class FakeCall:
    def __init__(self, inbound: bytes = b"", codec: str = "PCMU", record_id: int | None = None,
                 campaign_id: int | None = None, max_seconds: float = 30.0) -> None:
        self.call_id = "fake-call"
        self.dialed_user = "100"
        self.caller_uri = "sip:tester@127.0.0.1"
        self.codec = codec
        self.record_id = record_id
        self.campaign_id = campaign_id
        self.context: dict = {}
        self.inbound = inbound
        self.max_seconds = max_seconds
        self.playout = Playout()  # the agent's audio: the same queue and send marks as an RTP session's
        self.sent: list[tuple[float, bool]] = []  # (time, carried agent audio); index n = audio time n * 20 ms
        self.wire = bytearray()  # every agent byte that left, in order (what the caller heard)
        self.last_agent_packet_at: float | None = None
        self.ended = asyncio.Event()
        self.end_reason: str | None = None
        self._events: asyncio.Queue = asyncio.Queue()
        self._frames: asyncio.Queue = asyncio.Queue()
        self._task = asyncio.get_running_loop().create_task(self._clock())

    def feed(self, audio: bytes) -> None:
        self.inbound += audio

    async def _clock(self) -> None:
        t0 = time.monotonic()
        n = 0
        pos = 0
        while not self.ended.is_set() and n * 0.02 < self.max_seconds:
            await asyncio.sleep(max(0.0, t0 + n * 0.02 - time.monotonic()))
            now = time.monotonic()
            frame = self.inbound[pos:pos + 160] if pos < len(self.inbound) else SILENCE
            pos += 160
            self._frames.put_nowait(frame.ljust(160, b"\xff"))
            agent = bool(self.playout)
            if agent:
                self.wire += self.playout.take(now)
                self.last_agent_packet_at = now
            self.sent.append((now, agent))
            n += 1
        self._end("timeout")

    def _end(self, reason: str) -> None:
        if not self.ended.is_set():
            self.end_reason = reason
            self.ended.set()
            self._events.put_nowait(HangupEvent(reason, time.monotonic()))
            self._frames.put_nowait(None)

    # --- CallHandle ---
    async def audio_in(self):
        while True:
            f = await self._frames.get()
            if f is None:
                return
            yield f

    def events(self):
        return events_until_hangup(self._events)

    def dtmf(self, digit: str) -> None:
        self._events.put_nowait(DtmfEvent(digit, time.monotonic()))

    def play(self, payload: bytes, on_sent=None) -> None:
        self.playout.put(payload, on_sent)

    def clear_playout(self) -> int:
        return self.playout.clear()

    @property
    def playout_queued_bytes(self) -> int:
        return len(self.playout)

    async def playout_drained(self, timeout: float) -> None:
        await self.playout.wait_drained(self.ended, timeout)

    async def hangup(self, reason: str = "agent") -> None:
        await self.playout_drained(3600.0)  # the test's clock drives the ticks that drain it
        self._end(reason)

    def agent_audio_seconds(self) -> float:
        return sum(1 for _, a in self.sent if a) * 0.02


def voiced(spans: list[tuple[float, float]], seconds: float, freq: float = 300.0) -> bytes:
    """Inbound mu-law audio: a tone ("speech") in each (start, end) span, silence elsewhere, so the
    bridge's voice clock sees where the caller spoke, on the same audio clock the fake Flux uses."""
    import numpy as np

    from aioptions.codecs import g711

    pcm = np.zeros(int(seconds * 8000), dtype=np.int16)
    for start, end in spans:
        a, b = int(start * 8000), int(end * 8000)
        pcm[a:b] = (np.sin(2 * np.pi * freq * np.arange(b - a) / 8000) * 8000).astype(np.int16)
    return g711.ulaw_encode(pcm)
