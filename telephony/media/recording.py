"""Stereo call recording: left = caller, right = agent, 8 kHz 16-bit, time-aligned per 20 ms tick.

``write`` only appends G.711 bytes (cheap, once per tick); decoding and interleaving happen in
batches so memory stays bounded on long calls.
"""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np

from telephony.codecs import g711

_BATCH_BYTES = 8000 * 2  # two seconds of G.711 per channel


class StereoRecorder:
    def __init__(self, path: Path, codec: str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.codec = codec
        self._caller = bytearray()
        self._agent = bytearray()
        self._wav = wave.open(str(self.path), "wb")
        self._wav.setnchannels(2)
        self._wav.setsampwidth(2)
        self._wav.setframerate(8000)
        self.frames_written = 0
        self._closed = False

    def write(self, caller_frame: bytes, agent_frame: bytes) -> None:
        if self._closed:
            return
        self._caller += caller_frame
        self._agent += agent_frame
        if len(self._caller) >= _BATCH_BYTES:
            self._flush()

    def _flush(self) -> None:
        n = min(len(self._caller), len(self._agent))
        if not n:
            return
        left = g711.decode(self.codec, bytes(self._caller[:n]))
        right = g711.decode(self.codec, bytes(self._agent[:n]))
        del self._caller[:n]
        del self._agent[:n]
        stereo = np.empty(2 * n, dtype="<i2")
        stereo[0::2] = left
        stereo[1::2] = right
        self._wav.writeframes(stereo.tobytes())
        self.frames_written += n

    def close(self) -> Path:
        if not self._closed:
            self._flush()
            self._wav.close()
            self._closed = True
        return self.path

    @property
    def duration_s(self) -> float:
        return (self.frames_written + len(self._caller)) / 8000.0
