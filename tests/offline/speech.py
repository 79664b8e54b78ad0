"""Test speech for the offline engines: espeak-ng (and Piper when installed) through the G.711
round trip a phone call imposes, with silence around it at known times."""

from __future__ import annotations

import numpy as np

from aioptions.providers.base import MULAW_8K
from aioptions.providers.offline_tts import OfflineTTS

SILENCE = b"\xff"  # mu-law zero


async def espeak_mulaw(text: str) -> bytes:
    u = await OfflineTTS().utterance(MULAW_8K)
    await u.push(text)
    await u.finish()
    return b"".join([c async for c in u.audio()])


def silence(seconds: float) -> bytes:
    return SILENCE * int(seconds * 8000)


def first_voiced(mulaw: bytes, threshold: int = 300) -> float:
    """Seconds to the first sample louder than ``threshold`` (the true speech onset)."""
    from aioptions.codecs import g711

    pcm = np.abs(g711.ulaw_decode(mulaw).astype(np.int32))
    idx = np.flatnonzero(pcm > threshold)
    return float(idx[0]) / 8000 if len(idx) else 0.0


def trim_tail(mulaw: bytes, threshold: int = 300) -> bytes:
    """The clip without its trailing quiet (engines end their files with silence)."""
    from aioptions.codecs import g711

    pcm = np.abs(g711.ulaw_decode(mulaw).astype(np.int32))
    idx = np.flatnonzero(pcm > threshold)
    return mulaw[: int(idx[-1]) + 160] if len(idx) else mulaw


async def feed(session, audio: bytes, frame: int = 160) -> None:
    for i in range(0, len(audio), frame):
        await session.send(audio[i:i + frame])


def piper_mulaw(text: str) -> bytes:
    """Piper's voice (run as its own program, text on stdin) with its random noise switched off, so a
    test hears the same audio every run; 8 kHz mu-law like a call."""
    import subprocess
    import sys
    import tempfile
    import wave

    from aioptions.providers.offline_piper import to_format, voice_path

    with tempfile.TemporaryDirectory() as d:
        out = f"{d}/out.wav"
        subprocess.run([sys.executable, "-m", "piper", "-m", str(voice_path()), "--noise-scale", "0",
                        "--noise-w-scale", "0", "-f", out], input=text.encode(), check=True, timeout=60,
                       capture_output=True)
        with wave.open(out) as w:
            rate = w.getframerate()
            pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.int16)
    return to_format(pcm, rate, MULAW_8K)
