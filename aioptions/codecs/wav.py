"""WAV files to call audio: PCM16 mono out of a RIFF file, and a WAV as G.711 at 8 kHz.

Here, in the Django-free codec layer, because both the media plane (an outbound call's early
greeting, telephony.media.outbound) and the agents (telephony.agents.greeting) play WAV files:
with the helper in the agents package the media layer imported the layer above it.
"""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np

from . import g711
from .resample import resample

__all__ = ["read_wav_bytes", "wav_to_g711"]


def read_wav_bytes(data: bytes) -> tuple[np.ndarray, int]:
    """PCM16 mono samples and rate from a RIFF WAV (espeak-ng writes a streaming header)."""
    if data[:4] != b"RIFF":
        raise ValueError("not a WAV")
    rate = int.from_bytes(data[24:28], "little")
    pos = 12
    while pos + 8 <= len(data):
        cid, size = data[pos:pos + 4], int.from_bytes(data[pos + 4:pos + 8], "little")
        if cid == b"data":
            body = data[pos + 8:]
            if 0 < size <= len(body):
                body = body[:size]
            return np.frombuffer(body[: len(body) // 2 * 2], dtype="<i2").astype(np.int16), rate
        pos += 8 + size
    raise ValueError("WAV without data chunk")


def wav_to_g711(path: Path, codec: str) -> bytes:
    """A WAV file (any rate) as the call's G.711, ready for ``CallHandle.play``."""
    with wave.open(str(path), "rb") as w:
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
        rate = w.getframerate()
    if rate != 8000:
        pcm = resample(pcm, rate, 8000)
    return g711.encode(codec, pcm)
