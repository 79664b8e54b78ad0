"""The bridge's own audio clock: when each inbound frame reached the pipeline and when the caller
last made a sound. It is the zero of every turn's latency waterfall and of the filler/apology
deadlines, so it must not depend on which recogniser runs (Flux words carry times, the offline
recogniser's are coarse, DTMF has none) nor on when a recogniser's EndOfTurn happens to arrive.

Voicing is decided per 20 ms G.711 frame with one ``bytes.translate`` and a ``count``: a byte table
marks samples louder than about -30 dBFS, so the per-packet cost is two C calls, no numpy, no decode.
"""

from __future__ import annotations

import collections

from aioptions.codecs import g711
from aioptions.providers.base import TurnEvent

FRAME_S = 0.02
LOUD_LEVEL = 1000  # |sample| above this (16-bit scale) counts as voiced
MIN_LOUD_SAMPLES = 32  # of 160 per frame: a fifth of the frame


def _loud_table(decode) -> bytes:
    pcm = decode(bytes(range(256)))
    return bytes(1 if abs(int(v)) > LOUD_LEVEL else 0 for v in pcm)


_TABLES = {"PCMU": _loud_table(g711.ulaw_decode), "PCMA": _loud_table(g711.alaw_decode)}


class VoiceClock:
    def __init__(self, codec: str, history_s: float = 60.0) -> None:
        self._table = _TABLES.get(codec, _TABLES["PCMU"])
        self._times: collections.deque[float] = collections.deque(maxlen=int(history_s / FRAME_S))
        self.frames = 0
        self.last_voiced_at: float | None = None  # monotonic end of the last voiced frame

    def on_frame(self, frame: bytes, now: float) -> None:
        self._times.append(now)
        self.frames += 1
        if frame.translate(self._table).count(1) >= MIN_LOUD_SAMPLES:
            self.last_voiced_at = now + FRAME_S

    @property
    def audio_seconds(self) -> float:
        return self.frames * FRAME_S

    def audio_time_to_monotonic(self, t: float) -> float | None:
        """Map a time on the STT audio clock (seconds of call audio) to when that audio reached us."""
        k = int(t / FRAME_S)
        first = self.frames - len(self._times)
        if k < first or k >= self.frames:
            return None
        return self._times[k - first] + (t - k * FRAME_S)

    def speech_end(self, ev: TurnEvent, max_age_s: float = 10.0) -> float:
        """When the caller stopped speaking, for a turn that ended with ``ev``: the last voiced frame
        before the event (the bridge's clock, right with every recogniser), else the recogniser's
        word end mapped to our clock, else the event's arrival."""
        at = ev.received_at
        voiced = self.last_voiced_at
        if voiced is not None and voiced <= at + FRAME_S and at - voiced <= max_age_s:
            return min(voiced, at)
        mapped = self.audio_time_to_monotonic(ev.speech_end) if ev.speech_end else None
        if mapped is None or mapped > at:
            return at
        return mapped
