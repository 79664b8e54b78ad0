"""Offline TTS: espeak-ng run as a separate program (it is GPL-3; we never link it), streamed
sentence by sentence and converted to the requested format (mu-law/A-law 8 kHz or PCM 16 kHz).

The text (an LLM reply, a preview sentence) is fed on stdin: nothing a caller or a model says can
become a command-line option."""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
import time
from collections.abc import AsyncIterator

import numpy as np

from aioptions.codecs import g711
from aioptions.codecs.resample import Resampler

from .base import TTS, AudioFormat, TTSError, TTSUtterance

ESPEAK_RATE = 22050
_BOUNDARY = re.compile(r"[.!?;:,]\s*$")


class OfflineUtterance(TTSUtterance):
    def __init__(self, tts: OfflineTTS, fmt: AudioFormat) -> None:
        self.tts = tts
        self.fmt = fmt
        self._pending = ""
        self._texts: asyncio.Queue[str | None] = asyncio.Queue()
        self._cancelled = False
        self._proc: asyncio.subprocess.Process | None = None

    async def push(self, text: str) -> None:
        if self._cancelled or not text:
            return
        if self.requested_at is None:
            self.requested_at = time.monotonic()
        self._pending += text
        if _BOUNDARY.search(self._pending):
            await self._texts.put(self._pending)
            self._pending = ""

    async def finish(self) -> None:
        if self._pending.strip():
            await self._texts.put(self._pending)
        self._pending = ""
        await self._texts.put(None)

    async def audio(self) -> AsyncIterator[bytes]:
        while not self._cancelled:
            text = await self._texts.get()
            if text is None:
                return
            if not text.strip():
                continue
            pcm = await self._synth(text)
            if self._cancelled:
                return
            out = self._convert(pcm)
            if out:
                if self.first_audio_at is None:
                    self.first_audio_at = time.monotonic()
                yield out

    async def _synth(self, text: str) -> np.ndarray:
        try:
            # The text is caller/LLM/user input: it goes on stdin, never into argv, where "-f/etc/x"
            # would be an option (espeak-ng would read that file aloud).
            self._proc = await asyncio.create_subprocess_exec(
                *self.tts.argv(), stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.DEVNULL)
            out, _ = await asyncio.wait_for(self._proc.communicate(text.strip().encode("utf-8", "replace")), 20)
        except (TimeoutError, OSError) as exc:
            raise TTSError(f"espeak-ng failed: {exc}", kind="server", provider="offline") from None
        if self._proc.returncode != 0:
            raise TTSError(f"espeak-ng exited with {self._proc.returncode}", kind="server", provider="offline")
        data = out[44:] if out[:4] == b"RIFF" else out
        return np.frombuffer(data[: len(data) // 2 * 2], dtype="<i2").astype(np.int16)

    def _convert(self, pcm: np.ndarray) -> bytes:
        if self.fmt.encoding == "linear16":
            res = Resampler(ESPEAK_RATE, self.fmt.sample_rate)
            return np.concatenate([res.process(pcm), res.flush()]).astype("<i2").tobytes()
        res = Resampler(ESPEAK_RATE, 8000)
        pcm8 = np.concatenate([res.process(pcm), res.flush()])
        return g711.ulaw_encode(pcm8) if self.fmt.encoding == "mulaw" else g711.alaw_encode(pcm8)

    async def cancel(self) -> None:
        self._cancelled = True
        if self._proc is not None and self._proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self._proc.kill()
        await self._texts.put(None)


class OfflineTTS(TTS):
    name = "offline"
    model = "espeak-ng"

    def __init__(self, voice_id: str = "offline-espeak-en-us", *, voice: str = "en-us", speed: int = 165) -> None:
        self.voice_id = voice_id
        self.voice = voice
        self.speed = speed
        self.binary = shutil.which("espeak-ng") or "espeak-ng"

    def argv(self) -> list[str]:
        """The command line: only our own options; the text always arrives on stdin (--stdin)."""
        return [self.binary, "--stdout", "--stdin", "-v", self.voice, "-s", str(int(self.speed))]

    async def utterance(self, fmt: AudioFormat) -> TTSUtterance:
        if fmt.encoding != "linear16" and fmt.sample_rate != 8000:
            raise TTSError("G.711 output is 8 kHz only", kind="bad_request", provider="offline")
        return OfflineUtterance(self, fmt)
