"""The audio every fake TTS speaks: a voice-dependent tone, G.711 mu-law/A-law and PCM encodings, and the
inverse helpers tests use to check which voice spoke.

Why a file of its own: the fake Cartesia and fake Google servers both speak this audio, and tests decode it;
``aioptions.fakes.cartesia_server`` re-exports every name, so imports from there keep working.
"""

from __future__ import annotations

import zlib

import numpy as np

_SEG_END = np.array([0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF], dtype=np.int32)
_SEG_UEND = np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF], dtype=np.int32)
_MU_BIAS = 0x84


def ulaw_encode(pcm: np.ndarray) -> bytes:
    """G.711 mu-law (Sun g711.c / audioop, vectorised). Test-only twin of aioptions.codecs.g711."""
    x = pcm.astype(np.int32) >> 2
    mask = np.where(x < 0, 0x7F, 0xFF)
    mag = np.minimum(np.abs(x), 8159) + 0x21
    seg = np.searchsorted(_SEG_UEND, mag, side="left")
    uval = (np.minimum(seg, 7) << 4) | ((mag >> (np.minimum(seg, 7) + 1)) & 0x0F)
    uval = np.where(seg >= 8, 0x7F, uval)
    return ((uval ^ mask) & 0xFF).astype(np.uint8).tobytes()


def ulaw_decode(data: bytes) -> np.ndarray:
    u = ~np.frombuffer(data, dtype=np.uint8).astype(np.int32) & 0xFF
    exp, mant = (u >> 4) & 7, u & 0x0F
    mag = (((mant << 3) + _MU_BIAS) << exp) - _MU_BIAS
    return np.where(u & 0x80, -mag, mag).astype(np.int16)


def alaw_encode(pcm: np.ndarray) -> bytes:
    """G.711 A-law (Sun g711.c, vectorised)."""
    x = pcm.astype(np.int32) >> 3
    mask = np.where(x >= 0, 0xD5, 0x55)
    x = np.where(x >= 0, x, -x - 1)
    seg = np.searchsorted(_SEG_END, x, side="left")
    shift = np.where(seg < 2, 1, seg)
    aval = (np.minimum(seg, 7) << 4) | ((x >> shift) & 0x0F)
    aval = np.where(seg >= 8, 0x7F, aval)
    return ((aval ^ mask) & 0xFF).astype(np.uint8).tobytes()


def alaw_decode(data: bytes) -> np.ndarray:
    a = np.frombuffer(data, dtype=np.uint8).astype(np.int32) ^ 0x55
    seg = (a & 0x70) >> 4
    t = (a & 0x0F) << 4
    t = np.where(seg == 0, t + 8, (t + 0x108) << np.maximum(seg - 1, 0))
    return np.where(a & 0x80, t, -t).astype(np.int16)


def voice_frequency(voice_id: str) -> float:
    """The tone frequency (Hz) a fake speaks with for ``voice_id``: 200..775 Hz in 25 Hz steps."""
    return 200.0 + (zlib.crc32(voice_id.encode()) % 24) * 25.0


def tone(freq: float, n: int, rate: int, start: int = 0, amplitude: float = 0.3) -> np.ndarray:
    """``n`` int16 samples of a sine, continuing from sample ``start`` (phase-continuous chunks)."""
    t = (np.arange(start, start + n, dtype=np.float64)) / rate
    return np.round(np.sin(2 * np.pi * freq * t) * amplitude * 32767).astype(np.int16)


def encode(pcm: np.ndarray, encoding: str) -> bytes:
    """Encode int16 PCM to a Cartesia/Google encoding name (pcm_mulaw/mulaw, pcm_alaw/alaw, s16le, f32le)."""
    if encoding in ("pcm_mulaw", "mulaw"):
        return ulaw_encode(pcm)
    if encoding in ("pcm_alaw", "alaw"):
        return alaw_encode(pcm)
    if encoding in ("pcm_s16le", "linear16"):
        return pcm.astype("<i2").tobytes()
    if encoding == "pcm_f32le":
        return (pcm.astype(np.float32) / 32768.0).astype("<f4").tobytes()
    raise ValueError(f"unsupported encoding {encoding!r}")


def decode(data: bytes, encoding: str) -> np.ndarray:
    """Inverse of :func:`encode`, to int16 PCM (for tests that check what was spoken)."""
    if encoding in ("pcm_mulaw", "mulaw"):
        return ulaw_decode(data)
    if encoding in ("pcm_alaw", "alaw"):
        return alaw_decode(data)
    if encoding in ("pcm_s16le", "linear16"):
        return np.frombuffer(data, dtype="<i2").astype(np.int16)
    raise ValueError(f"unsupported encoding {encoding!r}")


def dominant_frequency(pcm: np.ndarray, rate: int) -> float:
    """Frequency (Hz) of the strongest FFT bin: tells which fake voice produced ``pcm``."""
    if len(pcm) < 16:
        return 0.0
    spectrum = np.abs(np.fft.rfft(pcm.astype(np.float64) * np.hanning(len(pcm))))
    return float(np.argmax(spectrum[1:]) + 1) * rate / len(pcm)
