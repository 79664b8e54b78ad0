"""Greeting agent: speaks the campaign greeting (espeak-ng, cached as a WAV), then listens and
hangs up after ``idle_s`` — enough to test the bridge without any AI provider."""

from __future__ import annotations

import asyncio
import hashlib
import wave
from pathlib import Path

from aioptions.codecs.resample import resample
from aioptions.codecs.wav import read_wav_bytes, wav_to_g711  # re-exported: tests/transfer use it here
from telephony.media.contract import CallHandle, HangupEvent


async def synthesize_wav(text: str, cache_dir: Path) -> Path:
    """espeak-ng (GPL: run as a program, never linked) -> 8 kHz mono WAV, cached by text hash."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    path = cache_dir / f"{hashlib.sha256(text.encode()).hexdigest()[:16]}.wav"
    if path.exists():
        return path
    # The greeting is operator text: on stdin, so a leading "-" is spoken, never parsed as an option.
    proc = await asyncio.create_subprocess_exec("espeak-ng", "--stdout", "--stdin", "-v", "en-us", "-s", "160",
                                                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.DEVNULL)
    out, _ = await asyncio.wait_for(proc.communicate(text.encode("utf-8", "replace")), 30)
    if proc.returncode != 0 or len(out) < 44:
        raise RuntimeError("espeak-ng failed")
    pcm, rate = read_wav_bytes(out)
    pcm8 = resample(pcm, rate, 8000)
    tmp = path.with_suffix(".tmp")
    with wave.open(str(tmp), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(pcm8.astype("<i2").tobytes())
    tmp.replace(path)
    return path


class GreetingAgent:
    def __init__(self, greeting: str, cache_dir: Path, idle_s: float = 30.0) -> None:
        self.greeting = greeting
        self.cache_dir = cache_dir
        self.idle_s = idle_s

    async def run(self, call: CallHandle) -> None:
        wav = await synthesize_wav(self.greeting, self.cache_dir)
        call.play(wav_to_g711(wav, call.codec))

        async def until_hangup() -> None:
            async for ev in call.events():
                if isinstance(ev, HangupEvent):
                    return

        try:
            await asyncio.wait_for(until_hangup(), self.idle_s)
        except TimeoutError:
            await call.hangup("agent")
